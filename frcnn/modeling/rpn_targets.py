"""RPN 앵커 라벨: 레코드에 미리 계산해 두는 압축 코드와, 학습 때 그것을 분류·회귀 타깃으로 푸는 함수.

용어:
  B 배치, A 앵커 수, G 최대 GT 수.
  앵커 매칭 코드 `anchor_matches` [B, A] int32 (레코드에는 희소하게: `frcnn.data.records`):
    −1 무시 (애매한 IoU 이거나 이미지 경계를 넘는 앵커), 0 음성, k ≥ 1 양성이며 GT k−1 에 매칭.
  규칙 (논문): IoU > 0.7 양성, 각 GT 의 최고 IoU 앵커도 양성, IoU < 0.3 음성, 경계를 넘는 앵커는 무시
    (`boundary_ignored`: 앵커와 이미지 크기만으로 정해져 레코드에 적지 않고 읽을 때 다시 계산한다).
  무시 박스 (`input.difficult=ignore` 의 difficult 물체): 그와 IoU ≥ 0.3 인 음성 앵커는 무시 (`difficult`).
  crowd 상자 (COCO iscrowd): 넓이의 70 % 넘게 그 안에 드는 (IoA > 0.7) 음성 앵커는 무시 (`crowd`).
  박스 형식 `[ymin, xmin, ymax, xmax]`, 캔버스 픽셀.
"""

import tensorflow as tf

from frcnn.modeling import crowd
from frcnn.modeling import difficult
from frcnn.ops import box_coder
from frcnn.ops import box_ops
from frcnn.ops import matcher as matcher_lib

IGNORE_CODE = -1
NEGATIVE_CODE = 0


def boundary_ignored(anchors, image_sizes, rpn_config):
    """이미지 경계를 넘어 무시되는 앵커 (`rpn.allow_cross_boundary` 가 거짓일 때; 참이면 없음).

    Args:
      anchors: [A, 4] float32 캔버스 앵커.
      image_sizes: [B, 2] float32 리사이즈된 이미지 (높이, 너비).
      rpn_config: `config.RpnConfig`.

    Returns:
      [B, A] bool.
    """
    # [B, A] 이미지 안에 완전히 들어가는 앵커
    inside = box_ops.inside_image(anchors, image_sizes)
    if rpn_config.allow_cross_boundary:
        return tf.zeros_like(inside)
    return ~inside


def label_anchors(anchors, gt_boxes, image_sizes, rpn_config, ignore_boxes=None, crowd_boxes=None):
    """앵커마다 매칭 코드를 계산한다.

    Args:
      anchors: [A, 4] float32 캔버스 앵커.
      gt_boxes: [B, G, 4] float32 캔버스 픽셀 GT, −1 패딩.
      image_sizes: [B, 2] float32 리사이즈된 이미지 (높이, 너비) — 경계 판정용.
      rpn_config: `config.RpnConfig`.
      ignore_boxes: 선택, [B, G', 4] float32 −1 패딩 — 덮는 앵커가 음성이 되지 않는 박스.
      crowd_boxes: 선택, [B, G', 4] float32 −1 패딩 — 그 안에 드는 앵커가 음성이 되지 않는 crowd 상자
        (`crowd.split_crowd`; gt_boxes 에서는 빠져 있어야 한다).

    Returns:
      [B, A] int32 매칭 코드.
    """
    batch_size = tf.shape(gt_boxes)[0]
    # [B, A, 4] 배치로 복제한 앵커
    batched_anchors = tf.tile(anchors[None], [batch_size, 1, 1])
    # [B, A, G] 앵커-GT IoU
    iou = box_ops.pairwise_iou(batched_anchors, gt_boxes)
    inside = None
    if not rpn_config.allow_cross_boundary:
        # [B, A] 경계를 넘지 않는 앵커 (넘는 앵커는 학습에서 무시)
        inside = ~boundary_ignored(anchors, image_sizes, rpn_config)
    matcher = matcher_lib.Matcher(rpn_config.negative_iou, rpn_config.positive_iou,
                                  allow_low_quality_matches=True, positive_inclusive=False)
    matched_gt_indices, labels = matcher(iou, inside)
    if ignore_boxes is not None:
        near_ignored = difficult.covers_ignored(anchors[None], ignore_boxes, rpn_config.negative_iou)
        labels = tf.where((labels == matcher_lib.NEGATIVE) & near_ignored, matcher_lib.IGNORE, labels)
    if crowd_boxes is not None:
        in_crowd = crowd.covers_crowd(anchors[None], crowd_boxes)
        labels = tf.where((labels == matcher_lib.NEGATIVE) & in_crowd, matcher_lib.IGNORE, labels)
    return tf.where(labels == matcher_lib.POSITIVE, matched_gt_indices + 1,
                    tf.where(labels == matcher_lib.NEGATIVE, NEGATIVE_CODE, IGNORE_CODE))


def decode_anchor_matches(anchor_matches, anchors, gt_boxes, box_weights):
    """매칭 코드를 학습 타깃으로 푼다.

    Args:
      anchor_matches: [B, A] int32 매칭 코드.
      anchors: [A, 4] float32.
      gt_boxes: [B, G, 4] float32.
      box_weights: 4개 float.

    Returns:
      labels: [B, A] int32, 1 양성 / 0 음성 / −1 무시 (matcher 라벨과 같은 값).
      box_targets: [B, A, 4] float32, 양성 앵커의 인코딩된 델타 (나머지는 0).
    """
    anchor_matches = tf.cast(anchor_matches, tf.int32)
    labels = tf.where(anchor_matches > 0, matcher_lib.POSITIVE,
                      tf.where(anchor_matches == 0, matcher_lib.NEGATIVE, matcher_lib.IGNORE))
    gt_index = tf.maximum(anchor_matches - 1, 0)
    # [B, A, 4] 앵커별 매칭된 GT
    matched_gt_boxes = tf.gather(gt_boxes, gt_index, axis=1, batch_dims=1)
    box_targets = box_coder.encode(matched_gt_boxes, anchors[None], box_weights)
    box_targets = tf.where((labels == matcher_lib.POSITIVE)[..., None], box_targets, 0.0)
    return tf.cast(labels, tf.int32), box_targets
