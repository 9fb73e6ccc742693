"""crowd 규칙 테스트 (`frcnn.modeling.crowd`): 손으로 계산한 작은 예에서 crowd 상자 안 (IoA > 0.7) 의 앵커·RoI
후보는 음성·배경이 되지 않고, crowd 물체는 양성·전경이 되지 않으며, 보통 물체의 양성은 그대로인지 확인한다.

용어: 박스 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀, GT 패딩 −1. IoA = 교집합 / 앵커(후보) 넓이.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import crowd
from frcnn.modeling import roi_targets
from frcnn.modeling import rpn_targets
from frcnn.ops import box_ops

NORMAL = [30, 30, 40, 40]
CROWD = [0, 0, 20, 20]
GT_BOXES = np.array([[NORMAL, CROWD]], np.float32)  # [1, 2, 4]
IS_CROWD = np.array([[False, True]])


def _split():
    return crowd.split_crowd(tf.constant(GT_BOXES), tf.constant(GT_BOXES), tf.constant(IS_CROWD))


def test_ioa_hand_computed_and_padding():
    anchors = tf.constant([[[0, 0, 10, 10], [12, 12, 22, 22], [11, 11, 20, 21], [0, 0, 0, 0]]], tf.float32)
    crowd_boxes = tf.constant([[CROWD, [-1, -1, -1, -1]]], tf.float32)
    ioa = box_ops.pairwise_ioa(anchors, crowd_boxes).numpy()[0]
    # 안에 다 듦 1; 8×8 / 100; 9×9 / (9×10); 넓이 0 인 박스는 0; 패딩 −1
    np.testing.assert_allclose(ioa[:, 0], [1.0, 0.64, 0.9, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(ioa[:, 1], [-1, -1, -1, -1])
    compiled = tf.function(box_ops.pairwise_ioa, jit_compile=True)(anchors, crowd_boxes)
    np.testing.assert_allclose(compiled.numpy()[0], ioa, rtol=1e-6)


def test_split_crowd_removes_crowd_targets():
    targets, crowd_boxes = _split()
    np.testing.assert_array_equal(targets.numpy()[0], [NORMAL, [-1] * 4])
    np.testing.assert_array_equal(crowd_boxes.numpy()[0], [[-1] * 4, CROWD])


def test_anchors_inside_a_crowd_box_are_ignored_and_crowd_is_never_positive():
    anchors = tf.constant([
        [0, 0, 10, 10],    # crowd IoA 1 → 무시 (crowd 규칙이 없으면 음성)
        [12, 12, 22, 22],  # IoA 0.64 ≤ 0.7 → 음성
        NORMAL,            # 보통 물체와 IoU 1 → 양성, GT 0 → 코드 1
        [6, 6, 16, 16],    # IoA 1 → 무시
        [11, 11, 20, 21],  # IoA 0.9 → 무시
        [13, 13, 23, 23],  # IoA 0.49 → 음성
        CROWD,             # crowd 와 IoU 1 이지만 양성이 아니다: IoA 1 → 무시
    ], tf.float32)
    rpn_config = config_lib.RpnConfig()
    targets, crowd_boxes = _split()
    sizes = tf.constant([[64.0, 64.0]])
    codes = rpn_targets.label_anchors(anchors, targets, sizes, rpn_config, crowd_boxes=crowd_boxes)
    assert codes.numpy()[0].tolist() == [-1, 0, 1, -1, -1, 0, -1]
    # crowd 규칙 없이 (crowd 를 보통 물체로) 붙였다면 마지막 앵커는 GT 1 의 양성 (코드 2) 이다.
    plain = rpn_targets.label_anchors(anchors, tf.constant(GT_BOXES), sizes, rpn_config)
    assert plain.numpy()[0].tolist()[-1] == 2 and plain.numpy()[0].tolist()[0] == 0


def test_rois_inside_a_crowd_box_are_not_background():
    proposals = tf.constant([[[0, 0, 10, 10], NORMAL, [50, 50, 60, 60], CROWD]], tf.float32)
    targets, crowd_boxes = _split()
    roi_config = dataclasses.replace(config_lib.RoiConfig(), num_rois=4, foreground_fraction=0.5)
    result = roi_targets.sample_rois(proposals, tf.ones([1, 4], tf.bool), targets, tf.constant([[1, 2]]),
                                     roi_config, seed=tf.constant([1, 2]), crowd_boxes=crowd_boxes)
    valid = result["valid"].numpy()[0]
    rois = result["rois"].numpy()[0][valid]
    foreground = result["foreground"].numpy()[0][valid]
    # 전경 (상한 2): 제안 NORMAL 과 덧붙인 GT NORMAL (클래스 1). 배경: [50, 50, 60, 60] 하나뿐 — crowd 안의 두
    # 제안은 배경이 아니다 (R = 4 칸 중 하나는 무효).
    assert sorted(map(tuple, rois[foreground].tolist())) == [tuple(NORMAL)] * 2
    assert rois[~foreground].tolist() == [[50, 50, 60, 60]]
    assert result["roi_classes"].numpy()[0][valid].tolist() == [1, 1, 0]
