"""modeling.difficult 테스트: drop / ignore / keep 이 앵커 라벨과 RoI 타깃을 손으로 계산한 값대로 바꾸는지."""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import difficult
from frcnn.modeling import roi_targets
from frcnn.modeling import rpn_targets

# GT 0 은 difficult, GT 1 은 보통 물체.
GT_BOXES = np.array([[[0, 0, 32, 32], [40, 40, 72, 72]]], np.float32)
IS_DIFFICULT = np.array([[True, False]])
# 후보: difficult 박스 그대로 (IoU 1), 보통 박스 그대로, 먼 박스 (IoU 0),
# difficult 박스와 반쯤 겹치는 박스 (IoU = 16·32 / (2·32·32 − 16·32) = 1/3, 보통 박스와는 0).
CANDIDATES = np.array([[0, 0, 32, 32], [40, 40, 72, 72], [100, 100, 132, 132], [0, 16, 32, 48]], np.float32)


@pytest.mark.parametrize("mode, expected", [
    # 매칭 코드: k ≥ 1 은 GT k−1 양성, 0 음성, −1 무시.
    ("keep", [1, 2, 0, -1]),    # 반쯤 겹치는 앵커: IoU 1/3 ∈ [0.3, 0.7) 이라 무시
    ("drop", [0, 2, 0, 0]),     # difficult 는 GT 가 아니므로 그것을 덮는 앵커도 음성
    ("ignore", [-1, 2, 0, -1]),  # difficult 와 IoU ≥ 0.3 인 앵커는 양성도 음성도 아니다
])
def test_anchor_labels_by_mode(mode, expected):
    rpn_config = config_lib.RpnConfig()
    target_boxes, ignore_boxes = difficult.training_boxes(GT_BOXES, IS_DIFFICULT, mode)
    matches = rpn_targets.label_anchors(tf.constant(CANDIDATES), target_boxes, tf.constant([[200.0, 200.0]]),
                                        rpn_config, ignore_boxes)
    assert matches.numpy()[0].tolist() == expected


@pytest.mark.parametrize("mode, expected", [
    # 후보마다 (전경 클래스 또는 0 배경, 뽑히지 않으면 None). 클래스: difficult 7, 보통 3.
    ("keep", [7, 3, 0, 0]),
    ("drop", [0, 3, 0, 0]),
    ("ignore", [None, 3, 0, 0]),  # difficult 와 IoU ≥ 0.5 인 후보는 배경도 아니다; 1/3 은 배경
])
def test_roi_targets_by_mode(mode, expected):
    roi_config = config_lib.RoiConfig(num_rois=6, foreground_fraction=1.0)  # 후보 4 + GT 2 = 모두
    target_boxes, ignore_boxes = difficult.training_boxes(GT_BOXES, IS_DIFFICULT, mode)
    targets = roi_targets.sample_rois(tf.constant(CANDIDATES[None]), tf.ones([1, 4], tf.bool), target_boxes,
                                      tf.constant([[7, 3]]), roi_config, seed=tf.constant([1, 2]),
                                      ignore_boxes=ignore_boxes)
    rois = targets["rois"].numpy()[0]
    classes = targets["roi_classes"].numpy()[0]
    valid = targets["valid"].numpy()[0]
    for candidate, want in zip(CANDIDATES, expected):
        # 덧붙인 GT 도 후보라 같은 박스가 두 번 뽑힐 수 있다: 모두 같은 라벨이어야 한다.
        found = {int(cls) for roi, cls, ok in zip(rois, classes, valid)
                 if ok and np.array_equal(roi, candidate)}
        assert found == (set() if want is None else {want}), (mode, candidate)


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="unknown difficult mode 'hard'"):
        difficult.training_boxes(GT_BOXES, IS_DIFFICULT, "hard")


def test_under_xla():
    @tf.function(jit_compile=True)
    def labels(boxes, is_difficult):
        target_boxes, ignore_boxes = difficult.training_boxes(boxes, is_difficult, "ignore")
        return rpn_targets.label_anchors(tf.constant(CANDIDATES), target_boxes, tf.constant([[200.0, 200.0]]),
                                         config_lib.RpnConfig(), ignore_boxes)

    assert labels(tf.constant(GT_BOXES), tf.constant(IS_DIFFICULT)).numpy()[0].tolist() == [-1, 2, 0, -1]
