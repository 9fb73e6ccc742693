"""VOC (또는 tfds voc/2007, COCO JSON) 한 분할을 앵커 라벨이 미리 계산된 샤드 TFRecord 로 바꾸는 도구.

사용 예:
    python -m tools.make_tfrecords --voc_dir=data/VOCdevkit/VOC2007 --split=trainval \\
        --output_dir=records --config=vgg16_paper
    python -m tools.make_tfrecords --source=coco --coco_annotations=instances_train.json \\
        --coco_images_dir=images/train --split=train --output_dir=records --config=cpu_small

`<output_dir>/<split>-NNNNN-of-MMMMM.tfrecord` 와 `<output_dir>/<split>.json` (클래스 이름, 프리셋,
앵커 지문, 개수, 건너뛴 파일) 을 쓴다. 모두 임시 이름으로 쓴 뒤 성공하면 이름을 바꾸므로, 실패하면
아무것도 남지 않는다. 잘못된 입력은 "make_tfrecords: error: <file>: <problem>" 한 줄과 종료 코드 1.
"""

import contextlib
import functools
import sys

from absl import app, flags
from tqdm import tqdm

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import coco
from frcnn.data import sources
from frcnn.data import tfds_source
from pipelines import convert

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "voc_dir", None,
    "VOC root that holds Annotations/, JPEGImages/ and ImageSets/Main/ (e.g. "
    "data/VOCdevkit/VOC2007). Required with --source=voc.")
flags.DEFINE_string(
    "split", "trainval",
    "Split to convert: ImageSets/Main/<split>.txt with --source=voc; a tfds split "
    "('train', 'validation', 'test', 'train+validation') with --source=tfds; with --source=coco "
    "only a name. Also the prefix of the output file names.")
flags.DEFINE_string(
    "output_dir", None,
    "Directory (created if needed) for <split>-NNNNN-of-MMMMM.tfrecord shards and <split>.json.")
flags.DEFINE_enum(
    "config", "cpu_small", sorted(config_lib.PRESETS),
    "Preset whose canvas, anchors and RPN matching thresholds the precomputed anchor labels "
    "are made for; training refuses records made for another anchor configuration.")
flags.DEFINE_string(
    "params_override", "",
    "Comma-separated key=value overrides of the preset, e.g. 'input.max_gt_boxes=64'. "
    "'input.train_short_sides=(640,672,704,736,768,800)' also stores the anchor labels of each "
    "training scale (scale jitter; training with that list needs them).")
flags.DEFINE_string(
    "classes", None,
    "Class names in id order 1..C: a comma-separated list or a text file with one name per "
    "line. Objects of other classes are errors (or skipped with --skip_invalid). Default: "
    "the 20 VOC classes when every name is a VOC class, else the sorted names found. With "
    "--source=coco: the category names to keep (labels 1..C in this order; annotations of other "
    "categories are left out); default: every category, labels in category-id order.")
flags.DEFINE_enum(
    "difficult", None, list(config_lib.DIFFICULT_MODES),
    "How VOC 'difficult' objects enter the precomputed anchor labels (and training): 'drop' "
    "removes them from the targets (py-faster-rcnn's USE_DIFF=False), 'ignore' makes anchors "
    "and RoIs that cover them neither positive nor negative, 'keep' trains on them like other "
    "objects. The records keep every object with its difficult flag for evaluation either way. "
    "Default: the preset's input.difficult (vgg16_*: drop; cpu_small: keep, measured best on the sample "
    "set, whose difficult objects are tiny). Training must use the same setting "
    "(--params_override=input.difficult=...).")
flags.DEFINE_integer(
    "num_shards", None,
    "Number of output shards; default: one per ~500 images, at least 1.", lower_bound=1)
flags.DEFINE_bool(
    "skip_invalid", False,
    "Skip images with bad annotations or image files instead of failing (with --source=coco also "
    "annotations of unknown image ids); they are listed under 'skipped' in <split>.json.")
flags.DEFINE_enum(
    "source", "voc", ["voc", "tfds", "coco"],
    "Where the data comes from: 'voc' reads --voc_dir; 'tfds' reads the TensorFlow Datasets "
    "'voc/2007' dataset (already downloaded into --tfds_data_dir); 'coco' reads a COCO-format "
    "instances JSON (--coco_annotations) and its images (--coco_images_dir).")
flags.DEFINE_string(
    "coco_annotations", None,
    "COCO instances JSON (images, annotations with bbox [x, y, w, h] in pixels and iscrowd, "
    "categories) for --source=coco, as CVAT, Label Studio or Roboflow export it.")
