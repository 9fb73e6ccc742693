"""FPN 제안: torchvision `RegionProposalNetwork.filter_proposals` 를 고정 모양으로 그대로.

용어:
  B 배치, L 수준 수 (P2–P6 면 5), A = Σ A_l 전체 앵커 (수준 순서로 이음, `ops.fpn_anchors`), k_l = min(pre_nms, A_l)
  수준별 사전 NMS 개수, T = Σ k_l, m_l = min(post_nms, k_l) 수준별 NMS 가 남기는 최대 개수, P = min(post_nms, Σ m_l).
  박스 `[ymin, xmin, ymax, xmax]`, 패딩된 입력의 픽셀. 델타는 이 프로젝트 순서 (dy, dx, dh, dw), 가중치 (1, 1, 1, 1).
  순서 (torchvision 그대로): 수준마다 로짓 상위 k_l → 디코드 (log(1000/16) 에서 자른 dh, dw) → 이미지 (패딩 제외)
    안으로 자르기 → 변이 min_box_size (1e-3) 보다 짧은 박스 버리기 → 시그모이드 점수 → 수준마다 따로 NMS (IoU >
    nms_iou 면 억제; torchvision `batched_nms(…, 수준)`) → 모든 수준을 점수 순으로 모아 상위 post_nms.
  한 수준의 NMS 가 m_l 개보다 많이 남겨도 전체 상위 post_nms 에 들 수 있는 것은 그 수준의 상위 m_l 개뿐이라 같다.
  버린 박스의 점수는 −1 (어떤 NMS 도 뽑지 않는다). torchvision 의 점수 문턱 (≥ 0) 은 시그모이드라 늘 참이다.
"""

import tensorflow as tf

from frcnn.ops import box_coder
from frcnn.ops import box_ops
from frcnn.ops import nms

RPN_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
MIN_BOX_SIZE = 1e-3


def level_top_k(objectness_logits, level_counts, pre_nms_top_k):
    """수준마다 로짓 상위 k_l 개의 앵커 번호 [B, T] int32 (수준 순서로 잇고, 수준 안에서는 로짓 내림차순).

    A_l 이 동적 (추론의 임의 크기 입력) 이면 k_l 을 정적으로 pre_nms_top_k 로 두고, 로짓 뒤에 −∞ 를 pre_nms_top_k 개
    덧대 뽑는다: 덧댄 자리 (번호 ≥ A_l) 는 유효하지 않다 — torchvision 의 min(pre, A_l) 개와 같은 후보가 남는다.

    Args:
      objectness_logits: [B, A] float32.
      level_counts: 수준별 앵커 수 A_l (Python int 또는 int32 스칼라 텐서).
      pre_nms_top_k: int.

    Returns:
      indices [B, T] int32 (덧댄 자리는 그 수준의 마지막 앵커), valid [B, T] bool, 수준별 k_l (Python int 목록).
    """
    indices, valid, sizes, offset = [], [], [], 0
    for count in level_counts:
        logits = objectness_logits[:, offset:offset + count]
        if isinstance(count, int):
            size = min(pre_nms_top_k, count)
        else:
            size = pre_nms_top_k
            logits = tf.pad(logits, [[0, 0], [0, size]], constant_values=float("-inf"))
        _, top = tf.math.top_k(logits, k=size, sorted=True)
        valid.append(top < count)
        indices.append(tf.minimum(top, count - 1) + offset)
        sizes.append(size)
        offset += count
    return tf.concat(indices, axis=1), tf.concat(valid, axis=1), sizes


def _candidate_boxes(objectness_logits, box_deltas, anchors, indices, valid, image_sizes, min_box_size):
    """상위 앵커의 디코드·자른 박스 [B, T, 4] 와 점수 [B, T] (버린 박스와 덧댄 자리는 −1)."""
    logits = tf.gather(objectness_logits, indices, batch_dims=1)
    deltas = tf.gather(box_deltas, indices, batch_dims=1)
    boxes = box_coder.decode(deltas, tf.gather(anchors, indices), RPN_BOX_WEIGHTS)
    boxes = box_ops.clip_boxes(boxes, tf.cast(image_sizes, tf.float32))
    return boxes, tf.where(box_ops.sides_at_least(boxes, min_box_size) & valid, tf.sigmoid(logits), -1.0)


def _level_survivors(boxes, scores, sizes, post_nms_top_k, nms_iou, training):
    """수준마다 NMS 한 뒤 남은 박스 [B, Σ m_l, 4] 와 점수 [B, Σ m_l] (빈 자리는 −1)."""
    nms_fn = nms.padded_nms if training else nms.per_image_nms
    kept_boxes, kept_scores, start = [], [], 0
    for size in sizes:
        level_boxes, level_scores = boxes[:, start:start + size], scores[:, start:start + size]
        count = min(post_nms_top_k, size)
        selected, num_valid = nms_fn(level_boxes, level_scores, count, nms_iou)
        filled = tf.range(count)[None, :] < num_valid[:, None]  # [B, m_l]
        kept_boxes.append(tf.gather(level_boxes, selected, batch_dims=1))
        kept_scores.append(tf.where(filled, tf.gather(level_scores, selected, batch_dims=1), -1.0))
        start += size
    return tf.concat(kept_boxes, axis=1), tf.concat(kept_scores, axis=1)


def fpn_proposals(objectness_logits, box_deltas, anchors, level_counts, image_sizes, pre_nms_top_k,
                  post_nms_top_k, nms_iou=0.7, min_box_size=MIN_BOX_SIZE, training=False):
    """RPN 출력 → 제안 (torchvision `filter_proposals`, 모듈 glossary).

    Args:
      objectness_logits: [B, A] float32.
      box_deltas: [B, A, 4] float32 (dy, dx, dh, dw).
      anchors: [A, 4] float32 (`fpn_anchors.pyramid_anchors`).
      level_counts: 수준별 앵커 수 (Python int 또는 동적 int32 스칼라, 합이 A).
      image_sizes: [B, 2] (h, w) 리사이즈된 이미지 크기 (패딩 제외).
      pre_nms_top_k: 수준별 사전 NMS 개수 (torchvision 학습 2000 / 시험 1000).
      post_nms_top_k: 이미지당 제안 수 (학습 2000 / 시험 1000).
      nms_iou: float.
      min_box_size: float, 픽셀.
      training: Python bool — NMS 구현만 고른다 (학습: XLA 로 컴파일되는 padded, 추론: 이미지별 V5).

    Returns:
      proposals: [B, P, 4] float32 (점수 내림차순, 기울기 없음).
      scores: [B, P] float32 객체성 확률 (빈 자리 0).
      valid: [B, P] bool.
    """
    objectness_logits = tf.stop_gradient(tf.cast(objectness_logits, tf.float32))
    box_deltas = tf.stop_gradient(tf.cast(box_deltas, tf.float32))
    indices, valid, sizes = level_top_k(objectness_logits, level_counts, pre_nms_top_k)
    boxes, scores = _candidate_boxes(objectness_logits, box_deltas, anchors, indices, valid, image_sizes,
                                     min_box_size)
    boxes, scores = _level_survivors(boxes, scores, sizes, post_nms_top_k, nms_iou, training)
    # [B, P] 모든 수준을 점수 순으로
    top_scores, top = tf.math.top_k(scores, k=min(post_nms_top_k, scores.shape[1]), sorted=True)
    valid = top_scores >= 0.0
    return tf.gather(boxes, top, batch_dims=1), tf.where(valid, top_scores, 0.0), valid
