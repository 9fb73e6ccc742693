"""서버 지표 (Prometheus 텍스트 형식, ``prometheus_client``): ``GET /monitoring/prometheus/metrics``.

서버마다 자기 레지스트리를 가진다 (한 프로세스의 여러 서버, 테스트가 서로 섞이지 않게).

지표:
  frcnn_serving_requests_total{model, signature, protocol, status}   predict 요청 수 (status: OK, NOT_FOUND, …)
  frcnn_serving_request_latency_seconds{model, signature, protocol}  predict 지연 히스토그램
  frcnn_serving_budget_rejections_total{model, protocol}            픽셀 예산·요청당 이미지 수로 거절한 predict 요청 수
  frcnn_serving_batch_size                                          모델에 들어간 배치의 인스턴스 수 히스토그램
  frcnn_serving_queue_length                                        모델을 기다리는 요청 수 (배치 큐 또는 관문의 줄)
  frcnn_serving_request_body_bytes_in_flight                        REST 본문 예산에 잡힌 바이트
  frcnn_serving_model_version{model, version, state}                버전마다 1 (state: AVAILABLE, END, LOADING)

TF Serving 과 같은 이름의 지표도 낸다 (TF Serving 용 대시보드·경보가 그대로 돈다):
  :tensorflow:serving:request_count{model_name, status}
      predict 요청 수 (TF Serving 처럼 ``_total`` 접미사 없이, 그래서 형식은 untyped)
  :tensorflow:serving:request_latency{model_name, API, entrypoint}
      predict 지연 히스토그램, 마이크로초 (API "Predict", entrypoint "REST"/"GRPC", 구간은 TF Serving 의 10 × 1.8^k;
      TF Serving 과 달리 실패한 요청도 넣는다 — 상태별 수는 request_count 에)

용어: protocol 은 "rest" 또는 "grpc".
"""

import threading


from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily, UnknownMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# TF Serving 의 request_latency 구간: 10 µs 부터 1.8 배씩 33 개 (약 10⁹ µs 까지)
TF_SERVING_LATENCY_BUCKETS_USEC = tuple(10 * 1.8 ** power for power in range(33))
TF_SERVING_ENTRYPOINTS = {"rest": "REST", "grpc": "GRPC"}


class _TfServingRequestCount:
    """``:tensorflow:serving:request_count`` — TF Serving 처럼 ``_total`` 없는 이름 (prometheus_client 의 Counter
    는 접미사를 붙이므로 직접 센다)."""

    NAME = ":tensorflow:serving:request_count"

    def __init__(self):
        self._counts = {}
        self._lock = threading.Lock()

    def inc(self, model_name, status):
        with self._lock:
            self._counts[(model_name, status)] = self._counts.get((model_name, status), 0) + 1

    def collect(self):
        family = UnknownMetricFamily(self.NAME, "Number of predict requests (TF Serving's name)",
                                     labels=["model_name", "status"])
        with self._lock:
            counts = sorted(self._counts.items())
        for labels, count in counts:
            family.add_metric(list(labels), count)
        yield family


class _VersionCollector:
    """긁을 때마다 버전 상태를 읽어 내는 수집기."""

    def __init__(self, model_name, statuses):
        self.model_name = model_name
        self.statuses = statuses

    def collect(self):
        family = GaugeMetricFamily("frcnn_serving_model_version",
                                   "Model versions and their state (1 per version)",
                                   labels=["model", "version", "state"])
        for status in self.statuses():
            family.add_metric([self.model_name, str(status.version), status.state], 1)
        yield family


class ServingMetrics:
    """서버 하나의 지표."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self._requests = Counter("frcnn_serving_requests",
                                 "Predict requests by signature, protocol and status",
                                 ["model", "signature", "protocol", "status"], registry=self.registry)
        self._latency = Histogram("frcnn_serving_request_latency_seconds", "Predict request latency",
                                  ["model", "signature", "protocol"], buckets=LATENCY_BUCKETS,
                                  registry=self.registry)
        self._budget_rejections = Counter("frcnn_serving_budget_rejections",
                                          "Predict requests refused by the pixel budget or the images-per-"
                                          "request cap (before the model runs)", ["model", "protocol"],
                                          registry=self.registry)
        self._batch_size = Histogram("frcnn_serving_batch_size", "Instances per batch run by the model",
                                     buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self._tf_serving_requests = _TfServingRequestCount()
        self.registry.register(self._tf_serving_requests)
        self._tf_serving_latency = Histogram(":tensorflow:serving:request_latency",
                                             "Predict request latency in microseconds (TF Serving's name)",
                                             ["model_name", "API", "entrypoint"],
                                             buckets=TF_SERVING_LATENCY_BUCKETS_USEC, registry=self.registry)
        self._queue_length = Gauge("frcnn_serving_queue_length",
                                   "Requests waiting for the model (batching queue or model gate)",
                                   registry=self.registry)

    def watch_body_bytes(self, body_bytes):
        """REST 본문 예산에 잡힌 바이트를 긁을 때마다 body_bytes() 로 읽는다."""
        Gauge("frcnn_serving_request_body_bytes_in_flight", "Bytes of REST request bodies in flight (budget)",
              registry=self.registry).set_function(body_bytes)

    def observe_request(self, model, signature, protocol, status, seconds):
        """predict 요청 하나를 센다 (status: TF Serving 의 상태 코드 이름)."""
        self._requests.labels(model, signature, protocol, status).inc()
        self._latency.labels(model, signature, protocol).observe(seconds)
        self._tf_serving_requests.inc(model, status)
        entrypoint = TF_SERVING_ENTRYPOINTS[protocol]
        self._tf_serving_latency.labels(model, "Predict", entrypoint).observe(1e6 * seconds)

    def observe_budget_rejection(self, model, protocol):
        """픽셀 예산 (또는 요청당 이미지 수) 으로 거절한 predict 요청 하나."""
        self._budget_rejections.labels(model, protocol).inc()

    def observe_batch(self, size):
        """모델에 들어간 배치 하나의 인스턴스 수."""
        self._batch_size.observe(size)

    def watch_queue(self, queue_length):
        """큐 길이를 긁을 때마다 queue_length() 로 읽는다."""
        self._queue_length.set_function(queue_length)

    def watch_versions(self, model_name, statuses):
        """버전 상태를 긁을 때마다 statuses() (VersionStatus 목록) 로 읽는다."""
        self.registry.register(_VersionCollector(model_name, statuses))

    def exposition(self):
        """(본문 바이트, Content-Type) — Prometheus 텍스트 형식."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
