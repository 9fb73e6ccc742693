"""TF Serving 호환 REST 서버 (표준 라이브러리 ``http.server`` 만 사용).

경로 (TF Serving REST API 와 같음):
  GET  /v1/models/NAME[/versions/N]            모델 상태
  GET  /v1/models/NAME[/versions/N]/metadata   시그니처 메타데이터
  POST /v1/models/NAME[/versions/N]:predict    예측 (행 ``instances`` / 열 ``inputs`` 형식)
  GET  /healthz                                 헬스 체크 ``{"status": "ok"}``
오류는 모두 ``{"error": "..."}`` JSON 과 4xx/5xx 상태로 답하고 서버는 계속 돈다.
요청 하나의 인스턴스들은 한 배치로 모델에 들어간다. 스레드마다 연결 하나를 처리하고,
``graceful_shutdown`` 은 새 연결을 받지 않고 처리 중인 요청을 끝낸 뒤 멈춘다 (SIGTERM/SIGINT 처리는 ``tools/serve``).

용어:
  B 배치(요청 하나의 인스턴스 수), N 검출 수.
  박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표 (모델 출력 그대로).
"""

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from frcnn.serving.codec import RequestError, parse_json_body
from frcnn.serving.service import ModelService

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_DRAIN_TIMEOUT_SECONDS = 30.0
HEALTH_PATH = "/healthz"
# /v1/models/NAME[/versions/N][/metadata | :predict]
MODEL_PATH_PATTERN = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>predict))?$")

logger = logging.getLogger(__name__)


