"""서빙 테스트 공용: 서버를 스레드에서 돌리고 끝나면 우아하게 멈추는 문맥 관리자.

용어: 서버는 ``frcnn.serving.make_server`` 가 만든 ServingServer.
"""

import contextlib
import threading


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
