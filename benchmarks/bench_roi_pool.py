"""RoI max pooling 벤치마크: 예전 2×2 표본 최댓값 (기준, 아래에 그대로 옮긴 issue 9 전의 `roi_pool`) 과
새 정확한 bin 최댓값 (`roi_ops.roi_pool`, 2차원 희소 표) 을 vgg16_paper 크기에서 나란히 잰다.

  추론: 특징 [1, 38, 63, 512] (600×1000 이미지, stride 16), RoI 300개, 순전파. 내보낸 그래프처럼 특징맵 크기를
    모르는 `tf.function` — 예전은 crop_and_resize, 새것은 상한 ⌈1000 / 16⌉ = 63 칸.
  학습: 특징 [2, 38, 63, 512], 이미지당 RoI 128개, 순전파+역전파 (특징 기울기). 예전은 matmul. XLA 없이와
    `jit_compile=True` 둘 다.
RoI 는 이미지 안의 무작위 박스, 변은 16–600 픽셀 로그 균등. 함수마다 워밍업 한 번 뒤 번갈아 --num_runs 번 재고
중앙값을 출력한다. 예전 출력이 정확한 최댓값보다 작은 비율 (bin 의 최댓값 칸을 놓친 값) 도 RoI 크기별로 출력한다.
끝으로 경우마다 한 번 실행 동안 TF CPU 할당기의 최대 사용량 증가 (`tf.config.experimental.get_memory_info`) 를 낸다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_roi_pool --num_runs=5

용어:
  B 배치, R 이미지당 RoI 수, Hf·Wf 특징맵 (38, 63), C 채널 (512), P 출력 크기 (7), S = 2P 표본 격자.
  박스 형식 `[ymin, xmin, ymax, xmax]` 이미지 픽셀.
"""

import statistics

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.side_by_side import timed
from frcnn.ops import roi_ops

FLAGS = flags.FLAGS

flags.DEFINE_integer("num_runs", 5, "워밍업 뒤 번갈아 잴 횟수 (중앙값을 낸다).")
flags.DEFINE_integer("inference_rois", 300, "추론 RoI 수 (이미지 하나).")
flags.DEFINE_integer("train_rois", 128, "학습 이미지당 RoI 수.")
flags.DEFINE_integer("channels", 512, "특징 채널 C.")
flags.DEFINE_integer("seed", 0, "무작위 특징·RoI 씨앗.")

STRIDE = 16
OUTPUT_SIZE = 7
FEATURE_SIZE = (38, 63)  # 600×1000 이미지
MAX_FEATURE_SIZE = 63  # ⌈input.max_size / stride⌉ — 모델이 넘기는 상한


# ---- 기준: issue 9 전의 roi_pool (bin 마다 2×2 쌍선형 표본의 최댓값) 을 그대로 옮긴 것 ----

def _old_interpolation_matrix(start, end, size, num_samples):
    """[B, R] 구간 → [B, R, S, size] 쌍선형 보간 가중치 (범위 [−1, size] 밖은 0, 그 밖은 자른다)."""
    fractions = (tf.range(num_samples, dtype=tf.float32) + 0.5) / num_samples
    positions = start[..., None] + (end - start)[..., None] * fractions
    size_float = tf.cast(size, tf.float32)
    valid = tf.cast((positions >= -1.0) & (positions <= size_float), tf.float32)
    positions = tf.clip_by_value(positions, 0.0, size_float - 1.0)
    weights = tf.nn.relu(1.0 - tf.abs(positions[..., None] - tf.range(size_float, dtype=tf.float32)))
    return weights * valid[..., None]


def old_pool_matmul(features, boxes):
    """예전 학습 경로: 축별 보간 행렬의 배치 행렬곱으로 [B·R, 2P, 2P, C] 표본 → 2×2 max pooling."""
    batch_size, height, width, channels = features.shape
    num_rois, num_samples = boxes.shape[1], 2 * OUTPUT_SIZE
    ymin, xmin, ymax, xmax = tf.unstack(boxes / float(STRIDE) - 0.5, axis=-1)
    row_weights = _old_interpolation_matrix(ymin, ymax, height, num_samples)
    col_weights = _old_interpolation_matrix(xmin, xmax, width, num_samples)
    rows = tf.matmul(tf.reshape(row_weights, [batch_size, -1, height]),
                     tf.reshape(features, [batch_size, height, -1]))
    rows = tf.reshape(rows, [batch_size, num_rois, num_samples, width, channels])
    samples = tf.matmul(col_weights[:, :, None], rows)
    samples = tf.reshape(samples, [-1, num_samples, num_samples, channels])
    return tf.nn.max_pool2d(samples, 2, 2, "VALID")


def old_pool_crop_and_resize(features, boxes):
    """예전 추론 경로: RoIAlign 의 crop_and_resize 표본 (2P × 2P, 지금도 roi_ops 에 있다) → 2×2 max pooling."""
    coords = boxes / float(STRIDE) - 0.5
    samples = roi_ops._crop_and_resize_samples(features, coords, 2 * OUTPUT_SIZE)
    return tf.nn.max_pool2d(samples, 2, 2, "VALID")


# ---- 경우들 ----

