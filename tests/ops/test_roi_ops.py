"""roi_ops 테스트: RoI max pooling / RoIAlign 을 정의대로 루프를 도는 numpy 기준 구현과 비교한다.

용어:
  B 배치, R 이미지당 RoI 수, Hf·Wf 특징맵, C 채널, P 출력 크기.
  박스 `[ymin, xmin, ymax, xmax]` 이미지 픽셀.
  RoIAlign: 특징 좌표 u = 픽셀 / stride − 0.5, bin 마다 2×2 쌍선형 표본의 평균.
  RoI max pooling: 칸 좌표 v = 픽셀 / stride, bin 이 걸치는 모든 칸의 최댓값 (py-faster-rcnn RoIPool).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import roi_ops

STRIDE = 8
OUTPUT_SIZE = 3
# RoI max pooling 기준 비교: vgg16_paper 처럼 stride 16, 7×7, 40×64 칸 맵 (640×1024 픽셀).
POOL_STRIDE = 16
POOL_SIZE = 7
POOL_MAP = (40, 64)
EPSILON = 1e-4  # bin 경계의 반올림 여유 (칸 단위), roi_ops.BIN_EPSILON 과 같은 규칙


def _bilinear_value(feature_map, y, x):
    """한 점의 RoIAlign 쌍선형 값 (numpy, 정의 그대로).

    범위 [−1, size] 밖이면 0, 그 밖은 [0, size − 1] 로 자른 뒤 이웃 네 칸을 보간한다.

    Args:
      feature_map: [Hf, Wf, C] float64.
      y, x: float 특징 좌표.

    Returns:
      [C] float64.
    """
    height, width, _ = feature_map.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return np.zeros(feature_map.shape[-1])
    y = min(max(y, 0.0), height - 1.0)
    x = min(max(x, 0.0), width - 1.0)
    y_low, x_low = int(np.floor(y)), int(np.floor(x))
    y_high, x_high = min(y_low + 1, height - 1), min(x_low + 1, width - 1)
    dy, dx = y - y_low, x - x_low
    return ((1 - dy) * (1 - dx) * feature_map[y_low, x_low]
            + (1 - dy) * dx * feature_map[y_low, x_high]
            + dy * (1 - dx) * feature_map[y_high, x_low]
            + dy * dx * feature_map[y_high, x_high])


def _align_reference(features, boxes):
    """numpy 기준 RoIAlign: bin 마다 2×2 표본(bin 을 2×2 로 나눈 작은 칸의 중심)을 찍어 평균.

    Args:
      features: [B, Hf, Wf, C].
      boxes: [B, R, 4] 이미지 픽셀.

    Returns:
      [B·R, P, P, C] float64.
    """
    features = features.astype(np.float64)
    batch_size, num_rois = boxes.shape[:2]
    channels = features.shape[-1]
    output = np.zeros((batch_size * num_rois, OUTPUT_SIZE, OUTPUT_SIZE, channels))
    for b in range(batch_size):
        for r in range(num_rois):
            ymin, xmin, ymax, xmax = boxes[b, r] / STRIDE - 0.5
            bin_height = (ymax - ymin) / OUTPUT_SIZE
            bin_width = (xmax - xmin) / OUTPUT_SIZE
            for i in range(OUTPUT_SIZE):
                for j in range(OUTPUT_SIZE):
                    samples = []
                    for sy in range(2):
                        for sx in range(2):
                            y = ymin + (i + (sy + 0.5) / 2) * bin_height
                            x = xmin + (j + (sx + 0.5) / 2) * bin_width
                            samples.append(_bilinear_value(features[b], y, x))
                    output[b * num_rois + r, i, j] = np.mean(np.stack(samples), axis=0)
    return output


def _cell_range(start, end, index, size):
    """한 축에서 bin `index` 가 걸치는 칸 [first, stop) (맵으로 자름; 비면 first ≥ stop).

    start, end 는 RoI 의 칸 좌표 (픽셀 / stride, float64).
    """
    bin_size = (end - start) / POOL_SIZE
    low, high = start + index * bin_size, start + (index + 1) * bin_size
    first = int(np.floor(low + EPSILON))
    stop = max(int(np.ceil(high - EPSILON)), first + 1)  # 적어도 한 칸
    return max(first, 0), min(stop, size)


def _pool_bins(features, boxes):
    """RoI max pooling 의 bin 들을 차례로: (출력 행 번호, i, j, 그 bin 의 [h0, h1, w0, w1] 또는 맵 밖이면 None)."""
    batch_size, num_rois = boxes.shape[:2]
    height, width = features.shape[1:3]
    for b in range(batch_size):
        for r in range(num_rois):
            ymin, xmin, ymax, xmax = boxes[b, r].astype(np.float64) / POOL_STRIDE
            for i in range(POOL_SIZE):
                for j in range(POOL_SIZE):
                    h0, h1 = _cell_range(ymin, ymax, i, height)
                    w0, w1 = _cell_range(xmin, xmax, j, width)
                    cells = (h0, h1, w0, w1) if h1 > h0 and w1 > w0 else None
                    yield b * num_rois + r, i, j, cells


def _pool_reference(features, boxes):
    """numpy 기준 RoI max pooling (float64): bin 의 모든 칸의 최댓값, 맵 밖 bin 은 0. [B·R, P, P, C]."""
    features = features.astype(np.float64)
    output = np.zeros((boxes.shape[0] * boxes.shape[1], POOL_SIZE, POOL_SIZE, features.shape[-1]))
    for row, i, j, cells in _pool_bins(features, boxes):
        if cells is not None:
            h0, h1, w0, w1 = cells
            output[row, i, j] = features[row // boxes.shape[1], h0:h1, w0:w1].max(axis=(0, 1))
    return output


def _pool_gradient_reference(features, boxes, upstream):
    """numpy 기준 기울기: sum(pool · upstream) 의 특징 기울기 — bin·채널마다 최댓값 칸에 upstream 을 더한다."""
    gradient = np.zeros(features.shape)
    num_rois = boxes.shape[1]
    for row, i, j, cells in _pool_bins(features, boxes):
        if cells is None:
            continue
        h0, h1, w0, w1 = cells
        image = row // num_rois
        for channel in range(features.shape[-1]):
            window = features[image, h0:h1, w0:w1, channel]
            h, w = np.unravel_index(np.argmax(window), window.shape)
            gradient[image, h0 + h, w0 + w, channel] += upstream[row, i, j, channel]
    return gradient


def _random_inputs(seed=0):
    """[2, 6, 7, 3] 특징과 [2, 5, 4] 박스 (일부는 특징맵 밖으로 걸치거나 완전히 벗어난다)."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(2, 6, 7, 3)).astype(np.float32)
    image_height, image_width = 6 * STRIDE, 7 * STRIDE
    starts = rng.uniform([-20, -20], [image_height - 5, image_width - 5], size=(2, 4, 2))
    sizes = rng.uniform(3, 40, size=(2, 4, 2))
    boxes = np.concatenate([starts, starts + sizes], axis=-1)
    # 이미지 밖 멀리 있는 RoI: 모든 표본이 [−1, size] 밖 → 0 이어야 한다.
    far_away = np.array([[[-60.0, -60.0, -30.0, -30.0]], [[100.0, 120.0, 140.0, 160.0]]])
    boxes = np.concatenate([boxes, far_away], axis=1).astype(np.float32)
    return features, boxes


