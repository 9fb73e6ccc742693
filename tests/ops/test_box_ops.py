"""box_ops 테스트: 손 계산·numpy 참조 IoU, 패딩 GT 와 XLA, 자르기·좌우 뒤집기·이미지 안 판정.

용어: 박스 `[ymin, xmin, ymax, xmax]`, 패딩 행 −1 (IoU −1).
"""

import numpy as np
import tensorflow as tf

from frcnn.ops import box_ops


def numpy_iou(a, b):
    """박스 두 개의 IoU (독립 numpy 참조)."""
    top, left = max(a[0], b[0]), max(a[1], b[1])
    bottom, right = min(a[2], b[2]), min(a[3], b[3])
    inter = max(bottom - top, 0) * max(right - left, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_iou_hand_computed():
    boxes1 = tf.constant([[[0, 0, 10, 10], [5, 5, 15, 15]]], tf.float32)
    boxes2 = tf.constant([[[0, 0, 10, 10], [0, 5, 10, 15], [-1, -1, -1, -1]]], tf.float32)
    iou = box_ops.pairwise_iou(boxes1, boxes2).numpy()[0]
    # 같은 박스 1, 절반 겹침 50/150, 25/175, 패딩 −1
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, -1.0], rtol=1e-6)
    np.testing.assert_allclose(iou[1], [25 / 175, 50 / 150, -1.0], rtol=1e-6)


def test_iou_matches_numpy_reference_random():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, size=(2, 7, 2, 2))
    boxes = np.concatenate([corners.min(axis=2), corners.max(axis=2)], axis=-1).astype(np.float32)
    a, b = boxes[0], boxes[1][:5]
    got = box_ops.pairwise_iou(a[None], b[None]).numpy()[0]
    want = np.array([[numpy_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_iou_all_padding_and_jit():
    padding = -tf.ones([2, 3, 4])
    fn = tf.function(box_ops.pairwise_iou, jit_compile=True)
    iou = fn(tf.constant([[[0, 0, 4, 4.0]]] * 2), padding).numpy()
    assert iou.shape == (2, 1, 3)
    assert np.all(iou == -1.0)


def test_clip_flip_inside():
    boxes = tf.constant([[[-5, -5, 20, 30], [-1, -1, -1, -1]]], tf.float32)
    clipped = box_ops.clip_boxes(boxes, tf.constant([[10.0, 20.0]])).numpy()[0]
    np.testing.assert_allclose(clipped[0], [0, 0, 10, 20])
    flipped = box_ops.flip_left_right(tf.constant([[1.0, 2.0, 3.0, 5.0], [-1, -1, -1, -1]]), 10.0).numpy()
    np.testing.assert_allclose(flipped, [[1, 5, 3, 8], [-1, -1, -1, -1]])
    inside = box_ops.inside_image(tf.constant([[0, 0, 10, 20], [0, 0, 10, 20.5]], tf.float32),
                                  tf.constant([[10.0, 20.0]])).numpy()
    assert inside.tolist() == [[True, False]]


def test_centres_inside_image():
    # 중심 (5, 5), (15, 5), (5, 25): 이미지 10×30 에는 첫째와 셋째, 20×20 에는 첫째와 둘째만.
    boxes = tf.constant([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0], [0.0, 20.0, 10.0, 30.0]])
    inside = box_ops.centres_inside_image(boxes, tf.constant([[10.0, 30.0], [20.0, 20.0]]))
    assert inside.numpy().tolist() == [[True, False, True], [True, True, False]]


def test_sides_at_least_checks_height_and_width():
    boxes = tf.constant([[0.0, 0.0, 2.0, 3.0], [0.0, 0.0, 0.5, 3.0], [1.0, 1.0, 4.0, 1.9]])
    assert box_ops.sides_at_least(boxes, 1.0).numpy().tolist() == [True, False, False]
    assert box_ops.sides_at_least(boxes, 0.5).numpy().tolist() == [True, True, True]
