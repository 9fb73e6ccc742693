"""frcnn.serving.gate 테스트: 칸 수만큼만 모델에 들어가고, 기다린 요청은 온 순서대로, 예외에도 칸을 돌려준다.

시간을 재지 않는다: 막힌 블록 (Event) 과 줄 길이 (``waiting``) 로 순서를 정한다. 서버 테스트는 배칭 없이
``max_concurrent_predictions=1`` 로 띄운 서버에 REST 요청 둘을 보내, 둘째가 첫째가 끝날 때까지 모델 밖에서
기다리고 (지표의 줄 길이 1) 둘 다 200 을 받는지 본다.
"""

import json
import threading

import pytest
import tensorflow as tf

from frcnn.serving import make_server
from frcnn.serving.gate import ModelGate
from frcnn.serving.servable import Servable
from tests.serving.harness import http_call, metrics_text

TIMEOUT = 30


def _wait_until(condition):
    """condition() 이 참이 될 때까지 (TIMEOUT 초까지) 기다린다."""
    done = threading.Event()
    for _ in range(TIMEOUT * 100):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")


def _enter(gate, name, order, release):
    """칸을 얻으면 이름을 적고 release 가 열릴 때까지 칸을 쥔다."""
    with gate.slot():
        order.append(name)
        release.wait(TIMEOUT)


def _thread(gate, name, order, release):
    return threading.Thread(target=_enter, args=(gate, name, order, release), daemon=True)


def test_waiters_enter_in_arrival_order():
    gate, order, release = ModelGate(1), [], threading.Event()
    threads = [_thread(gate, name, order, release) for name in "abcd"]
    threads[0].start()
    _wait_until(lambda: order == ["a"])
    for count, thread in enumerate(threads[1:], start=1):
        thread.start()
        _wait_until(lambda count=count: gate.waiting == count)  # 줄에 선 뒤에 다음을 보낸다
    release.set()
    for thread in threads:
        thread.join(TIMEOUT)
    assert order == ["a", "b", "c", "d"] and gate.waiting == 0


def test_at_most_slots_run_at_once_and_a_newcomer_waits_its_turn():
    gate, order, release = ModelGate(2), [], threading.Event()
    threads = [_thread(gate, name, order, release) for name in "abc"]
    for thread in threads:
        thread.start()
    _wait_until(lambda: len(order) == 2 and gate.waiting == 1)  # 둘은 칸 안, 하나는 줄에
    release.set()
    for thread in threads:
        thread.join(TIMEOUT)
    assert sorted(order) == ["a", "b", "c"]


def test_an_exception_gives_the_slot_back():
    gate = ModelGate(1)
    with pytest.raises(RuntimeError):
        with gate.slot():
            raise RuntimeError("model failed")
    entered = threading.Event()

    def take():
        with gate.slot():
            entered.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert entered.is_set() and gate.waiting == 0


def test_an_abandoned_wait_leaves_no_slot_lost():
    gate = ModelGate(1)
    with gate.slot():
        # 줄에 선 채 그만둔 요청은 줄에서 빠진다
        queued = threading.Event()
        gate._waiters.append(queued)
        gate._abandon(queued)
        assert gate.waiting == 0
        # 칸을 넘겨받은 뒤 그만둔 요청은 그 칸을 돌려준다
        handed = threading.Event()
        gate._waiters.append(handed)
    assert handed.is_set()  # 블록이 끝나며 칸이 handed 에 넘어갔다
    gate._abandon(handed)
    entered, done = [], threading.Event()
    done.set()
    thread = threading.Thread(target=_enter, args=(gate, "next", entered, done), daemon=True)
    thread.start()
    _wait_until(lambda: entered == ["next"])  # 칸이 돌아와 다음 요청이 곧바로 들어간다


def test_slots_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        ModelGate(0)


class _BlockingServable(Servable):
    """입력을 그대로 돌려주는 가짜 servable; 모델 안의 요청 수를 세고 release 가 열릴 때까지 막힌다."""

    signatures = {"echo": ({"x": tf.TensorSpec([None], tf.int64)}, {"y": tf.TensorSpec([None], tf.int64)})}

    def __init__(self):
        self.release = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self._lock = threading.Lock()

    def _call(self, signature_name, inputs):
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.release.wait(TIMEOUT)
        with self._lock:
            self.inside -= 1
        return {"y": inputs["x"]}


def test_server_without_batching_queues_requests_beyond_the_limit():
    servable = _BlockingServable()
    server = make_server(servable, "echo", "127.0.0.1", 0, warmup=False, max_concurrent_predictions=1)
    serve_thread = threading.Thread(target=server.serve_forever, daemon=True)
    serve_thread.start()
    results = []
    body = json.dumps({"signature_name": "echo", "instances": [1]})
    path = "/v1/models/echo:predict"
    clients = [threading.Thread(target=lambda: results.append(http_call(server, "POST", path, body)[:2]))
               for _ in range(2)]
    try:
        for client in clients:
            client.start()
        _wait_until(lambda: servable.inside == 1 and server.service.gate.waiting == 1)
        assert "frcnn_serving_queue_length 1.0" in metrics_text(server)
        servable.release.set()
        for client in clients:
            client.join(TIMEOUT)
        assert [status for status, _ in results] == [200, 200]
        assert all(json.loads(payload) == {"predictions": [1]} for _, payload in results)
        assert servable.most_inside == 1
    finally:
        servable.release.set()
        assert server.graceful_shutdown(drain_timeout=10)
        serve_thread.join(timeout=10)
