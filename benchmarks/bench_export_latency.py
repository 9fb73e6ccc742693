"""내보낸 SavedModel 지연 벤치마크: `serving_default` 한 장, 절단 SVD 없이와 있이 나란히, 각각 VGG16
합성곱(conv1_1..conv5_3) 순전파만과 비교.

vgg16_paper 프리셋(백본 가중치 none) 모델 하나를 임시 디렉터리로 두 번 내보낸다: fc6/fc7 그대로 (기본, 모든
프리셋에서 SVD 는 꺼져 있다) 와 `--fc_svd_ranks` (기본 1024,256: Fast R-CNN 3.1 절의 VGG16 설정). 둘을
`tf.saved_model.load` 로 불러 600×800 uint8 무작위 이미지 한 장의 지연을 잰다. 기준은 같은 600×800 float
입력에 대한 VGG16 합성곱만의 `tf.function`. 내보낸 모델마다 워밍업 한 번 뒤 기준과 번갈아 --num_runs 번 재고
중앙값과 비율(목표 ≤ 1.15)을 출력하고, 끝에 두 내보내기의 이미지당 ms 와 SVD 의 시간 비를 한 줄로 낸다.
SVD 없는 (기본) 내보내기는 keras 의 `VGG16(include_top=False)` (무작위 가중치) 순전파와도 같은 방식으로 비교한다.
시간 비는 각자의 기준 비율끼리 나눈 것이라 두 측정 사이에 기계 부하가 바뀌어도 덜 흔들린다.
무작위 가중치라 RPN 이 NMS 로 많은 박스를 넘길 수 있다 (최악의 경우에 가깝다): 검출 수도 출력한다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_export_latency --num_runs=3

용어:
  B 배치(=1), H·W 입력 이미지 (600, 800), N 최대 검출 수.
"""

import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import side_by_side
from benchmarks.side_by_side import timed
from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.export import saved_model
from frcnn.export import truncated_svd
from frcnn.modeling import backbones
from frcnn.modeling import model as model_lib

FLAGS = flags.FLAGS

flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 번갈아 잴 횟수 (중앙값을 낸다).")
flags.DEFINE_integer("image_height", 600, "입력 이미지 높이 (픽셀).")
flags.DEFINE_integer("image_width", 800, "입력 이미지 너비 (픽셀).")
flags.DEFINE_integer("seed", 0, "무작위 이미지·가중치 씨앗.")
flags.DEFINE_string("fc_svd_ranks", "1024,256", "SVD 쪽 내보내기의 fc6,fc7 절단 SVD 특잇값 수 (기본: Fast R-CNN "
                    "의 VGG16 설정). SVD 없는 내보내기와 같은 실행에서 나란히 잰다.")

TARGET_RATIO = 1.15
NUM_CLASSES = 20


def vgg16_conv_forward(config):
    """VGG16 합성곱 층만의 순전파 `tf.function` (별도 무작위 가중치)."""
    backbone = backbones.build_backbone(config, "baseline")

    @tf.function
    def forward(images):
        return backbone(images, training=False)

    return forward


def keras_vgg16_forward():
    """keras.applications.VGG16(include_top=False, weights=None) 순전파 `tf.function` (독립 기준)."""
    network = keras.applications.VGG16(include_top=False, weights=None)

    @tf.function
    def forward(images):
        return network(images, training=False)

    return forward


def export_serving(model, config, classes, parent, fc_svd_ranks):
    """`fc_svd_ranks` (() 이면 SVD 없음) 로 내보내고 불러온 `serving_default` 와 그 이름."""
    name = f"SVD {','.join(map(str, fc_svd_ranks))}" if fc_svd_ranks else "no SVD"
    export_dir = os.path.join(parent, "svd" if fc_svd_ranks else "full")
    start = time.perf_counter()
    saved_model.export_saved_model(
        model, saved_model.with_detection_overrides(config, fc_svd_ranks=fc_svd_ranks), classes, export_dir)
    print(f"export ({name}): {time.perf_counter() - start:.1f} s")
    return name, tf.saved_model.load(export_dir).signatures["serving_default"]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.num_runs < 1:
        raise app.UsageError("--num_runs must be ≥ 1")
    try:
        ranks = truncated_svd.parse_ranks(FLAGS.fc_svd_ranks)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if not ranks:
        raise app.UsageError("--fc_svd_ranks: the SVD side needs two ranks like '1024,256'")
    config = config_lib.build_config("vgg16_paper", "backbone.weights=none")
    tf.random.set_seed(FLAGS.seed)
    model = model_lib.FasterRCNN(config, NUM_CLASSES)
    model.build_all(record_spec.largest_canvas(config))
    classes = [f"class_{index}" for index in range(1, NUM_CLASSES + 1)]
    generator = np.random.default_rng(FLAGS.seed)
    shape = [1, FLAGS.image_height, FLAGS.image_width, 3]
    image = tf.constant(generator.integers(0, 256, shape, dtype=np.uint8))
    image_float = tf.cast(image, tf.float32)
    baseline = vgg16_conv_forward(config)
    size = f"{FLAGS.image_height}x{FLAGS.image_width}"
    results = []  # (이름, 중앙값 초, 기준 대비 비율)
    with tempfile.TemporaryDirectory() as parent:
        for fc_svd_ranks in ((), ranks):
            name, serving = export_serving(model, config, classes, parent, fc_svd_ranks)
            _, outputs = timed(serving, images=image)
            print(f"{name}: num_detections {outputs['num_detections'].tolist()}, "
                  f"max score {float(outputs['detection_scores'].max()):.3f}")
            median, _, ratio = side_by_side.compare(
                (f"serving_default {size} uint8, {name}", lambda: serving(images=image)),
                ("vgg16 conv1..conv5_3 forward", lambda: baseline(image_float)), FLAGS.num_runs, TARGET_RATIO)
            results.append((name, median, ratio))
            if not fc_svd_ranks:
                keras_baseline = keras_vgg16_forward()
                _, _, keras_ratio = side_by_side.compare(
                    (f"serving_default {size} uint8, {name}", lambda: serving(images=image)),
                    ("keras VGG16(include_top=False) forward", lambda: keras_baseline(image_float)),
                    FLAGS.num_runs, TARGET_RATIO)
    print(f"no SVD vs keras VGG16(include_top=False): {keras_ratio:.3f}x")
    print("per image: " + ", ".join(f"{name} {median * 1000:.0f} ms ({ratio:.3f}x conv)"
                                    for name, median, ratio in results)
          + f"; SVD time / no-SVD time at equal conv time: {results[1][2] / results[0][2]:.3f}")


if __name__ == "__main__":
    app.run(main)
