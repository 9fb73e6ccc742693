"""내보낸 모델의 시그니처 계약: 입력·출력 이름과 dtype, 파일 이름, 클래스 이름 메타데이터 키.

내보내기 (SavedModel·LiteRT·ONNX), 불러오기, 평가, 그리기, 서빙이 모두 이 모듈의 이름을 쓴다 (다른 곳에 다시 적지 않는다).

용어:
  B 배치, N 최대 검출 수, H·W 입력 이미지 크기.
  SavedModel 시그니처: serving_default (images uint8 [B, H, W, 3]), serve_bytes (image_bytes string [B] JPEG/PNG),
    serve_examples (examples string [B] 직렬화된 tf.Example). 출력은 셋 다 `OUTPUT_NAMES`.
  이식 파일 (model.tflite, model.onnx): images uint8 [1, H, W, 3] → `PORTABLE_OUTPUT_NAMES` (문자열 텐서는 옮겨지지
    않아 클래스 이름은 메타데이터 `LABELS_KEY` 와 labels.txt 에 둔다; 0 번은 빈 이름 = 패딩).
"""

import tensorflow as tf

BOXES = "detection_boxes"  # float32 [B, N, 4] 입력 이미지 기준 정규화 [ymin, xmin, ymax, xmax]
SCORES = "detection_scores"  # float32 [B, N]
CLASSES = "detection_classes"  # int32 [B, N] (1부터, 0 = 패딩)
CLASS_NAMES = "detection_class_names"  # string [B, N] ("" = 패딩)
NUM_DETECTIONS = "num_detections"  # int32 [B]
OUTPUT_NAMES = (BOXES, SCORES, CLASSES, CLASS_NAMES, NUM_DETECTIONS)
PORTABLE_OUTPUT_NAMES = (BOXES, SCORES, CLASSES, NUM_DETECTIONS)

SERVING_DEFAULT, SERVE_BYTES, SERVE_EXAMPLES = "serving_default", "serve_bytes", "serve_examples"
# 시그니처 이름 → 입력 명세 (이름이 입력 키다).
INPUT_SPECS = {
    SERVING_DEFAULT: tf.TensorSpec([None, None, None, 3], tf.uint8, name="images"),
    SERVE_BYTES: tf.TensorSpec([None], tf.string, name="image_bytes"),
    SERVE_EXAMPLES: tf.TensorSpec([None], tf.string, name="examples"),
}
PORTABLE_INPUT_SPEC = tf.TensorSpec([1, None, None, 3], tf.uint8, name="images")

LABELS_KEY = "frcnn_labels"
TFLITE_FILE, ONNX_FILE, LABELS_FILE = "model.tflite", "model.onnx", "labels.txt"
DEPLOY_HINT = "pip install -e '.[deploy]' (or pip install frcnn[deploy])"


def output_specs(count=None, batch=True):
    """출력 이름 → TensorSpec. count: 검출 수 N (None 이면 모름); batch=False 면 한 장 ([N, ...], map_fn 용)."""
    lead = [None] if batch else []
    return {
        BOXES: tf.TensorSpec(lead + [count, 4], tf.float32),
        SCORES: tf.TensorSpec(lead + [count], tf.float32),
        CLASSES: tf.TensorSpec(lead + [count], tf.int32),
        CLASS_NAMES: tf.TensorSpec(lead + [count], tf.string),
        NUM_DETECTIONS: tf.TensorSpec(lead, tf.int32),
    }


def outputs_from_detections(detections, class_names=None):
    """모델의 검출 dict (boxes, scores, classes, num_detections) → 시그니처 출력 dict.

    class_names: [C+1] string 텐서 (0 번은 빈 이름) 면 `CLASS_NAMES` 도 넣는다 (이식 파일은 None).
    """
    outputs = {BOXES: detections["boxes"], SCORES: detections["scores"], CLASSES: detections["classes"],
               NUM_DETECTIONS: detections["num_detections"]}
    if class_names is not None:
        outputs[CLASS_NAMES] = tf.gather(class_names, detections["classes"])
    return outputs
