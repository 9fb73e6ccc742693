"""roi_ops 테스트: RoI pooling / RoIAlign 을 정의대로 루프를 도는 numpy 기준 구현과 비교한다.

용어:
  B 배치, R 이미지당 RoI 수, Hf·Wf 특징맵, C 채널, P 출력 크기.
  박스 `[ymin, xmin, ymax, xmax]` 이미지 픽셀, 특징 좌표 u = 픽셀 / stride − 0.5.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import roi_ops

STRIDE = 8
OUTPUT_SIZE = 3


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


def _reference(features, boxes, reduce):
    """numpy 기준: 칸마다 2×2 표본(칸을 2×2 로 나눈 작은 칸의 중심)을 찍어 reduce (max 또는 mean).

    Args:
      features: [B, Hf, Wf, C].
      boxes: [B, R, 4] 이미지 픽셀.
      reduce: np.max 또는 np.mean.

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
                    output[b * num_rois + r, i, j] = reduce(np.stack(samples), axis=0)
    return output


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


@pytest.mark.parametrize("implementation", roi_ops.IMPLEMENTATIONS)
@pytest.mark.parametrize("op, reduce", [(roi_ops.roi_pool, np.max), (roi_ops.roi_align, np.mean)])
def test_matches_numpy_reference(op, reduce, implementation):
    features, boxes = _random_inputs()
    expected = _reference(features, boxes, reduce)
    result = op(tf.constant(features), tf.constant(boxes), STRIDE, OUTPUT_SIZE, implementation).numpy()
    assert result.shape == (10, OUTPUT_SIZE, OUTPUT_SIZE, 3)
    np.testing.assert_allclose(result, expected, atol=1e-5)
    # 멀리 벗어난 RoI (각 이미지의 마지막) 는 0
    assert np.all(result[[4, 9]] == 0.0)


@pytest.mark.parametrize("op, reduce", [(roi_ops.roi_pool, np.max), (roi_ops.roi_align, np.mean)])
def test_matches_reference_under_xla(op, reduce):
    features, boxes = _random_inputs(seed=1)
    compiled = tf.function(lambda f, b: op(f, b, STRIDE, OUTPUT_SIZE), jit_compile=True)
    result = compiled(tf.constant(features), tf.constant(boxes)).numpy()
    np.testing.assert_allclose(result, _reference(features, boxes, reduce), atol=1e-5)


def test_constant_feature_map_inside_box():
    # 상수 특징맵 안쪽의 RoI 는 pool/align 모두 그 상수다 (손으로 아는 값).
    features = tf.fill([1, 5, 5, 2], 3.5)
    boxes = tf.constant([[[8.0, 8.0, 30.0, 24.0]]])
    for op in (roi_ops.roi_pool, roi_ops.roi_align):
        np.testing.assert_allclose(op(features, boxes, STRIDE, OUTPUT_SIZE).numpy(), 3.5, rtol=1e-6)


@pytest.mark.parametrize("op", [roi_ops.roi_pool, roi_ops.roi_align])
def test_gradients_flow_to_features(op):
    features, boxes = _random_inputs(seed=2)
    features = tf.Variable(features)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(op(features, tf.constant(boxes), STRIDE, OUTPUT_SIZE))
    gradient = tape.gradient(loss, features)
    assert gradient is not None
    gradient = tf.convert_to_tensor(gradient).numpy()
    assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0.0


def test_roi_features_dispatch_and_unknown_op():
    features, boxes = _random_inputs(seed=3)
    features, boxes = tf.constant(features), tf.constant(boxes)
    np.testing.assert_array_equal(roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, "align"),
                                  roi_ops.roi_align(features, boxes, STRIDE, OUTPUT_SIZE))
    np.testing.assert_array_equal(roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, "pool"),
                                  roi_ops.roi_pool(features, boxes, STRIDE, OUTPUT_SIZE))
    with pytest.raises(ValueError, match="crop"):
        roi_ops.roi_features(features, boxes, STRIDE, OUTPUT_SIZE, "crop")


@pytest.mark.parametrize("op, reduce", [(roi_ops.roi_pool, np.max), (roi_ops.roi_align, np.mean)])
def test_crop_and_resize_with_unknown_feature_size(op, reduce):
    # 내보낸 그래프처럼 특징맵 크기를 모르는 tf.function 에서도 같은 값.
    features, boxes = _random_inputs(seed=4)
    traced = tf.function(lambda f, b: op(f, b, STRIDE, OUTPUT_SIZE, "crop_and_resize"), input_signature=[
        tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([None, None, 4])])
    np.testing.assert_allclose(traced(features, boxes).numpy(), _reference(features, boxes, reduce),
                               atol=1e-5)
    with pytest.raises(ValueError, match="unknown RoI implementation"):
        op(tf.constant(features), tf.constant(boxes), STRIDE, OUTPUT_SIZE, "gather")
