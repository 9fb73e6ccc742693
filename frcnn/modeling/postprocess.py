"""추론 후처리: 클래스별 박스 디코딩 → 클래스별 NMS → 원본 이미지의 정규화 좌표.

용어:
  B 배치, R 이미지당 RoI 수, C 클래스 수 (배경 제외), N 최대 검출 수.
  NMS 방식: 'combined' — `tf.image.combined_non_max_suppression` (SavedModel), 'class_offset' — 클래스 c 의
    박스를 (2c, 2c) 만큼 옮겨 (정규화 좌표는 [0, 1] 이라 클래스끼리 겹치지 않는다) NonMaxSuppressionV5 한 번으로
    클래스별 NMS 를 한다. LiteRT 의 내장 연산과 ONNX 의 NonMaxSuppression 으로 옮겨지는 형태다. 클래스당 상한이
    전체 상한 N 이상이면 (모든 프리셋) 두 방식의 결과가 같다 (점수가 같은 박스의 순서만 다를 수 있다).
"""

import tensorflow as tf

from frcnn.ops import box_coder
from frcnn.ops import box_ops


NMS_METHODS = ("combined", "class_offset")


def detect(rois, roi_valid, class_logits, box_deltas, image_sizes, detection_config, roi_config,
           nms="combined"):
    """RoI 별 점수와 델타로 최종 검출을 만든다.

    Args:
      rois: [B, R, 4] float32 리사이즈된 이미지 픽셀.
      roi_valid: [B, R] bool.
      class_logits: [B·R, C+1] float32.
      box_deltas: [B·R, C+1, 4] float32.
      image_sizes: [B, 2] float32 리사이즈된 이미지 (높이, 너비).
      detection_config: `config.DetectionConfig`.
      roi_config: `config.RoiConfig`.
      nms: `NMS_METHODS` 중 하나.

    Returns:
      dict: boxes [B, N, 4] float32 정규화 [0, 1] (리사이즈된 이미지 = 원본 이미지 기준),
        scores [B, N] float32, classes [B, N] int32 (1-기반, 0 패딩), num_detections [B] int32.
    """
    batch_size = tf.shape(rois)[0]
    num_rois = rois.shape[1]
    num_classes = class_logits.shape[-1] - 1
    # [B, R, C] 배경 제외 클래스 확률 (무효 RoI 는 0)
    probabilities = tf.reshape(tf.nn.softmax(class_logits), [batch_size, num_rois, num_classes + 1])
    scores = probabilities[..., 1:] * tf.cast(roi_valid, tf.float32)[..., None]
    # [B, R, C, 4] 클래스별 디코딩
    deltas = tf.reshape(box_deltas, [batch_size, num_rois, num_classes + 1, 4])[:, :, 1:]
    boxes = box_coder.decode(deltas, rois[:, :, None, :], roi_config.box_weights)
    boxes = tf.reshape(box_ops.clip_boxes(tf.reshape(boxes, [batch_size, -1, 4]), image_sizes),
                       [batch_size, num_rois, num_classes, 4])
    # 정규화 좌표로 바꿔 NMS (리사이즈 배율이 사라진다)
    sizes = tf.tile(image_sizes, [1, 2])[:, None, None, :]
    normalized = boxes / sizes
    if nms == "class_offset":
        nmsed_boxes, nmsed_scores, nmsed_classes, num_detections = _class_offset_nms(
            normalized, scores, detection_config)
    elif nms == "combined":
        nmsed = tf.image.combined_non_max_suppression(
            normalized, scores,
            max_output_size_per_class=detection_config.max_detections_per_class,
            max_total_size=detection_config.max_detections,
            iou_threshold=detection_config.nms_iou,
            score_threshold=detection_config.score_threshold,
            pad_per_class=False, clip_boxes=True)
        nmsed_boxes, nmsed_scores = nmsed.nmsed_boxes, nmsed.nmsed_scores
        nmsed_classes, num_detections = tf.cast(nmsed.nmsed_classes, tf.int32), nmsed.valid_detections
    else:
        raise ValueError(f"unknown NMS method '{nms}' (expected one of {NMS_METHODS})")
    num_detections = tf.cast(num_detections, tf.int32)
    valid = tf.range(detection_config.max_detections)[None, :] < num_detections[:, None]
    return {
        "boxes": tf.where(valid[..., None], nmsed_boxes, 0.0),
        "scores": tf.where(valid, nmsed_scores, 0.0),
        "classes": tf.where(valid, nmsed_classes + 1, 0),
        "num_detections": num_detections,
    }


def _class_offset_nms(boxes, scores, detection_config):
    """클래스 오프셋 NMS (배치 B = 1 만): [1, R, C, 4] 정규화 박스, [1, R, C] 점수 →
    ([1, N, 4] 박스, [1, N] 점수, [1, N] int32 클래스 (0부터), [1] 검출 수).

    Raises:
      ValueError: 클래스당 상한이 전체 상한보다 작을 때 (이 방식으로는 같은 결과를 낼 수 없다).
    """
    count = detection_config.max_detections
    if detection_config.max_detections_per_class < count:
        raise ValueError(f"class-offset NMS needs detection.max_detections_per_class "
                         f"({detection_config.max_detections_per_class}) ≥ detection.max_detections "
                         f"({count})")
    num_classes = boxes.shape[2]
    flat_boxes = tf.reshape(boxes[0], [-1, 4])  # [R·C, 4]
    flat_scores = tf.reshape(scores[0], [-1])  # [R·C]
    class_ids = tf.tile(tf.range(num_classes), [tf.shape(boxes)[1]])  # [R·C] (RoI 바깥, 클래스 안쪽)
    offsets = tf.cast(class_ids, tf.float32)[:, None] * 2.0
    selected, selected_scores, num_valid = tf.raw_ops.NonMaxSuppressionV5(
        boxes=flat_boxes + offsets, scores=flat_scores, max_output_size=count,
        iou_threshold=detection_config.nms_iou, score_threshold=detection_config.score_threshold,
        soft_nms_sigma=0.0, pad_to_max_output_size=True)
    selected.set_shape([count])  # 정적 모양만 (EnsureShape 연산은 LiteRT 내장이 아니다)
    return (tf.gather(flat_boxes, selected)[None], selected_scores[None],
            tf.gather(class_ids, selected)[None], num_valid[None])
