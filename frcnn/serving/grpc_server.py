"""TF Serving 호환 gRPC 서버: ``tensorflow-serving-api`` 가 생성한 서비스 스텁 그대로 (손으로 쓴 proto 없음).

서비스:
  tensorflow.serving.PredictionService/Predict           예측 (입력·출력은 시그니처 이름의 TensorProto)
  tensorflow.serving.PredictionService/GetModelMetadata  ``metadata_field: "signature_def"``
  tensorflow.serving.ModelService/GetModelStatus         버전마다의 상태
Classify, Regress, MultiInference, HandleReloadConfigRequest 는 UNIMPLEMENTED (스텁의 기본).

오류는 TF Serving 의 상태 코드로: 없는 모델/버전 NOT_FOUND, 잘못된 시그니처·입력 이름·dtype·디코딩할 수 없는
이미지·읽을 수 없는 (깨진) 요청 바이트·픽셀 예산 초과 INVALID_ARGUMENT, 너무 큰 메시지 RESOURCE_EXHAUSTED
(grpc 가 ``max_message_bytes`` 로 거절), 배치 큐가 가득 참 UNAVAILABLE. REST 와 같은 ModelService (모델, 배처, 지표) 를 쓴다.

용어: 스텁(stub): ``*_pb2_grpc`` 의 클라이언트/서비서 클래스.
"""

import logging
from concurrent import futures

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from frcnn.serving.codec import RequestError
from frcnn.serving.service import SIGNATURE_DEF_FIELD

DEFAULT_MAX_THREADS = 64
# 기다리는 RPC 의 상한 (넘으면 RESOURCE_EXHAUSTED): 큐가 메모리를 끝없이 쓰지 않게.
MAX_CONCURRENT_RPCS = 1024

logger = logging.getLogger(__name__)


def _version_of(model_spec):
    """ModelSpec 의 (버전 또는 None, 라벨 또는 None)."""
    choice = model_spec.WhichOneof("version_choice")
    return (model_spec.version.value if choice == "version" else None,
            model_spec.version_label if choice == "version_label" else None)


class _Malformed:
    """역직렬화할 수 없었던 요청: 서비서가 INVALID_ARGUMENT 로 답한다 (grpc 기본은 INTERNAL)."""

    def __init__(self, message):
        self.message = message


def _lenient(message_class):
    """``FromString`` 처럼 읽되, 깨진 바이트면 예외 대신 ``_Malformed`` 를 돌려주는 역직렬화기."""
    def deserialize(data):
        try:
            return message_class.FromString(data)
        except DecodeError as error:
            return _Malformed(f"cannot parse the {message_class.DESCRIPTOR.name}: {error}")

    return deserialize


def _lenient_handler(servicer, service_name, methods):
    """methods ({이름: (요청 클래스, 응답 클래스)}) 를 관대한 역직렬화기로 잇는 처리기. 스텁이 등록하는 처리기보다
    먼저 등록해 같은 메서드를 가로챈다 (나머지 메서드는 스텁의 것: UNIMPLEMENTED)."""
    handlers = {name: grpc.unary_unary_rpc_method_handler(
        getattr(servicer, name), request_deserializer=_lenient(request_class),
        response_serializer=response_class.SerializeToString)
        for name, (request_class, response_class) in methods.items()}
    return grpc.method_handlers_generic_handler(service_name, handlers)


class _Answering:
    """서비서 공통: 요청 수를 세고, RequestError 를 그 상태 코드로 바꿔 끝낸다."""

    def __init__(self, service, tracker):
        self.service = service
        self.tracker = tracker

    def _answer(self, context, function, *args):
        self.tracker.started()
        try:
            if args and isinstance(args[0], _Malformed):
                raise RequestError(args[0].message)
            return function(*args)
        except RequestError as error:
            context.abort(grpc.StatusCode[error.code], str(error))
        except Exception as error:  # noqa: BLE001 - 서버는 어떤 요청 뒤에도 계속 돈다.
            logger.exception("internal error in gRPC call")
            context.abort(grpc.StatusCode.INTERNAL, f"Internal error: {type(error).__name__}: {error}")
        finally:
            self.tracker.finished()


class PredictionServicer(_Answering, prediction_service_pb2_grpc.PredictionServiceServicer):
    """PredictionService: Predict, GetModelMetadata."""

    def Predict(self, request, context):  # noqa: N802 - 스텁이 정한 이름
        return self._answer(context, self.service.predict_proto, request)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return self._answer(context, self._metadata, request)

    def _metadata(self, request):
        fields = list(request.metadata_field)
        if fields != [SIGNATURE_DEF_FIELD]:
            raise RequestError(f"Metadata field(s) {fields} not supported; only [{SIGNATURE_DEF_FIELD!r}]")
        version, label = _version_of(request.model_spec)
        return self.service.metadata(request.model_spec.name, version, label)


class ModelStatusServicer(_Answering, model_service_pb2_grpc.ModelServiceServicer):
    """ModelService: GetModelStatus."""

    def GetModelStatus(self, request, context):  # noqa: N802
        return self._answer(context, self._status, request)

    def _status(self, request):
        # TF Serving 처럼 version 만 본다: version_label 이 있어도 모든 버전의 상태
        version, _ = _version_of(request.model_spec)
        return self.service.status(request.model_spec.name, version)


class GrpcServer:
    """gRPC 서버 하나 (만들 때 포트를 바인드한다).

    Args:
      service: ModelService.
      tracker: service.RequestTracker.
      host, port: 바인드할 주소 (port 0 이면 빈 포트; ``port`` 속성이 실제 포트).
      max_message_bytes: int, 받거나 보낼 메시지의 최대 바이트 (넘으면 RESOURCE_EXHAUSTED).
      max_threads: int, 동시에 처리할 RPC 수 (배처를 기다리는 RPC 도 스레드 하나를 쓴다).

    Raises:
      OSError: 바인드할 수 없을 때.
    """

    def __init__(self, service, tracker, host, port, max_message_bytes, max_threads=DEFAULT_MAX_THREADS):
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_threads,
                                                              thread_name_prefix="grpc"),
                                   options=options, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS)
        prediction, status = PredictionServicer(service, tracker), ModelStatusServicer(service, tracker)
        self._server.add_generic_rpc_handlers((
            _lenient_handler(prediction, "tensorflow.serving.PredictionService", {
                "Predict": (predict_pb2.PredictRequest, predict_pb2.PredictResponse),
                "GetModelMetadata": (get_model_metadata_pb2.GetModelMetadataRequest,
                                     get_model_metadata_pb2.GetModelMetadataResponse)}),
            _lenient_handler(status, "tensorflow.serving.ModelService", {
                "GetModelStatus": (get_model_status_pb2.GetModelStatusRequest,
                                   get_model_status_pb2.GetModelStatusResponse)})))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(status, self._server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as error:
            raise OSError(f"cannot bind gRPC to {address}: {error}") from error
        if not self.port:
            raise OSError(f"cannot bind gRPC to {address}")

    def start(self):
        self._server.start()

    def stop(self, drain_timeout):
        """새 RPC 를 그만 받고, 처리 중 RPC 를 drain_timeout 초까지 기다린다. 멈추면 set 되는 Event."""
        return self._server.stop(drain_timeout)