def _pool_inputs(seed=0, num_rois=40, channels=3, map_size=POOL_MAP):
    """[2, Hf, Wf, C] 특징과 [2, R + 5, 4] 박스: 중심이 맵 안이고 변이 16–600 픽셀인 무작위 RoI (큰 것은 맵
    밖으로 걸친다) 와 맵보다 큰 RoI 둘, 맵 밖의 RoI 둘, 넓이 0 인 RoI."""
    rng = np.random.default_rng(seed)
    height, width = map_size
    features = rng.normal(size=(2, height, width, channels)).astype(np.float32)
    image_height, image_width = height * POOL_STRIDE, width * POOL_STRIDE
    sizes = rng.uniform(16, 600, size=(2, num_rois, 2))
    centres = rng.uniform(0, [image_height, image_width], size=(2, num_rois, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=-1)
    special = np.array([[-100.0, -50.0, image_height + 200.0, image_width + 30.0],  # 맵보다 크다
                        [-2368.0, -3520.0, 3008.0, 4544.0],  # 가운데 bin 이 40×64 맵 전체 (표 맨 위 수준)
                        [-300.0, 10.0, -40.0, 300.0],  # 위쪽 밖
                        [20.0, image_width + 16.0, 400.0, image_width + 500.0],  # 오른쪽 밖
                        [100.0, 200.0, 100.0, 200.0]])  # 넓이 0 → 한 칸
    boxes = np.concatenate([boxes, np.broadcast_to(special, (2, 5, 4))], axis=1).astype(np.float32)
    return features, boxes


@pytest.mark.parametrize("implementation", roi_ops.IMPLEMENTATIONS)
def test_align_matches_numpy_reference(implementation):
    features, boxes = _random_inputs()
    expected = _align_reference(features, boxes)
    result = roi_ops.roi_align(tf.constant(features), tf.constant(boxes), STRIDE, OUTPUT_SIZE,
                               implementation).numpy()
    assert result.shape == (10, OUTPUT_SIZE, OUTPUT_SIZE, 3)
    np.testing.assert_allclose(result, expected, atol=1e-5)
    # 멀리 벗어난 RoI (각 이미지의 마지막) 는 0
    assert np.all(result[[4, 9]] == 0.0)


def test_align_matches_reference_under_xla():
    features, boxes = _random_inputs(seed=1)
    compiled = tf.function(lambda f, b: roi_ops.roi_align(f, b, STRIDE, OUTPUT_SIZE), jit_compile=True)
    result = compiled(tf.constant(features), tf.constant(boxes)).numpy()
    np.testing.assert_allclose(result, _align_reference(features, boxes), atol=1e-5)


def test_constant_feature_map_inside_box():
    # 상수 특징맵 안쪽의 RoI 는 pool/align 모두 그 상수다 (손으로 아는 값).
    features = tf.fill([1, 5, 5, 2], 3.5)
    boxes = tf.constant([[[8.0, 8.0, 30.0, 24.0]]])
    for op in (roi_ops.roi_pool, roi_ops.roi_align):
        np.testing.assert_allclose(op(features, boxes, STRIDE, OUTPUT_SIZE).numpy(), 3.5, rtol=1e-6)


def test_align_gradients_flow_to_features():
    features, boxes = _random_inputs(seed=2)
    features = tf.Variable(features)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(roi_ops.roi_align(features, tf.constant(boxes), STRIDE, OUTPUT_SIZE))
    gradient = tape.gradient(loss, features)
    assert gradient is not None
    gradient = tf.convert_to_tensor(gradient).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0.0


def test_roi_features_dispatch_and_unknown_op():
    features, boxes = _random_inputs(seed=3)
    features, boxes = tf.constant(features), tf.constant(boxes)
    np.testing.assert_array_equal(roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, "align"),
                                  roi_ops.roi_align(features, boxes, STRIDE, OUTPUT_SIZE))
    # pool 은 두 방식 모두 같은 정확한 bin 최댓값
    for implementation in roi_ops.IMPLEMENTATIONS:
        np.testing.assert_array_equal(
            roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, "pool", implementation),
            roi_ops.roi_pool(features, boxes, STRIDE, OUTPUT_SIZE))
    with pytest.raises(ValueError, match="crop"):
        roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, "crop")
    for op in ("pool", "align"):
        with pytest.raises(ValueError, match="unknown RoI implementation"):
            roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, op, "gather")


