"""NMS (non-maximum suppression) 변형들: 상태 없는 연산, 모두 고정 개수 출력 (패딩) 이다.

용어:
  B 배치, T 입력 박스 수 (점수 순), P 남길 개수, R RoI 수, C 클래스 수 (배경 제외), N 최대 검출 수.
  박스 `[ymin, xmin, ymax, xmax]`. 점수 0 이하 (제외할 것은 −1) 는 어느 NMS 에서도 뽑히지 않는다.

변형:
  padded_nms        배치째 `non_max_suppression_padded` — XLA 로 컴파일된다 (학습의 RPN, `train.jit_compile`).
  per_image_nms     이미지마다 NonMaxSuppressionV5 (C++ 커널) 한 번 — padded_nms 와 같은 결과, CPU 에서 훨씬
                    싸다 (추론의 RPN). 배치가 정적으로 1 이면 연산 하나라 LiteRT·ONNX 로 옮겨진다.
  combined_nms      클래스별 NMS, `tf.image.combined_non_max_suppression` (SavedModel 의 후처리).
  class_offset_nms  클래스별 NMS 를 V5 한 번으로: 클래스 c 의 정규화 박스를 (2c, 2c) 만큼 옮겨 클래스끼리 겹치지
                    않게 한다 (LiteRT·ONNX 의 후처리). 전제: 클래스당 상한 ≥ 전체 상한 (모든 프리셋) —
                    그러면 combined_nms 와 같다 (점수가 같은 박스의 순서만 다를 수 있다).
"""

import tensorflow as tf


def padded_nms(boxes, scores, count, iou_threshold):
    """[B, T, 4], [B, T] (점수 순) → (selected [B, P] int32 (패딩 0), num_valid [B] int32). XLA 로 컴파일된다."""
    return tf.image.non_max_suppression_padded(
        boxes, scores, max_output_size=count, iou_threshold=iou_threshold,
        score_threshold=0.0, pad_to_max_output_size=True, sorted_input=True)


def per_image_nms(boxes, scores, count, iou_threshold):
    """`padded_nms` 와 같은 입출력·결과를 이미지마다 NonMaxSuppressionV5 한 번으로 (XLA 로는 컴파일되지 않는다).

    CPU 에서 padded NMS (타일 while 루프의 작은 연산 수백 개) 보다 훨씬 싸다: cpu_small SavedModel 한 장 검출이
    13.9 → 8.2 ms (나란히 잰 값, benchmarks/serve_results.md).
    """
    def one_image(inputs):
        selected, _, num_valid = tf.raw_ops.NonMaxSuppressionV5(
            boxes=inputs[0], scores=inputs[1], max_output_size=count, iou_threshold=iou_threshold,
            score_threshold=0.0, soft_nms_sigma=0.0, pad_to_max_output_size=True)
        selected.set_shape([count])  # 정적 모양만 (EnsureShape 연산은 LiteRT 내장이 아니다)
        return selected, num_valid

    if boxes.shape[0] == 1:
        selected, num_valid = one_image((boxes[0], scores[0]))
        return selected[None], num_valid[None]
    return tf.map_fn(one_image, (boxes, scores),
                     fn_output_signature=(tf.TensorSpec([count], tf.int32), tf.TensorSpec([], tf.int32)))


def combined_nms(boxes, scores, max_per_class, max_total, iou_threshold, score_threshold):
    """클래스별 NMS: [B, R, C, 4] 정규화 박스, [B, R, C] 점수 →
    (박스 [B, N, 4], 점수 [B, N], 클래스 [B, N] int32 (0부터), 검출 수 [B] int32)."""
    nmsed = tf.image.combined_non_max_suppression(
        boxes, scores, max_output_size_per_class=max_per_class, max_total_size=max_total,
        iou_threshold=iou_threshold, score_threshold=score_threshold, pad_per_class=False, clip_boxes=True)
    return (nmsed.nmsed_boxes, nmsed.nmsed_scores, tf.cast(nmsed.nmsed_classes, tf.int32),
            tf.cast(nmsed.valid_detections, tf.int32))


def check_class_offset(max_per_class, max_total):
    """`class_offset_nms` 의 전제 (클래스당 상한 ≥ 전체 상한) 가 깨졌으면 ValueError (combined_nms 와 달라진다)."""
    if max_per_class < max_total:
        raise ValueError(f"class-offset NMS needs detection.max_detections_per_class ({max_per_class}) ≥ "
                         f"detection.max_detections ({max_total})")


def class_offset_nms(boxes, scores, max_per_class, max_total, iou_threshold, score_threshold):
    """`combined_nms` 와 같은 입출력 (배치 B = 1 만), NonMaxSuppressionV5 한 번 (`check_class_offset` 의 전제)."""
    check_class_offset(max_per_class, max_total)
    num_classes = boxes.shape[2]
    flat_boxes = tf.reshape(boxes[0], [-1, 4])  # [R·C, 4]
    flat_scores = tf.reshape(scores[0], [-1])  # [R·C]
    class_ids = tf.tile(tf.range(num_classes), [tf.shape(boxes)[1]])  # [R·C] (RoI 바깥, 클래스 안쪽)
    offsets = tf.cast(class_ids, tf.float32)[:, None] * 2.0
    selected, selected_scores, num_valid = tf.raw_ops.NonMaxSuppressionV5(
        boxes=flat_boxes + offsets, scores=flat_scores, max_output_size=max_total,
        iou_threshold=iou_threshold, score_threshold=score_threshold, soft_nms_sigma=0.0,
        pad_to_max_output_size=True)
    selected.set_shape([max_total])  # 정적 모양만 (EnsureShape 연산은 LiteRT 내장이 아니다)
    return (tf.gather(flat_boxes, selected)[None], selected_scores[None],
            tf.gather(class_ids, selected)[None], num_valid[None])


# 클래스별 NMS 방식 이름 → 함수 (`postprocess.detect` 의 nms 인자).
CLASS_NMS = {"combined": combined_nms, "class_offset": class_offset_nms}
