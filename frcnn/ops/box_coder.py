"""박스 인코딩/디코딩: 기준 박스(앵커·제안)에 대한 (dy, dx, dh, dw) 델타.

용어:
  B 배치, N 박스 수. 박스 형식 `[ymin, xmin, ymax, xmax]` (연속 픽셀).
  델타 순서: [dy, dx, dh, dw] (박스 좌표 순서와 맞춘다). 단계별 가중치는 (wy, wx, wh, ww):
  RPN (1, 1, 1, 1), 검출기 헤드 (10, 10, 5, 5).
  dh, dw 는 디코딩 때 log(1000/16) 에서 자른다 (너무 큰 exp 방지, detectron2 와 같음).
"""

import math

import tensorflow as tf

BOX_DELTA_CLAMP = math.log(1000.0 / 16.0)


def _center_size(boxes):
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    height = ymax - ymin
    width = xmax - xmin
    return ymin + 0.5 * height, xmin + 0.5 * width, height, width


def encode(boxes, reference_boxes, weights):
    """박스를 기준 박스에 대한 델타로 바꾼다.

    Args:
      boxes: [..., 4] float32 목표 박스.
      reference_boxes: [..., 4] float32 기준 박스 (넓이 > 0).
      weights: 4개 float (wy, wx, wh, ww).

    Returns:
      [..., 4] float32 델타 (dy, dx, dh, dw).
    """
    wy, wx, wh, ww = weights
    cy, cx, h, w = _center_size(boxes)
    ref_cy, ref_cx, ref_h, ref_w = _center_size(reference_boxes)
    # 퇴화된 박스에서 log(0) 을 피한다.
    h = tf.maximum(h, 1e-6)
    w = tf.maximum(w, 1e-6)
    ref_h = tf.maximum(ref_h, 1e-6)
    ref_w = tf.maximum(ref_w, 1e-6)
    return tf.stack([
        wy * (cy - ref_cy) / ref_h,
        wx * (cx - ref_cx) / ref_w,
        wh * tf.math.log(h / ref_h),
        ww * tf.math.log(w / ref_w),
    ], axis=-1)


def decode(deltas, reference_boxes, weights):
    """델타를 박스로 되돌린다 (`encode` 의 역).

    Args:
      deltas: [..., 4] float32 (dy, dx, dh, dw).
      reference_boxes: [..., 4] float32.
      weights: 4개 float.

    Returns:
      [..., 4] float32 박스.
    """
    wy, wx, wh, ww = weights
    deltas = tf.cast(deltas, tf.float32)
    dy, dx, dh, dw = tf.unstack(deltas, axis=-1)
    dh = tf.minimum(dh / wh, BOX_DELTA_CLAMP)
    dw = tf.minimum(dw / ww, BOX_DELTA_CLAMP)
    ref_cy, ref_cx, ref_h, ref_w = _center_size(reference_boxes)
    cy = dy / wy * ref_h + ref_cy
    cx = dx / wx * ref_w + ref_cx
    h = tf.exp(dh) * ref_h
    w = tf.exp(dw) * ref_w
    return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], axis=-1)