def new_pool(features, boxes):
    return roi_ops.roi_pool(features, boxes, STRIDE, OUTPUT_SIZE, max_feature_size=MAX_FEATURE_SIZE)


def make_inputs(batch_size, num_rois, channels, seed):
    """[B, Hf, Wf, C] ReLU 뒤 같은 특징 (음수 없음) 과 [B, R, 4] 이미지 안 RoI."""
    rng = np.random.default_rng(seed)
    height, width = FEATURE_SIZE
    features = np.maximum(rng.normal(size=(batch_size, height, width, channels)), 0.0).astype(np.float32)
    image = np.array([height, width]) * STRIDE
    sizes = np.exp(rng.uniform(np.log(16), np.log(600), size=(batch_size, num_rois, 2)))
    sizes = np.minimum(sizes, image)
    starts = rng.uniform(0, 1, size=sizes.shape) * (image - sizes)
    boxes = np.concatenate([starts, starts + sizes], axis=-1).astype(np.float32)
    return tf.constant(features), tf.constant(boxes)


def forward_backward(pool, jit_compile):
    """sum(pool · 고정 가중치) 의 특징 기울기를 내는 `tf.function`."""
    def step(features, boxes):
        with tf.GradientTape() as tape:
            tape.watch(features)
            pooled = pool(features, boxes)
            loss = tf.reduce_sum(pooled * tf.cos(tf.range(pooled.shape[-1], dtype=tf.float32)))
        return tape.gradient(loss, features)
    return tf.function(step, jit_compile=jit_compile)


def cases(channels, inference_rois, train_rois, seed):
    """[(이름, 예전 함수, 새 함수, 입력)] — 함수는 (features, boxes) 를 받는다."""
    dynamic = [tf.TensorSpec([None, None, None, channels]), tf.TensorSpec([None, None, 4])]
    inference = make_inputs(1, inference_rois, channels, seed)
    train = make_inputs(2, train_rois, channels, seed + 1)
    return [
        (f"inference fwd, [1, 38, 63, {channels}], {inference_rois} RoIs",
         tf.function(old_pool_crop_and_resize, input_signature=dynamic),
         tf.function(new_pool, input_signature=dynamic), inference),
        (f"train fwd+bwd, [2, 38, 63, {channels}], 2×{train_rois} RoIs",
         forward_backward(old_pool_matmul, False), forward_backward(new_pool, False), train),
        (f"train fwd+bwd XLA, [2, 38, 63, {channels}], 2×{train_rois} RoIs",
         forward_backward(old_pool_matmul, True), forward_backward(new_pool, True), train),
    ]


def compare(name, old, new, inputs, num_runs):
    """워밍업 뒤 번갈아 재고 중앙값 (ms) 을 출력한다."""
    timed(old, *inputs), timed(new, *inputs)
    old_times, new_times = [], []
    for _ in range(num_runs):
        old_times.append(timed(old, *inputs)[0] * 1e3)
        new_times.append(timed(new, *inputs)[0] * 1e3)
    old_ms, new_ms = statistics.median(old_times), statistics.median(new_times)
    print(f"{name}: old 2×2 samples {old_ms:.1f} ms, new exact {new_ms:.1f} ms "
          f"(new / old {new_ms / old_ms:.2f}; median of {num_runs})")


def report_differences(channels, num_rois, seed):
    """예전 출력이 정확한 bin 최댓값보다 작은 비율과 평균 차이 (학습 경로, RoI 크기별)."""
    features, boxes = make_inputs(1, num_rois, channels, seed)
    old = old_pool_matmul(features, boxes).numpy()
    new = new_pool(features, boxes).numpy()
    heights, widths = (boxes[0, :, 2:] - boxes[0, :, :2]).numpy().T
    sizes = np.sqrt(heights * widths)
    for low, high in ((16, 64), (64, 160), (160, 320), (320, 600)):
        chosen = (sizes >= low) & (sizes < high)
        missed = np.mean(old[chosen] < new[chosen] - 1e-6)
        gap = np.mean(new[chosen] - old[chosen])
        print(f"RoIs {low}–{high} px (√area, {chosen.sum()}): old below the exact max in {missed:.0%} of "
              f"outputs, mean gap {gap:.3f}")


def peak_memory(function, inputs):
    """워밍업 뒤 한 번 실행 동안 TF CPU 할당기의 최대 사용량 증가 (MiB). XLA 가 직접 잡는 버퍼는 빠질 수 있다."""
    timed(function, *inputs)
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    timed(function, *inputs)
    return (tf.config.experimental.get_memory_info("CPU:0")["peak"] - before) / 2 ** 20


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.num_runs < 1:
        raise app.UsageError("--num_runs must be ≥ 1")
    all_cases = cases(FLAGS.channels, FLAGS.inference_rois, FLAGS.train_rois, FLAGS.seed)
    for name, old, new, inputs in all_cases:
        compare(name, old, new, inputs, FLAGS.num_runs)
    report_differences(FLAGS.channels, FLAGS.inference_rois, FLAGS.seed)
    for name, old, new, inputs in all_cases:
        print(f"{name}: peak TF CPU allocation old {peak_memory(old, inputs):.0f} MiB, "
              f"new {peak_memory(new, inputs):.0f} MiB")


if __name__ == "__main__":
    app.run(main)
