"""손실: RPN (객체성 + 박스) 과 검출기 (분류 + 클래스별 박스).

용어:
  B 배치, A 앵커 수, R 이미지당 RoI 수, C 클래스 수.
  smooth-L1(x; σ) = 0.5·(σx)² (|x| < 1/σ²), |x| − 0.5/σ² (그 밖). RPN σ = 3, 검출기 σ = 1 (논문 구현).
  정규화 (현대식 등가, detectron2): RPN 두 손실 모두 뽑힌 앵커 수(이미지당 256 × B)로 나누고 λ = 1.
    논문의 N_cls = 256, λ = 10, N_reg ≈ 2400 과 같은 크기다 (10 / 2400 ≈ 1 / 256).
  검출기: 분류는 유효 RoI 평균, 박스는 전경 RoI 의 합을 유효 RoI 수로 나눈다.
"""

import tensorflow as tf

from frcnn.ops import matcher
from frcnn.ops import sampler


def smooth_l1(differences, sigma):
    """원소별 smooth-L1 [..., 4] → 마지막 축 합 [...]."""
    sigma_squared = sigma * sigma
    absolute = tf.abs(differences)
    loss = tf.where(absolute < 1.0 / sigma_squared,
                    0.5 * sigma_squared * tf.square(differences),
                    absolute - 0.5 / sigma_squared)
    return tf.reduce_sum(loss, axis=-1)


def rpn_losses(objectness_logits, box_deltas, anchor_labels, box_targets, rpn_config, seed=None):
    """RPN 손실. 이미지마다 256 앵커(양성 ≤ 50 %)를 스텝 안에서 뽑는다.

    Args:
      objectness_logits: [B, A] float32.
      box_deltas: [B, A, 4] float32.
      anchor_labels: [B, A] int32 (1 양성, 0 음성, −1 무시).
      box_targets: [B, A, 4] float32.
      rpn_config: `config.RpnConfig`.
      seed: 선택, stateless 씨앗.

    Returns:
      (objectness_loss, box_loss) float32 스칼라.
    """
    positive, negative = sampler.sample_balanced(
        anchor_labels, rpn_config.batch_size_per_image, rpn_config.positive_fraction, seed)
    sampled = tf.cast(positive | negative, tf.float32)
    normalizer = tf.maximum(tf.reduce_sum(sampled), 1.0)
    labels = tf.cast(anchor_labels == matcher.POSITIVE, tf.float32)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=objectness_logits)
    objectness_loss = tf.reduce_sum(cross_entropy * sampled) / normalizer
    box_loss = tf.reduce_sum(smooth_l1(box_deltas - box_targets, rpn_config.smooth_l1_sigma)
                             * tf.cast(positive, tf.float32)) / normalizer
    return objectness_loss, box_loss


def detector_losses(class_logits, box_deltas, roi_targets, roi_config):
    """검출기 손실.

    Args:
      class_logits: [B·R, C+1] float32.
      box_deltas: [B·R, C+1, 4] float32.
      roi_targets: `roi_targets.sample_rois` 의 dict ([B, R] 모양들).
      roi_config: `config.RoiConfig`.

    Returns:
      (class_loss, box_loss) float32 스칼라.
    """
    roi_classes = tf.reshape(roi_targets["roi_classes"], [-1])
    valid = tf.cast(tf.reshape(roi_targets["valid"], [-1]), tf.float32)
    foreground = tf.cast(tf.reshape(roi_targets["foreground"], [-1]), tf.float32)
    box_targets = tf.reshape(roi_targets["box_targets"], [-1, 4])
    normalizer = tf.maximum(tf.reduce_sum(valid), 1.0)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=roi_classes, logits=class_logits)
    class_loss = tf.reduce_sum(cross_entropy * valid) / normalizer
    # [B·R, 4] 정답 클래스의 델타만
    class_deltas = tf.gather(box_deltas, roi_classes, batch_dims=1)
    box_loss = tf.reduce_sum(smooth_l1(class_deltas - box_targets, roi_config.smooth_l1_sigma)
                             * foreground) / normalizer
    return class_loss, box_loss
