"""rpn_targets 테스트: 앵커 매칭 코드의 손 계산 예와 경계를 넘는 앵커, 독립 numpy 구현과의 비교, 코드 → 학습 타깃.

용어:
  A 앵커 수, G 최대 GT 수. 매칭 코드 −1 무시, 0 음성, k ≥ 1 양성 (GT k−1).
  박스 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀, GT 패딩 −1.
"""

import numpy as np
import tensorflow as tf

from frcnn import config
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.ops import box_coder

IMAGE_HEIGHT, IMAGE_WIDTH = 96.0, 128.0


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


def _area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _numpy_iou(boxes, gt_boxes):
    """[A, G] IoU (독립 numpy 구현)."""
    boxes, gt_boxes = boxes[:, None], gt_boxes[None]
    heights = np.minimum(boxes[..., 2], gt_boxes[..., 2]) - np.maximum(boxes[..., 0], gt_boxes[..., 0])
    widths = np.minimum(boxes[..., 3], gt_boxes[..., 3]) - np.maximum(boxes[..., 1], gt_boxes[..., 1])
    intersection = np.clip(heights, 0, None) * np.clip(widths, 0, None)
    return intersection / (_area(boxes[:, 0])[:, None] + _area(gt_boxes[0])[None] - intersection)


def _numpy_codes(anchors, gt_boxes):
    """논문 규칙의 매칭 코드: IoU > 0.7 양성, < 0.3 음성, GT 마다 최고 IoU 앵커도 양성, 경계 밖은 무시."""
    overlaps = _numpy_iou(anchors, gt_boxes)
    inside = ((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) & (anchors[:, 2] <= IMAGE_HEIGHT)
              & (anchors[:, 3] <= IMAGE_WIDTH))
    codes = np.full(len(anchors), -1)
    best = overlaps.max(1)
    codes[inside & (best < 0.3)] = 0
    codes[inside & (best > 0.7)] = overlaps.argmax(1)[inside & (best > 0.7)] + 1
    gt_best = np.where(inside[:, None], overlaps, -1).max(0)
    for g in range(len(gt_boxes)):
        rows = np.where(inside & np.isclose(overlaps[:, g], gt_best[g]) & (gt_best[g] > 0))[0]
        for row in rows:
            columns = [c for c in range(len(gt_boxes)) if np.isclose(overlaps[row, c], gt_best[c])]
            codes[row] = max(columns, key=lambda c: overlaps[row, c]) + 1
    return codes


def test_label_anchors_numpy_reference_random():
    rng = np.random.default_rng(3)
    anchors = anchors_lib.generate_anchors(6, 8, 16, [32.0, 64.0], [0.5, 1.0, 2.0]).numpy()
    top, left = rng.uniform(0, 70, 4), rng.uniform(0, 100, 4)
    gt_boxes = np.stack([top, left, top + rng.uniform(15, 50, 4), left + rng.uniform(15, 50, 4)],
                        -1).astype(np.float32)
    image_size = tf.constant([[IMAGE_HEIGHT, IMAGE_WIDTH]])
    codes = rpn_targets.label_anchors(tf.constant(anchors), tf.constant(gt_boxes[None]), image_size,
                                      config.RpnConfig()).numpy()[0]
    np.testing.assert_array_equal(codes, _numpy_codes(anchors, gt_boxes))
