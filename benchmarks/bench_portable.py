"""내보낸 형식별 추론 속도·파일 크기: SavedModel `serving_default`, LiteRT (.tflite 들), ONNX Runtime 을 같은 이미지로
번갈아 재어 이미지당 ms (중앙값) 를 낸다 (한 장씩, 입력 uint8 [1, H, W, 3]).

`--preset=vgg16_paper` 이면 내보낸 디렉터리 대신 그 프리셋의 무작위 가중치 모델 (20 클래스, 백본 가중치 none) 을
임시 디렉터리에 모든 형식과 양자화 (float16, dynamic_int8) 로 내보내고, `--height`×`--width` 무작위 uint8 이미지로
잰다 (무작위 가중치라 RPN 이 NMS 로 많은 박스를 넘긴다: 최악에 가까운 경우).

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_portable --export_dir=workspace/exports/cpu_small \\
      --images='workspace/data/VOC2007/JPEGImages/*.jpg' --extra_tflite=/tmp/f16.tflite,/tmp/int8.tflite
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_portable --preset=vgg16_paper --height=600 --width=800 \\
      --num_images=5
"""

import glob
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags
from PIL import Image

from frcnn import config as config_lib
from frcnn.export import portable
from frcnn.export import runtimes
from frcnn.export import saved_model
from frcnn.modeling import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "tools/export --formats=saved_model,tflite,onnx output.")
flags.DEFINE_string("images", None, "Image glob (JPEG/PNG).")
flags.DEFINE_list("extra_tflite", [], "More .tflite files to time (e.g. quantized exports).")
flags.DEFINE_integer("num_images", 30, "Images to time (after one warm-up image per format).")
flags.DEFINE_integer("height", None, "Resize every image to this height first (e.g. 600 for vgg16_paper).")
flags.DEFINE_integer("width", None, "… and this width (e.g. 800).")
flags.DEFINE_string("preset", None, "Instead of --export_dir/--images: export this preset with random "
                    "weights (all formats and quantizations) and time random --height×--width images.")
NUM_CLASSES = 20  # --preset 모델의 클래스 수 (VOC)


def _load(path):
    image = Image.open(path).convert("RGB")
    if FLAGS.height and FLAGS.width:
        image = image.resize((FLAGS.width, FLAGS.height))
    return np.asarray(image)[None]


def _export_preset(parent):
    """--preset 의 무작위 가중치 모델을 parent 아래 모든 형식으로 내보내고 (export_dir, [양자화 .tflite]) 를 낸다."""
    config = config_lib.build_config(FLAGS.preset, "backbone.weights=none")
    tf.random.set_seed(0)
    model = model_lib.FasterRCNN(config, NUM_CLASSES)
    model.build_all(config_lib.largest_canvas(config))
    classes = [f"class_{index}" for index in range(1, NUM_CLASSES + 1)]
    export_dir = os.path.join(parent, "float32")
    extra = []
    for quantize, directory in ((None, export_dir), ("float16", os.path.join(parent, "float16")),
                                ("dynamic_int8", os.path.join(parent, "dynamic_int8"))):
        formats = ("saved_model", "tflite", "onnx") if quantize is None else ("tflite",)
        start = time.perf_counter()
        saved_model.export_saved_model(model, config, classes, directory, formats=formats, quantize=quantize)
        print(f"export {', '.join(formats)} ({quantize or 'float32'}): {time.perf_counter() - start:.1f} s",
              flush=True)
        if quantize:
            extra.append(os.path.join(directory, portable.TFLITE_FILE))
    return export_dir, extra


def main(argv):
    del argv
    if FLAGS.preset:
        if not (FLAGS.height and FLAGS.width):
            raise app.UsageError("--preset needs --height and --width")
        with tempfile.TemporaryDirectory() as parent:
            FLAGS.export_dir, FLAGS.extra_tflite = _export_preset(parent)
            generator = np.random.default_rng(0)
            images = [generator.integers(0, 256, [1, FLAGS.height, FLAGS.width, 3], dtype=np.uint8)
                      for _ in range(FLAGS.num_images + 1)]
            _time(images)
        return
    if not (FLAGS.export_dir and FLAGS.images):
        raise app.UsageError("give --export_dir and --images, or --preset")
    _time([_load(path) for path in sorted(glob.glob(FLAGS.images))[:FLAGS.num_images + 1]])


def _time(images):
    """SavedModel 과 각 파일을 같은 이미지로 번갈아 재어 중앙값 ms 와 파일 크기를 출력한다."""
    serving = tf.saved_model.load(FLAGS.export_dir).signatures["serving_default"]
    candidates = {"SavedModel": lambda image: serving(images=tf.constant(image))["num_detections"].numpy()}
    files = {"SavedModel": None}
    for path in [os.path.join(FLAGS.export_dir, portable.TFLITE_FILE), *FLAGS.extra_tflite,
                 os.path.join(FLAGS.export_dir, portable.ONNX_FILE)]:
        name = f"{runtimes.kind_of(path)} {os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}"
        candidates[name] = runtimes.PortableRunner(path)
        files[name] = path
    times = {name: [] for name in candidates}
    for index, image in enumerate(images):
        for name, run in candidates.items():  # 같은 이미지를 형식마다 번갈아
            start = time.perf_counter()
            run(image)
            if index > 0:  # 첫 이미지는 워밍업
                times[name].append(time.perf_counter() - start)
    shape = images[0].shape[1:3] if FLAGS.height else "as stored"
    print(f"{len(images) - 1} images ({shape}), {os.cpu_count()} CPU cores, median ms per image:")
    for name, values in times.items():
        size = f", {os.path.getsize(files[name]) / 2**20:.2f} MiB" if files[name] else ""
        print(f"  {name:<32s} {1000 * statistics.median(values):8.1f} ms{size}")


if __name__ == "__main__":
    app.run(main)
