"""요청들을 모아 한 배치로 모델에 넣는 배처 (TF Serving 의 ``--enable_batching`` 과 같은 손잡이).

같은 servable·같은 시그니처·같은 인스턴스 모양(문자열 입력은 모양 [B] 라 크기가 달라도 같음)의 요청만 한
배치로 잇는다. 이렇게 모은 배치의 각 이미지 검출은 혼자 보낸 것과 같다: ``serving_default`` 는 같은 크기
이미지만 모이고, ``serve_bytes``/``serve_examples`` 는 그래프 안에서 이미지마다 제 크기로 검출한다
(``tf.map_fn``; 패딩이 없다).

배치는 (1) 모인 인스턴스가 ``max_batch_size`` 에 이르거나 (2) 가장 오래된 요청이 ``batch_timeout_micros``
기다렸을 때 떠난다. 큐는 ``max_enqueued_batches × max_batch_size`` 인스턴스로 묶여, 차면 새 요청은 곧바로
503 / ``UNAVAILABLE`` 로 거절된다 (메모리가 끝없이 늘지 않는다). 배치 안 한 요청이 입력 탓으로 실패하면
(예: 디코딩할 수 없는 이미지) 그 배치의 요청들을 하나씩 다시 돌려 그 요청만 400 을 받는다.

용어:
  작업(task): 요청 하나의 입력 (인스턴스 B 개), 결과를 기다리는 이벤트.
  키(key): (servable, 시그니처, 입력마다 (dtype, 인스턴스 모양)) — 같은 키의 작업만 한 배치가 된다.
  B 배치 (인스턴스 수).
"""

import dataclasses
import logging
import threading
import time

import numpy as np

from frcnn.serving.codec import RequestError

