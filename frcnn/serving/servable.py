"""서빙할 수 있는 모델 한 버전 (servable): SavedModel 또는 LiteRT(.tflite)·ONNX(.onnx) 파일.

불러오기는 ``frcnn.export.loader.load`` 하나. 서버의 나머지(버전 관리, 배칭, REST/gRPC)는 이 꼴만 안다:
``signatures`` (시그니처 이름 → 입력·출력 명세), ``run(시그니처, 입력 배열들)`` → 출력 배열들, ``warmup()``.
모델이 입력 탓으로 거부하면 ``RequestError`` (400).

용어:
  servable: TF Serving 의 용어. 모델 하나의 버전 하나를 불러온 것.
  명세(spec): ``tf.TensorSpec`` (dtype, 모양; 배치 축은 None).
  B 배치, N 검출 수, H/W 이미지 높이/너비; 박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표.
"""

import logging
import os
import time

import numpy as np
import tensorflow as tf

from frcnn.data import records
from frcnn.export import loader
from frcnn.serving.codec import RequestError

DEFAULT_SIGNATURE = "serving_default"
WARMUP_IMAGE_SIZE = 32
# 모델이 이렇게 알리는 오류는 입력 탓이므로 400 으로 돌려준다.
CLIENT_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError)

logger = logging.getLogger(__name__)


def load_servable(model, version=1):
    """경로나 불러온 객체를 servable 로 만든다 (경로는 `frcnn.export.loader.load`: SavedModel 디렉터리, .tflite,
    .onnx; `tf.saved_model.load` 의 결과도 된다; servable 이면 그대로).

    Raises:
      ValueError: 불러올 수 없을 때 (경로와 문제를 밝힌다), 시그니처가 없는 객체.
      ImportError: .tflite/.onnx 런타임이 없을 때 (``[deploy]`` 추가 설치를 말한다).
    """
    if isinstance(model, Servable):
        return model
    if isinstance(model, (str, os.PathLike)):
        return Servable(loader.load(model), version)
    return Servable(loader.SavedModelDetector(model), version)


class Servable:
    """servable 하나: 불러온 모델 (`loader.load` 의 꼴) 과 버전 번호.

    Attributes:
      version: int, 버전 번호.
      model: 불러온 모델 (`loader.SavedModelDetector` 또는 `runtimes.PortableRunner`).
      signatures: dict, 시그니처 이름 → (입력 이름 → TensorSpec, 출력 이름 → TensorSpec), 이름 순.
    """

    version = 1  # 클래스 값: __init__ 을 부르지 않는 시험용 가짜 servable 도 이 값들을 쓴다
    signatures = {}
    max_image_pixels = None  # 모델이 품은 픽셀 예산 (없으면 None)

    def __init__(self, model, version=1):
        self.model = model
        self.version = int(version)
        self.signatures = model.signatures
        # 내보낼 때 정한 픽셀 예산 (tools/export --max_image_pixels); 그 전에 내보낸 모델·이식 파일에는 없다 (None)
        self.max_image_pixels = getattr(model, "max_image_pixels", None)

    def input_specs(self, signature_name):
        return self.signatures[signature_name][0]

    def output_specs(self, signature_name):
        return self.signatures[signature_name][1]

    def run(self, signature_name, inputs):
        """시그니처를 한 배치로 실행한다: 입력 이름 → [B, ...] 배열 (문자열은 bytes object 배열) → 출력 이름 → [B, ...].

        Raises:
          RequestError: 모델이 입력을 거부했을 때 (예: 이미지가 아닌 바이트, 400).
        """
        try:
            return self._call(signature_name, inputs)
        except CLIENT_ERRORS as error:
            raise RequestError(f"{type(error).__name__}: {short_error_message(error.message)}") from error

    def _call(self, signature_name, inputs):
        """모델을 실제로 부르는 곳 (시험용 가짜 servable 이 바꾼다)."""
        return self.model.run(signature_name, inputs)

    def warmup(self):
        """각 시그니처를 작은 입력으로 한 번 실행해 커널 로딩을 미리 끝낸다.

        입력을 만들 수 없는 시그니처는 건너뛰고, 실패는 경고로만 남긴다.
        """
        for name, (specs, _) in sorted(self.signatures.items()):
            start = time.monotonic()
            inputs = {input_name: warmup_array(input_name, spec) for input_name, spec in specs.items()}
            if any(array is None for array in inputs.values()):
                logger.info("warm-up of '%s' skipped: no sample input for %s", name, specs)
                continue
            try:
                self.run(name, inputs)
            except (RequestError, tf.errors.OpError) as error:
                logger.warning("warm-up of '%s' failed: %s", name, error)
                continue
            logger.info("warmed up '%s' in %.0f ms", name, 1000 * (time.monotonic() - start))


def short_error_message(message):
    """``tf.errors.OpError.message`` 에서 그래프 위치/스택 줄을 빼고 원인 줄만 남긴다 (예: ``"Unknown image file
    format. One of JPEG, PNG, ... required."``)."""
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
    """입력 명세에 맞는 배치 1 짜리 워밍업 배열 (``examples`` 입력이면 tf.Example, 다른 문자열 입력이면 PNG,
    uint8 이미지면 회색 판). 만들 수 없으면 None."""
    shape = spec.shape.as_list()
    if spec.dtype == tf.string and len(shape) == 1:
        sample = _warmup_example() if input_name == "examples" else _warmup_png()
        return np.array([sample], dtype=object)
    if spec.dtype == tf.uint8 and len(shape) == 4 and shape[3] in (None, 3):
        fixed = [size or WARMUP_IMAGE_SIZE for size in shape[1:3]]
        return np.full([1] + fixed + [3], 128, dtype=np.uint8)
    return None
