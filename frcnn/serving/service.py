"""모델 하나를 TF Serving API 단위로 다루는 서비스: REST 와 gRPC 가 함께 쓰는 한 곳.

HTTP/gRPC 와 무관한 부분만 둔다: 이름·버전으로 servable 고르기, 상태 (GetModelStatus), 메타데이터
(GetModelMetadata), predict (REST 의 JSON 문서와 gRPC 의 PredictRequest), 배처 거치기, 지표 세기.
오류는 ``RequestError`` (HTTP 상태와 TF Serving 상태 코드 이름을 가진다) 로 알린다.

용어:
  servable: 불러온 모델 한 버전 (``servable.py``). 버전은 ``versions.VersionManager`` 가 고른다.
  B 배치(요청 하나의 인스턴스 수), N 검출 수; 박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표.
"""

import contextlib
import logging
import threading
import time

from google.protobuf import any_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import status_pb2

from frcnn.serving import codec
from frcnn.serving import limits as limits_lib
from frcnn.serving.codec import RequestError
from frcnn.serving.servable import DEFAULT_SIGNATURE

SIGNATURE_DEF_FIELD = "signature_def"

logger = logging.getLogger(__name__)


def _requested(model_name, version):
    """TF Serving 오류 문구의 요청 표기: Latest(NAME), Specific(NAME, N) (라벨은 버전으로 바꾼 뒤)."""
    return f"Specific({model_name}, {version})" if version is not None else f"Latest({model_name})"


