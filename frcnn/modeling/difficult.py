"""VOC 의 difficult 물체를 학습 타깃에서 다루는 규칙 (`input.difficult`). 레코드에는 평가를 위해 모든
물체가 difficult 표시와 함께 남고, 이 규칙은 앵커 라벨(레코드 변환)과 RoI 타깃(학습) 둘 다에 쓰인다.

용어:
  B 배치, G 최대 GT 수, N 후보 (앵커 또는 RoI 후보) 수.
  drop   — difficult 물체를 학습 GT 에서 뺀다 (−1 패딩으로 바꾼다; 번호는 그대로라 앵커 매칭 코드의 GT 번호가
           레코드의 물체 순서와 어긋나지 않는다). py-faster-rcnn·tf-faster-rcnn·simple-faster-rcnn 의
           `USE_DIFF=False` 와 같다.
  ignore — drop 처럼 양성(전경)은 되지 않고, 덧붙여 difficult 물체를 덮는 후보는 음성(배경)도 되지 않는다:
           앵커는 difficult 박스와 IoU ≥ `rpn.negative_iou`, RoI 는 IoU ≥ `roi.background_iou_high` 이면
           (보통 물체 때문에 양성이 아닌 한) 무시. VOC devkit 이 difficult 를 상도 벌도 주지 않는 것과 가장 가깝다.
  keep   — difficult 물체도 보통 물체처럼 학습한다.
"""

import tensorflow as tf

from frcnn.ops import box_ops


def training_boxes(gt_boxes, difficult, mode):
    """모드에 따른 학습 GT 와 무시 박스.

    Args:
      gt_boxes: [B, G, 4] float32, −1 패딩.
      difficult: [B, G] bool.
      mode: 'drop' | 'ignore' | 'keep' (Python 문자열).

    Returns:
      target_boxes: [B, G, 4] float32 — 양성·전경이 될 수 있는 GT (빠진 물체는 −1 행).
      ignore_boxes: [B, G, 4] float32 (ignore 모드; difficult 가 아닌 행은 −1) 또는 None.
    """
    if mode == "keep":
        return gt_boxes, None
    if mode not in ("drop", "ignore"):
        raise ValueError(f"unknown difficult mode '{mode}' (expected drop, ignore or keep)")
    target_boxes = tf.where(difficult[..., None], -1.0, gt_boxes)
    if mode == "drop":
        return target_boxes, None
    return target_boxes, tf.where(difficult[..., None], gt_boxes, -1.0)


def covers_ignored(candidates, ignore_boxes, threshold):
    """후보가 무시 박스 하나와라도 IoU ≥ threshold 인지.

    Args:
      candidates: [B, N, 4] float32 (배치 차원 1 로 모든 이미지에 같은 앵커를 줘도 된다).
      ignore_boxes: [B, G, 4] float32, −1 패딩 (패딩과의 IoU 는 −1 이라 걸리지 않는다).
      threshold: float.

    Returns:
      [B, N] bool.
    """
    candidates = tf.broadcast_to(candidates, [tf.shape(ignore_boxes)[0], tf.shape(candidates)[1], 4])
    return tf.reduce_max(box_ops.pairwise_iou(candidates, ignore_boxes), axis=-1) >= threshold