def test_align_crop_and_resize_with_unknown_feature_size():
    # 내보낸 그래프처럼 특징맵 크기를 모르는 tf.function 에서도 같은 값.
    features, boxes = _random_inputs(seed=4)
    signature = [tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, 4])]
    traced = tf.function(lambda f, b: roi_ops.roi_align(f, b, STRIDE, OUTPUT_SIZE, "crop_and_resize"),
                         input_signature=signature)
    np.testing.assert_allclose(traced(features, boxes).numpy(), _align_reference(features, boxes), atol=1e-5)


def _pool(features, boxes, **kwargs):
    return roi_ops.roi_pool(features, boxes, POOL_STRIDE, POOL_SIZE, **kwargs)


def test_pool_matches_numpy_reference():
    features, boxes = _pool_inputs()
    result = _pool(tf.constant(features), tf.constant(boxes)).numpy()
    expected = _pool_reference(features, boxes)
    assert result.shape == (2 * 45, POOL_SIZE, POOL_SIZE, 3)
    np.testing.assert_array_equal(result, expected)  # 최댓값은 반올림 없이 같은 값
    # 맵 밖의 RoI 둘 (각 이미지의 42, 43 번째) 은 0, 맵 전체를 덮는 bin 은 맵의 최댓값
    assert np.all(result[[42, 43, 87, 88]] == 0.0)
    np.testing.assert_array_equal(result[[41, 86], 3, 3], features.max(axis=(1, 2)))


def test_pool_matches_reference_under_xla():
    features, boxes = _pool_inputs(seed=1)
    compiled = tf.function(lambda f, b: _pool(f, b), jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(features), tf.constant(boxes)).numpy(),
                                  _pool_reference(features, boxes))


