"""서빙 테스트 하네스: 서버를 스레드에서 돌리는 문맥 관리자와 HTTP 요청 한 번, 지표 읽기.

용어: 서버는 ``frcnn.serving.make_server`` 가 만든 ServingServer. 요청마다 새 연결을 연다.
"""

import contextlib
import http.client
import json
import threading

METRICS_PATH = "/monitoring/prometheus/metrics"
TIMEOUT = 30


@contextlib.contextmanager
def running(server):
    """server 를 스레드에서 돌리고, 블록이 끝나면 멈춘다 (처리 중이던 요청이 다 끝났는지도 확인한다)."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        assert server.graceful_shutdown(drain_timeout=10)
        thread.join(timeout=10)


def http_call(server, method, path, body=None, headers=None):
    """요청 하나를 보내고 (상태, 본문 문자열, 헤더) 를 돌려준다. body 가 str·bytes 가 아니면 JSON 으로 보낸다."""
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8"), response.headers
    finally:
        connection.close()


def metrics_text(server):
    """``/monitoring/prometheus/metrics`` 의 본문 (200 과 Prometheus 텍스트 형식인지 확인한다)."""
    status, text, headers = http_call(server, "GET", METRICS_PATH)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return text
