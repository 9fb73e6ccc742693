"""균형 샘플러: 양성 비율 상한을 지키며 이미지마다 고정 개수의 후보를 무작위로 뽑는다.

RPN 손실(앵커 256 개, 양성 ≤ 50 %)과 RoI 타깃(RoI 128 개, 전경 ≤ 25 %)이 같이 쓰는 하나의 샘플러
(torchvision `BalancedPositiveNegativeSampler`, detectron2 `subsample_labels` 와 같은 규칙):
  양성 수 = min(양성 후보 수, round(S · 양성 비율)), 음성 수 = min(음성 후보 수, S − 양성 수).

용어:
  B 배치, N 후보 수, S 이미지당 뽑을 개수 (정적 int).
  라벨은 matcher 의 POSITIVE (1) / NEGATIVE (0) / IGNORE (−1); 무시 후보는 뽑지 않는다.
  무작위 선택은 [0, 1) 균등 난수 점수의 top_k 이다. 불리언 gather 없이 마스크와 고정 길이 인덱스만 돌려주므로
  모든 모양이 정적이고 `tf.function(jit_compile=True)` 안에서 돈다.
"""

import tensorflow as tf

from frcnn.ops import matcher


def max_positives(num_samples, positive_fraction):
    """이미지당 양성 상한 round(S · 양성 비율) (Python int)."""
    return int(round(num_samples * positive_fraction))


def _random_scores(shape, seed):
    """[B, N] float32 균등 난수 — seed ([2] int32) 를 주면 stateless 로 재현된다."""
    if seed is None:
        return tf.random.uniform(shape)
    return tf.random.stateless_uniform(shape, seed=seed)


def _take_random(candidates, count, max_count, random_scores):
    """행마다 후보 중 무작위 점수 상위 `count` 개의 마스크 (동점이어도 정확히 count 개).

    Args:
      candidates: [B, N] bool.
      count: [B] int32, 뽑을 수 (≤ 후보 수, ≤ max_count).
      max_count: int, top_k 의 정적 k.
      random_scores: [B, N] float32, [0, 1) 난수.

    Returns:
      [B, N] bool.
    """
    shape = tf.shape(candidates)
    k = min(max_count, candidates.shape[1])
    # [B, k] 후보를 무작위 순서로 (후보가 아닌 칸은 점수 −1 이라 뒤로 밀린다)
    _, order = tf.math.top_k(tf.where(candidates, random_scores, -1.0), k=k)
    # [B, k] 앞에서 count 개만 뽑는다 (count ≤ 후보 수라 모두 후보다)
    taken = tf.range(k)[None, :] < count[:, None]
    rows = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(order))
    # [B, N] 뽑힌 자리로 되돌린다
    scattered = tf.scatter_nd(tf.stack([rows, order], axis=-1), tf.cast(taken, tf.int32), shape)
    return scattered > 0


def sample_balanced(labels, num_samples, positive_fraction, seed=None):
    """양성 ≤ round(S · positive_fraction), 나머지는 음성으로 채운 표본 마스크.

    Args:
      labels: [B, N] int32 (1 양성, 0 음성, −1 무시).
      num_samples: int, 이미지당 S.
      positive_fraction: float, (0, 1].
      seed: 선택, [2] int32 — 주면 stateless 난수로 재현 가능.

    Returns:
      positive_mask: [B, N] bool, 뽑힌 양성.
      negative_mask: [B, N] bool, 뽑힌 음성.
    """
    random_scores = _random_scores(tf.shape(labels), seed)
    positive = labels == matcher.POSITIVE
    negative = labels == matcher.NEGATIVE
    max_positive = max_positives(num_samples, positive_fraction)
    # [B] 실제로 뽑을 양성·음성 수
    num_positive = tf.minimum(tf.reduce_sum(tf.cast(positive, tf.int32), axis=1), max_positive)
    num_negative = tf.minimum(tf.reduce_sum(tf.cast(negative, tf.int32), axis=1),
                              num_samples - num_positive)
    positive_mask = _take_random(positive, num_positive, max_positive, random_scores)
    negative_mask = _take_random(negative, num_negative, num_samples, random_scores)
    return positive_mask, negative_mask


def sampled_indices(positive_mask, negative_mask, num_samples):
    """표본 마스크를 고정 길이 인덱스로 모은다: 뽑힌 양성, 뽑힌 음성, 그다음 무효 칸.

    Args:
      positive_mask: [B, N] bool, `sample_balanced` 의 양성 (행마다 합 ≤ S).
      negative_mask: [B, N] bool, `sample_balanced` 의 음성 (양성과 합쳐 ≤ S).
      num_samples: int, S (≤ N).

    Returns:
      indices: [B, S] int32 후보 인덱스 (무효 칸은 아무 후보나 가리킨다).
      is_positive: [B, S] bool.
      valid: [B, S] bool, 실제로 뽑힌 칸.
    """
    # [B, N] 2 양성, 1 음성, 0 안 뽑힘 — 뽑힌 것은 모두 S 칸 안에 든다.
    priority = tf.cast(positive_mask, tf.int32) * 2 + tf.cast(negative_mask, tf.int32)
    top_priority, indices = tf.math.top_k(priority, k=num_samples)
    return indices, top_priority == 2, top_priority > 0
