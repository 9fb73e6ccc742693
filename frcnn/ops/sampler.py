"""균형 샘플러: 양성 비율 상한을 지키며 고정 개수의 후보를 뽑는다 (무작위 점수의 top_k).

용어:
  B 배치, N 후보 수, S 뽑을 개수. 라벨은 matcher 의 POSITIVE/NEGATIVE/IGNORE.
  불리언 gather 없이 마스크만 돌려준다 (정적 모양).
"""

import tensorflow as tf

from frcnn.ops import matcher


def _top_random_mask(candidates, count, max_count, random_scores):
    """후보 중 무작위 점수 상위 `count` 개(행마다 다름)의 마스크.

    Args:
      candidates: [B, N] bool.
      count: [B] int32, 뽑을 수 (≤ max_count).
      max_count: int, top_k 의 정적 k.
      random_scores: [B, N] float32, [0, 1) 균등 난수.

    Returns:
      [B, N] bool.
    """
    scores = tf.where(candidates, random_scores, -1.0)
    k = min(max_count, scores.shape[1])
    # [B, k] 내림차순 점수
    top_values = tf.math.top_k(scores, k=k, sorted=True).values
    # 행마다 count 번째 점수가 문턱값이 된다.
    threshold_index = tf.clip_by_value(count - 1, 0, k - 1)
    threshold = tf.gather(top_values, threshold_index, axis=1, batch_dims=1)
    return candidates & (scores >= threshold[:, None]) & (count[:, None] > 0)


def sample_balanced(labels, num_samples, positive_fraction, seed=None):
    """양성 ≤ num_samples·positive_fraction, 나머지는 음성으로 채운 표본 마스크.

    Args:
      labels: [B, N] int32 (1 양성, 0 음성, −1 무시).
      num_samples: int, 이미지당 S.
      positive_fraction: float.
      seed: 선택, [2] int32 — 주면 stateless 난수로 재현 가능.

    Returns:
      positive_mask: [B, N] bool, 뽑힌 양성.
      negative_mask: [B, N] bool, 뽑힌 음성.
    """
    shape = tf.shape(labels)
    if seed is None:
        random_scores = tf.random.uniform(shape)
    else:
        random_scores = tf.random.stateless_uniform(shape, seed=seed)
    positive = labels == matcher.POSITIVE
    negative = labels == matcher.NEGATIVE
    max_positive = int(num_samples * positive_fraction)
    # [B] 실제 뽑을 양성·음성 수
    num_positive = tf.minimum(tf.reduce_sum(tf.cast(positive, tf.int32), axis=1), max_positive)
    num_negative = tf.minimum(tf.reduce_sum(tf.cast(negative, tf.int32), axis=1),
                              num_samples - num_positive)
    positive_mask = _top_random_mask(positive, num_positive, max_positive, random_scores)
    negative_mask = _top_random_mask(negative, num_negative, num_samples, random_scores)
    return positive_mask, negative_mask
