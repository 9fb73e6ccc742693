"""SavedModel 을 VOC 분할, COCO JSON 또는 TFRecord 에서 평가한다: VOC07 / VOC12 mAP 와 COCO AP 표를 출력한다.

예:
  python -m tools.evaluate --saved_model=exports/cpu_small --voc_dir=data/VOCdevkit/VOC2007 \\
      --split=test --output=runs/eval/report.json --plot_dir=runs/eval/pr
  python -m tools.evaluate --saved_model=exports/cpu_small --coco_annotations=instances_val.json \\
      --coco_images_dir=images/val

용어:
  serve_bytes: SavedModel 의 서명, 인코딩된 JPEG/PNG 바이트 배치 [B] → 검출.
  --records 는 glob 이다: 이 도구가 파일 목록으로 펼쳐 frcnn.eval.runner 에 넘긴다.
  진행 막대 (tqdm, stderr) 는 이 도구가 그리고, runner 는 `progress(done, total)` 콜백만 부른다.
"""

import os
import sys

import tensorflow as tf
from absl import app, flags
from tqdm import tqdm

from frcnn.data import record_spec
from frcnn.data import voc
from frcnn.eval import report, runner
from frcnn.export import loader
from frcnn.export import runtimes

FLAGS = flags.FLAGS

flags.DEFINE_string("saved_model", None, "SavedModel directory (tools/export output); its 'serve_bytes' "
                    "signature is called with batches of JPEG/PNG bytes. Also takes a model.tflite or "
                    "model.onnx from tools/export --formats (run image by image with ai-edge-litert or "
                    "onnxruntime: the deploy extra).")
flags.DEFINE_alias("model", "saved_model")
flags.DEFINE_string("voc_dir", None, "VOC root with Annotations/, JPEGImages/, ImageSets/Main/ (e.g. "
                    ".../VOC2007). Give one of --voc_dir, --records or --coco_annotations.")
flags.DEFINE_string("split", "test", "Split name under ImageSets/Main/ used with --voc_dir.")
flags.DEFINE_string("records", None, "Glob of TFRecord files in TF Object Detection API format "
                    "(feature names as in frcnn/data/records.py). Give one of --voc_dir, --records or "
                    "--coco_annotations.")
flags.DEFINE_string("coco_annotations", None, "COCO instances JSON whose images and boxes are the ground "
                    "truth (crowd objects as pycocotools handles them; the VOC metrics ignore them like "
                    "'difficult'). Needs --coco_images_dir.")
flags.DEFINE_string("coco_images_dir", None, "Directory the 'file_name' of each COCO image is relative to.")
flags.DEFINE_list("metrics", list(report.ALL_METRICS), "Comma-separated metrics: voc07 (11-point devkit "
                  "AP), voc12 (all-point devkit AP), coco (pycocotools AP@[.5:.95], AP50, AP75, "
                  "APs/APm/APl).")
flags.DEFINE_string("output", None, "Write the JSON report here (per-class APs per metric, mAPs, COCO "
                    "numbers, image count, wall time). Written only when the whole evaluation succeeded.")
flags.DEFINE_string("plot_dir", None, "Write one precision-recall PNG per class with ground truth here "
                    "(needs voc07 or voc12 in --metrics).")
flags.DEFINE_integer("batch_size", 8, "Images per serve_bytes call (images of different sizes may share a "
                     "batch).", lower_bound=1)
flags.DEFINE_integer("max_images", None, "Evaluate only the first N images (quick runs).", lower_bound=1)
flags.DEFINE_string("classes", None, "Class list, ids 1..C in order: 'a,b,c' or a text file with one name "
                    "per line. Default: the model's detection_class_names, with VOC directories the VOC 20 "
                    "classes when all annotated names are VOC classes (else the sorted annotated names); "
                    "with --coco_annotations the categories in id order (--classes picks them by name).")
flags.DEFINE_float("iou_threshold", 0.5, "VOC matching threshold: a detection matches when IoU > this value.")
flags.DEFINE_boolean("coco_verbose", False, "Show pycocotools' own printed output.")
flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.")
flags.DEFINE_integer("num_threads", None, "Threads of the LiteRT interpreter / ONNX Runtime session for a "
                     ".tflite / .onnx model (default: the usable CPU cores, cgroup limits included). A "
                     "SavedModel uses TensorFlow's own threading.", lower_bound=1)

