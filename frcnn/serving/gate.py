"""모델 관문(gate): 배칭이 없을 때 모델을 동시에 도는 요청 수를 묶고, 기다리는 요청은 온 순서대로 들여보낸다.

왜: 동시 요청이 모두 한꺼번에 모델에 들어가면 연산들이 코어를 번갈아 나눠 쓰여 (processor sharing) 요청마다
지연이 제 계산량 × 동시 요청 수로 늘어난다 — 큰 이미지 하나가 p99 를 끌어올린다. 관문은 코어를 채울 만큼만
(기본 2 × 코어 수: 한 요청이 파이썬 쪽 일 — JSON·base64 — 을 하는 동안 다른 요청이 코어를 쓴다) 들여보내고
나머지는 줄 세워 (FIFO), 처리량은 같고 꼬리 지연이 짧다. cpu_small, 8 클라이언트: 관문 없이 231.6 요청/초,
p99 66 ms; 관문 4 칸 227.0 요청/초, p99 50 ms (benchmarks/serve_results.md 의 분해 표).

기다리는 요청 수는 요청 스레드 수 (REST 스레드 풀, ``--grpc_max_threads``) 로 묶인다 — 관문은 메모리를 늘리지
않는다. 배칭이 켜지면 배처의 ``num_batch_threads`` 가 같은 일을 하므로 관문을 쓰지 않는다.

용어:
  칸(slot): 모델을 돌 권리 하나. 끝나면 줄의 맨 앞 요청에 곧바로 넘긴다 (새로 온 요청이 새치기하지 못한다).
"""

import collections
import contextlib
import threading


class ModelGate:
    """칸이 ``slots`` 개인 FIFO 관문.

    Args:
      slots: int > 0, 모델을 동시에 돌 수 있는 요청 수.
    """

    def __init__(self, slots):
        if slots <= 0:
            raise ValueError(f"model gate slots must be positive, got {slots}")
        self.slots = slots
        self._lock = threading.Lock()
        self._free = slots
        self._waiters = collections.deque()  # 기다리는 요청마다 threading.Event

    @property
    def waiting(self):
        """줄에서 기다리는 요청 수."""
        with self._lock:
            return len(self._waiters)

    @contextlib.contextmanager
    def slot(self):
        """칸 하나를 얻어 (줄이 있으면 차례를 기다려) 블록을 돌고, 끝나면 (예외여도) 돌려준다."""
        turn = None
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
            else:
                turn = threading.Event()
                self._waiters.append(turn)
        if turn is not None:
            try:
                turn.wait()  # 칸은 넘겨준 쪽이 이미 세어 두었다
            except BaseException:
                self._abandon(turn)  # 기다리다 끊긴 요청이 칸을 잃게 하지 않는다
                raise
        try:
            yield
        finally:
            self._release()

    def _abandon(self, turn):
        """기다리기를 그만둔 요청: 줄에 있으면 빠지고, 그새 칸을 넘겨받았으면 그 칸을 돌려준다."""
        with self._lock:
            if turn in self._waiters:
                self._waiters.remove(turn)
                return
        self._release()

    def _release(self):
        with self._lock:
            if self._waiters:
                self._waiters.popleft().set()  # 칸을 줄의 맨 앞에 그대로 넘긴다
            else:
                self._free += 1
