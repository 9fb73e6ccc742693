"""COCO `iscrowd=1` 물체 (여러 물체를 한 상자로 묶은 영역) 를 학습 타깃에서 다루는 규칙. 레코드에는 평가를 위해
crowd 물체가 `image/object/is_crowd` 표시와 함께 남고, 이 규칙은 앵커 라벨(레코드 변환)과 RoI 타깃(학습) 둘 다에
쓰인다.

규칙: crowd 물체는 양성·전경이 되지 않는다 (학습 GT 에서 −1 행으로 뺀다; 번호는 그대로라 앵커 매칭 코드의
GT 번호가 레코드의 물체 순서와 어긋나지 않는다). 덧붙여 후보 (앵커 또는 RoI 후보) 넓이의 `CROWD_IOA_THRESHOLD`
넘게 crowd 상자 안에 있으면 (IoA > 0.7) 음성·배경도 되지 않는다 (보통 물체 때문에 양성이 아닌 한 무시).
IoU 가 아니라 IoA 를 쓰는 까닭: crowd 상자는 크고 그 안의 작은 앵커는 IoU 가 작아 음성이 되기 때문이다.
py-faster-rcnn·Detectron 의 `_filter_crowd_proposals` (CROWD_FILTER_THRESH = 0.7, pycocotools 의 crowd IoU =
교집합 / 후보 넓이) 와 같은 기준이다. (detectron2·Model Garden 은 학습 때 crowd 주석을 그냥 뺀다.)

용어:
  B 배치, G 최대 GT 수, N 후보 (앵커 또는 RoI 후보) 수.
  IoA: 교집합 / 후보 넓이 (`box_ops.pairwise_ioa`).
  crowd 상자: [B, G, 4] float32, crowd 가 아닌 행은 −1 (패딩).
"""

import tensorflow as tf

from frcnn.ops import box_ops

# 후보가 crowd 상자 안에 이 비율 넘게 들어 있으면 음성·배경이 아니다 (Detectron CROWD_FILTER_THRESH).
CROWD_IOA_THRESHOLD = 0.7


def split_crowd(target_boxes, gt_boxes, is_crowd):
    """학습 GT 에서 crowd 물체를 빼고, 빼낸 crowd 상자를 따로 돌려준다.

    Args:
      target_boxes: [B, G, 4] float32 — 지금까지의 학습 GT (`difficult.training_boxes`), −1 패딩.
      gt_boxes: [B, G, 4] float32 — 레코드의 모든 물체, −1 패딩.
      is_crowd: [B, G] bool.

    Returns:
      target_boxes: [B, G, 4] float32 — crowd 행을 −1 로 바꾼 학습 GT.
      crowd_boxes: [B, G, 4] float32 — crowd 행만 남긴 상자 (나머지는 −1).
    """
    crowd = is_crowd[..., None]
    return tf.where(crowd, -1.0, target_boxes), tf.where(crowd, gt_boxes, -1.0)


def covers_crowd(candidates, crowd_boxes):
    """후보 넓이의 `CROWD_IOA_THRESHOLD` 넘게 crowd 상자 하나 안에 드는지.

    Args:
      candidates: [B, N, 4] float32 (배치 차원 1 로 모든 이미지에 같은 앵커를 줘도 된다).
      crowd_boxes: [B, G, 4] float32, −1 패딩 (패딩과의 IoA 는 −1 이라 걸리지 않는다).

    Returns:
      [B, N] bool.
    """
    candidates = tf.broadcast_to(candidates, [tf.shape(crowd_boxes)[0], tf.shape(candidates)[1], 4])
    return tf.reduce_max(box_ops.pairwise_ioa(candidates, crowd_boxes), axis=-1) > CROWD_IOA_THRESHOLD
