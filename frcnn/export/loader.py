"""내보낸 모델 불러오기: 평가, 그리기, 서빙이 모두 이 모듈의 `load` 하나를 쓴다.

`load(path)` 는 `saved_model/` 디렉터리, `model.tflite`, `model.onnx` 를 같은 꼴의 객체로 만든다:
  signatures   시그니처 이름 → (입력 이름 → TensorSpec, 출력 이름 → TensorSpec), 이름 순 (배치 축은 None).
  run(이름, 입력 dict)  numpy 입력 [B, ...] → numpy 출력 dict [B, ...] (문자열은 bytes object 배열).
  serve_bytes(바이트 B 개)  JPEG/PNG 바이트 → `signature.OUTPUT_NAMES` 의 numpy dict (이미지마다 제 크기로).

용어:
  시그니처(signature): SavedModel 의 서빙 함수 (`serving_default`, `serve_bytes`, `serve_examples`); 이름과 출력은
    `frcnn/export/signature.py`. 이식 파일 (.tflite/.onnx) 은 `runtimes.PortableRunner` 가 같은 꼴로 돌린다.
"""

import os

import tensorflow as tf

from frcnn.export import runtimes
from frcnn.export import signature


def first_error_line(error):
    """예외 메시지의 첫 줄 (TensorFlow 오류는 여러 줄의 그래프 추적을 붙인다)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def load(path, required_signatures=(), num_threads=None):
    """SavedModel 디렉터리 또는 .tflite/.onnx 파일 → 불러온 모델 (`SavedModelDetector` / `PortableRunner`).

    num_threads: .tflite/.onnx 런타임의 스레드 수 (None 이면 `runtimes.usable_cores()`; SavedModel 은 TF 가 정한다).

    Raises:
      ValueError: `<path>: <문제>` 한 줄 — 없음, SavedModel 이 아님, 불러오기 실패, 시그니처 없음.
      ImportError: .tflite/.onnx 런타임이 없을 때 (`[deploy]` 추가 설치를 말한다).
    """
    if runtimes.kind_of(path):
        model = runtimes.PortableRunner(path, num_threads)
    else:
        model = SavedModelDetector(_load_saved_model(path), os.fspath(path))
    missing = [name for name in required_signatures if name not in model.signatures]
    if missing:
        raise ValueError(f"{path}: the model has no '{missing[0]}' signature "
                         f"(has: {', '.join(model.signatures)})")
    return model


def _load_saved_model(path):
    """SavedModel 디렉터리 → `tf.saved_model.load` 의 결과 (ValueError `<path>: <문제>` 한 줄)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ValueError(f"{path}: SavedModel directory not found")
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{path}: not a SavedModel directory (no saved_model.pb)")
    try:
        model = tf.saved_model.load(path)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise ValueError(f"{path}: cannot load SavedModel: {first_error_line(error)}") from error
    return model


class SavedModelDetector:
    """`tf.saved_model.load` 의 결과 하나를 `load` 의 꼴로 감싼다 (서빙 시그니처가 없으면 ValueError)."""

    def __init__(self, model, path=None):
        if not getattr(model, "signatures", None):
            raise ValueError(f"{path or 'the model'}: the model has no serving signatures")
        self.model = model  # 시그니처 함수가 모델보다 먼저 사라지지 않게 잡아 둔다
        self.path = path
        self._functions = dict(model.signatures)
        budget = getattr(model, "max_image_pixels", None)  # 픽셀 예산 변수 (그 전에 내보낸 모델에는 없다)
        self.max_image_pixels = int(budget.numpy()) if budget is not None else None
        self.signatures = {name: signature_specs(function)
                           for name, function in sorted(self._functions.items())}

    def run(self, signature_name, inputs):
        """시그니처 하나를 한 배치로: numpy 입력 dict → numpy 출력 dict."""
        specs = self.signatures[signature_name][0]
        tensors = {name: tf.constant(array, dtype=specs[name].dtype) for name, array in inputs.items()}
        outputs = self._functions[signature_name](**tensors)
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def serve_bytes(self, image_bytes):
        """JPEG/PNG 바이트 B 개 → 출력 dict (numpy, 앞 차원 B)."""
        return self.run(signature.SERVE_BYTES, {"image_bytes": image_bytes})


def signature_specs(function):
    """시그니처 함수 → (입력 이름 → TensorSpec, 출력 이름 → TensorSpec), 이름 순."""
    _, keyword_specs = function.structured_input_signature
    return dict(sorted(keyword_specs.items())), dict(sorted(function.structured_outputs.items()))
