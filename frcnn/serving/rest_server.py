"""TF Serving 호환 REST 서버: Starlette 앱을 uvicorn (ASGI 서버) 이 돌린다.

왜 Starlette + uvicorn 인가: uvicorn 은 asyncio 이벤트 루프 하나로 모든 연결을 다뤄, 아무것도 보내지 않는
연결이나 느린 클라이언트가 스레드를 붙잡지 않는다 (``http.server`` 는 연결마다 스레드 하나). 모델 (TensorFlow,
블로킹 호출) 은 Starlette 의 스레드 풀 (``run_in_threadpool``) 에서 돌아 루프를 막지 않고, 한 프로세스가 모델
하나를 모든 요청·gRPC 와 함께 쓴다 (gunicorn 처럼 프로세스마다 모델을 따로 불러 메모리가 몇 배가 되지 않는다).
uvicorn 은 keep-alive 시간 제한과 우아한 종료 (새 연결 거절, 쉬는 연결 닫기, 처리 중 요청 마무리) 를 갖췄고,
여기서는 두 가지를 더한다: 연결 뒤 (또는 응답 뒤) ``request_timeout`` 안에 요청 머리가 오지 않으면 닫고,
본문이 그 시간 안에 다 오지 않으면 408, ``max_body_bytes`` 를 넘으면 413 (둘 다 연결을 닫는다; 413 은
클라이언트가 읽을 수 있게 ``Expect: 100-continue`` 면 본문 전에, 아니면 본문을 버리며 다 읽은 뒤 답한다). 처리 중인
predict 본문들은 합쳐 ``BODY_BUDGET_BODIES × max_body_bytes`` 바이트까지만 받는다 (본문 예산, 도착한 바이트로
센다; 넘치게 하는 요청은 503 을 받고 연결이 닫힌다 — 동시 연결 수 × 본문 한도만큼 메모리가 늘지 않게).

경로 (TF Serving REST API 와 같음):
  GET  /v1/models/NAME[/versions/N | /labels/L]            모델 상태
  GET  /v1/models/NAME[/versions/N | /labels/L]/metadata   시그니처 메타데이터
  POST /v1/models/NAME[/versions/N | /labels/L]:predict    예측 (행 ``instances`` / 열 ``inputs`` 형식)
  GET  /monitoring/prometheus/metrics                      Prometheus 지표
  GET  /healthz                                            헬스 체크 ``{"status": "ok"}``
오류는 모두 ``{"error": "..."}`` JSON 과 4xx/5xx 상태로 답하고 서버는 계속 돈다.

용어:
  루프(loop): uvicorn 의 asyncio 이벤트 루프 (서버 스레드 하나).
  B 배치(요청 하나의 인스턴스 수); 박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표.
"""

import asyncio
import contextlib
import json
import logging
import re
import socket
import time

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from frcnn.serving.codec import RequestError

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT_SECONDS = 30.0
DEFAULT_KEEP_ALIVE_SECONDS = 15
# 동시 연결·요청의 상한 (넘으면 uvicorn 이 503): 본문을 읽어 둔 채 기다리는 요청이 메모리를 끝없이 쓰지 않게.
MAX_CONCURRENCY = 1024
# 처리 중 predict 본문들이 함께 쓸 수 있는 바이트 = 이 수 × max_body_bytes (기본 16 × 32 MiB = 512 MiB).
BODY_BUDGET_BODIES = 16
# 한도를 넘는 본문을 413 전에 버리며 읽는 최대 바이트 (Expect: 100-continue 가 없을 때; 기본 한도의 4 배).
MAX_DRAIN_BYTES = 4 * DEFAULT_MAX_BODY_BYTES
HEALTH_PATH = "/healthz"
METRICS_PATH = "/monitoring/prometheus/metrics"
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
# /v1/models/NAME[/versions/N | /labels/L][/metadata | :predict]
MODEL_PATH_PATTERN = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>predict))?$")

logger = logging.getLogger(__name__)


class MethodNotAllowed(RequestError):
    """405: 경로는 맞지만 메서드가 다르다 (``allow`` 는 Allow 헤더 값)."""

    def __init__(self, method, path, allow):
        super().__init__(f"Method {method} not allowed for {path}; use {allow}", status=405)
        self.allow = allow


class BodyNotRead(RequestError):
    """본문을 다 읽기 전에 답하는 오류 (408, 413, 본문 예산의 503): 남은 본문이 다음 요청으로 읽히지 않게
    연결을 닫는다."""


