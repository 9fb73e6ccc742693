"""matcher 테스트: 문턱값과 저품질 매칭, GT 없는 이미지 (XLA), 후보 마스크, 잘못된 문턱값.

용어: IoU [B, N, G] (패딩 GT 열은 −1), 라벨 1 양성, 0 음성, −1 무시.
"""

import pytest
import tensorflow as tf

from frcnn.ops import matcher as matcher_lib


def test_matcher_thresholds_and_low_quality():
    # 후보 4개 × GT 2개 (+ 패딩 열)
    iou = tf.constant([[[0.80, 0.10, -1.0],
                        [0.50, 0.20, -1.0],
                        [0.10, 0.40, -1.0],
                        [0.05, 0.00, -1.0]]])
    m = matcher_lib.Matcher(0.3, 0.7, allow_low_quality_matches=True, positive_inclusive=False)
    idx, labels = m(iou)
    # 0: IoU 0.8 > 0.7 양성→GT0; 1: 0.5 무시; 2: GT1 의 최고(0.4) 라 양성→GT1; 3: 음성
    assert labels.numpy().tolist() == [[1, -1, 1, 0]]
    assert idx.numpy()[0, 0] == 0 and idx.numpy()[0, 2] == 1


def test_matcher_empty_ground_truth_all_negative_under_jit():
    iou = -tf.ones([2, 5, 3])
    m = matcher_lib.Matcher(0.3, 0.7, allow_low_quality_matches=True)
    idx, labels = tf.function(m.__call__, jit_compile=True)(iou)
    # GT 가 없는 이미지: 모든 후보가 음성
    assert labels.numpy().tolist() == [[0] * 5] * 2
    mask = tf.constant([[True, False, True, True, True]] * 2)
    _, labels = m(iou, mask)
    assert labels.numpy().tolist() == [[0, -1, 0, 0, 0]] * 2


def test_matcher_validates():
    with pytest.raises(ValueError, match="low"):
        matcher_lib.Matcher(0.8, 0.2)
