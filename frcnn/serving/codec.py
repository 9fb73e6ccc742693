"""TF Serving API 의 요청·응답 ↔ numpy 텐서 변환: REST JSON 과 gRPC TensorProto, SignatureDef 메타데이터.

TF Serving 의 REST 형식을 그대로 따른다:

* 행(row) 형식: ``{"instances": [...]}`` → ``{"predictions": [...]}``.
  입력이 하나인 시그니처는 인스턴스 자체가 그 입력값이고(``{"b64": "..."}`` 도 가능),
  입력이 여럿이면(또는 이름을 밝히려면) 인스턴스는 ``{입력 이름: 값}`` 딕셔너리다.
  출력이 여럿이면 예측 하나가 ``{출력 이름: 값}`` 딕셔너리, 하나면 값 그대로다.
* 열(columnar) 형식: ``{"inputs": {이름: 배치 리스트}}`` (입력이 하나면 리스트만) →
  ``{"outputs": {이름: 배치 리스트}}`` (출력이 하나면 리스트만).
* 문자열 입력의 이진 값은 ``{"b64": "..."}``, 일반 JSON 문자열은 UTF-8 바이트가 된다.
  문자열 출력은 UTF-8 로 읽히면 평범한 문자열, 이름이 ``_bytes`` 로 끝나거나 UTF-8 이
  아니면 ``{"b64": "..."}`` 로 돌려준다.

용어:
  B 배치(요청 하나의 인스턴스 수), N 검출 수, H/W 이미지 높이/너비.
  박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표 (모델 출력 그대로 전달).
"""

import base64
import binascii
import json
import re

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2

BINARY_KEY = "b64"
# 요청 JSON 의 최대 중첩 깊이: 가장 깊은 정상 요청 ({"instances": [{"images": [H][W][3]}]}) 은 6.
MAX_JSON_DEPTH = 32
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = np.frombuffer(b"[]{}", np.uint8)
BINARY_OUTPUT_SUFFIX = "_bytes"
METHOD_NAME = "tensorflow/serving/predict"


# HTTP 상태 → TF Serving (gRPC) 상태 코드 이름. 나머지는 INTERNAL.
STATUS_CODES = {200: "OK", 400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 405: "UNIMPLEMENTED",
                408: "DEADLINE_EXCEEDED", 413: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


def status_code_name(http_status):
    """HTTP 상태 코드에 맞는 TF Serving 상태 코드 이름 (예: 404 → "NOT_FOUND")."""
    return STATUS_CODES.get(http_status, "INTERNAL")


class RequestError(ValueError):
    """클라이언트 잘못 (또는 일시적 과부하) 으로 생긴 오류.

    Attributes:
      status: int, 돌려줄 HTTP 상태 코드.
      code: str, 같은 뜻의 TF Serving (gRPC) 상태 코드 이름.
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status

    @property
    def code(self):
        return status_code_name(self.status)


def parse_json_body(body):
    """HTTP 요청 본문 바이트를 최상위 JSON 객체 (dict) 로 읽는다.

    Raises:
      RequestError: UTF-8/JSON 이 아니거나, 중첩이 MAX_JSON_DEPTH 보다 깊거나, 최상위가 객체가 아닐 때 (400).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"JSON Parse error: the body is not UTF-8: {error}") from error
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(f"JSON Parse error: nesting depth {depth} exceeds the limit of {MAX_JSON_DEPTH}")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise RequestError(f"JSON Parse error: {error}") from error
    if not isinstance(document, dict):
        raise RequestError("JSON Value: request body must be a JSON object")
    return document


