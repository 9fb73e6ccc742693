import numpy as np
import tensorflow as tf

from frcnn.ops import matcher as matcher_lib
from frcnn.modeling import rpn_targets
from frcnn import config
from frcnn.ops import box_coder


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
    try:
        matcher_lib.Matcher(0.8, 0.2)
    except ValueError as error:
        assert "low" in str(error)
    else:
        raise AssertionError("Matcher(0.8, 0.2) should fail")


def test_label_anchors_golden_and_cross_boundary():
    cfg = config.RpnConfig()
    anchors = tf.constant([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [-5, -5, 5, 5],
                           [40, 40, 50, 50]], tf.float32)
    gt = tf.constant([[[0, 0, 10, 10], [20, 21, 30, 31], [-1, -1, -1, -1]]], tf.float32)
    codes = rpn_targets.label_anchors(anchors, gt, tf.constant([[45.0, 45.0]]), cfg).numpy()[0]
    # 0: IoU 1 → GT0 (코드 1); 1: IoU 100/110 > 0.7 → GT0; 2: GT1 과 IoU 90/110 > 0.7 → 코드 2;
    # 3: 경계 밖 → 무시; 4: 이미지(45×45) 밖으로 나감 → 무시
    assert codes.tolist() == [1, 1, 2, -1, -1]
    labels, targets = rpn_targets.decode_anchor_matches(codes[None], anchors, gt, (1.0, 1.0, 1.0, 1.0))
    assert labels.numpy().tolist() == [[1, 1, 1, -1, -1]]
    want = box_coder.encode(gt[0, 1], anchors[2], (1.0, 1.0, 1.0, 1.0)).numpy()
    np.testing.assert_allclose(targets.numpy()[0, 2], want, rtol=1e-6)
    np.testing.assert_allclose(targets.numpy()[0, 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(targets.numpy()[0, 3], 0.0)


def test_label_anchors_numpy_reference_random():
    rng = np.random.default_rng(3)
    cfg = config.RpnConfig()
    from frcnn.ops import anchors as anchors_lib
    anchors = anchors_lib.generate_anchors(6, 8, 16, [32.0, 64.0], [0.5, 1.0, 2.0]).numpy()
    y0 = rng.uniform(0, 70, 4); x0 = rng.uniform(0, 100, 4)
    gt = np.stack([y0, x0, y0 + rng.uniform(15, 50, 4), x0 + rng.uniform(15, 50, 4)], -1).astype(np.float32)
    size = np.array([96.0, 128.0], np.float32)
    codes = rpn_targets.label_anchors(tf.constant(anchors), tf.constant(gt[None]), tf.constant(size[None]), cfg).numpy()[0]
    # 독립 numpy 구현
    def iou(a, b):
        ih = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
        iw = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
        inter = ih * iw
        area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
        return inter / (area(a)[:, None] + area(b)[None] - inter)
    overlaps = iou(anchors, gt)
    inside = (anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= 96) & (anchors[:, 3] <= 128)
    want = np.full(len(anchors), -1)
    best = overlaps.max(1)
    want[inside & (best < 0.3)] = 0
    want[inside & (best > 0.7)] = overlaps.argmax(1)[inside & (best > 0.7)] + 1
    gt_best = np.where(inside[:, None], overlaps, -1).max(0)
    for g in range(len(gt)):
        rows = np.where(inside & np.isclose(overlaps[:, g], gt_best[g]) & (gt_best[g] > 0))[0]
        for r in rows:
            cols = [c for c in range(len(gt)) if np.isclose(overlaps[r, c], gt_best[c])]
            want[r] = max(cols, key=lambda c: overlaps[r, c]) + 1
    assert (codes == want).all()
