"""torchvision `GeneralizedRCNNTransform` 의 크기 규칙·정규화·패딩·박스 되돌리기를 그대로.

용어:
  H, W 원본 이미지 크기; h, w 리사이즈된 크기; Hp, Wp 패딩된 크기 (32 의 배수, 배치에서 가장 큰 이미지 기준).
  크기 규칙: scale = min(800 / 짧은 변, 1333 / 긴 변), h = ⌊H · scale⌋, w = ⌊W · scale⌋ — torchvision 은 eager 에서
    이것을 Python float (float64) 로 계산한다 (`F.interpolate(scale_factor=…, recompute_scale_factor=True)`).
    그래서 289×385 → 799×1065 (800/289 · 289 = 799.999…), 375×500 → 800×1066 (`data.resize` 의 float32 반올림은
    1067). 여기서도 float64 로 계산한다 (TF 의 float64 나눗셈·곱셈은 IEEE 정확 반올림이라 같은 값이다).
    LiteRT 에는 float64 가 없다 — 그 그래프는 같은 규칙을 int32 로 정확히 계산한다 (`tv_size_portable`).
  정규화: RGB / 255 → (x − 평균) / 표준편차 (ImageNet), 리사이즈 **전에**. 리사이즈: 쌍선형, 반 칸 중심,
    안티에일리어싱 없음 (배율 = 입력 / 출력; torch 의 `align_corners=False` 와 같은 표본 위치·가장자리 규칙).
  패딩: 정규화 뒤 0 으로 오른쪽·아래에, 32 의 배수까지.
  박스 형식 `[ymin, xmin, ymax, xmax]` 픽셀. 크기 사이 변환은 축마다 비율 (새 크기 / 옛 크기, float32) 곱.
"""

import tensorflow as tf

from frcnn.ops import normalize as normalize_lib

MIN_SIZE = 800
MAX_SIZE = 1333
SIZE_DIVISIBLE = 32


def resized_size(height, width, min_size=MIN_SIZE, max_size=MAX_SIZE):
    """torchvision 의 리사이즈 크기 [..., 2] int32 (h, w) (float64 로 계산).

    Args:
      height, width: 같은 모양 (스칼라 또는 [B]) 의 원본 크기, 정수·실수 텐서.
      min_size, max_size: int.
    """
    height = tf.cast(height, tf.float64)
    width = tf.cast(width, tf.float64)
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    scale = tf.minimum(float(min_size) / short, float(max_size) / long)
    return tf.cast(tf.floor(tf.stack([height * scale, width * scale], axis=-1)), tf.int32)


def normalize(images):
    """0–255 RGB (정수 또는 실수) → ImageNet 정규화 float32: (x / 255 − 평균) / 표준편차. 모양은 [..., 3]."""
    return normalize_lib.imagenet_normalize(tf.cast(images, tf.float32))


def transform_image(image, min_size=MIN_SIZE, max_size=MAX_SIZE):
    """한 장: 정규화 → torchvision 크기로 쌍선형 리사이즈 (패딩 없음).

    Args:
      image: [H, W, 3] uint8 또는 0–255 float.

    Returns:
      resized: [h, w, 3] float32 정규화된 이미지.
      size: [2] int32 (h, w).
    """
    shape = tf.shape(image)
    size = resized_size(shape[0], shape[1], min_size, max_size)
    resized = tf.image.resize(normalize(image), size, method="bilinear", antialias=False)
    return resized, size


def padded_size(height, width, divisor=SIZE_DIVISIBLE):
    """패딩된 크기 (Hp, Wp): 각 변을 divisor 의 배수로 올림 (Python int 또는 정수 텐서)."""
    return (height + divisor - 1) // divisor * divisor, (width + divisor - 1) // divisor * divisor


def pad_image(image, divisor=SIZE_DIVISIBLE):
    """[h, w, 3] 정규화된 이미지를 오른쪽·아래 0 으로 divisor 의 배수 크기까지 ."""
    shape = tf.shape(image)
    return tf.image.pad_to_bounding_box(image, 0, 0, *padded_size(shape[0], shape[1], divisor))


def rescale_boxes(boxes, from_size, to_size):
    """박스를 크기 from_size 의 좌표에서 to_size 의 좌표로 (torchvision `resize_boxes`).

    Args:
      boxes: [..., N, 4] float32 `[ymin, xmin, ymax, xmax]`.
      from_size, to_size: [..., 2] (h, w) 정수값 (검출을 원본으로 되돌릴 때는 (리사이즈된, 원본)).

    Returns:
      [..., N, 4] float32.
    """
    ratios = tf.cast(to_size, tf.float32) / tf.cast(from_size, tf.float32)  # [..., 2] (세로, 가로)
    return boxes * tf.concat([ratios, ratios], axis=-1)[..., None, :]
