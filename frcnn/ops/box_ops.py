"""박스 연산: 좌표 변환, 쌍별 IoU·IoA, 자르기, 뒤집기. 모두 배치 단위, 정적 모양.

용어:
  B 배치, N·M 박스 수, G 최대 GT 수.
  박스 형식: `[ymin, xmin, ymax, xmax]` float32, 연속 픽셀 좌표(폭 = xmax − xmin).
  패딩: 모든 좌표가 −1 인 행. IoU 에서 패딩이 낀 쌍은 −1 이 된다.
  VOC XML 의 1-기반 포함 좌표 변환은 가장자리(`frcnn/data/voc.py`)에서 한 번만 한다.
"""

import tensorflow as tf

PADDING_VALUE = -1.0


def is_padding(boxes):
    """패딩 행인지.

    Args:
      boxes: [..., 4] float32.

    Returns:
      [...] bool, 패딩(최대 좌표 < 0)이면 True.
    """
    return tf.reduce_max(boxes, axis=-1) < 0.0


def area(boxes):
    """박스 넓이 [...]. 뒤집힌 박스는 0."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def _pairwise_intersection(boxes1, boxes2):
    """[B, N, 4] × [B, M, 4] → [B, N, M] 교집합 넓이."""
    # [B, N, 1] / [B, 1, M] 좌표
    y1a, x1a, y2a, x2a = [c[:, :, None] for c in tf.unstack(boxes1, axis=-1)]
    y1b, x1b, y2b, x2b = [c[:, None, :] for c in tf.unstack(boxes2, axis=-1)]
    inter_h = tf.maximum(tf.minimum(y2a, y2b) - tf.maximum(y1a, y1b), 0.0)
    inter_w = tf.maximum(tf.minimum(x2a, x2b) - tf.maximum(x1a, x1b), 0.0)
    return inter_h * inter_w


def _mark_padding(values, boxes1, boxes2):
    """[B, N, M] 값에서 한쪽이라도 패딩인 쌍을 −1 로."""
    padded = is_padding(boxes1)[:, :, None] | is_padding(boxes2)[:, None, :]
    return tf.where(padded, PADDING_VALUE, values)


def pairwise_iou(boxes1, boxes2):
    """쌍별 IoU.

    Args:
      boxes1: [B, N, 4] float32.
      boxes2: [B, M, 4] float32, −1 패딩 허용.

    Returns:
      [B, N, M] float32. 한쪽이라도 패딩이면 −1.
    """
    # [B, N, M] 교집합 넓이
    intersection = _pairwise_intersection(boxes1, boxes2)
    union = area(boxes1)[:, :, None] + area(boxes2)[:, None, :] - intersection
    return _mark_padding(tf.math.divide_no_nan(intersection, union), boxes1, boxes2)


def pairwise_ioa(boxes1, boxes2):
    """쌍별 IoA (intersection over area): 교집합 / boxes1 의 넓이 (pycocotools 가 crowd GT 에 쓰는 값).

    Args:
      boxes1: [B, N, 4] float32 (넓이로 나누는 쪽: 앵커·RoI 후보).
      boxes2: [B, M, 4] float32, −1 패딩 허용.

    Returns:
      [B, N, M] float32. 한쪽이라도 패딩이면 −1, 넓이 0 인 boxes1 은 0.
    """
    intersection = _pairwise_intersection(boxes1, boxes2)
    return _mark_padding(tf.math.divide_no_nan(intersection, area(boxes1)[:, :, None]), boxes1, boxes2)


def clip_boxes(boxes, image_sizes):
    """박스를 이미지(패딩 제외) 안으로 자른다.

    Args:
      boxes: [B, N, 4] float32.
      image_sizes: [B, 2] float32 (높이, 너비) — 리사이즈된 이미지 크기.

    Returns:
      [B, N, 4] float32.
    """
    height = image_sizes[:, 0][:, None]
    width = image_sizes[:, 1][:, None]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([
        tf.clip_by_value(ymin, 0.0, height), tf.clip_by_value(xmin, 0.0, width),
        tf.clip_by_value(ymax, 0.0, height), tf.clip_by_value(xmax, 0.0, width),
    ], axis=-1)


def sides_at_least(boxes, min_size):
    """[..., 4] 박스의 높이와 너비가 모두 min_size 이상인가 ([...] bool; min_size 는 브로드캐스트되는 값)."""
    return ((boxes[..., 2] - boxes[..., 0]) >= min_size) & ((boxes[..., 3] - boxes[..., 1]) >= min_size)


def scale_boxes(boxes, scale):
    """패딩은 그대로 두고 좌표에 `scale` ([..., 1] 또는 [..., 4] 로 브로드캐스트) 을 곱한다."""
    return tf.where(is_padding(boxes)[..., None], boxes, boxes * scale)


def flip_left_right(boxes, width):
    """좌우 뒤집기: x → width − x. 패딩은 유지.

    Args:
      boxes: [..., 4] float32.
      width: 스칼라 또는 boxes 와 브로드캐스트되는 너비 (정규화 좌표면 1.0).
    """
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([ymin, width - xmax, ymax, width - xmin], axis=-1)
    return tf.where(is_padding(boxes)[..., None], boxes, flipped)


def inside_image(boxes, image_sizes):
    """박스가 이미지 [0, h] × [0, w] 안에 완전히 들어가는지.

    Args:
      boxes: [N, 4] 또는 [B, N, 4] float32.
      image_sizes: [B, 2] float32.

    Returns:
      [B, N] bool.
    """
    if boxes.shape.rank == 2:
        boxes = boxes[None]
    height = image_sizes[:, 0][:, None]
    width = image_sizes[:, 1][:, None]
    return ((boxes[..., 0] >= 0.0) & (boxes[..., 1] >= 0.0)
            & (boxes[..., 2] <= height) & (boxes[..., 3] <= width))


def centres_inside_image(boxes, image_sizes):
    """박스 중심이 이미지 [0, h) × [0, w) 안인지 (패딩에 중심이 있는 앵커를 가려낸다).

    Args:
      boxes: [N, 4] float32.
      image_sizes: [B, 2] float32 (h, w).

    Returns:
      [B, N] bool.
    """
    centre_y = (boxes[:, 0] + boxes[:, 2]) / 2.0
    centre_x = (boxes[:, 1] + boxes[:, 3]) / 2.0
    return (centre_y[None] < image_sizes[:, 0:1]) & (centre_x[None] < image_sizes[:, 1:2])