flags.DEFINE_string(
    "coco_images_dir", None, "Directory the 'file_name' of each COCO image is relative to (--source=coco).")
flags.DEFINE_string(
    "tfds_data_dir", None, "TensorFlow Datasets data directory for --source=tfds (default: tfds's own).")
flags.DEFINE_bool(
    "overwrite", False, "Replace existing outputs of the same split in --output_dir.")
flags.DEFINE_bool(
    "progress", True, "Show a progress bar on stderr.")

flags.DEFINE_integer("max_image_pixels", 64 * 1024 * 1024,
                     "Pixel budget: an image whose header (JPEG/PNG/GIF/BMP/WebP) gives more pixels "
                     "(H x W x frames) is refused before it is decoded, naming the file (decompression "
                     "bombs). PIL's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS) follows it. "
                     "Default 64 M pixels.")


def _fail(message: str) -> None:
    print(f"make_tfrecords: error: {message}", file=sys.stderr)
    sys.exit(1)


def _open_source():
    """플래그가 고른 소스를 여는 함수 (출력 검사 뒤에 불린다)."""
    if FLAGS.source == "tfds":
        return functools.partial(tfds_source.open_tfds_source, FLAGS.split, FLAGS.tfds_data_dir,
                                 FLAGS.classes)
    if FLAGS.source == "coco":
        return functools.partial(coco.open_coco_source, FLAGS.coco_annotations, FLAGS.coco_images_dir,
                                 FLAGS.classes)
    return functools.partial(sources.open_voc_source, FLAGS.voc_dir, FLAGS.split, FLAGS.classes)


@contextlib.contextmanager
def _progress_bar(split: str, enabled: bool):
    """convert 의 `progress(done, total)` 콜백을 tqdm 막대(stderr)에 잇는다 (enabled 가 아니면 None).

    막대는 첫 호출 (0, total) 에서 총 이미지 수를 알고 만들고, 블록이 끝나면 닫는다.
    """
    bars = []

    def progress(done, total):
        if not bars:
            bars.append(tqdm(total=total, unit="img", desc=f"make_tfrecords {split}", file=sys.stderr))
        bars[0].update(done - bars[0].n)

    try:
        yield progress if enabled else None
    finally:
        for bar in bars:
            bar.close()


def _params_override() -> str:
    """--params_override 에 --difficult 를 덧붙인다 (json 에 기록되어 학습 쪽 안내에 쓰인다)."""
    items = [FLAGS.params_override] if FLAGS.params_override else []
    if FLAGS.difficult:
        items.append(f"input.difficult={FLAGS.difficult}")
    return ",".join(items)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    if FLAGS.source == "voc" and not FLAGS.voc_dir:
        raise app.UsageError("--voc_dir is required with --source=voc")
    if FLAGS.source == "coco" and not (FLAGS.coco_annotations and FLAGS.coco_images_dir):
        raise app.UsageError("--coco_annotations and --coco_images_dir are required with --source=coco")
    params_override = _params_override()
    if FLAGS.max_image_pixels <= 0:
        raise app.UsageError(f"--max_image_pixels must be > 0, got {FLAGS.max_image_pixels}")
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = FLAGS.max_image_pixels  # 머리 검사 (frcnn.data.image_header) 와 PIL 의 폭탄 검사
    try:
        config = config_lib.build_config(FLAGS.config, params_override)
    except ValueError as error:
        _fail(str(error))
    try:
        with _progress_bar(FLAGS.split, FLAGS.progress) as progress:
            options = convert.ConvertOptions(
                output_dir=FLAGS.output_dir, split=FLAGS.split, num_shards=FLAGS.num_shards,
                skip_invalid=FLAGS.skip_invalid, overwrite=FLAGS.overwrite,
                params_override=params_override, progress=progress)
            summary = convert.convert(_open_source(), record_spec.RecordSpec.from_config(config), options)
    except convert.ConversionError as error:
        _fail(str(error))
    crowd = f"; {summary['num_crowd']} crowd" if summary["num_crowd"] else ""
    print(f"make_tfrecords: {summary['num_images']} images, {summary['num_objects']} objects "
          f"({summary['num_difficult']} difficult, {config.input.difficult}{crowd}), "
          f"{len(summary['skipped'])} skipped, "
          f"{summary['num_shards']} shards in {FLAGS.output_dir} for preset '{config.name}', "
          f"{summary['images_per_second']:.1f} images/s")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
