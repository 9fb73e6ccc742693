"""제안 타깃: GT 를 덧붙인 제안에서 이미지당 R 개의 RoI 를 뽑고 분류·박스 타깃을 만든다.

용어:
  B 배치, P 제안 수, G 최대 GT 수, R 이미지당 RoI 수 (128), C 클래스 수 (배경 0 제외).
  전경: IoU ≥ 0.5 (R 의 25 % 까지), 배경: IoU ∈ [0, 0.5), 나머지 칸은 무효 (가중치 0).
  박스 타깃은 매칭된 GT 를 RoI 에 대해 (10, 10, 5, 5) 가중치로 인코딩한 델타.
"""

import tensorflow as tf

from frcnn.ops import box_coder
from frcnn.ops import box_ops


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, roi_config, seed=None):
    """RoI 를 뽑고 타깃을 만든다.

    Args:
      proposals: [B, P, 4] float32 (기울기 없음).
      proposal_valid: [B, P] bool.
      gt_boxes: [B, G, 4] float32, −1 패딩.
      gt_classes: [B, G] int32, 1-기반, −1 패딩.
      roi_config: `config.RoiConfig`.
      seed: 선택, [2] int32 stateless 난수 씨앗.

    Returns:
      dict:
        rois [B, R, 4] float32, roi_classes [B, R] int32 (0 배경), box_targets [B, R, 4] float32,
        foreground [B, R] bool, valid [B, R] bool.
    """
    gt_valid = ~box_ops.is_padding(gt_boxes)
    # [B, P+G, 4] GT 를 덧붙인 후보 (논문 구현처럼 학습 초기에도 전경이 있게)
    candidates = tf.concat([proposals, tf.where(gt_valid[..., None], gt_boxes, 0.0)], axis=1)
    candidate_valid = tf.concat([proposal_valid, gt_valid], axis=1)
    # [B, P+G, G] 후보-GT IoU (패딩 GT 는 0 으로)
    iou = tf.maximum(box_ops.pairwise_iou(candidates, gt_boxes), 0.0)
    max_iou = tf.reduce_max(iou, axis=-1)
    matched = tf.argmax(iou, axis=-1, output_type=tf.int32)
    foreground = candidate_valid & (max_iou >= roi_config.foreground_iou)
    background = (candidate_valid & (max_iou < roi_config.background_iou_high)
                  & (max_iou >= roi_config.background_iou_low))
    selected_index, selected = _pick(foreground, background, roi_config, seed)
    rois = tf.gather(candidates, selected_index, batch_dims=1)
    is_foreground = tf.gather(foreground, selected_index, batch_dims=1) & selected
    matched_gt = tf.gather(matched, selected_index, batch_dims=1)
    matched_boxes = tf.gather(gt_boxes, matched_gt, batch_dims=1)
    matched_classes = tf.gather(gt_classes, matched_gt, batch_dims=1)
    roi_classes = tf.where(is_foreground, matched_classes, 0)
    box_targets = box_coder.encode(matched_boxes, rois, roi_config.box_weights)
    box_targets = tf.where(is_foreground[..., None], box_targets, 0.0)
    return {
        "rois": tf.stop_gradient(rois),
        "roi_classes": roi_classes,
        "box_targets": tf.stop_gradient(box_targets),
        "foreground": is_foreground,
        "valid": selected,
    }


def _pick(foreground, background, roi_config, seed):
    """전경 우선(상한까지), 그다음 배경으로 R 칸을 채우는 인덱스를 top_k 로 고른다.

    Returns:
      index: [B, R] int32 후보 인덱스. selected: [B, R] bool, 실제로 뽑힌 칸.
    """
    shape = tf.shape(foreground)
    if seed is None:
        random_scores = tf.random.uniform(shape)
    else:
        random_scores = tf.random.stateless_uniform(shape, seed=seed)
    num_rois = roi_config.num_rois
    max_foreground = int(round(num_rois * roi_config.foreground_fraction))
    # 전경 중 무작위 순위가 상한 안에 드는 것만 전경 우선순위를 준다.
    foreground_rank = _rank(tf.where(foreground, random_scores, -1.0))
    take_foreground = foreground & (foreground_rank < max_foreground)
    priority = tf.where(take_foreground, 2.0 + random_scores,
                        tf.where(background, 1.0 + random_scores, -1.0))
    top_priority, index = tf.math.top_k(priority, k=num_rois)
    return index, top_priority >= 1.0


def _rank(scores):
    """행마다 내림차순 순위 [B, N] int32 (0 이 최고)."""
    order = tf.argsort(scores, axis=-1, direction="DESCENDING")
    return tf.argsort(order, axis=-1)