class RequestTracker:
    """REST 와 gRPC 가 함께 세는 처리 중 요청 수와 종료 중 표시 (우아한 종료가 기다린다)."""

    def __init__(self):
        self.shutting_down = False
        self._count = 0
        self._changed = threading.Condition()

    @property
    def in_flight(self):
        with self._changed:
            return self._count

    def started(self):
        with self._changed:
            self._count += 1

    def finished(self):
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout):
        """처리 중 요청이 0 이 되기를 timeout 초까지 기다린다 (되면 True)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout=timeout)


class ModelService:
    """이름 붙은 모델 하나 (여러 버전) 의 TF Serving 동작.

    Args:
      versions: versions.VersionManager.
      model_name: str, 모델 이름 (``/v1/models/<model_name>``, gRPC ``model_spec.name``).
      batcher: batching.Batcher 또는 None (배칭 없이 요청마다 모델을 부른다).
      metrics: metrics.ServingMetrics 또는 None.
      gate: gate.ModelGate 또는 None — 배칭이 없을 때 모델을 동시에 도는 요청 수를 묶는다 (None 이면 묶지 않음).
      version_labels: {라벨: 버전 번호} 또는 None (TF Serving 모델 설정의 ``version_labels``). 라벨이 가리키는
        버전이 아직 없으면 그 라벨의 요청은 404 (그 버전이 들어오면 곧바로 답한다).
      limits: limits.InputLimits 또는 None (기본 한도) — 모델을 부르기 전의 픽셀 예산·이미지 수 검사.
    """

    def __init__(self, versions, model_name, batcher=None, metrics=None, gate=None, version_labels=None,
                 limits=None):
        self.limits = limits or limits_lib.InputLimits()
        self.versions = versions
        self.model_name = model_name
        self.version_labels = dict(version_labels or {})
        self._warn_about_unserved_labels()
        self.batcher = batcher
        self.gate = gate
        self.metrics = metrics
        if metrics is not None:
            metrics.watch_versions(model_name, versions.statuses)

    @property
    def signatures(self):
        """서빙 중인 버전의 시그니처 이름들."""
        current = self.versions.current()
        return sorted(current.signatures) if current is not None else []

    def _warn_about_unserved_labels(self):
        """서빙 중이 아닌 버전을 가리키는 라벨을 로그에 알린다 (그 라벨의 요청은 404 가 된다)."""
        served = {status.version for status in self.versions.statuses() if status.state == "AVAILABLE"}
        for label, version in sorted(self.version_labels.items()):
            if version not in served:
                logger.warning("version label '%s' points to version %d, which is not served (served: %s); "
                               "its requests get NOT_FOUND until that version is served", label, version,
                               sorted(served))

    def resolve_label(self, model_name, version, label):
        """라벨이 있으면 그 버전 번호를, 없으면 version 을 그대로 돌려준다.

        Raises:
          RequestError: 모르는 라벨이면 400 INVALID_ARGUMENT (TF Serving 과 같은 코드·문구).
        """
        if label is None:
            return version
        if model_name != self.model_name or label not in self.version_labels:
            raise RequestError(f"Unrecognized servable version label: {label}")
        return self.version_labels[label]

    def servable(self, model_name, version=None, label=None):
        """요청의 모델 이름/버전/라벨에 맞는 서빙 중 servable.

        Raises:
          RequestError: 모르는 라벨이면 400, 없는 모델·버전 (라벨이 가리키는 버전이 없을 때도) 이면 404
            (TF Serving 과 같은 문구).
        """
        version = self.resolve_label(model_name, version, label)
        servable = self.versions.current(version) if model_name == self.model_name else None
        if servable is None:
            raise RequestError(f"Servable not found for request: {_requested(model_name, version)}",
                               status=404)
        return servable

    # ---- 상태, 메타데이터 ----

    def status(self, model_name, version=None):
        """GetModelStatus 응답 (버전이 주어지면 그 버전만).

        Raises:
          RequestError: 없는 모델이나 버전이면 404.
        """
        if model_name != self.model_name:
            raise RequestError(f"Could not find any versions of model {model_name}", status=404)
        statuses = [status for status in self.versions.statuses() if version in (None, status.version)]
        if not statuses:
            raise RequestError(f"Could not find version {version} of model {model_name}", status=404)
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in statuses:
            entry = response.model_version_status.add(version=status.version)
            entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
            entry.status.error_code = _error_code_number(status.error_code)
            entry.status.error_message = status.error_message
        return response

    def status_json(self, model_name, version=None):
        """``GET /v1/models/NAME[/versions/N]`` 의 응답 문서."""
        return codec.message_to_json(self.status(model_name, version))

    def metadata(self, model_name, version=None, label=None):
        """GetModelMetadata 응답 (``signature_def`` 항목: SignatureDefMap 을 담은 Any)."""
        servable = self.servable(model_name, version, label)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, (inputs, outputs) in servable.signatures.items():
            signature_map.signature_def[name].CopyFrom(codec.signature_def_proto(name, inputs, outputs))
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=self._model_spec(servable))
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata[SIGNATURE_DEF_FIELD].CopyFrom(packed)
        return response

    def metadata_json(self, model_name, version=None, label=None):
        """``GET /v1/models/NAME[/versions/N]/metadata`` 의 응답 문서 (TF Serving 의 SignatureDefMap 모양)."""
        servable = self.servable(model_name, version, label)
        signature_defs = {name: codec.signature_def_json(name, inputs, outputs)
                          for name, (inputs, outputs) in servable.signatures.items()}
        return {
            "model_spec": codec.message_to_json(self._model_spec(servable)),
            "metadata": {SIGNATURE_DEF_FIELD: {SIGNATURE_DEF_FIELD: signature_defs}},
        }

    def _model_spec(self, servable, signature_name=""):
        spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)
        spec.version.value = servable.version
        return spec

    # ---- predict ----

    def run(self, servable, signature_name, inputs):
        """시그니처를 돌린다: 배처가 있으면 다른 요청들과 함께, 없으면 관문 (있으면) 의 차례에 혼자."""
        if self.batcher is not None:
            return self.batcher.run(servable, signature_name, inputs)
        with self.gate.slot() if self.gate is not None else contextlib.nullcontext():
            return servable.run(signature_name, inputs)

    @contextlib.contextmanager
    def observed(self, protocol):
        """predict 요청 하나를 지표에 남긴다. ``record["signature"]`` 는 안에서 채운다."""
        record = {"signature": ""}
        start = time.monotonic()
        code = "INTERNAL"
        try:
            yield record
            code = "OK"
        except RequestError as error:
            code = error.code
            if self.metrics is not None and isinstance(error, limits_lib.PixelBudgetExceeded):
                self.metrics.observe_budget_rejection(self.model_name, protocol)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.observe_request(self.model_name, record["signature"], protocol, code,
                                             time.monotonic() - start)

    def count_rejection(self, protocol, code, seconds):
        """모델까지 가기 전에 거절한 predict 요청 (예: REST 본문 예산의 503) 을 지표에 센다 (seconds: 걸린 초)."""
        if self.metrics is not None:
            self.metrics.observe_request(self.model_name, "", protocol, code, seconds)

    def _signature(self, servable, name):
        """시그니처 이름 (빈 문자열이면 serving_default) 을 확인한다.

        Raises:
          RequestError: 없는 시그니처면 400.
        """
        name = name or DEFAULT_SIGNATURE
        if not isinstance(name, str) or name not in servable.signatures:
            raise RequestError(f'Serving signature name: "{name}" not found in signature def '
                               f"(available: {sorted(servable.signatures)})")
        return name

    def predict_json(self, body, model_name, version=None, label=None):
        """``POST /v1/models/NAME[/versions/N]:predict`` 의 JSON 본문 (``signature_name`` 과 ``instances`` 또는
        ``inputs`` 중 하나) 을 처리해 ``{"predictions": [...]}`` (행 형식) 또는 ``{"outputs": ...}`` (열 형식) 을
        돌려준다. model_name, version (int 또는 None), label 은 URL 의 것.

        Raises:
          RequestError: 요청이 잘못되었을 때 (400), 없는 모델/버전 (404), 큐가 찼을 때 (503).
        """
        with self.observed("rest") as record:
            servable = self.servable(model_name, version, label)
            document = codec.parse_json_body(body)
            signature_name = self._signature(servable, document.get("signature_name"))
            record["signature"] = signature_name
            has_instances, has_inputs = "instances" in document, "inputs" in document
            if has_instances == has_inputs:
                raise RequestError("JSON Value: request must have exactly one of 'instances' (row format) "
                                   "or 'inputs' (columnar format)")
            specs = servable.input_specs(signature_name)
            if has_instances:
                inputs = codec.instances_to_inputs(document["instances"], specs)
            else:
                inputs = codec.columnar_to_inputs(document["inputs"], specs)
            self.limits.check_inputs(inputs, self.limits.budget(servable))
            outputs = self.run(servable, signature_name, inputs)
            if has_instances:
                return {"predictions": codec.outputs_to_predictions(outputs)}
            return {"outputs": codec.outputs_to_columnar(outputs)}

    def predict_proto(self, request):
        """gRPC ``PredictionService/Predict`` (응답은 ``output_filter`` 의 출력만, 비면 모두).

        Raises:
          RequestError: 400 (시그니처, 입력 이름, dtype, 모양, 디코딩할 수 없는 이미지), 404, 503.
        """
        with self.observed("grpc") as record:
            spec = request.model_spec
            choice = spec.WhichOneof("version_choice")
            servable = self.servable(spec.name, spec.version.value if choice == "version" else None,
                                     spec.version_label if choice == "version_label" else None)
            signature_name = self._signature(servable, spec.signature_name)
            record["signature"] = signature_name
            specs = servable.input_specs(signature_name)
            if set(request.inputs) != set(specs):
                raise RequestError(f"input names {sorted(request.inputs)} do not match the signature "
                                   f"'{signature_name}' inputs {sorted(specs)}")
            budget = self.limits.budget(servable)
            for name in specs:  # make_ndarray 가 모양만 큰 텐서를 0 으로 채우기 전에
                self.limits.check_tensor_proto(request.inputs[name], specs[name], name, budget)
            inputs = {name: codec.tensor_proto_to_array(request.inputs[name], specs[name], name)
                      for name in specs}
            self.limits.check_inputs(inputs, budget)
            outputs = self._filtered(self.run(servable, signature_name, inputs), request.output_filter,
                                     servable.output_specs(signature_name))
            response = predict_pb2.PredictResponse(model_spec=self._model_spec(servable, signature_name))
            for name, array in outputs.items():
                response.outputs[name].CopyFrom(codec.array_to_tensor_proto(array))
            return response

    @staticmethod
    def _filtered(outputs, output_filter, output_specs):
        """``output_filter`` 의 출력만 (비었으면 모두).

        Raises:
          RequestError: 시그니처에 없는 출력 이름이면 400.
        """
        unknown = sorted(set(output_filter) - set(output_specs))
        if unknown:
            raise RequestError(f"output tensor alias not found in signature: {unknown[0]} "
                               f"Outputs expected to be in the set {sorted(output_specs)}")
        return {name: outputs[name] for name in (output_filter or outputs)}


def _error_code_number(name):
    """TF Serving 상태 코드 이름 → StatusProto.error_code 의 숫자 (tensorflow.error.Code)."""
    codes = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
    return codes.values_by_name[name].number
