"""이미지 크기 정책: 비율을 지켜 리사이즈(짧은 변 = min_size, 긴 변 ≤ max_size)하고 캔버스에 패딩한다.

용어:
  H, W 원본 이미지 크기; h, w 리사이즈된 크기; Hc, Wc 캔버스 크기.
  캔버스 번호 k: `RecordSpec.canvas_shapes` 의 순서. 이미지는 리사이즈된 (h, w) 를 담는 가장 작은 캔버스에
    들어간다 (`canvas_for_image`): 레코드의 앵커 라벨, 학습 파이프라인의 배치 묶음이 같은 함수를 쓴다.
  학습(레코드·파이프라인)과 추론(SavedModel)이 같은 함수를 써서 크기가 한 픽셀도 어긋나지 않는다.
  정규화 박스: [ymin, xmin, ymax, xmax] ∈ [0, 1] (레코드 좌표). 캔버스 픽셀 박스 = 정규화 × (h, w, h, w).
"""

import tensorflow as tf

from frcnn.data import tv_size_portable
from frcnn.data import tv_transform
from frcnn.ops import box_ops


SIZE_RULES = ("round", "torchvision")


def resize_scale(height, width, min_size, max_size, rule="round", portable=False):
    """원본 높이·너비 (스칼라 또는 [B], 정수·실수 텐서) 의 리사이즈 배율 (float32) 과 크기 ([..., 2] int32 (h, w)).

    rule: 'round' — 배율 (float32) × 변을 반올림하고 max_size 로 자른다; 'torchvision' — ⌊변 · 배율⌋ 을 float64 로
      (`tv_transform.resized_size`; 배율은 그 float32 값).
    portable: LiteRT 그래프 (float64 없음) — torchvision 규칙을 int32 로 똑같이 (`tv_size_portable`; 변 ≤ 16384).
    """
    if rule not in SIZE_RULES:
        raise ValueError(f"unknown size rule '{rule}' (expected one of {SIZE_RULES})")
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    short = tf.minimum(height, width)
    long = tf.maximum(height, width)
    scale = tf.minimum(float(min_size) / short, float(max_size) / long)
    if rule == "torchvision":
        if portable:
            sides = [tf.cast(side, tf.int32) for side in (height, width)]
            size = tv_size_portable.resized_size_portable(*sides, min_size, max_size)
            if height.shape.rank == 0:
                # axis=0 으로 다시 쌓는다: tf.image.resize 는 크기가 axis=0 의 Pack 이길 요구한다
                size = tf.stack([size[0], size[1]], axis=0)
            return scale, size
        return scale, tv_transform.resized_size(height, width, min_size, max_size)
    resized_height = tf.cast(tf.round(height * scale), tf.int32)
    resized_width = tf.cast(tf.round(width * scale), tf.int32)
    # 반올림 때문에 긴 변이 max_size 를 넘지 않도록.
    resized_height = tf.minimum(resized_height, max_size)
    resized_width = tf.minimum(resized_width, max_size)
    if resized_height.shape.rank == 0:
        # 스칼라면 axis=0 (tf.image.resize 가 크기의 정적 값을 읽을 수 있게)
        return scale, tf.stack([resized_height, resized_width], axis=0)
    return scale, tf.stack([resized_height, resized_width], axis=-1)


def canvas_for_image(height, width, spec):
    """원본 크기 (H, W) 의 이미지가 들어갈 캔버스 번호 k (int32 스칼라 텐서, 그래프 안).

    spec: `record_spec.RecordSpec` (리사이즈 크기, 캔버스 목록). 리사이즈된 (h, w) 를 담는 가장 작은 캔버스다;
    가장 큰 가로형·세로형 캔버스는 어떤 리사이즈 결과든 담으므로 늘 하나가 있다.
    """
    _, resized = resize_scale(height, width, spec.min_size, spec.max_size, spec.config.input.size_rule)
    shapes = tf.constant(spec.canvas_shapes, tf.int32)  # [K, 2]
    fits = tf.logical_and(shapes[:, 0] >= resized[0], shapes[:, 1] >= resized[1])
    return tf.cast(tf.argmax(tf.cast(fits, tf.int32)), tf.int32)  # 처음 True (넓이 오름차순)


def resize_image(image, min_size, max_size, rule="round"):
    """[H, W, 3] 이미지 한 장을 정책대로 리사이즈한다 (패딩 없음): ([h, w, 3] float32 0–255, 배율 스칼라)."""
    shape = tf.shape(image)
    scale, size = resize_scale(shape[0], shape[1], min_size, max_size, rule)
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear", antialias=False)
    return resized, scale


def pad_to_canvas(image, canvas):
    """[h, w, 3] 이미지를 캔버스 (Hc, Wc) (int 면 정적 모양, 또는 int32 스칼라 텐서) 의 왼쪽 위에 두고 0 으로 채운다."""
    canvas_height, canvas_width = canvas
    padded = tf.image.pad_to_bounding_box(image, 0, 0, canvas_height, canvas_width)
    if isinstance(canvas_height, int) and isinstance(canvas_width, int):
        padded = tf.ensure_shape(padded, [canvas_height, canvas_width, 3])
    return padded


def canvas_boxes(normalized_boxes, heights, widths, min_size, max_size, rule="round"):
    """정규화 GT 를 캔버스 픽셀로 바꾼다 (레코드의 앵커 라벨과 학습 파이프라인이 같은 float32 연산을 쓴다).

    Args:
      normalized_boxes: [..., G, 4] float32 정규화 [ymin, xmin, ymax, xmax], −1 패딩.
      heights, widths: [...] 정수 원본 높이 H, 너비 W.
      min_size, max_size, rule: `resize_image` 와 같다.

    Returns:
      gt_boxes: [..., G, 4] float32 캔버스 픽셀 (패딩은 −1 그대로).
      image_sizes: [..., 2] float32 리사이즈된 (h, w).
    """
    _, resized = resize_scale(heights, widths, min_size, max_size, rule)
    image_sizes = tf.cast(resized, tf.float32)
    # [..., 1, 4] (h, w, h, w)
    scale = tf.concat([image_sizes, image_sizes], axis=-1)[..., None, :]
    return box_ops.scale_boxes(normalized_boxes, scale), image_sizes