@pytest.mark.parametrize("jit_compile", [False, True])
def test_pool_with_unknown_feature_size_and_cap(jit_compile):
    # 내보낸 그래프처럼 특징맵 크기를 모르면 상한으로 희소 표 수준을 정한다 (상한 > 맵이어도 같은 값).
    features, boxes = _pool_inputs(seed=2, map_size=(23, 37))
    expected = _pool_reference(features, boxes)
    signature = [tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, 4])]
    for cap in (37, 100):
        traced = tf.function(lambda f, b: _pool(f, b, max_feature_size=cap), input_signature=signature,
                             jit_compile=jit_compile)
        np.testing.assert_array_equal(traced(features, boxes).numpy(), expected)
    if not jit_compile:  # 검사는 XLA 에서 빠진다
        too_small = tf.function(lambda f, b: _pool(f, b, max_feature_size=30), input_signature=signature)
        with pytest.raises(tf.errors.InvalidArgumentError, match="max_feature_size"):
            too_small(features, boxes)
    without_cap = tf.function(_pool, input_signature=signature)
    with pytest.raises(ValueError, match="max_feature_size"):
        without_cap(features, boxes)


def test_pool_sees_every_cell():
    # 맵 15×18 의 칸 하나만 1 인 특징 270장, 맵 전체 RoI, P = 3 → bin 은 정확히 5×6 칸 (2의 거듭제곱이
    # 아니라 희소 표의 두 조각이 겹친다). bin (i, j) 는 1 인 칸이 그 안에 있을 때만 1 (손으로 아는 값).
    height, width, output_size = 15, 18, 3
    features = np.eye(height * width, dtype=np.float32).reshape(-1, height, width, 1)
    boxes = np.tile([[[0.0, 0.0, height * POOL_STRIDE, width * POOL_STRIDE]]], (len(features), 1, 1))
    result = roi_ops.roi_pool(tf.constant(features), tf.constant(boxes, tf.float32), POOL_STRIDE,
                              output_size).numpy()[..., 0]
    cells = np.arange(height * width)
    expected = np.zeros((len(features), output_size, output_size), np.float32)
    expected[cells, cells // width // 5, cells % width // 6] = 1.0
    np.testing.assert_array_equal(result, expected)


def _pool_gradient(features, boxes, upstream, jit_compile=False):
    """sum(pool · upstream) 의 특징 기울기 (numpy)."""
    def gradient(features, boxes):
        with tf.GradientTape() as tape:
            tape.watch(features)
            loss = tf.reduce_sum(tf.cast(_pool(features, boxes), tf.float32) * upstream)
        return tape.gradient(loss, features)
    return tf.function(gradient, jit_compile=jit_compile)(features, tf.constant(boxes)).numpy()


@pytest.mark.parametrize("jit_compile", [False, True])
def test_pool_gradient_goes_to_argmax_cell(jit_compile):
    features, boxes = _pool_inputs(seed=4, num_rois=6, channels=2, map_size=(12, 20))
    upstream = np.random.default_rng(5).normal(size=(2 * 11, POOL_SIZE, POOL_SIZE, 2)).astype(np.float32)
    gradient = _pool_gradient(tf.constant(features), boxes, upstream, jit_compile)
    np.testing.assert_allclose(gradient, _pool_gradient_reference(features, boxes, upstream), atol=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_pool_mixed_precision(dtype):
    # 혼합 정밀도 (GPU float16, CPU bfloat16): 같은 dtype 의 결과, 최댓값이라 그 dtype 의 값 그대로.
    features, boxes = _pool_inputs(seed=3, num_rois=10)
    features = tf.cast(features, dtype)
    result = _pool(features, tf.constant(boxes))
    assert result.dtype == dtype
    expected = _pool_reference(features.numpy().astype(np.float64), boxes)
    np.testing.assert_array_equal(result.numpy().astype(np.float64), expected)
    # 기울기도 그 dtype 으로, 같은 값의 float32 기울기와 같다 (upstream 1 이라 합이 작은 정수 — 반올림 없음).
    upstream = np.ones(result.shape, np.float32)
    gradient = _pool_gradient(features, boxes, upstream)
    assert gradient.dtype == dtype.as_numpy_dtype
    np.testing.assert_array_equal(gradient.astype(np.float32),
                                  _pool_gradient(tf.cast(features, tf.float32), boxes, upstream))