class BodyBudget:
    """처리 중 predict 본문의 바이트 예산 (루프 스레드에서만 쓴다).

    도착한 바이트만큼 잡으므로 아무것도 보내지 않는 느린 연결은 예산을 쓰지 않는다. 잡은 바이트는 그 요청의
    응답을 만든 뒤 돌려준다.

    Args:
      limit: int, 함께 잡을 수 있는 최대 바이트.
    """

    def __init__(self, limit):
        self.limit = limit
        self.used = 0

    @contextlib.contextmanager
    def account(self):
        """요청 하나의 계정: ``take(n)`` 으로 잡은 바이트를 블록이 끝날 때 (예외여도) 돌려준다."""
        taken = [0]

        def take(size):
            if self.used + size > self.limit:
                raise BodyNotRead(f"server busy: {self.used} bytes of request bodies are in flight (limit "
                                  f"{self.limit} = {BODY_BUDGET_BODIES} × --max_body_bytes); retry later",
                                  status=503)
            self.used += size
            taken[0] += size

        try:
            yield take
        finally:
            self.used -= taken[0]


def _json_response(status, payload, headers=None):
    body = json.dumps(payload).encode("utf-8")
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def build_app(service, tracker, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
              request_timeout=DEFAULT_REQUEST_TIMEOUT_SECONDS):
    """TF Serving REST 경로를 ModelService 로 잇는 Starlette 앱 (ASGI). tracker 는 service.RequestTracker;
    max_body_bytes 보다 큰 본문은 413, request_timeout 초 안에 다 받지 못한 본문은 408."""
    budget = BodyBudget(BODY_BUDGET_BODIES * max_body_bytes)
    if service.metrics is not None:
        service.metrics.watch_body_bytes(lambda: budget.used)

    async def endpoint(request):
        start = time.monotonic()
        tracker.started()
        headers = {}
        try:
            response = await _dispatch(request, service, max_body_bytes, request_timeout, budget)
        except RequestError as error:
            if isinstance(error, MethodNotAllowed):
                headers["Allow"] = error.allow
            if isinstance(error, BodyNotRead):
                headers["Connection"] = "close"  # 읽지 않은 본문이 다음 요청으로 읽히지 않게
                service.count_rejection("rest", error.code, time.monotonic() - start)
            response = _json_response(error.status, {"error": str(error)}, headers)
        except Exception as error:  # 서버는 어떤 요청 뒤에도 계속 돈다.
            logger.exception("internal error on %s %s", request.method, request.url.path)
            response = _json_response(500, {"error": f"Internal error: {type(error).__name__}: {error}"})
        finally:
            tracker.finished()
        if tracker.shutting_down:
            response.headers["Connection"] = "close"
        logger.info("%s %s %d %.1fms", request.method, request.url.path, response.status_code,
                    1000 * (time.monotonic() - start))
        return response

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=METHODS)])


async def _dispatch(request, service, max_body_bytes, request_timeout, budget):
    """경로와 메서드를 보고 응답을 만든다 (모델 호출은 스레드 풀에서)."""
    method, path = request.method, request.url.path
    if path == HEALTH_PATH:
        _require_method(method, path, "GET")
        return _json_response(200, {"status": "ok"})
    if path == METRICS_PATH and service.metrics is not None:
        _require_method(method, path, "GET")
        body, content_type = service.metrics.exposition()
        return Response(body, media_type=content_type)
    match = MODEL_PATH_PATTERN.match(path)
    if match is None:
        raise RequestError(f"Malformed request: {method} {path}", status=404)
    name, label = match["name"], match["label"]
    version = int(match["version"]) if match["version"] else None
    if match["verb"] == "predict":
        _require_method(method, path, "POST")
        with budget.account() as take:
            body = await _read_body(request, max_body_bytes, request_timeout, take)
            payload = await run_in_threadpool(_encoded_prediction, service, body, name, version, label)
        return Response(payload, media_type="application/json")
    _require_method(method, path, "GET")
    if match["metadata"]:
        return _json_response(200, await run_in_threadpool(service.metadata_json, name, version, label))
    return _json_response(200, service.status_json(name, version))  # 라벨은 보지 않는다 (TF Serving 과 같이)


def _encoded_prediction(service, body, name, version, label):
    """predict 한 번과 응답 JSON 인코딩 (둘 다 스레드 풀에서: 루프를 막지 않게)."""
    return json.dumps(service.predict_json(body, name, version, label)).encode("utf-8")


def _require_method(method, path, allowed):
    if method != allowed:
        raise MethodNotAllowed(method, path, allowed)


