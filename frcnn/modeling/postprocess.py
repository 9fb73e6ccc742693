"""추론 후처리: 클래스별 박스 디코딩 → 클래스별 NMS → 원본 이미지의 정규화 좌표.

용어:
  B 배치, R 이미지당 RoI 수, C 클래스 수 (배경 제외), N 최대 검출 수.
  NMS 방식: 'combined' (SavedModel) 또는 'class_offset' (LiteRT·ONNX) — `frcnn/ops/nms.py`.
  K 분류기 행 수 − 1: 보통 C. `detection.class_slots` 가 있으면 소프트맥스는 K + 1 행 모두 위에서 (torchvision 의
    91 행 COCO 모델과 같은 점수), 그 뒤 클래스 k 는 행 class_slots[k−1] 의 점수와 델타 (상수 색인 gather) —
    목록에 없는 행 (COCO 의 'N/A') 은 검출로 보고되지 않는다.
"""

import tensorflow as tf

from frcnn.ops import box_coder
from frcnn.ops import box_ops
from frcnn.ops import nms as nms_ops


NMS_METHODS = tuple(nms_ops.CLASS_NMS)


def _without_small_boxes(boxes, scores, min_box_size):
    """높이나 너비가 min_box_size 보다 짧은 박스의 점수를 0 으로 (min_box_size 0 이면 그대로)."""
    if min_box_size <= 0:
        return scores
    return tf.where(box_ops.sides_at_least(boxes, min_box_size), scores, 0.0)


def detect(rois, roi_valid, class_logits, box_deltas, image_sizes, detection_config, roi_config,
           nms="combined", min_box_size=0.0):
    """RoI 별 점수와 델타로 최종 검출을 만든다.

    Args:
      rois: [B, R, 4] float32 리사이즈된 이미지 픽셀.
      roi_valid: [B, R] bool.
      class_logits: [B·R, K+1] float32.
      box_deltas: [B·R, K+1, 4] float32.
      image_sizes: [B, 2] float32 리사이즈된 이미지 (높이, 너비).
      detection_config: `config.DetectionConfig`.
      roi_config: `config.RoiConfig`.
      nms: `NMS_METHODS` 중 하나.
      min_box_size: float 픽셀; 자른 뒤 높이나 너비가 이보다 짧은 박스는 버린다 (torchvision 1e-2: 이미지 밖
        제안이 잘려 생긴 넓이 0 박스를 없앤다; 0 이면 끔).

    Returns:
      dict: boxes [B, N, 4] float32 정규화 [0, 1] (리사이즈된 이미지 = 원본 이미지 기준),
        scores [B, N] float32, classes [B, N] int32 (1-기반, 0 패딩), num_detections [B] int32.
    """
    batch_size = tf.shape(rois)[0]
    num_rois = rois.shape[1]
    num_rows = class_logits.shape[-1]
    # 클래스 1..C 의 분류기 행 (상수)
    rows = list(detection_config.class_slots) or list(range(1, num_rows))
    num_classes = len(rows)
    # [B, R, C] 배경 제외 클래스 확률 (무효 RoI 는 0)
    probabilities = tf.reshape(tf.nn.softmax(class_logits), [batch_size, num_rois, num_rows])
    scores = _class_rows(probabilities, rows, num_rows) * tf.cast(roi_valid, tf.float32)[..., None]
    # [B, R, C, 4] 클래스별 디코딩
    deltas = _class_rows(tf.reshape(box_deltas, [batch_size, num_rois, num_rows, 4]), rows, num_rows, axis=2)
    boxes = box_coder.decode(deltas, rois[:, :, None, :], roi_config.box_weights)
    boxes = tf.reshape(box_ops.clip_boxes(tf.reshape(boxes, [batch_size, -1, 4]), image_sizes),
                       [batch_size, num_rois, num_classes, 4])
    scores = _without_small_boxes(boxes, scores, min_box_size)
    # 정규화 좌표로 바꿔 NMS (리사이즈 배율이 사라진다)
    sizes = tf.tile(image_sizes, [1, 2])[:, None, None, :]
    normalized = boxes / sizes
    if nms not in nms_ops.CLASS_NMS:
        raise ValueError(f"unknown NMS method '{nms}' (expected one of {NMS_METHODS})")
    nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = nms_ops.CLASS_NMS[nms](
        normalized, scores, detection_config.max_detections_per_class, detection_config.max_detections,
        detection_config.nms_iou, detection_config.score_threshold)
    valid = tf.range(detection_config.max_detections)[None, :] < num_detections[:, None]
    return {
        "boxes": tf.where(valid[..., None], nmsed_boxes, 0.0),
        "scores": tf.where(valid, nmsed_scores, 0.0),
        "classes": tf.where(valid, nmsed_classes + 1, 0),
        "num_detections": num_detections,
    }


def _class_rows(values, rows, num_rows, axis=-1):
    """values 의 axis 축에서 rows (Python int 목록) 만: 1..K 전부면 자르기, 아니면 상수 색인 gather."""
    if rows == list(range(1, num_rows)):
        return values[..., 1:] if axis == -1 else values[:, :, 1:]
    return tf.gather(values, rows, axis=axis)