def json_depth(text):
    """JSON 텍스트의 최대 중첩 깊이 ([ 와 { 의 깊이; 문자열 안의 괄호는 세지 않는다). 파싱 전에 C 속도로.

    문자열 리터럴을 먼저 지우고 (정규식) 남은 괄호만 numpy 로 누적한다. 깨진 JSON 의 깊이는 대략값이다 (그
    JSON 은 어차피 파싱에서 400).
    """
    stripped = _JSON_STRING.sub("", text).encode("ascii", "replace")
    marks = np.frombuffer(stripped, np.uint8)
    brackets = marks[np.isin(marks, _BRACKETS)]
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def message_to_json(message):
    """프로토 메시지를 TF Serving REST 가 돌려주는 JSON 모양으로 (필드 이름 그대로, 기본값 필드까지)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _tensor_info(spec, tensor_name):
    """TensorSpec 하나를 SignatureDef 의 TensorInfo 프로토로 바꾼다."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=-1 if size is None else size)
             for size in spec.shape.as_list()])
    return meta_graph_pb2.TensorInfo(name=tensor_name, dtype=spec.dtype.as_datatype_enum, tensor_shape=shape)


def signature_def_proto(signature_name, inputs, outputs):
    """시그니처 하나를 TF Serving 메타데이터의 SignatureDef 프로토로 만든다 (gRPC 와 REST 가 함께 쓴다).

    inputs·outputs 는 이름 → tf.TensorSpec. 텐서 이름은 TF2 ``tf.saved_model.save`` 가 쓰는 규칙
    (입력 ``<시그니처>_<입력>:0``, 출력 ``StatefulPartitionedCall:<이름 순 번호>``)을 따른다.
    """
    signature_def = meta_graph_pb2.SignatureDef(method_name=METHOD_NAME)
    for name, spec in sorted(inputs.items()):
        signature_def.inputs[name].CopyFrom(_tensor_info(spec, f"{signature_name}_{name}:0"))
    for index, (name, spec) in enumerate(sorted(outputs.items())):
        signature_def.outputs[name].CopyFrom(_tensor_info(spec, f"StatefulPartitionedCall:{index}"))
    return signature_def


def signature_def_json(signature_name, inputs, outputs):
    """``signature_def_proto`` 의 JSON dict ``{"inputs", "outputs", "method_name"}`` (TF Serving 에 없는
    ``defaults`` 는 뺀다)."""
    document = message_to_json(signature_def_proto(signature_name, inputs, outputs))
    document.pop("defaults", None)
    return document


