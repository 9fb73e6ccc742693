"""내보낸 SavedModel 불러오기: 평가, 그리기, 서빙이 모두 이 함수 하나를 쓴다.

용어:
  시그니처(signature): SavedModel 의 서빙 함수 (`serving_default`, `serve_bytes`, `serve_examples`).
"""

import os

import tensorflow as tf

# 모든 시그니처의 출력 이름 (내보내기가 만들고, 평가·그리기·서빙이 읽는다).
OUTPUT_KEYS = ("detection_boxes", "detection_scores", "detection_classes", "detection_class_names",
               "num_detections")


def first_error_line(error):
    """예외 메시지의 첫 줄 (TensorFlow 오류는 여러 줄의 그래프 추적을 붙인다)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def load_saved_model(path, required_signatures=()):
    """SavedModel 디렉터리를 불러오고 필요한 시그니처가 있는지 확인한다.

    Args:
      path: SavedModel 디렉터리.
      required_signatures: 반드시 있어야 할 시그니처 이름들.

    Returns:
      `tf.saved_model.load` 의 결과 (`signatures` 속성을 가진다).

    Raises:
      ValueError: `<path>: <문제>` 한 줄 — 디렉터리가 없음, SavedModel 이 아님, 불러오기 실패, 시그니처 없음.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"{path}: SavedModel directory not found")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    try:
        model = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ValueError(f"{path}: cannot load SavedModel: {first_error_line(error)}") from error
    available = sorted(getattr(model, "signatures", {}) or {})
    if not available:
        raise ValueError(f"{path}: SavedModel has no serving signatures")
    missing = [name for name in required_signatures if name not in available]
    if missing:
        raise ValueError(f"{path}: SavedModel has no '{missing[0]}' signature (has: {', '.join(available)})")
    return model