flags.DEFINE_integer("max_image_pixels", 64 * 1024 * 1024,
                     "Pixel budget: an image whose header (JPEG/PNG/GIF/BMP/WebP) gives more pixels "
                     "(H x W x frames) is refused before it is decoded, naming the file (decompression "
                     "bombs). PIL's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS) follows it. "
                     "Default 64 M pixels.", lower_bound=1)


def _validate():
    """플래그 조합을 검사한다. 틀리면 app.UsageError."""
    if not FLAGS.saved_model:
        raise app.UsageError("--saved_model (or --model) is required")
    if runtimes.kind_of(FLAGS.saved_model):
        if not os.path.isfile(FLAGS.saved_model):
            raise app.UsageError(f"--model={FLAGS.saved_model}: file not found")
    elif not os.path.isdir(FLAGS.saved_model):
        raise app.UsageError(f"--saved_model={FLAGS.saved_model}: directory not found")
    if [bool(FLAGS.voc_dir), bool(FLAGS.records), bool(FLAGS.coco_annotations)].count(True) != 1:
        raise app.UsageError("give exactly one of --voc_dir, --records or --coco_annotations")
    if bool(FLAGS.coco_annotations) != bool(FLAGS.coco_images_dir):
        raise app.UsageError("--coco_annotations and --coco_images_dir go together")
    if FLAGS.voc_dir and not os.path.isdir(FLAGS.voc_dir):
        raise app.UsageError(f"--voc_dir={FLAGS.voc_dir}: directory not found")
    unknown = [metric for metric in FLAGS.metrics if metric not in report.ALL_METRICS]
    if unknown or not FLAGS.metrics:
        raise app.UsageError(f"--metrics: unknown {unknown or 'empty list'}; choose from "
                             f"{','.join(report.ALL_METRICS)}")
    if FLAGS.plot_dir and not any(metric in report.VOC_METRICS for metric in FLAGS.metrics):
        raise app.UsageError("--plot_dir needs voc07 or voc12 in --metrics")
    if not 0.0 < FLAGS.iou_threshold < 1.0:
        raise app.UsageError(f"--iou_threshold must lie in (0, 1), got {FLAGS.iou_threshold}")


def _evaluate(progress):
    """SavedModel 을 불러와 플래그대로 평가하고 보고서 dict 를 돌려준다."""
    detect_fn = loader.load(FLAGS.saved_model, ("serve_bytes",), FLAGS.num_threads).serve_bytes
    record_paths = record_spec.matching_files(FLAGS.records) if FLAGS.records else None  # glob → 정렬된 목록
    return runner.evaluate(
        detect_fn, voc_dir=FLAGS.voc_dir, split=FLAGS.split, record_paths=record_paths,
        coco_annotations=FLAGS.coco_annotations or None, coco_images_dir=FLAGS.coco_images_dir or None,
        metrics=tuple(FLAGS.metrics), output_path=FLAGS.output, plot_dir=FLAGS.plot_dir,
        batch_size=FLAGS.batch_size, max_images=FLAGS.max_images, classes_flag=FLAGS.classes,
        iou_threshold=FLAGS.iou_threshold, coco_verbose=FLAGS.coco_verbose, progress=progress,
        source_info={"saved_model": FLAGS.saved_model})


def _progress_callback(progress_bar):
    """runner 의 `progress(done, total)` 콜백을 tqdm 막대에 잇는다."""

    def progress(done, total):
        if progress_bar.total != total:
            progress_bar.total = total
            progress_bar.refresh()
        progress_bar.update(done - progress_bar.n)

    return progress


def main(argv):
    """플래그를 검사하고 SavedModel 을 평가해 표를 출력한다. 잘못된 입력은 stderr 한 줄과 종료 코드 1."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    _validate()
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = FLAGS.max_image_pixels  # 머리 검사 (frcnn.data.image_header) 와 PIL 의 폭탄 검사
    try:
        with tqdm(desc="evaluate", unit="img", file=sys.stderr, disable=not FLAGS.progress) as progress_bar:
            evaluation_report = _evaluate(_progress_callback(progress_bar))
    except (voc.VocError, ValueError, OSError, ImportError, tf.errors.OpError) as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(report.format_table(evaluation_report))


def run():
    """콘솔 스크립트 진입점."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
