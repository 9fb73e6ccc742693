"""REST 와 (선택) gRPC 를 함께 돌리는 서버 한 벌: 모델 버전, 배처, 지표를 둘이 같이 쓴다.

``make_server`` 가 모델 (SavedModel 디렉터리·불러온 객체·.tflite/.onnx 파일, 또는 번호 버전 디렉터리의 부모)
을 불러와 만들고, ``serve_forever`` 가 돌리고, ``graceful_shutdown`` 이 새 요청을 그만 받은 뒤 처리 중인 요청을
끝내고 멈춘다 (SIGTERM/SIGINT 처리는 ``tools/serve``).

용어:
  servable: 불러온 모델 한 버전. 배처(batcher): 요청들을 한 배치로 묶는 ``batching.Batcher``.
"""

import logging
import threading

from frcnn.serving import rest_server
from frcnn.serving import servable as servable_lib
from frcnn.serving.batching import Batcher
from frcnn.serving.gate import ModelGate
from frcnn.serving.grpc_server import DEFAULT_MAX_THREADS, GrpcServer
from frcnn.serving.limits import DEFAULT_MAX_IMAGES_PER_REQUEST, InputLimits
from frcnn.serving.metrics import ServingMetrics
from frcnn.serving.service import ModelService, RequestTracker
from frcnn.serving.versions import VersionManager

DEFAULT_DRAIN_TIMEOUT_SECONDS = 30.0

logger = logging.getLogger(__name__)


class ServingServer:
    """REST (+ gRPC) 서버 한 벌.

    Attributes:
      service: ModelService (모델 이름, 버전, 배처, 지표).
      url: REST 의 기본 URL (예: ``http://127.0.0.1:8501``).
      grpc_port: gRPC 포트 또는 None.
    """

    def __init__(self, service, rest, grpc=None, tracker=None):
        self.service = service
        self.tracker = tracker or RequestTracker()
        self._rest = rest
        self._grpc = grpc
        self._started = threading.Event()
        self._stopped = threading.Event()
        self._closed = False

    @property
    def server_address(self):
        return self._rest.server_address

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def grpc_port(self):
        return self._grpc.port if self._grpc is not None else None

    @property
    def in_flight(self):
        """지금 처리 중인 요청 수 (REST 와 gRPC)."""
        return self.tracker.in_flight

    def serve_forever(self):
        """gRPC 와 버전 폴링을 시작하고 REST 를 돈다 (``graceful_shutdown`` 까지 돌아오지 않는다)."""
        self.service.versions.start()
        if self._grpc is not None:
            self._grpc.start()
        self._started.set()
        try:
            self._rest.serve()
        finally:
            self._stopped.set()

    def graceful_shutdown(self, drain_timeout=DEFAULT_DRAIN_TIMEOUT_SECONDS):
        """새 연결·RPC 를 그만 받고, 처리 중인 요청이 끝나기를 drain_timeout 초까지 기다린 뒤 멈춘다 (시간 안에 모두
        끝났으면 True). ``serve_forever`` 를 도는 스레드가 아닌 다른 스레드에서 불러야 한다.
        """
        if self._closed:
            return True
        self._closed = True
        self.tracker.shutting_down = True
        grpc_stopped = None
        if self._grpc is not None and self._started.is_set():
            grpc_stopped = self._grpc.stop(drain_timeout)
        if self._started.is_set():
            self._rest.stop(drain_timeout)
        else:
            self._rest.close()
        drained = self.tracker.wait_idle(drain_timeout)
        if self._started.is_set():
            self._stopped.wait(drain_timeout + 5)
        if grpc_stopped is not None:
            grpc_stopped.wait(drain_timeout + 5)
        self.service.versions.stop()
        if self.service.batcher is not None:
            self.service.batcher.close()
        logger.info("server stopped (%s)", "drained" if drained else "drain timed out")
        return drained


def load_versions(model=None, model_base_path=None, model_version=1, poll_seconds=1.0, warmup=True):
    """모델 하나 (버전 하나) 또는 번호 버전 디렉터리의 VersionManager.

    Raises:
      ValueError: 둘 다 또는 둘 다 아닌 경우, 불러올 수 없을 때.
      ImportError: .tflite/.onnx 런타임이 없을 때.
    """
    if (model is None) == (model_base_path is None):
        raise ValueError("give exactly one of a model (--saved_model) or a model base path "
                         "(--model_base_path)")
    if model_base_path is not None:
        return VersionManager.from_base_path(model_base_path, poll_seconds, warmup)
    loaded = servable_lib.load_servable(model, model_version)
    if warmup:
        loaded.warmup()
    return VersionManager.from_servable(loaded)