class RestServer(ThreadingHTTPServer):
    """모델 하나를 서빙하는 스레드 HTTP 서버. 처리 중 요청 수를 세어 우아한 종료를 돕는다.

    Args:
      address: (host, port) 튜플. port 0 이면 빈 포트를 고른다.
      service: ModelService.
      max_body_bytes: int, 이보다 큰 요청 본문은 413 으로 거절한다.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, service, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
        super().__init__(address, RestRequestHandler)
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.shutting_down = False
        self._in_flight = 0
        self._in_flight_changed = threading.Condition()
        self._serving = threading.Event()
        self._open_connections = set()

    @property
    def url(self):
        """서버의 기본 URL (예: ``http://127.0.0.1:8501``)."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def in_flight(self):
        """지금 처리 중인 요청 수."""
        with self._in_flight_changed:
            return self._in_flight

    def serve_forever(self, poll_interval=0.5):
        """``socketserver`` 의 serve_forever 에 '시작됨' 표시를 더한다."""
        self._serving.set()
        super().serve_forever(poll_interval)

    def process_request(self, request, client_address):
        """연결 소켓을 기억해 두었다가 종료 때 쉬고 있는 keep-alive 연결을 닫는다."""
        with self._in_flight_changed:
            self._open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._in_flight_changed:
            self._open_connections.discard(request)
        super().shutdown_request(request)

    def request_started(self):
        with self._in_flight_changed:
            self._in_flight += 1

    def request_finished(self):
        with self._in_flight_changed:
            self._in_flight -= 1
            self._in_flight_changed.notify_all()

    def graceful_shutdown(self, drain_timeout=DEFAULT_DRAIN_TIMEOUT_SECONDS):
        """새 연결을 그만 받고, 처리 중인 요청이 끝나기를 기다린 뒤 소켓을 닫는다.

        serve_forever 를 도는 스레드가 아닌 다른 스레드에서 불러야 한다.

        Args:
          drain_timeout: float, 처리 중 요청을 기다릴 최대 초.

        Returns:
          bool, 시간 안에 모든 요청이 끝났으면 True.
        """
        self.shutting_down = True
        if self._serving.is_set():
            self.shutdown()
        with self._in_flight_changed:
            drained = self._in_flight_changed.wait_for(lambda: self._in_flight == 0, timeout=drain_timeout)
            idle_connections = list(self._open_connections)
        for connection in idle_connections:
            _close_quietly(connection)
        self.server_close()
        logger.info("server stopped (%s)", "drained" if drained else "drain timed out")
        return drained


def _close_quietly(connection):
    """쉬고 있는 keep-alive 연결의 읽기를 끊어 그 스레드를 끝낸다."""
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class RestRequestHandler(BaseHTTPRequestHandler):
    """TF Serving REST 경로를 ModelService 호출로 잇는 요청 처리기."""

    protocol_version = "HTTP/1.1"
    server_version = "frcnn-serving/1.0"
    timeout = 120  # 쉬는 keep-alive 연결을 닫기까지의 초

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def log_request(self, code="-", size="-"):
        """기본 접근 로그 대신 ``_handle`` 이 요청마다 한 줄을 남긴다."""

    def log_message(self, format, *args):  # noqa: A002 - BaseHTTPRequestHandler 의 이름
        logger.debug("%s - %s", self.address_string(), format % args)

    def _handle(self, method):
        """요청 하나를 처리하고 JSON 으로 답한 뒤 로그 한 줄을 남긴다."""
        start = time.monotonic()
        self.server.request_started()
        try:
            status, payload = self._route(method)
        except RequestError as error:
            status, payload = error.status, {"error": str(error)}
        except Exception as error:  # 서버는 어떤 요청 뒤에도 계속 돈다.
            logger.exception("internal error on %s %s", method, self.path)
            status, payload = 500, {"error": f"Internal error: {type(error).__name__}: {error}"}
        try:
            self._send_json(status, payload, method)
        finally:
            self.server.request_finished()
            logger.info("%s %s %d %.1fms", method, self.path, status, 1000 * (time.monotonic() - start))

    def _route(self, method):
        """경로와 메서드를 보고 (상태 코드, 응답 문서) 를 만든다."""
        path = urlsplit(self.path).path
        if path == HEALTH_PATH:
            self._require_method(method, "GET")
            return 200, {"status": "ok"}
        match = MODEL_PATH_PATTERN.match(path)
        if match is None:
            raise RequestError(f"Malformed request: {method} {path}", status=404)
        service = self.server.service
        service.check_servable(match["name"], match["version"])
        if match["verb"] == "predict":
            self._require_method(method, "POST")
            return 200, service.predict_json(parse_json_body(self._read_body()))
        self._require_method(method, "GET")
        return 200, service.metadata_json() if match["metadata"] else service.status_json()

    def _require_method(self, method, allowed):
        if method != allowed:
            self._allowed_method = allowed
            raise RequestError(f"Method {method} not allowed for {urlsplit(self.path).path}; use {allowed}",
                               status=405)

    def _read_body(self):
        """Content-Length 만큼 본문을 읽는다. 너무 크면 413 (연결은 닫는다)."""
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self.close_connection = True
            raise RequestError("Content-Length header is required", status=411)
        try:
            length = int(length_header)
        except ValueError:
            self.close_connection = True
            raise RequestError(f"invalid Content-Length: {length_header!r}") from None
        if length < 0 or length > self.server.max_body_bytes:
            # 읽지 않은 본문이 다음 요청으로 읽히지 않게 연결을 닫는다.
            self.close_connection = True
            raise RequestError(f"request body of {length} bytes exceeds the limit of "
                               f"{self.server.max_body_bytes} bytes (--max_body_bytes)", status=413)
        return self.rfile.read(length)

    def _send_json(self, status, payload, method):
        """JSON 응답을 보낸다. 종료 중이면 keep-alive 를 끊는다."""
        body = json.dumps(payload).encode("utf-8")
        if self.server.shutting_down:
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 405:
            self.send_header("Allow", getattr(self, "_allowed_method", "GET"))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def make_server(model, model_name="frcnn", host="127.0.0.1", port=8501,
                max_body_bytes=DEFAULT_MAX_BODY_BYTES, model_version=1, warmup=True):
    """SavedModel 을 서빙할 RestServer 를 만든다 (아직 serve_forever 는 부르지 않는다).

    Args:
      model: SavedModel 디렉터리 경로 또는 ``tf.saved_model.load`` 로 불러온 객체.
      model_name: str, URL 의 모델 이름.
      host: str, 바인드할 주소.
      port: int, 바인드할 포트 (0 이면 빈 포트).
      max_body_bytes: int, 요청 본문 최대 바이트 (넘으면 413).
      model_version: int, 상태/메타데이터에 알릴 버전.
      warmup: bool, True 면 시작 전에 각 시그니처를 한 번 실행한다.

    Returns:
      RestServer, ``server.url`` 로 주소를 알 수 있다.

    Raises:
      ValueError: 모델을 불러올 수 없거나 max_body_bytes 가 양수가 아닐 때.
      OSError: 주소에 바인드할 수 없을 때.
    """
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes}")
    service = ModelService(model, model_name, model_version)
    if warmup:
        service.warmup()
    return RestServer((host, port), service, max_body_bytes)
