"""내보낸 SavedModel 지연 벤치마크: `serving_default` 한 장 vs. VGG16 합성곱(conv1_1..conv5_3) 순전파만.

vgg16_paper 프리셋(백본 가중치 none) 모델을 만들어 임시 디렉터리로 내보내고 `tf.saved_model.load` 로
불러 600×800 uint8 무작위 이미지 한 장의 지연을 잰다. 기준은 같은 600×800 float 입력에 대한 VGG16
합성곱만의 `tf.function`. 워밍업 한 번 뒤 번갈아 --num_runs 번 재고 중앙값과 비율(목표 ≤ 1.15)을 출력한다.
무작위 가중치라 RPN 이 NMS 로 많은 박스를 넘길 수 있다 (최악의 경우에 가깝다): 검출 수도 출력한다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_export_latency --num_runs=3

용어:
  B 배치(=1), H·W 입력 이미지 (600, 800), N 최대 검출 수.
"""

import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import side_by_side
from benchmarks.side_by_side import timed
from frcnn import config as config_lib
from frcnn.export import saved_model
from frcnn.export import truncated_svd
from frcnn.modeling import backbones
from frcnn.modeling import model as model_lib

FLAGS = flags.FLAGS

flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 번갈아 잴 횟수 (중앙값을 낸다).")
flags.DEFINE_integer("image_height", 600, "입력 이미지 높이 (픽셀).")
flags.DEFINE_integer("image_width", 800, "입력 이미지 너비 (픽셀).")
flags.DEFINE_integer("seed", 0, "무작위 이미지·가중치 씨앗.")
flags.DEFINE_string("fc_svd_ranks", None, "내보낼 때 fc6,fc7 절단 SVD 특잇값 수 (예 '1024,256'), 'none' 이면 끔. "
                    "기본: 프리셋 (vgg16_paper: 1024,256).")

TARGET_RATIO = 1.15
NUM_CLASSES = 20


def vgg16_conv_forward(config):
    """VGG16 합성곱 층만의 순전파 `tf.function` (별도 무작위 가중치)."""
    backbone = backbones.build_backbone(config, "baseline")

    @tf.function
    def forward(images):
        return backbone(images, training=False)

    return forward


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.num_runs < 1:
        raise app.UsageError("--num_runs must be ≥ 1")
    config = config_lib.build_config("vgg16_paper", "backbone.weights=none")
    config = saved_model.with_detection_overrides(
        config, fc_svd_ranks=truncated_svd.parse_ranks(FLAGS.fc_svd_ranks))
    print(f"fc_svd_ranks: {config.detection.fc_svd_ranks or 'none'}")
    tf.random.set_seed(FLAGS.seed)
    model = model_lib.FasterRCNN(config, NUM_CLASSES)
    model.build_all(config_lib.canvas_shape(config, landscape=True))
    classes = [f"class_{index}" for index in range(1, NUM_CLASSES + 1)]
    generator = np.random.default_rng(FLAGS.seed)
    shape = [1, FLAGS.image_height, FLAGS.image_width, 3]
    image = tf.constant(generator.integers(0, 256, shape, dtype=np.uint8))
    image_float = tf.cast(image, tf.float32)
    with tempfile.TemporaryDirectory() as parent:
        export_dir = os.path.join(parent, "saved_model")
        start = time.perf_counter()
        saved_model.export_saved_model(model, config, classes, export_dir)
        print(f"export: {time.perf_counter() - start:.1f} s")
        serving = tf.saved_model.load(export_dir).signatures["serving_default"]
        baseline = vgg16_conv_forward(config)
        _, outputs = timed(serving, images=image)
        print(f"num_detections {outputs['num_detections'].tolist()}, "
              f"max score {float(outputs['detection_scores'].max()):.3f}")
        size = f"{FLAGS.image_height}x{FLAGS.image_width}"
        side_by_side.compare((f"serving_default {size} uint8", lambda: serving(images=image)),
                             ("vgg16 conv1..conv5_3 forward", lambda: baseline(image_float)),
                             FLAGS.num_runs, TARGET_RATIO)


if __name__ == "__main__":
    app.run(main)
