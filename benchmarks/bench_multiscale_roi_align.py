"""FPN 크기의 RoIAlign: `ops.multiscale_roi_align` (gather 표본) 과 torchvision `MultiScaleRoIAlign` 을 같은 입력으로
번갈아 잰다 (한 프로세스, 같은 스레드 수, float32). torch·torchvision 은 `[torch]` 추가 묶음.

입력: 패딩된 800×1088 의 P2–P5 (256 채널, 배치 1), RoI 1000 개 (√넓이 16 … 700 px 로그 균등, 수준 2–5 에 고루).
잰 것: 순전파, 그리고 순전파 + 특징에 대한 역전파 (합의 기울기). 중앙값 ms.

예:
  python -m benchmarks.bench_multiscale_roi_align --num_rois=1000 --threads=2
"""

import sys
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_rois", 1000, "RoI 수.")
flags.DEFINE_integer("threads", 2, "TF intra-op 와 torch 의 스레드 수.")
flags.DEFINE_integer("num_runs", 7, "방식마다 잴 횟수 (중앙값).")

CANVAS = (800, 1088)
CHANNELS = 256
STRIDES = (4, 8, 16, 32)


def _inputs(num_rois):
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(1, CANVAS[0] // s, CANVAS[1] // s, CHANNELS)).astype(np.float32)
                for s in STRIDES]
    sides = np.exp(rng.uniform(np.log(16), np.log(700), size=(num_rois, 1)))
    aspect = np.exp(rng.uniform(-0.7, 0.7, size=(num_rois, 1)))
    sizes = np.concatenate([sides * aspect, sides / aspect], axis=1)
    centers = rng.uniform([0, 0], CANVAS, size=(num_rois, 2))
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1).astype(np.float32)
    return features, boxes[None]


def _median_ms(function, num_runs):
    function()  # 준비 (그래프 추적·XLA 컴파일)
    times = []
    for _ in range(num_runs):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def _tensorflow_runs(features, boxes):
    import tensorflow as tf

    from frcnn.ops import multiscale_roi_align

    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    levels = [tf.constant(level) for level in features]
    rois = tf.constant(boxes)

    def backward(levels, rois):
        with tf.GradientTape() as tape:
            tape.watch(levels)
            loss = tf.reduce_sum(multiscale_roi_align.multiscale_roi_align(levels, rois))
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, levels)]

    forward = tf.function(multiscale_roi_align.multiscale_roi_align)
    forward_xla = tf.function(multiscale_roi_align.multiscale_roi_align, jit_compile=True)
    backward_graph = tf.function(backward)
    return {
        "frcnn gather, tf.function": lambda: forward(levels, rois).numpy(),
        "frcnn gather, XLA": lambda: forward_xla(levels, rois).numpy(),
        "frcnn gather, forward+backward": lambda: [g.numpy() for g in backward_graph(levels, rois)],
    }


def _torch_runs(features, boxes):
    # triton (GPU 컴파일러) 의 네이티브 라이브러리는 TensorFlow 뒤에 읽히면 죽는다 — CPU 에서는 필요 없다.
    sys.modules.setdefault("triton", None)
    import torch
    import torchvision

    torch.set_num_threads(FLAGS.threads)
    pooler = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2)
    levels = {str(i): torch.from_numpy(np.ascontiguousarray(level.transpose(0, 3, 1, 2)))
              for i, level in enumerate(features)}
    rois = [torch.from_numpy(boxes[0][:, [1, 0, 3, 2]].copy())]
    shapes = [CANVAS]

    def forward():
        with torch.no_grad():
            return pooler(levels, rois, shapes)

    def backward():
        inputs = {key: value.clone().requires_grad_(True) for key, value in levels.items()}
        pooler(inputs, rois, shapes).sum().backward()
        return [value.grad for value in inputs.values()]

    return {"torchvision MultiScaleRoIAlign": forward, "torchvision forward+backward": backward}


def main(argv):
    del argv
    features, boxes = _inputs(FLAGS.num_rois)
    runs = {**_tensorflow_runs(features, boxes), **_torch_runs(features, boxes)}
    print(f"P2-P5 of {CANVAS[0]}x{CANVAS[1]}, {CHANNELS} channels, {FLAGS.num_rois} RoIs, "
          f"{FLAGS.threads} threads, median of {FLAGS.num_runs}")
    for name, function in runs.items():
        print(f"  {name:34s} {_median_ms(function, FLAGS.num_runs):9.1f} ms")


if __name__ == "__main__":
    app.run(main)
