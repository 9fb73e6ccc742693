"""내보낸 SavedModel 로 이미지의 물체를 검출하고, 박스·클래스 이름·점수를 그려 저장하는 도구.

사용 예:
    python -m tools.detect --saved_model=exports/voc07 --images=photos/ --output_dir=drawn/

각 이미지의 원본 바이트를 `serve_bytes` 시그니처에 넣고 `<stem>_detections.<png|jpg>` 와
`detections.json` 을 쓴다 (`tools.detect_io.detect_images`, 그리기는 `frcnn.viz.draw`).
실패하면 `detect: error: <파일>: <문제>` 를 알리고 0 이 아닌 코드로 끝나며, 반쯤 쓴 출력은 남기지 않는다.

용어:
    N: SavedModel 이 돌려주는 검출 수. 박스: 정규화 [ymin, xmin, ymax, xmax].
    stem: 입력 파일 이름에서 확장자를 뺀 것.
"""

import sys

from absl import app, flags

from tools import detect_io

FLAGS = flags.FLAGS

flags.DEFINE_string(
    "saved_model", None,
    "Directory of a SavedModel exported by tools/export. It must have a `serve_bytes` "
    "signature (string [B] JPEG/PNG bytes -> detection_boxes, detection_scores, "
    "detection_classes, detection_class_names, num_detections). Also takes a model.tflite or "
    "model.onnx from tools/export --formats (run with ai-edge-litert / onnxruntime: the deploy extra).")
flags.DEFINE_alias("model", "saved_model")
flags.DEFINE_string(
    "images", None,
    "Images to run on: one file, a comma-separated list, a directory (every .jpg/.jpeg/.png "
    "in it, sorted by name), or a glob pattern such as 'photos/*.jpg'. JPEG or PNG only.")
flags.DEFINE_string(
    "output_dir", None,
    "Directory (created if needed) that receives <stem>_detections.<format> for each image "
    "and detections.json (per image: boxes normalized and in pixels, scores, class names).")
flags.DEFINE_float(
    "score_threshold", 0.5,
    "Detections scoring below this value (in [0, 1]) are neither drawn nor written to "
    "detections.json.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_enum(
    "format", "jpg", ["png", "jpg"],
    "File format of the drawn images: png (lossless) or jpg (quality 95).")
flags.DEFINE_integer(
    "max_images", None,
    "Process only the first N matched images (after sorting); default: all of them.", lower_bound=1)
flags.DEFINE_integer(
    "num_threads", None,
    "Threads of the LiteRT interpreter / ONNX Runtime session for a .tflite / .onnx model "
    "(default: the usable CPU cores, cgroup limits included). A SavedModel uses TensorFlow's own "
    "threading.", lower_bound=1)
flags.mark_flags_as_required(["saved_model", "images", "output_dir"])

flags.DEFINE_integer("max_image_pixels", 64 * 1024 * 1024,
                     "Pixel budget: an image whose header (JPEG/PNG/GIF/BMP/WebP) gives more pixels "
                     "(H x W x frames) is refused before it is decoded, naming the file (decompression "
                     "bombs). PIL's own decompression-bomb limit (Image.MAX_IMAGE_PIXELS) follows it. "
                     "Default 64 M pixels.", lower_bound=1)


def main(argv):
    """플래그를 확인하고 이미지 경로를 푼 뒤 `detect_io.detect_images` 를 부른다."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = FLAGS.max_image_pixels  # 머리 검사 (frcnn.data.image_header) 와 PIL 의 폭탄 검사
    try:
        image_paths = detect_io.resolve_image_paths(FLAGS.images)[:FLAGS.max_images]
        report = detect_io.detect_images(FLAGS.saved_model, image_paths, FLAGS.output_dir,
                                         FLAGS.score_threshold, FLAGS.format, FLAGS.num_threads)
    except detect_io.DetectionInputError as error:
        sys.exit(f"detect: error: {error}")
    print(f"wrote {len(report['images'])} drawn images and {detect_io.JSON_NAME} "
          f"to {FLAGS.output_dir}")


def run():
    """콘솔 스크립트 진입점."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