def _string_leaf(value, where):
    """JSON 값 하나(문자열 또는 ``{"b64": ...}``)를 bytes 로 바꾼다."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {BINARY_KEY} and isinstance(value[BINARY_KEY], str):
        try:
            return base64.b64decode(value[BINARY_KEY], validate=True)
        except (binascii.Error, ValueError) as error:
            raise RequestError(f"{where}: invalid base64 in 'b64' value: {error}") from error
    raise RequestError(f"{where}: expected a string or {{\"b64\": \"...\"}} for a DT_STRING input, "
                       f"got {json.dumps(value)[:80]}")


def _string_array(value, where):
    """중첩 리스트의 문자열 값들을 object dtype bytes 배열로 바꾼다."""
    if isinstance(value, list):
        leaves = [_string_array(item, where) for item in value]
        if len({leaf.shape for leaf in leaves}) > 1:
            raise RequestError(f"{where}: nested lists have different lengths")
        return _stack_objects(leaves) if leaves else np.empty((0,), dtype=object)
    return np.array(_string_leaf(value, where), dtype=object)


def _numeric_array(value, dtype, where):
    """중첩 리스트의 숫자 값들을 ``dtype`` numpy 배열로 바꾸고 범위/종류를 검사한다."""
    target = np.dtype(dtype.as_numpy_dtype)
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise RequestError(f"{where}: nested lists have different lengths ({error})") from error
    if array.size == 0:
        return array.astype(target)  # 빈 텐서 (TF Serving 도 받는다)
    if array.dtype.kind not in "biuf" or (array.dtype.kind == "b") != (target.kind == "b"):
        expected = "true/false" if target.kind == "b" else "numbers"
        raise RequestError(f"{where}: expected {expected} for a {dtype.name} input")
    if target.kind in "iu":
        if array.dtype.kind == "f":
            raise RequestError(f"{where}: expected integers for a {dtype.name} input, got floats")
        limits = np.iinfo(target)
        if array.min() < limits.min or array.max() > limits.max:
            raise RequestError(f"{where}: value out of range for {dtype.name} [{limits.min}, {limits.max}]")
    if target.kind == "f" and np.isfinite(array).all():
        with np.errstate(over="ignore"):
            converted = array.astype(target)
        if not np.isfinite(converted).all():
            raise RequestError(f"{where}: value out of range for {dtype.name}")
        return converted
    return array.astype(target)


def json_to_array(value, spec, where):
    """입력 하나의 JSON 값 (스칼라, 중첩 리스트, ``{"b64": ...}``) 을 spec 의 dtype 배열로 바꾼다 (문자열은 bytes
    object 배열). 값이 dtype 에 맞지 않으면 RequestError (400; 메시지는 where 로 시작)."""
    if spec.dtype == tf.string:
        return _string_array(value, where)
    return _numeric_array(value, spec.dtype, where)


def _check_shape(array, spec, name):
    """배치된 배열의 모양이 시그니처 모양과 맞는지 확인한다."""
    if not spec.shape.is_compatible_with(array.shape):
        raise RequestError(f"input '{name}' has shape {list(array.shape)} but the signature expects "
                           f"{[-1 if size is None else size for size in spec.shape.as_list()]}")


def _is_named(value, specs):
    """값이 입력 이름 → 값 dict 인지 (입력이 하나면 ``{"b64": ...}`` 는 값 자체다)."""
    return isinstance(value, dict) and not (len(specs) == 1 and set(value) == {BINARY_KEY}
                                            and BINARY_KEY not in specs)


def _instance_values(instance, specs, index):
    """인스턴스 하나를 입력 이름 → JSON 값 딕셔너리로 풀어낸다."""
    names = list(specs)
    if not _is_named(instance, specs):
        if len(names) != 1:
            raise RequestError(f"instance {index}: the signature has inputs {names}; "
                               "each instance must be an object naming them")
        return {names[0]: instance}
    if set(instance) != set(names):
        raise RequestError(f"instance {index}: has inputs {sorted(instance)} "
                           f"but the signature expects {names}")
    return instance


def instances_to_inputs(instances, specs):
    """행 형식 ``instances`` (B 개) 를 입력 이름 → 배치 배열 [B, ...] 로 쌓는다 (specs: 입력 이름 → TensorSpec).

    Raises:
      RequestError: 인스턴스 형식/dtype 이 틀리거나 모양이 달라 쌓을 수 없을 때 (400).
    """
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    columns = {name: [] for name in specs}
    for index, instance in enumerate(instances):
        for name, value in _instance_values(instance, specs, index).items():
            columns[name].append(json_to_array(value, specs[name], f"instance {index} input '{name}'"))
    inputs = {}
    for name, arrays in columns.items():
        shapes = sorted({array.shape for array in arrays})
        if len(shapes) > 1:
            raise RequestError(f"input '{name}': instances have different shapes {[list(s) for s in shapes]} "
                               "and cannot be batched; send them in separate requests")
        inputs[name] = np.stack(arrays) if arrays[0].dtype != object else _stack_objects(arrays)
        _check_shape(inputs[name], specs[name], name)
    return inputs


def _stack_objects(arrays):
    """object dtype 배열들을 하나의 배치로 쌓는다 (np.stack 은 bytes 를 건드리지 않게)."""
    stacked = np.empty((len(arrays),) + arrays[0].shape, dtype=object)
    for index, array in enumerate(arrays):
        stacked[index, ...] = array
    return stacked


def columnar_to_inputs(columns, specs):
    """열 형식 ``inputs`` (입력 이름 → 배치 값, 입력이 하나면 배치 값 자체) 를 입력 이름 → 배열로 바꾼다.

    Raises:
      RequestError: 이름이나 값이 시그니처와 맞지 않을 때 (400).
    """
    names = list(specs)
    if not _is_named(columns, specs):
        if len(names) != 1:
            raise RequestError(f"'inputs' must be an object naming the signature inputs {names}")
        columns = {names[0]: columns}
    if set(columns) != set(names):
        raise RequestError(f"'inputs' has {sorted(columns)} but the signature expects {names}")
    inputs = {}
    for name in names:
        inputs[name] = json_to_array(columns[name], specs[name], f"input '{name}'")
        _check_shape(inputs[name], specs[name], name)
    return inputs


def _string_to_json(value, binary):
    """bytes 하나를 JSON 값으로: UTF-8 문자열, 또는 이진이면 ``{"b64": ...}``."""
    if not binary:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {BINARY_KEY: base64.b64encode(value).decode("ascii")}


def _strings_to_json(value, binary):
    """bytes 를 담은 중첩 리스트의 잎마다 ``_string_to_json`` 을 적용한다."""
    if isinstance(value, list):
        return [_strings_to_json(item, binary) for item in value]
    return _string_to_json(value, binary)


def array_to_json(array, name):
    """출력 배열 하나 (문자열이면 bytes object 배열) 를 JSON 으로 쓸 중첩 리스트·스칼라로 (이름이 ``_bytes`` 로
    끝나면 문자열은 항상 b64)."""
    if array.dtype == object:
        return _strings_to_json(array.tolist(), binary=name.endswith(BINARY_OUTPUT_SUFFIX))
    return array.tolist()


def outputs_to_predictions(outputs):
    """출력 배치 (이름 → [B, ...]) 를 행 형식 ``predictions`` 로: 인스턴스마다 출력이 여럿이면 ``{이름: 값}``, 하나면 값.

    Raises:
      ValueError: 출력들의 첫 차원(배치) 크기가 서로 다를 때.
    """
    batch_sizes = {name: (array.shape[0] if array.ndim else None) for name, array in outputs.items()}
    if len(set(batch_sizes.values())) != 1 or None in batch_sizes.values():
        raise ValueError(f"outputs do not share a batch dimension {batch_sizes}; use the 'inputs' format")
    columns = outputs_to_columnar(outputs)
    if len(outputs) == 1:
        return columns
    return [{name: values[index] for name, values in columns.items()}
            for index in range(next(iter(batch_sizes.values())))]


def outputs_to_columnar(outputs):
    """출력 배치를 열 형식 ``outputs`` 로 바꾼다 (출력이 하나면 그 값만)."""
    columns = {name: array_to_json(array, name) for name, array in sorted(outputs.items())}
    return next(iter(columns.values())) if len(columns) == 1 else columns


def _dtype_name(enum):
    """DataType 열거값의 이름 (모르는 값이면 그 숫자)."""
    try:
        return types_pb2.DataType.Name(enum)
    except ValueError:
        return str(enum)


def check_dtype(proto, spec, name):
    """TensorProto 의 dtype 이 spec 의 것인지 (아니면 RequestError 400, TF Serving 과 같은 문구)."""
    if proto.dtype != spec.dtype.as_datatype_enum:
        raise RequestError(f"input '{name}': expects {_dtype_name(spec.dtype.as_datatype_enum)} but "
                           f"{_dtype_name(proto.dtype)} is provided")


def tensor_proto_to_array(proto, spec, name):
    """gRPC 입력 TensorProto 하나를 spec 의 dtype 배열로 (문자열은 bytes object 배열; name 은 오류 메시지용).

    Raises:
      RequestError: dtype 이 다르거나, 값을 읽을 수 없거나, 모양이 맞지 않을 때 (400).
    """
    check_dtype(proto, spec, name)
    try:
        array = tf.make_ndarray(proto)
    except (ValueError, TypeError) as error:
        raise RequestError(f"input '{name}': cannot read the TensorProto: {error}") from error
    _check_shape(array, spec, name)
    return array


def array_to_tensor_proto(array):
    """출력 배열 하나를 TensorProto 로 (문자열은 bytes 그대로)."""
    return tf.make_tensor_proto(array)
