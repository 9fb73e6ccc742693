"""ImageNet 정규화 (torchvision): 0–255 RGB → (x / 255 − 평균) / 표준편차.

torchvision 의 검출 변환 (`data.tv_transform`) 과 피라미드 백본 (`modeling.fpn_backbones`, 정규화 이름 'imagenet') 이
이 하나를 쓴다.
"""

import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(images):
    """[..., 3] 0–255 RGB (정수 또는 실수) → 정규화 (실수면 그 dtype, 정수면 float32)."""
    dtype = images.dtype if images.dtype.is_floating else tf.float32
    scaled = tf.cast(images, dtype) / 255.0
    return (scaled - tf.constant(IMAGENET_MEAN, dtype)) / tf.constant(IMAGENET_STD, dtype)
