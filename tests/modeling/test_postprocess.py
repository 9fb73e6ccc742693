"""postprocess 테스트: 손으로 만든 로짓·델타에서 기대하는 정규화 박스, 1-기반 클래스, 점수, 개수, 패딩.

용어:
  B 배치, R 이미지당 RoI 수, C 클래스 수 (배경 제외), N 최대 검출 수.
  박스 `[ymin, xmin, ymax, xmax]`, 입력은 리사이즈된 이미지 픽셀, 출력은 정규화 [0, 1].
"""

import math

import numpy as np
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import postprocess

DETECTION_CONFIG = config_lib.DetectionConfig(score_threshold=0.15, nms_iou=0.3, max_detections=5,
                                              max_detections_per_class=5)
ROI_CONFIG = config_lib.RoiConfig()  # 박스 가중치 (10, 10, 5, 5)


def _inputs():
    """B = 2, R = 4, C = 2 의 손 계산 예.

    이미지 0 (100×200):
      RoI 0 [10, 20, 50, 80], 확률 (0.1, 0.8, 0.1), 클래스 1 의 dy = 1 → 0.1·40 = 4 픽셀 아래로
        → [14, 20, 54, 80] → 정규화 [0.14, 0.1, 0.54, 0.4], 점수 0.8.
      RoI 1 [80, 150, 120, 220], 확률 (0.2, 0.1, 0.7), 클래스 2 의 dw = 5·log 2 → 너비 2 배 [115, 255]
        → 이미지로 잘라 [80, 115, 100, 200] → [0.8, 0.575, 1.0, 1.0], 점수 0.7. 클래스 1 델타는 엉뚱한 값.
      RoI 2 [11, 20, 51, 80], 확률 (0.35, 0.6, 0.05): 클래스 1 박스가 RoI 0 의 것과 IoU 0.86 → NMS 로 제거.
      RoI 3 은 무효 (확률이 높아도 빠진다).
    이미지 1 (50×60): RoI 0 [5, 6, 25, 36], 확률 (0.5, 0.3, 0.2) → 두 클래스 모두 [0.1, 0.1, 0.5, 0.6].
      나머지 RoI 는 배경 0.9.
    """
    rois = np.array([[[10, 20, 50, 80], [80, 150, 120, 220], [11, 20, 51, 80], [0, 0, 30, 30]],
                     [[5, 6, 25, 36], [0, 0, 10, 10], [10, 10, 20, 20], [20, 20, 40, 40]]], np.float32)
    roi_valid = np.array([[True, True, True, False], [True, True, True, True]])
    probabilities = np.array([[0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.35, 0.6, 0.05], [0.01, 0.98, 0.01],
                              [0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]])
    class_logits = np.log(probabilities).astype(np.float32)
    box_deltas = np.zeros((8, 3, 4), np.float32)
    box_deltas[0, 1] = [1.0, 0.0, 0.0, 0.0]
    box_deltas[1, 2] = [0.0, 0.0, 0.0, 5.0 * math.log(2.0)]
    box_deltas[1, 1] = [3.0, 3.0, 3.0, 3.0]
    box_deltas[:, 0] = 9.0  # 배경 델타는 쓰이지 않는다
    image_sizes = np.array([[100.0, 200.0], [50.0, 60.0]], np.float32)
    return rois, roi_valid, class_logits, box_deltas, image_sizes


def _detect(rois, roi_valid, class_logits, box_deltas, image_sizes):
    result = postprocess.detect(tf.constant(rois), tf.constant(roi_valid), tf.constant(class_logits),
                                tf.constant(box_deltas), tf.constant(image_sizes), DETECTION_CONFIG,
                                ROI_CONFIG)
    return {key: value.numpy() for key, value in result.items()}


def test_hand_made_detections():
    result = _detect(*_inputs())
    assert result["boxes"].shape == (2, 5, 4) and result["boxes"].dtype == np.float32
    assert result["scores"].shape == (2, 5) and result["scores"].dtype == np.float32
    assert result["classes"].shape == (2, 5) and result["classes"].dtype == np.int32
    assert result["num_detections"].tolist() == [2, 2] and result["num_detections"].dtype == np.int32
    np.testing.assert_allclose(result["scores"][0, :2], [0.8, 0.7], rtol=1e-5)
    assert result["classes"][0, :2].tolist() == [1, 2]
    np.testing.assert_allclose(result["boxes"][0, :2], [[0.14, 0.1, 0.54, 0.4], [0.8, 0.575, 1.0, 1.0]],
                               atol=1e-5)
    # 다른 클래스는 서로 억제하지 않는다.
    np.testing.assert_allclose(result["scores"][1, :2], [0.3, 0.2], rtol=1e-5)
    assert result["classes"][1, :2].tolist() == [1, 2]
    np.testing.assert_allclose(result["boxes"][1, :2], [[0.1, 0.1, 0.5, 0.6]] * 2, atol=1e-5)


def test_padding_rows_are_zero():
    result = _detect(*_inputs())
    assert np.all(result["boxes"][:, 2:] == 0.0)
    assert np.all(result["scores"][:, 2:] == 0.0)
    assert np.all(result["classes"][:, 2:] == 0)


def test_nothing_above_threshold_gives_zero_detections():
    rois, roi_valid, class_logits, box_deltas, image_sizes = _inputs()
    roi_valid[:] = False
    result = _detect(rois, roi_valid, class_logits, box_deltas, image_sizes)
    assert result["num_detections"].tolist() == [0, 0]
    assert np.all(result["boxes"] == 0.0) and np.all(result["classes"] == 0) and np.all(result["scores"] == 0)