QUEUE_FULL_MESSAGE = "The batch scheduling queue to which this task was submitted is full"

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving 의 batching_parameters 와 같은 이름의 설정.

    Attributes:
      max_batch_size: int, 한 배치의 최대 인스턴스 수.
      batch_timeout_micros: int, 가장 오래된 요청이 배치를 기다리는 최대 마이크로초 (0: 모인 만큼 곧바로).
      max_enqueued_batches: int, 큐에 기다릴 수 있는 배치 수 (인스턴스로는 이 값 × max_batch_size).
      num_batch_threads: int, 배치를 동시에 돌리는 스레드 수.
    """

    max_batch_size: int = 8
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 16
    num_batch_threads: int = 2

    def __post_init__(self):
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_timeout_micros < 0:
            raise ValueError(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_micros}")


class _Task:
    """요청 하나: 입력, 크기, 키, 결과 (outputs 또는 error)."""

    def __init__(self, servable, signature_name, inputs):
        self.servable = servable
        self.signature_name = signature_name
        self.inputs = inputs
        self.size = len(next(iter(inputs.values())))
        instance_shapes = tuple((name, array.dtype.str, array.shape[1:])
                                for name, array in sorted(inputs.items()))
        self.key = (id(servable), signature_name, instance_shapes)
        self.enqueued_at = time.monotonic()
        self.done = threading.Event()
        self.outputs = None
        self.error = None


class Batcher:
    """요청들을 키별 큐에 모아 배치 스레드들이 돌린다.

    Args:
      options: BatchingOptions.
      on_batch: 배치 하나를 돌릴 때마다 그 인스턴스 수로 부르는 함수 (지표), 또는 None.
    """

    def __init__(self, options, on_batch=None):
        self.options = options
        self._on_batch = on_batch or (lambda size: None)
        self._capacity = options.max_enqueued_batches * options.max_batch_size
        self._queues = {}  # 키 → [작업, ...] (들어온 순)
        self._queued = 0  # 큐에 있는 인스턴스 수
        self._condition = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"batch-{index}", daemon=True)
                         for index in range(options.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    @property
    def queue_length(self):
        """큐에서 기다리는 요청 수."""
        with self._condition:
            return sum(len(tasks) for tasks in self._queues.values())

    def run(self, servable, signature_name, inputs):
        """요청 하나를 큐에 넣고 그 결과 (출력 이름 → [B, ...]) 를 기다린다 (servable.run 과 같은 꼴).

        Raises:
          RequestError: 큐가 찼거나 배처가 멈췄을 때 (503), 모델이 입력을 거부했을 때 (400).
        """
        task = _Task(servable, signature_name, inputs)
        with self._condition:
            if self._closed:
                raise RequestError("the server is shutting down", status=503)
            if self._queued and self._queued + task.size > self._capacity:
                raise RequestError(QUEUE_FULL_MESSAGE, status=503)
            self._queues.setdefault(task.key, []).append(task)
            self._queued += task.size
            self._condition.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def close(self):
        """큐에 남은 배치를 끝까지 돌리고 배치 스레드들을 멈춘다."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self):
        """배치 스레드: 떠날 배치를 골라 돌리기를 큐가 닫히고 빌 때까지 되풀이한다."""
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self):
        """떠날 준비가 된 배치 (가득 찼거나 기한이 지난 키 중 가장 오래된 것) 를 꺼낸다. 닫히고 비면 None."""
        timeout = self.options.batch_timeout_micros / 1e6
        with self._condition:
            while True:
                if not self._queues:
                    if self._closed:
                        return None
                    self._condition.wait()
                    continue
                now = time.monotonic()
                deadlines = {key: tasks[0].enqueued_at + timeout for key, tasks in self._queues.items()}
                ready = [key for key, tasks in self._queues.items()
                         if self._closed or deadlines[key] <= now
                         or sum(task.size for task in tasks) >= self.options.max_batch_size]
                if ready:
                    return self._take(min(ready, key=deadlines.get))
                self._condition.wait(min(deadlines.values()) - now)

    def _take(self, key):
        """키의 큐 앞에서 max_batch_size 를 넘지 않게 작업들을 꺼낸다 (적어도 하나)."""
        tasks = self._queues[key]
        count, size = 0, 0
        while count < len(tasks) and (count == 0 or size + tasks[count].size <= self.options.max_batch_size):
            size += tasks[count].size
            count += 1
        batch, self._queues[key] = tasks[:count], tasks[count:]
        if not self._queues[key]:
            del self._queues[key]
        self._queued -= size
        return batch

    def _execute(self, batch):
        """작업들을 이어 붙여 한 번 돌리고 결과를 나눠 준다. 입력 탓 실패면 하나씩 다시 돌린다."""
        first = batch[0]
        sizes = [task.size for task in batch]
        try:
            inputs = {name: np.concatenate([task.inputs[name] for task in batch]) for name in first.inputs}
            self._on_batch(sum(sizes))
            outputs = first.servable.run(first.signature_name, inputs)
            parts = _split_outputs(outputs, sizes)
        except RequestError as error:
            if len(batch) > 1:
                for task in batch:
                    self._execute([task])
                return
            first.error = error
        except Exception as error:  # noqa: BLE001 - 기다리는 요청에게 넘겨 500 으로 답하게 한다.
            logger.exception("batch of %d failed", sum(sizes))
            for task in batch:
                task.error = error
        else:
            for task, part in zip(batch, parts):
                task.outputs = part
        for task in batch:
            task.done.set()


def _split_outputs(outputs, sizes):
    """배치 출력을 작업마다의 출력으로 나눈다.

    Raises:
      ValueError: 출력의 첫 차원이 배치 크기가 아닐 때.
    """
    total = sum(sizes)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise ValueError(f"output '{name}' has shape {list(array.shape)}, not a batch of {total}")
    offsets = np.cumsum(sizes)[:-1]
    split = {name: np.split(array, offsets) for name, array in outputs.items()}
    return [{name: parts[index] for name, parts in split.items()} for index in range(len(sizes))]
