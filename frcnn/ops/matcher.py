"""매처: IoU 행렬로 각 후보(앵커·제안)에 GT 하나와 라벨(양성/음성/무시)을 정한다.

용어:
  B 배치, N 후보 수, G 최대 GT 수 (패딩 열의 IoU 는 −1 이며 0 으로 본다: GT 가 없는 이미지는 모두 음성).
  라벨: POSITIVE = 1, NEGATIVE = 0, IGNORE = −1.
  IoU ≥ high → 양성 (`positive_inclusive=False` 면 IoU > high), IoU < low → 음성, 그 사이는 무시.
  `allow_low_quality_matches`: 각 GT 의 최고 IoU 후보(동점 포함)도 양성 (논문의 규칙 (i)).
"""

import tensorflow as tf

POSITIVE = 1
NEGATIVE = 0
IGNORE = -1


class Matcher:
    """임계값 두 개로 후보를 나누는 매처."""

    def __init__(self, low, high, allow_low_quality_matches=False, positive_inclusive=True):
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"Matcher needs 0 ≤ low ≤ high ≤ 1, got low={low}, high={high}")
        self.low = low
        self.high = high
        self.allow_low_quality_matches = allow_low_quality_matches
        self.positive_inclusive = positive_inclusive

    def __call__(self, iou, candidate_mask=None):
        """후보마다 GT 를 고른다.

        Args:
          iou: [B, N, G] float32. 패딩 GT 열은 −1.
          candidate_mask: 선택, [B, N] bool. False 인 후보는 무시(−1) 되고 최고 후보 규칙에서도 빠진다.

        Returns:
          matched_gt_indices: [B, N] int32, 최고 IoU GT 의 번호 (GT 가 없으면 0).
          labels: [B, N] int32, POSITIVE/NEGATIVE/IGNORE.
        """
        iou = tf.maximum(iou, 0.0)
        if candidate_mask is not None:
            iou = tf.where(candidate_mask[:, :, None], iou, -1.0)
        # [B, N] 후보별 최고 IoU 와 그 GT
        max_iou = tf.reduce_max(iou, axis=-1)
        matched_gt_indices = tf.argmax(iou, axis=-1, output_type=tf.int32)
        if self.positive_inclusive:
            positive = max_iou >= self.high
        else:
            positive = max_iou > self.high
        negative = (max_iou >= 0.0) & (max_iou < self.low)
        if self.allow_low_quality_matches:
            best_for_gt, best_gt_index = self._low_quality_matches(iou)
            positive = positive | best_for_gt
            matched_gt_indices = tf.where(best_for_gt, best_gt_index, matched_gt_indices)
            negative = negative & ~best_for_gt
        labels = tf.where(positive, POSITIVE, tf.where(negative, NEGATIVE, IGNORE))
        return matched_gt_indices, tf.cast(labels, tf.int32)

    @staticmethod
    def _low_quality_matches(iou):
        """각 GT 의 최고 IoU(> 0) 와 같은 IoU 를 가진 후보들과, 그 후보가 가리킬 GT."""
        # [B, 1, G] GT 별 최고 IoU
        best_per_gt = tf.reduce_max(iou, axis=1, keepdims=True)
        # [B, N, G] 그 GT 의 최고 후보인지
        is_best = (iou == best_per_gt) & (best_per_gt > 0.0)
        best_for_gt = tf.reduce_any(is_best, axis=-1)
        # 여러 GT 의 최고 후보면 IoU 가 가장 큰 GT 를 가리키게 한다.
        masked = tf.where(is_best, iou, -2.0)
        return best_for_gt, tf.argmax(masked, axis=-1, output_type=tf.int32)
