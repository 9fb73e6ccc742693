"""내보낸 형식별 추론 속도·파일 크기: SavedModel `serving_default`, LiteRT (.tflite 들), ONNX Runtime 을 같은 이미지로
번갈아 재어 이미지당 ms (중앙값) 를 낸다 (한 장씩, 입력 uint8 [1, H, W, 3]).

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_portable --export_dir=workspace/exports/cpu_small \\
      --images='workspace/data/VOC2007/JPEGImages/*.jpg' --extra_tflite=/tmp/f16.tflite,/tmp/int8.tflite

vgg16_paper (600×800): 변환 한 번이 최고 21–22 GB 를 쓰므로 (24 GiB 기계) 형식마다 따로 `tools/export` 를
돌리고 (`--formats=saved_model,tflite`, `--formats=onnx`, `--formats=tflite --quantize=float16|dynamic_int8`),
model.onnx 를 SavedModel 디렉터리로 옮긴 뒤 `--height=600 --width=800 --extra_tflite=…` 로 잰다
(benchmarks/RESULTS.md "Issue 11").
"""

import glob
import os
import statistics
import time

import numpy as np
import tensorflow as tf
from absl import app, flags
from PIL import Image

from frcnn.export import signature
from frcnn.export import runtimes

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "tools/export --formats=saved_model,tflite,onnx output.")
flags.DEFINE_string("images", None, "Image glob (JPEG/PNG).")
flags.DEFINE_list("extra_tflite", [], "More .tflite files to time (e.g. quantized exports).")
flags.DEFINE_integer("num_images", 30, "Images to time (after one warm-up image per format).")
flags.DEFINE_integer("height", None, "Resize every image to this height first (e.g. 600 for vgg16_paper).")
flags.DEFINE_integer("width", None, "… and this width (e.g. 800).")


def _load(path):
    image = Image.open(path).convert("RGB")
    if FLAGS.height and FLAGS.width:
        image = image.resize((FLAGS.width, FLAGS.height))
    return np.asarray(image)[None]


def main(argv):
    del argv
    images = [_load(path) for path in sorted(glob.glob(FLAGS.images))[:FLAGS.num_images + 1]]
    serving = tf.saved_model.load(FLAGS.export_dir).signatures["serving_default"]
    candidates = {"SavedModel": lambda image: serving(images=tf.constant(image))["num_detections"].numpy()}
    files = {"SavedModel": None}
    for path in [os.path.join(FLAGS.export_dir, signature.TFLITE_FILE), *FLAGS.extra_tflite,
                 os.path.join(FLAGS.export_dir, signature.ONNX_FILE)]:
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
    flags.mark_flags_as_required(["export_dir", "images"])
    app.run(main)
