"""losses 테스트: 손으로 만든 작은 입력에서 smooth-L1, RPN 손실, 검출기 손실의 값을 손 계산과 비교한다.

용어:
  B 배치, A 앵커 수, R 이미지당 RoI 수, C 클래스 수 (배경 제외).
"""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import losses


def _sigmoid_cross_entropy(logit, label):
    """−log σ(z) (양성) 또는 −log(1 − σ(z)) (음성)."""
    probability = 1.0 / (1.0 + math.exp(-logit))
    return -math.log(probability) if label == 1 else -math.log(1.0 - probability)


@pytest.mark.parametrize("sigma, difference, expected", [
    # σ = 1: 문턱 1/σ² = 1
    (1.0, 0.5, 0.5 * 0.25),
    (1.0, -0.5, 0.5 * 0.25),
    (1.0, 2.0, 2.0 - 0.5),
    (1.0, -3.0, 3.0 - 0.5),
    # σ = 3: 문턱 1/9 ≈ 0.111
    (3.0, 0.1, 0.5 * 9.0 * 0.01),
    (3.0, -0.05, 0.5 * 9.0 * 0.0025),
    (3.0, 0.5, 0.5 - 0.5 / 9.0),
    (3.0, -1.0, 1.0 - 0.5 / 9.0),
])
def test_smooth_l1_on_both_sides_of_threshold(sigma, difference, expected):
    differences = tf.constant([[difference, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(losses.smooth_l1(differences, sigma).numpy(), [expected], rtol=1e-6)


def test_smooth_l1_sums_last_axis():
    differences = tf.constant([[0.5, 2.0, -0.5, 0.0], [0.1, 0.5, 0.0, -1.0]])
    expected_sigma_one = [0.125 + 1.5 + 0.125, 0.005 + 0.125 + 0.5]
    np.testing.assert_allclose(losses.smooth_l1(differences, 1.0).numpy(), expected_sigma_one, rtol=1e-6)


def _rpn_config(**overrides):
    return dataclasses.replace(config_lib.RpnConfig(), **overrides)


def test_rpn_losses_all_non_ignored_anchors_sampled():
    # 앵커 6개 < 256 이라 무시(−1)가 아닌 앵커는 모두 뽑힌다: 양성 2, 음성 3 → 정규화 5.
    labels = np.array([[1, 0, -1, 0, 1, 0]], np.int32)
    logits = np.array([[2.0, -1.0, 50.0, 0.5, -0.3, 0.0]], np.float32)
    targets = np.zeros((1, 6, 4), np.float32)
    deltas = np.zeros((1, 6, 4), np.float32)
    targets[0, 0] = [0.05, 0.0, 0.2, -0.3]
    deltas[0, 0] = [0.0, 0.0, 0.0, 0.0]
    targets[0, 4] = [0.0, 0.0, 0.0, 0.0]
    deltas[0, 4] = [1.0, -0.02, 0.0, 0.0]
    # 무시·음성 앵커의 델타는 손실에 들어가지 않는다.
    deltas[0, 2] = [9.0, 9.0, 9.0, 9.0]
    deltas[0, 1] = [5.0, 5.0, 5.0, 5.0]
    objectness, box = losses.rpn_losses(tf.constant(logits), tf.constant(deltas), tf.constant(labels),
                                        tf.constant(targets), _rpn_config())
    expected_objectness = sum(_sigmoid_cross_entropy(logits[0, i], labels[0, i]) for i in (0, 1, 3, 4, 5)) / 5
    # σ = 3, 문턱 1/9: |−0.05| 와 |0.02| 는 안쪽 (4.5 x²), 0.2, 0.3, 1.0 은 바깥 (|x| − 1/18)
    expected_box = ((4.5 * 0.05 ** 2 + (0.2 - 1 / 18) + (0.3 - 1 / 18))
                    + ((1.0 - 1 / 18) + 4.5 * 0.02 ** 2)) / 5
    np.testing.assert_allclose(objectness.numpy(), expected_objectness, rtol=1e-5)
    np.testing.assert_allclose(box.numpy(), expected_box, rtol=1e-5)


def test_rpn_losses_normalizer_is_sampled_count_over_batch():
    # 이미지당 4 개, 양성 ≤ 2: 이미지 0 은 양성 2 + 음성 2 (음성 5 개 중 무작위지만 로짓이 같아 값은 같다),
    # 이미지 1 은 음성 1 개뿐 → 전체 정규화 4 + 1 = 5.
    labels = np.array([[1, 1, 0, 0, 0, 0, 0], [0, -1, -1, -1, -1, -1, -1]], np.int32)
    logits = np.array([[1.0, -2.0, 0.3, 0.3, 0.3, 0.3, 0.3], [-0.7, 8, 8, 8, 8, 8, 8]], np.float32)
    deltas = np.zeros((2, 7, 4), np.float32)
    deltas[0, 0, 0] = 2.0
    deltas[0, 1, 3] = -0.1
    targets = np.zeros((2, 7, 4), np.float32)
    objectness, box = losses.rpn_losses(
        tf.constant(logits), tf.constant(deltas), tf.constant(labels), tf.constant(targets),
        _rpn_config(batch_size_per_image=4, positive_fraction=0.5), seed=tf.constant([3, 7]))
    expected_objectness = (_sigmoid_cross_entropy(1.0, 1) + _sigmoid_cross_entropy(-2.0, 1)
                           + 2 * _sigmoid_cross_entropy(0.3, 0) + _sigmoid_cross_entropy(-0.7, 0)) / 5
    expected_box = ((2.0 - 1 / 18) + 4.5 * 0.01) / 5
    np.testing.assert_allclose(objectness.numpy(), expected_objectness, rtol=1e-5)
    np.testing.assert_allclose(box.numpy(), expected_box, rtol=1e-5)


def test_rpn_losses_all_ignored_is_zero():
    labels = -tf.ones([1, 5], tf.int32)
    objectness, box = losses.rpn_losses(tf.ones([1, 5]), tf.ones([1, 5, 4]), labels,
                                        tf.zeros([1, 5, 4]), _rpn_config())
    assert objectness.numpy() == 0.0 and box.numpy() == 0.0


def _log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    return logits - np.log(np.exp(logits).sum())


def test_detector_losses_by_hand():
    # B = 1, R = 4, C = 2. RoI 0 전경(클래스 2), 1 배경, 2 전경(클래스 1), 3 무효.
    class_logits = np.array([[0.1, 0.2, 1.5], [2.0, -1.0, 0.0], [0.0, 1.0, -1.0], [5.0, -5.0, 9.0]],
                            np.float32)
    box_deltas = np.zeros((4, 3, 4), np.float32)
    box_deltas[0, 2] = [0.5, -2.0, 0.0, 0.0]  # 클래스 2 의 델타가 골라져야 한다
    box_deltas[0, 1] = [7.0, 7.0, 7.0, 7.0]  # 다른 클래스의 델타는 무시
    box_deltas[2, 1] = [0.0, 0.0, 0.3, 0.0]
    box_deltas[1] = 4.0  # 배경 RoI 는 박스 손실 없음
    box_deltas[3] = 4.0  # 무효 RoI 도
    box_targets = np.zeros((1, 4, 4), np.float32)
    box_targets[0, 2] = [0.0, 0.0, 0.0, 1.5]
    roi_targets = {
        "roi_classes": tf.constant([[2, 0, 1, 0]], tf.int32),
        "valid": tf.constant([[True, True, True, False]]),
        "foreground": tf.constant([[True, False, True, False]]),
        "box_targets": tf.constant(box_targets),
        "rois": tf.zeros([1, 4, 4]),
    }
    class_loss, box_loss = losses.detector_losses(tf.constant(class_logits), tf.constant(box_deltas),
                                                  roi_targets, config_lib.RoiConfig())
    expected_class = -(_log_softmax(class_logits[0])[2] + _log_softmax(class_logits[1])[0]
                       + _log_softmax(class_logits[2])[1]) / 3
    # σ = 1, 문턱 1: 0.5 → 0.125, 2.0 → 1.5, 0.3 → 0.045, −1.5 → 1.0
    expected_box = (0.125 + 1.5 + 0.045 + 1.0) / 3
    np.testing.assert_allclose(class_loss.numpy(), expected_class, rtol=1e-5)
    np.testing.assert_allclose(box_loss.numpy(), expected_box, rtol=1e-5)


def test_detector_losses_under_xla_match_eager():
    rng = np.random.default_rng(0)
    class_logits = tf.constant(rng.normal(size=(6, 4)), tf.float32)
    box_deltas = tf.constant(rng.normal(size=(6, 4, 4)), tf.float32)
    roi_targets = {
        "roi_classes": tf.constant([[3, 0, 1], [0, 2, 0]], tf.int32),
        "valid": tf.constant([[True, True, True], [True, True, False]]),
        "foreground": tf.constant([[True, False, True], [False, True, False]]),
        "box_targets": tf.constant(rng.normal(size=(2, 3, 4)), tf.float32),
    }
    config = config_lib.RoiConfig()
    eager = losses.detector_losses(class_logits, box_deltas, roi_targets, config)
    compiled = tf.function(lambda *args: losses.detector_losses(*args, config), jit_compile=True)
    for a, b in zip(eager, compiled(class_logits, box_deltas, roi_targets)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5)
