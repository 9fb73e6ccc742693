"""내보낸 SavedModel 여러 개 (예: 옛 커밋과 지금의 `vgg16_paper` 내보내기) 와 VGG16 합성곱만을 한 프로세스에서
번갈아 재어, 내보내기마다 "합성곱의 몇 배" 를 낸다 (부하가 바뀌어도 같은 순간의 비율이라 덜 흔들린다).

기준 둘: 프로젝트의 VGG16 합성곱 (`backbones.build_backbone(vgg16_paper)`, conv1_1..conv5_3) 과 keras 의
`VGG16(include_top=False, weights=None)`. 입력은 무작위 uint8 H×W 이미지 한 장 (기준에는 그 float32).

예 (옛 커밋의 내보내기는 그 커밋의 worktree 에서 `tools.export` 로 만든다):
  python -m benchmarks.bench_export_vs_convs --exports=old:/tmp/vgg/old,new:/tmp/vgg/new --num_runs=9

용어: 회(run) = 모든 함수를 한 번씩 차례로 부른 것. 비율 = 중앙값끼리의 비와, 회마다의 비의 중앙값.
"""

import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from frcnn import config as config_lib
from frcnn.modeling import backbones

FLAGS = flags.FLAGS
flags.DEFINE_list("exports", None, "name:saved_model_dir pairs to time (serving_default).")
flags.DEFINE_integer("num_runs", 9, "Timed runs after one warm-up (medians).")
flags.DEFINE_integer("image_height", 600, "Input height (pixels).")
flags.DEFINE_integer("image_width", 800, "Input width (pixels).")
flags.mark_flag_as_required("exports")

BASELINES = ("project VGG16 convs", "keras VGG16(include_top=False)")


def build_calls(image):
    """이름 → 인자 없는 함수: 내보내기들과 기준 둘 (결과를 호스트로 가져오기까지)."""
    calls = {}
    for item in FLAGS.exports:
        name, _, path = item.partition(":")
        serving = tf.saved_model.load(path).signatures["serving_default"]
        calls[name] = lambda serving=serving: serving(images=image)["num_detections"].numpy()
    image_float = tf.cast(image, tf.float32)
    config = config_lib.build_config("vgg16_paper", "backbone.weights=none")
    project = backbones.build_backbone(config, "baseline")
    network = keras.applications.VGG16(include_top=False, weights=None)
    for name, layer in zip(BASELINES, (project, network)):
        forward = tf.function(lambda images, layer=layer: layer(images, training=False))
        calls[name] = lambda forward=forward: forward(image_float).numpy()
    return calls


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    shape = [1, FLAGS.image_height, FLAGS.image_width, 3]
    image = tf.constant(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    calls = build_calls(image)
    for call in calls.values():
        call()  # 워밍업 (추적 포함)
    times = {name: [] for name in calls}
    for run in range(FLAGS.num_runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
        print(f"run {run + 1}: " + ", ".join(f"{name} {times[name][-1]:.3f} s" for name in calls), flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name in calls:
        print(f"{name}: median {medians[name] * 1000:.0f} ms")
    for name in [name for name in calls if name not in BASELINES]:
        for baseline in BASELINES:
            per_run = statistics.median(a / b for a, b in zip(times[name], times[baseline]))
            print(f"{name} / {baseline}: {medians[name] / medians[baseline]:.3f} "
                  f"(median of per-run ratios {per_run:.3f})")


if __name__ == "__main__":
    app.run(main)