async def _read_body(request, max_body_bytes, request_timeout, take):
    """본문을 한도·시간 제한 안에서 읽는다. 조각마다 take(바이트 수) 로 본문 예산에 잡는다.

    Raises:
      BodyNotRead: 한도를 넘으면 413, 시간 안에 다 오지 않으면 408, 예산이 모자라면 503.
      RequestError: 클라이언트가 본문을 다 보내기 전에 연결을 끊으면 400 (받을 사람은 없다; 로그에만).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        await _drain_before_413(request, int(declared), request_timeout)
        raise _too_large(int(declared), max_body_bytes)
    chunks = []

    async def read_all():  # asyncio.timeout 은 Python 3.11 부터라 3.10 에서도 되는 wait_for 를 쓴다
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise _too_large(size, max_body_bytes)
            take(len(chunk))
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read_all(), request_timeout)
    except asyncio.TimeoutError as error:
        raise BodyNotRead(f"request body not received within {request_timeout:g} s "
                          "(--request_timeout_seconds)", status=408) from error
    except ClientDisconnect as error:
        raise RequestError("client disconnected before sending the whole body") from error
    return b"".join(chunks)


async def _drain_before_413(request, declared, request_timeout):
    """413 을 클라이언트가 읽을 수 있게: ``Expect: 100-continue`` 면 본문을 기다리지 않고 곧바로 답하고 (클라이언트는
    본문을 보내기 전에 413 을 읽는다), 아니면 본문을 버리며 (메모리에 두지 않는다) 끝까지 읽은 뒤 답한다 — 보내는
    중에 연결이 닫혀 클라이언트가 응답 대신 "connection reset" 을 받지 않게. 버리는 양은 MAX_DRAIN_BYTES,
    시간은 request_timeout 까지다 (더 크면 곧바로 답하고 닫는다)."""
    if "100-continue" in request.headers.get("expect", "").lower() or declared > MAX_DRAIN_BYTES:
        return

    async def discard():
        async for _ in request.stream():
            pass

    try:
        await asyncio.wait_for(discard(), request_timeout)
    except (asyncio.TimeoutError, ClientDisconnect):
        pass


def _too_large(size, limit):
    return BodyNotRead(f"request body of {size} bytes exceeds the limit of {limit} bytes (--max_body_bytes)",
                       status=413)


def _protocol_class(request_timeout):
    """uvicorn 의 h11 프로토콜에 요청 머리 시간 제한과 JSON 400 응답을 더한 클래스."""

    class TimedH11Protocol(H11Protocol):
        """연결 뒤 (또는 응답 뒤) request_timeout 안에 요청 머리가 다 오지 않으면 연결을 닫는다."""

        _head_deadline = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm_head_deadline()

        def on_response_complete(self):
            super().on_response_complete()
            self._arm_head_deadline()

        def connection_lost(self, exc):
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            super().connection_lost(exc)

        def _arm_head_deadline(self):
            if self._head_deadline is not None:
                self._head_deadline.cancel()
            if not self.transport.is_closing():
                self._head_deadline = self.loop.call_later(request_timeout, self._close_if_waiting)

        def _close_if_waiting(self):
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg):
            """uvicorn 의 text/plain 400 대신 다른 오류들과 같은 ``{"error": ...}`` JSON."""
            body = json.dumps({"error": msg}).encode("utf-8")
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    return TimedH11Protocol


class _Server(uvicorn.Server):
    """신호 처리기를 설치하지 않는 uvicorn 서버 (신호는 ``tools/serve`` 가 다룬다)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def bind_socket(host, port):
    """듣기 소켓을 만든다 (port 0 이면 빈 포트).

    프로토콜을 IPPROTO_TCP 로 밝히고 TCP_NODELAY 를 켠다: asyncio 는 proto 가 0 인 소켓에는 TCP_NODELAY 를 켜지
    않아, 응답 머리와 본문이 따로 나가면 Nagle 과 클라이언트의 지연 ACK 가 만나 응답마다 ≈ 40 ms 가 붙는다.

    Raises:
      OSError: 바인드할 수 없을 때.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class RestServer:
    """uvicorn 으로 Starlette 앱을 돌리는 REST 서버 하나 (소켓은 만들 때 바인드한다).

    Args:
      app: ASGI 앱 (``build_app``).
      host, port: 바인드할 주소.
      keep_alive_seconds: int, 쉬는 keep-alive 연결을 닫기까지의 초.
      request_timeout: float, 요청 머리를 기다리는 최대 초.
    """

    def __init__(self, app, host, port, keep_alive_seconds=DEFAULT_KEEP_ALIVE_SECONDS,
                 request_timeout=DEFAULT_REQUEST_TIMEOUT_SECONDS):
        self.socket = bind_socket(host, port)
        config = uvicorn.Config(app, http=_protocol_class(request_timeout), lifespan="off", log_config=None,
                                access_log=False, timeout_keep_alive=keep_alive_seconds,
                                limit_concurrency=MAX_CONCURRENCY)
        self._server = _Server(config)

    @property
    def server_address(self):
        return self.socket.getsockname()

    def serve(self):
        """종료를 부탁받을 때까지 돌린다 (이 스레드가 이벤트 루프를 돈다)."""
        self._server.run(sockets=[self.socket])

    def stop(self, drain_timeout):
        """새 연결을 그만 받고, 처리 중 요청을 drain_timeout 초까지 기다린 뒤 ``serve`` 가 돌아오게 한다."""
        self._server.config.timeout_graceful_shutdown = drain_timeout
        self._server.should_exit = True

    def close(self):
        """한 번도 돌지 않은 서버의 소켓을 닫는다."""
        self.socket.close()
