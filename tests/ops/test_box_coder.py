"""box_coder 테스트: 손 계산 인코딩, 인코딩→디코딩 왕복, XLA 에서 큰 델타 자르기.

용어: 델타 (ty, tx, th, tw) 에 가중치 (wy, wx, wh, ww), 박스 `[ymin, xmin, ymax, xmax]`.
"""

import math

import numpy as np
import tensorflow as tf

from frcnn.ops import box_coder


def test_encode_hand_computed():
    anchor = tf.constant([[0.0, 0.0, 10.0, 20.0]])  # cy 5, cx 10, h 10, w 20
    box = tf.constant([[2.0, 4.0, 22.0, 24.0]])  # cy 12, cx 14, h 20, w 20
    deltas = box_coder.encode(box, anchor, (10.0, 10.0, 5.0, 5.0)).numpy()[0]
    np.testing.assert_allclose(deltas, [10 * 7 / 10, 10 * 4 / 20, 5 * math.log(2.0), 0.0], rtol=1e-6)


def test_roundtrip_random():
    rng = np.random.default_rng(1)
    y0, x0 = rng.uniform(0, 100, (2, 50))
    h, w = rng.uniform(1, 200, (2, 50))
    boxes = np.stack([y0, x0, y0 + h, x0 + w], -1).astype(np.float32)
    anchors = (boxes + rng.normal(0, 5, boxes.shape)).astype(np.float32)
    anchors[:, 2:] = np.maximum(anchors[:, 2:], anchors[:, :2] + 2)
    for weights in [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]:
        deltas = box_coder.encode(tf.constant(boxes), tf.constant(anchors), weights)
        decoded = box_coder.decode(deltas, tf.constant(anchors), weights).numpy()
        np.testing.assert_allclose(decoded, boxes, rtol=1e-4, atol=1e-3)


def test_decode_clamps_large_deltas_under_jit():
    anchor = tf.constant([[0.0, 0.0, 16.0, 16.0]])
    fn = tf.function(lambda d: box_coder.decode(d, anchor, (1.0, 1.0, 1.0, 1.0)), jit_compile=True)
    box = fn(tf.constant([[0.0, 0.0, 50.0, 50.0]])).numpy()[0]
    # exp(log(1000/16)) · 16 = 1000
    np.testing.assert_allclose(box[2] - box[0], 1000.0, rtol=1e-4)
    np.testing.assert_allclose(box[3] - box[1], 1000.0, rtol=1e-4)