def _batcher_or_gate(metrics, batching, max_concurrent_predictions):
    """(배처 또는 None, 관문 또는 None): 배칭이면 배처, 아니면 (한도가 있으면) 관문. 큐 길이를 지표에 잇는다."""
    batcher = Batcher(batching, metrics.observe_batch) if batching is not None else None
    gate = None
    if batcher is None and max_concurrent_predictions is not None:
        gate = ModelGate(max_concurrent_predictions)
    if batcher is not None:
        metrics.watch_queue(lambda: batcher.queue_length)
    elif gate is not None:
        metrics.watch_queue(lambda: gate.waiting)
    return batcher, gate


def make_server(model=None, model_name="frcnn", host="127.0.0.1", port=8501,
                max_body_bytes=rest_server.DEFAULT_MAX_BODY_BYTES, model_version=1, warmup=True, *,
                model_base_path=None, poll_seconds=1.0, grpc_port=None, batching=None,
                request_timeout=rest_server.DEFAULT_REQUEST_TIMEOUT_SECONDS,
                keep_alive_seconds=rest_server.DEFAULT_KEEP_ALIVE_SECONDS,
                grpc_max_threads=DEFAULT_MAX_THREADS, max_concurrent_predictions=None,
                version_labels=None, max_image_pixels=None,
                max_images_per_request=DEFAULT_MAX_IMAGES_PER_REQUEST):
    """모델을 불러와 REST (와 gRPC) 서버를 만든다 (아직 serve_forever 는 부르지 않는다).

    Args:
      model: SavedModel 디렉터리, 불러온 SavedModel, .tflite/.onnx 파일 (model_base_path 와 하나만).
      model_name: str, URL·gRPC 의 모델 이름.
      host, port: REST 주소 (port 0 이면 빈 포트).
      max_body_bytes: int, REST 본문과 gRPC 메시지의 최대 바이트 (넘으면 413 / RESOURCE_EXHAUSTED).
      model_version: int, model 로 서빙할 때 알릴 버전. warmup: bool, 버전마다 각 시그니처를 한 번 돌린다.
      model_base_path, poll_seconds: 번호 붙은 버전 디렉터리들의 부모 (최신 버전) 와 다시 보는 간격 (초).
      grpc_port: int 또는 None (None 이면 gRPC 없음, 0 이면 빈 포트). grpc_max_threads: 동시 gRPC 호출 수.
      batching: batching.BatchingOptions 또는 None (배칭 없음).
      request_timeout, keep_alive_seconds: 요청 머리·본문을 기다리는 최대 초, 쉬는 keep-alive 연결의 초.
      max_concurrent_predictions: int 또는 None — 배칭이 없을 때 모델을 동시에 도는 요청 수
        (``gate.ModelGate``; 넘는 요청은 온 순서대로 기다린다). None 이면 묶지 않는다. 배칭이면 쓰지 않는다.
      version_labels: {라벨: 버전 번호} 또는 None — ``/labels/L``, gRPC ``version_label`` 이 가리키는 버전.
      max_image_pixels, max_images_per_request: `limits.InputLimits` (픽셀 예산: None 이면 모델의 값).

    Returns:
      ServingServer.

    Raises:
      ValueError: 모델을 불러올 수 없거나 설정이 잘못되었을 때.
      ImportError: .tflite/.onnx 런타임이 없을 때.
      OSError: 주소에 바인드할 수 없을 때.
    """
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    limits = InputLimits(max_image_pixels, max_images_per_request)
    versions = load_versions(model, model_base_path, model_version, poll_seconds, warmup)
    metrics = ServingMetrics()
    batcher, gate = _batcher_or_gate(metrics, batching, max_concurrent_predictions)
    service = ModelService(versions, model_name, batcher, metrics, gate, version_labels, limits)
    tracker = RequestTracker()
    app = rest_server.build_app(service, tracker, max_body_bytes, request_timeout)
    rest = rest_server.RestServer(app, host, port, keep_alive_seconds, request_timeout)
    try:
        grpc = (GrpcServer(service, tracker, host, grpc_port, max_body_bytes, grpc_max_threads)
                if grpc_port is not None else None)
    except OSError:
        rest.close()
        raise
    return ServingServer(service, rest, grpc, tracker)
