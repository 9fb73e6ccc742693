"""RoI 타깃: GT 를 덧붙인 제안에서 이미지당 R 개의 RoI 를 뽑고 분류·박스 타깃을 만든다.

용어:
  B 배치, P 제안 수, G 최대 GT 수, R 이미지당 RoI 수 (128), C 클래스 수 (배경 0 제외).
  전경: IoU ≥ 0.5 (R 의 25 % 까지), 배경: IoU ∈ [0, 0.5), 나머지 칸은 무효 (가중치 0).
  뽑기는 RPN 손실과 같은 균형 샘플러 (`ops.sampler`) 다: 전경이 상한보다 적으면 배경으로 채운다.
  무시 박스 (`input.difficult=ignore`): 그와 IoU ≥ 0.5 인 후보는 (보통 GT 의 전경이 아니면) 배경이 아니다.
  crowd 상자 (COCO iscrowd): 넓이의 70 % 넘게 그 안에 드는 (IoA > 0.7) 후보도 배경이 아니다 (`crowd`).
  박스 타깃은 매칭된 GT 를 RoI 에 대해 (10, 10, 5, 5) 가중치로 인코딩한 델타.
"""

import tensorflow as tf

from frcnn.modeling import crowd
from frcnn.modeling import difficult
from frcnn.ops import box_coder
from frcnn.ops import box_ops
from frcnn.ops import matcher
from frcnn.ops import sampler


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, roi_config, seed=None, ignore_boxes=None,
                crowd_boxes=None):
    """RoI 를 뽑고 타깃을 만든다.

    Args:
      proposals: [B, P, 4] float32 (기울기 없음).
      proposal_valid: [B, P] bool.
      gt_boxes: [B, G, 4] float32, −1 패딩.
      gt_classes: [B, G] int32, 1-기반, −1 패딩.
      roi_config: `config.RoiConfig`.
      seed: 선택, [2] int32 stateless 난수 씨앗.
      ignore_boxes: 선택, [B, G', 4] float32 −1 패딩 — 덮는 후보가 배경이 되지 않는 박스.
      crowd_boxes: 선택, [B, G', 4] float32 −1 패딩 — 그 안에 드는 후보가 배경이 되지 않는 crowd 상자
        (`crowd.split_crowd`; gt_boxes 에서는 빠져 있어야 한다).

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
    matched_gt = tf.argmax(iou, axis=-1, output_type=tf.int32)
    labels = _candidate_labels(tf.reduce_max(iou, axis=-1), candidate_valid, roi_config)
    labels = _ignore_near(labels, candidates, ignore_boxes, crowd_boxes, roi_config)
    positive, negative = sampler.sample_balanced(labels, roi_config.num_rois, roi_config.foreground_fraction,
                                                 seed)
    # [B, R] 뽑힌 후보 (전경 먼저, 그다음 배경, 남는 칸은 무효)
    index, foreground, valid = sampler.sampled_indices(positive, negative, roi_config.num_rois)
    rois = tf.gather(candidates, index, batch_dims=1)
    # [B, R] 각 RoI 에 매칭된 GT
    roi_gt = tf.gather(matched_gt, index, batch_dims=1)
    roi_classes = tf.where(foreground, tf.gather(gt_classes, roi_gt, batch_dims=1), 0)
    box_targets = box_coder.encode(tf.gather(gt_boxes, roi_gt, batch_dims=1), rois, roi_config.box_weights)
    box_targets = tf.where(foreground[..., None], box_targets, 0.0)
    return {
        "rois": tf.stop_gradient(rois),
        "roi_classes": roi_classes,
        "box_targets": tf.stop_gradient(box_targets),
        "foreground": foreground,
        "valid": valid,
    }


def _ignore_near(labels, candidates, ignore_boxes, crowd_boxes, roi_config):
    """배경 후보 중 무시할 박스 (difficult) 를 덮거나 crowd 안에 드는 것을 IGNORE 로 (둘 다 선택)."""
    if ignore_boxes is not None:
        near_ignored = difficult.covers_ignored(candidates, ignore_boxes, roi_config.background_iou_high)
        labels = tf.where((labels == matcher.NEGATIVE) & near_ignored, matcher.IGNORE, labels)
    if crowd_boxes is not None:
        in_crowd = crowd.covers_crowd(candidates, crowd_boxes)
        labels = tf.where((labels == matcher.NEGATIVE) & in_crowd, matcher.IGNORE, labels)
    return labels


def _candidate_labels(max_iou, candidate_valid, roi_config):
    """[B, P+G] 최고 IoU → matcher 라벨: 전경 POSITIVE, 배경 NEGATIVE, 그 밖(무효 후보 포함) IGNORE."""
    foreground = candidate_valid & (max_iou >= roi_config.foreground_iou)
    background = (candidate_valid & (max_iou < roi_config.background_iou_high)
                  & (max_iou >= roi_config.background_iou_low))
    return tf.where(foreground, matcher.POSITIVE, tf.where(background, matcher.NEGATIVE, matcher.IGNORE))
