"""SavedModel 하나를 TF Serving REST 요청/응답(JSON 문서) 단위로 다루는 서비스.

HTTP 와 무관한 부분만 둔다: 모델 상태, 메타데이터, predict(행/열 형식), 워밍업.
HTTP 서버는 ``rest_server.py`` 에 있다.

용어:
  B 배치(요청 하나의 인스턴스 수), N 검출 수, H/W 이미지 높이/너비.
  박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표 (모델 출력 그대로).
"""

import logging
import os
import time

import numpy as np
import tensorflow as tf

from frcnn.data import records
from frcnn.export import loader
from frcnn.serving import codec
from frcnn.serving.codec import RequestError

DEFAULT_SIGNATURE = "serving_default"
WARMUP_IMAGE_SIZE = 32
# 모델이 이렇게 알리는 오류는 입력 탓이므로 400 으로 돌려준다.
CLIENT_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError)

logger = logging.getLogger(__name__)


def load_model(model):
    """경로면 frcnn.export.loader 로 불러오고, 이미 불러온 객체면 시그니처만 확인해 그대로 돌려준다.

    Args:
      model: str/os.PathLike (SavedModel 디렉터리) 또는 ``signatures`` 속성을 가진 불러온 객체.

    Returns:
      ``signatures`` 를 가진 불러온 SavedModel.

    Raises:
      ValueError: 경로에 SavedModel 이 없거나 불러올 수 없거나, 모델에 시그니처가 없을 때.
    """
    if isinstance(model, (str, os.PathLike)):
        return loader.load_saved_model(model)
    if not getattr(model, "signatures", None):
        raise ValueError("the model has no serving signatures")
    return model


