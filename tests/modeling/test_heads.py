"""heads 테스트: DetectorHead 의 출력 모양, numpy 참조값, bfloat16 혼합 정밀도, XLA 컴파일.

몸통은 작은 keras Sequential (Flatten + Dense(relu)) 이고, 참조값은 레이어 자신의 커널로 numpy 에서 계산한다.

용어:
  N RoI 수, P RoI 출력 크기, Cf 특징 채널, D 몸통 출력 차원, C 클래스 수 (배경 0 제외).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling.heads import DetectorHead

NUM_CLASSES = 3
POOL_SIZE = 2
FEATURE_CHANNELS = 4
HIDDEN_SIZE = 8


@pytest.fixture
def mixed_bfloat16():
    """전역 dtype 정책을 mixed_bfloat16 으로 바꾸고, 끝나면 원래 정책(float32)으로 되돌린다."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def _roi_features(num_rois, seed=0):
    """float32 [N, P, P, Cf] 임의 RoI 특징."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(num_rois, POOL_SIZE, POOL_SIZE, FEATURE_CHANNELS)).astype(np.float32)


def _build_head(body_layers=None, seed=0):
    """몸통 Flatten + Dense(D, relu) 인 헤드를 만들고, 모든 커널/편향을 임의 값으로 바꾼다.

    Dense 의 기본 편향은 0 이라 편향이 빠져도 티가 나지 않으므로 0 이 아닌 값을 넣는다.
    """
    body = keras.Sequential(body_layers or [keras.layers.Flatten(),
                                            keras.layers.Dense(HIDDEN_SIZE, activation="relu")])
    head = DetectorHead(body, NUM_CLASSES)
    head(_roi_features(1))  # 가중치 생성
    rng = np.random.default_rng(seed + 100)
    for weight in head.weights:
        fan_in = weight.shape[0] if len(weight.shape) == 2 else 1
        weight.assign(rng.normal(scale=1.0 / np.sqrt(fan_in), size=weight.shape))
    return head


def _numpy_reference(head, roi_features):
    """레이어 자신의 가중치로 numpy 에서 계산한 (class_logits [N, C+1], box_deltas [N, C+1, 4])."""
    dense = head.body.layers[-1]
    kernel, bias = (np.asarray(weight, np.float64) for weight in (dense.kernel, dense.bias))
    # [N, P·P·Cf] 평평한 특징 → [N, D] 몸통 출력
    flat_features = roi_features.reshape(len(roi_features), POOL_SIZE * POOL_SIZE * FEATURE_CHANNELS)
    hidden = np.maximum(flat_features @ kernel + bias, 0.0)
    logits = hidden @ np.asarray(head.class_logits.kernel) + np.asarray(head.class_logits.bias)
    flat_deltas = hidden @ np.asarray(head.box_deltas.kernel) + np.asarray(head.box_deltas.bias)
    # 클래스 c 의 델타는 평평한 출력의 열 4c..4c+3
    box_deltas = np.stack([flat_deltas[:, 4 * c:4 * c + 4] for c in range(NUM_CLASSES + 1)], axis=1)
    return logits, box_deltas


@pytest.mark.parametrize("num_rois", [5, 1, 0])
def test_output_shapes_and_values_match_numpy(num_rois):
    head = _build_head()
    roi_features = _roi_features(num_rois, seed=num_rois)
    class_logits, box_deltas = head(roi_features)
    assert class_logits.shape == (num_rois, NUM_CLASSES + 1)
    assert box_deltas.shape == (num_rois, NUM_CLASSES + 1, 4)
    assert class_logits.dtype == tf.float32 and box_deltas.dtype == tf.float32
    expected_logits, expected_deltas = _numpy_reference(head, roi_features)
    np.testing.assert_allclose(class_logits.numpy(), expected_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(box_deltas.numpy(), expected_deltas, rtol=1e-5, atol=1e-5)


def test_training_flag_reaches_the_body():
    head = _build_head([keras.layers.Flatten(), keras.layers.Dropout(0.5),
                        keras.layers.Dense(HIDDEN_SIZE, activation="relu")])
    roi_features = _roi_features(6)
    inference = [output.numpy() for output in head(roi_features, training=False)]
    np.testing.assert_array_equal(inference[0], head(roi_features)[0].numpy())  # 기본값은 추론
    training = [output.numpy() for output in head(roi_features, training=True)]
    assert not np.allclose(inference[0], training[0])
    assert not np.allclose(inference[1], training[1])


def test_outputs_are_float32_under_mixed_bfloat16(mixed_bfloat16):
    head = _build_head()
    assert head.class_logits.compute_dtype == "bfloat16"
    assert head.class_logits.kernel.dtype == "float32"  # 변수는 float32 로 남는다
    roi_features = _roi_features(4)
    class_logits, box_deltas = head(roi_features)
    assert class_logits.dtype == tf.float32 and box_deltas.dtype == tf.float32
    assert box_deltas.shape == (4, NUM_CLASSES + 1, 4)
    # bfloat16 (유효 숫자 약 3 자리) 계산이라 허용 오차를 넓힌다.
    expected_logits, expected_deltas = _numpy_reference(head, roi_features)
    np.testing.assert_allclose(class_logits.numpy(), expected_logits, rtol=5e-2, atol=5e-2)
    np.testing.assert_allclose(box_deltas.numpy(), expected_deltas, rtol=5e-2, atol=5e-2)


def test_jit_compile_gives_the_same_result():
    head = _build_head()
    roi_features = _roi_features(7)
    eager_logits, eager_deltas = head(roi_features)
    compiled = tf.function(lambda features: head(features), jit_compile=True)
    jit_logits, jit_deltas = compiled(tf.constant(roi_features))
    assert jit_logits.shape == (7, NUM_CLASSES + 1) and jit_deltas.shape == (7, NUM_CLASSES + 1, 4)
    np.testing.assert_allclose(jit_logits.numpy(), eager_logits.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jit_deltas.numpy(), eager_deltas.numpy(), rtol=1e-5, atol=1e-6)
