"""지표 테스트: REST·gRPC predict 요청 뒤 ``/monitoring/prometheus/metrics`` 를 prometheus_client 의 파서 (Prometheus
텍스트 형식의 독립된 읽는 쪽) 로 읽어, 보낸 요청 수와 상태·프로토콜·시그니처별 값이 맞는지 본다. TF Serving 과
같은 이름의 지표 (``:tensorflow:serving:request_count``, ``…:request_latency``) 도 본다.

용어: SavedModel 은 conftest.py 의 작은 검출기.
"""

import base64
import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from frcnn.serving import make_server
from tests.serving.harness import http_call, metrics_text, running

MODEL_NAME = "tiny"
PNG = tf.io.encode_png(np.zeros([6, 8, 3], np.uint8)).numpy()


@pytest.fixture(scope="module")
def server(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, grpc_port=0)) as serving:
        yield serving


def _samples(server):
    """{(샘플 이름, 정렬된 라벨 튜플): 값} — 파서가 읽은 그대로."""
    text = metrics_text(server)
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_requests_are_counted_by_signature_protocol_and_status(server):
    good = json.dumps({"signature_name": "serve_bytes",
                       "instances": [{"b64": base64.b64encode(PNG).decode()}]})
    for _ in range(2):
        assert http_call(server, "POST", f"/v1/models/{MODEL_NAME}:predict", good)[0] == 200
    bad = json.dumps({"signature_name": "nope", "instances": [1]})
    assert http_call(server, "POST", f"/v1/models/{MODEL_NAME}:predict", bad)[0] == 400
    request = predict_pb2.PredictRequest(inputs={"image_bytes": tf.make_tensor_proto([PNG])})
    request.model_spec.name, request.model_spec.signature_name = MODEL_NAME, "serve_bytes"
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)

    samples = _samples(server)

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("frcnn_serving_requests_total", model=MODEL_NAME, signature="serve_bytes", protocol="rest",
                 status="OK") == 2
    assert value("frcnn_serving_requests_total", model=MODEL_NAME, signature="", protocol="rest",
                 status="INVALID_ARGUMENT") == 1
    assert value("frcnn_serving_requests_total", model=MODEL_NAME, signature="serve_bytes", protocol="grpc",
                 status="OK") == 1
    assert value("frcnn_serving_request_latency_seconds_count", model=MODEL_NAME, signature="serve_bytes",
                 protocol="rest") == 2
    assert value("frcnn_serving_model_version", model=MODEL_NAME, version="1", state="AVAILABLE") == 1
    # TF Serving 의 이름과 라벨
    assert value(":tensorflow:serving:request_count", model_name=MODEL_NAME, status="OK") == 3
    assert value(":tensorflow:serving:request_count", model_name=MODEL_NAME, status="INVALID_ARGUMENT") == 1
    rest = {"model_name": MODEL_NAME, "API": "Predict", "entrypoint": "REST"}
    assert value(":tensorflow:serving:request_latency_count", **rest) == 3
    assert value(":tensorflow:serving:request_latency_count", model_name=MODEL_NAME, API="Predict",
                 entrypoint="GRPC") == 1
    # 구간은 마이크로초: 요청이 10 µs 안에 끝날 수는 없고, 100 초 (10⁸ µs) 안에는 모두 끝났다
    assert value(":tensorflow:serving:request_latency_bucket", le="10.0", **rest) == 0
    late = [count for (name, labels), count in samples.items()
            if name == ":tensorflow:serving:request_latency_bucket" and dict(labels)["entrypoint"] == "REST"
            and float(dict(labels)["le"]) >= 1e8]
    assert late and all(count == 3 for count in late)