class ModelService:
    """불러온 SavedModel 하나의 TF Serving REST 동작 (상태, 메타데이터, predict).

    Args:
      model: SavedModel 경로 또는 불러온 객체 (``load_model`` 참고).
      model_name: str, URL 의 모델 이름 (``/v1/models/<model_name>``).
      model_version: int, 알릴 버전 번호 (TF Serving 의 버전 디렉터리에 해당).
    """

    def __init__(self, model, model_name, model_version=1):
        self.model = load_model(model)
        self.model_name = model_name
        self.model_version = str(model_version)
        self.signatures = dict(self.model.signatures)
        self.input_specs = {name: codec.input_specs(fn) for name, fn in self.signatures.items()}

    def check_servable(self, model_name, version):
        """요청 URL 의 모델 이름/버전이 이 서비스인지 확인한다.

        Raises:
          RequestError: 다른 이름이나 버전이면 404 (TF Serving 과 같은 문구).
        """
        if version is None and model_name != self.model_name:
            raise RequestError(f"Servable not found for request: Latest({model_name})", status=404)
        if version is not None and (model_name != self.model_name or version != self.model_version):
            raise RequestError(f"Servable not found for request: Specific({model_name}, {version})",
                               status=404)

    def status_json(self):
        """``GET /v1/models/NAME`` 의 응답 문서."""
        return {"model_version_status": [{
            "version": self.model_version,
            "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }]}

    def metadata_json(self):
        """``GET /v1/models/NAME/metadata`` 의 응답 문서 (TF Serving 의 SignatureDefMap 모양)."""
        signature_defs = {name: codec.signature_def_json(name, fn)
                          for name, fn in sorted(self.signatures.items())}
        return {
            "model_spec": {"name": self.model_name, "signature_name": "", "version": self.model_version},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }

    def _signature(self, document):
        """요청 문서의 ``signature_name`` (기본 serving_default) 으로 시그니처를 고른다."""
        name = document.get("signature_name", DEFAULT_SIGNATURE)
        if not isinstance(name, str) or name not in self.signatures:
            raise RequestError(f'Serving signature name: "{name}" not found in signature def '
                               f"(available: {sorted(self.signatures)})")
        return name

    def run_signature(self, signature_name, inputs):
        """시그니처를 한 배치로 실행한다.

        Args:
          signature_name: str, 시그니처 키.
          inputs: dict, 입력 이름 → np.ndarray [B, ...] (문자열이면 bytes object 배열).

        Returns:
          dict, 출력 이름 → np.ndarray [B, ...].

        Raises:
          RequestError: 모델이 입력을 거부했을 때 (예: 이미지가 아닌 바이트, 400).
        """
        specs = self.input_specs[signature_name]
        tensors = {name: tf.constant(array, dtype=specs[name].dtype) for name, array in inputs.items()}
        try:
            outputs = self.signatures[signature_name](**tensors)
        except CLIENT_ERRORS as error:
            raise RequestError(f"{type(error).__name__}: {short_error_message(error.message)}") from error
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def predict_json(self, document):
        """``POST /v1/models/NAME:predict`` 의 요청 문서를 처리한다.

        Args:
          document: dict, ``signature_name`` 과 ``instances`` 또는 ``inputs`` 중 하나.

        Returns:
          dict, ``{"predictions": [...]}`` (행 형식) 또는 ``{"outputs": ...}`` (열 형식).

        Raises:
          RequestError: 요청이 잘못되었을 때 (400).
        """
        signature_name = self._signature(document)
        has_instances, has_inputs = "instances" in document, "inputs" in document
        if has_instances == has_inputs:
            raise RequestError("JSON Value: request must have exactly one of 'instances' (row format) "
                               "or 'inputs' (columnar format)")
        specs = self.input_specs[signature_name]
        if has_instances:
            inputs = codec.instances_to_inputs(document["instances"], specs)
            return {"predictions": codec.outputs_to_predictions(self.run_signature(signature_name, inputs))}
        inputs = codec.columnar_to_inputs(document["inputs"], specs)
        return {"outputs": codec.outputs_to_columnar(self.run_signature(signature_name, inputs))}

    def warmup(self):
        """각 시그니처를 작은 입력으로 한 번 실행해 커널 로딩을 미리 끝낸다.

        입력을 만들 수 없는 시그니처는 건너뛰고, 실패는 경고로만 남긴다.
        """
        for name, specs in sorted(self.input_specs.items()):
            start = time.monotonic()
            inputs = {input_name: warmup_array(input_name, spec) for input_name, spec in specs.items()}
            if any(array is None for array in inputs.values()):
                logger.info("warm-up of '%s' skipped: no sample input for %s", name, specs)
                continue
            try:
                self.run_signature(name, inputs)
            except (RequestError, tf.errors.OpError) as error:
                logger.warning("warm-up of '%s' failed: %s", name, error)
                continue
            logger.info("warmed up '%s' in %.0f ms", name, 1000 * (time.monotonic() - start))


def short_error_message(message):
    """TF 런타임 오류 메시지에서 그래프 위치/스택 줄을 빼고 원인 줄만 남긴다.

    Args:
      message: str, ``tf.errors.OpError.message``.

    Returns:
      str, 예: ``"Unknown image file format. One of JPEG, PNG, ... required."``.
    """
    noise_prefixes = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    lines = [line.strip() for line in message.splitlines()]
    useful = [line for line in lines if line and not line.startswith(noise_prefixes)]
    return useful[-1] if useful else message.strip()


def _warmup_png():
    """워밍업용 회색 PNG 바이트 (WARMUP_IMAGE_SIZE 정사각형)."""
    image = tf.fill([WARMUP_IMAGE_SIZE, WARMUP_IMAGE_SIZE, 3], tf.constant(128, tf.uint8))
    return tf.io.encode_png(image).numpy()


def _warmup_example():
    """워밍업용 직렬화 tf.Example (이미지 특징만, frcnn.data.records.image_example)."""
    example = records.image_example(_warmup_png(), "png", WARMUP_IMAGE_SIZE, WARMUP_IMAGE_SIZE)
    return example.SerializeToString()


def warmup_array(input_name, spec):
    """입력 명세에 맞는 배치 1 짜리 워밍업 입력. 만들 수 없으면 None.

    Args:
      input_name: str, 입력 이름 (``examples`` 면 tf.Example, 다른 문자열 입력이면 PNG).
      spec: tf.TensorSpec, 입력 명세.

    Returns:
      np.ndarray 또는 None.
    """
    shape = spec.shape.as_list()
    if spec.dtype == tf.string and len(shape) == 1:
        sample = _warmup_example() if input_name == "examples" else _warmup_png()
        return np.array([sample], dtype=object)
    if spec.dtype == tf.uint8 and len(shape) == 4 and shape[3] in (None, 3):
        fixed = [size or WARMUP_IMAGE_SIZE for size in shape[1:3]]
        return np.full([1] + fixed + [3], 128, dtype=np.uint8)
    return None
