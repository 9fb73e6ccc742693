"""frcnn.serving.batching 테스트: 요청들이 한 배치로 모이고, 결과가 혼자 보낸 것과 같고, 큐가 차면 503 / UNAVAILABLE.

가짜 servable (numpy 로 입력 합을 돌려주고 받은 배치 크기를 적는다) 로 배치가 모이는 규칙을, conftest.py 의
작은 SavedModel 로 크기가 다른 이미지의 serve_bytes 배치가 혼자 보낸 검출과 같음을 본다. 시간을 재지 않는다:
배치가 떠나는 조건 (가득 참) 과 막힌 모델 (Event) 로 순서를 정한다.

용어: B 배치 (인스턴스 수), 키: (servable, 시그니처, 인스턴스 모양).
"""

import base64
import http.client
import json
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from frcnn.serving import BatchingOptions, make_server
from frcnn.serving.batching import Batcher
from frcnn.serving.codec import RequestError
from frcnn.serving.servable import Servable
from tests.serving.harness import http_call, metrics_text

LONG_TIMEOUT_MICROS = 60 * 1000 * 1000  # 가득 찰 때만 떠나게


class SumServable(Servable):
    """입력 x [B, K] 의 행 합 [B] 을 내는 가짜 servable. 음수가 있으면 입력 탓 오류; gate 가 열릴 때까지 막힌다."""

    signatures = {"sum": ({"x": tf.TensorSpec([None, None], tf.int64)},
                          {"total": tf.TensorSpec([None], tf.int64)})}

    def __init__(self):
        self.batch_sizes = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)

    def _call(self, signature_name, inputs):
        self.entered.release()
        self.gate.wait(30)
        self.batch_sizes.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise RequestError("negative input")
        return {"total": inputs["x"].sum(axis=1)}


def _run_all(batcher, servable, arrays):
    """배열마다 스레드 하나로 batcher.run 을 부르고 (결과 또는 예외) 목록을 돌려준다."""
    results = [None] * len(arrays)

    def call(index):
        try:
            results[index] = batcher.run(servable, "sum", {"x": arrays[index]})["total"]
        except RequestError as error:
            results[index] = error

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(arrays))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_requests_of_one_key_form_full_batches_with_their_own_answers():
    servable = SumServable()
    batcher = Batcher(BatchingOptions(max_batch_size=4, batch_timeout_micros=LONG_TIMEOUT_MICROS,
                                      num_batch_threads=1))
    arrays = [np.array([[index, 1]]) for index in range(4)] + [np.array([[10, 20], [30, 40]])] * 2
    results = _run_all(batcher, servable, arrays)
    batcher.close()
    for array, result in zip(arrays, results):
        np.testing.assert_array_equal(result, array.sum(axis=1))
    assert sorted(servable.batch_sizes) == [4, 4]  # 1+1+1+1 과 2+2 (둘 다 가득 차서 떠남)


def test_different_shapes_are_not_batched_together():
    servable = SumServable()
    batcher = Batcher(BatchingOptions(max_batch_size=2, batch_timeout_micros=LONG_TIMEOUT_MICROS,
                                      num_batch_threads=1))
    arrays = [np.array([[1, 2]]), np.array([[1, 2, 3]]), np.array([[3, 4]]), np.array([[4, 5, 6]])]
    results = _run_all(batcher, servable, arrays)
    batcher.close()
    assert [result.tolist() for result in results] == [[3], [6], [7], [15]]
    assert servable.batch_sizes == [2, 2]


def test_a_bad_request_fails_alone():
    servable = SumServable()
    batcher = Batcher(BatchingOptions(max_batch_size=3, batch_timeout_micros=LONG_TIMEOUT_MICROS,
                                      num_batch_threads=1))
    results = _run_all(batcher, servable, [np.array([[1]]), np.array([[-1]]), np.array([[5]])])
    batcher.close()
    assert results[0].tolist() == [1] and results[2].tolist() == [5]
    assert isinstance(results[1], RequestError) and results[1].status == 400
    assert servable.batch_sizes[0] == 3 and sorted(servable.batch_sizes[1:]) == [1, 1, 1]


def test_close_runs_what_is_queued_then_refuses():
    servable = SumServable()
    batcher = Batcher(BatchingOptions(max_batch_size=8, batch_timeout_micros=LONG_TIMEOUT_MICROS))
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(batcher.run(servable, "sum", {"x": np.array([[2]])})))
    thread.start()
    while batcher.queue_length < 1:  # 가득 차지 않아 큐에서 기다린다
        threading.Event().wait(0.01)
    batcher.close()
    thread.join(timeout=10)
    assert result["total"].tolist() == [2]
    with pytest.raises(RequestError, match="shutting down"):
        batcher.run(servable, "sum", {"x": np.array([[1]])})


def test_queue_full_answers_503_and_unavailable():
    servable = SumServable()
    servable.gate.clear()
    options = BatchingOptions(max_batch_size=1, batch_timeout_micros=0, max_enqueued_batches=1,
                              num_batch_threads=1)
    server = make_server(servable, "sum", "127.0.0.1", 0, warmup=False, grpc_port=0, batching=options)
    serve_thread = threading.Thread(target=server.serve_forever, daemon=True)
    serve_thread.start()
    blocked = [threading.Thread(target=lambda: _rest_sum(server, [[1]])) for _ in range(2)]
    try:
        blocked[0].start()
        assert servable.entered.acquire(timeout=30)  # 첫 요청이 모델 안에서 막혔다
        blocked[1].start()
        while server.service.batcher.queue_length < 1:  # 둘째 요청이 큐를 채운다
            threading.Event().wait(0.01)
        status, payload = _rest_sum(server, [[1]])
        assert status == 503 and "queue" in payload["error"]
        request = predict_pb2.PredictRequest(inputs={"x": tf.make_tensor_proto(np.array([[1]]))})
        request.model_spec.name, request.model_spec.signature_name = "sum", "sum"
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as caught:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        metrics = metrics_text(server)
        rejected = ('frcnn_serving_requests_total{model="sum",protocol="rest",signature="sum",'
                    'status="UNAVAILABLE"}')
        assert f"{rejected} 1.0" in metrics
        assert "frcnn_serving_queue_length 1.0" in metrics
    finally:
        servable.gate.set()
        for thread in blocked:
            thread.join(timeout=30)
        assert server.graceful_shutdown(drain_timeout=10)
        serve_thread.join(timeout=10)
    assert servable.batch_sizes == [1, 1]


def _rest_sum(server, rows):
    status, text, _ = http_call(server, "POST", "/v1/models/sum:predict",
                                {"signature_name": "sum", "instances": rows})
    return status, json.loads(text)


def _bright_png(height, width, box):
    image = np.zeros([height, width, 3], np.uint8)
    ymin, xmin, ymax, xmax = box
    image[ymin:ymax, xmin:xmax] = 255
    return tf.io.encode_png(image).numpy()


def test_batched_images_of_different_sizes_equal_their_solo_detections(saved_model_dir, loaded_model):
    """serve_bytes 의 크기가 다른 이미지들이 한 배치로 모여도 혼자 보낸 검출과 같다 (배치 크기는 지표로 확인)."""
    images = [_bright_png(8, 10, (2, 3, 5, 9)), _bright_png(30, 12, (5, 1, 29, 4)),
              _bright_png(16, 16, (0, 0, 4, 4)), _bright_png(9, 21, (1, 2, 8, 20))]
    options = BatchingOptions(max_batch_size=len(images), batch_timeout_micros=LONG_TIMEOUT_MICROS,
                              num_batch_threads=1)
    server = make_server(saved_model_dir, "tiny", "127.0.0.1", 0, warmup=False, batching=options)
    serve_thread = threading.Thread(target=server.serve_forever, daemon=True)
    serve_thread.start()
    answers = [None] * len(images)

    def client(index):
        instances = [{"b64": base64.b64encode(images[index]).decode()}]
        document = {"signature_name": "serve_bytes", "instances": instances}
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
        connection.request("POST", "/v1/models/tiny:predict", body=json.dumps(document))
        answers[index] = json.loads(connection.getresponse().read())["predictions"][0]
        connection.close()

    try:
        threads = [threading.Thread(target=client, args=(index,)) for index in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        metrics = metrics_text(server)
    finally:
        assert server.graceful_shutdown(drain_timeout=10)
        serve_thread.join(timeout=10)
    assert "frcnn_serving_batch_size_count 1.0" in metrics  # 네 요청이 한 배치
    assert f"frcnn_serving_batch_size_sum {float(len(images))}" in metrics
    for image, answer in zip(images, answers):
        solo = loaded_model.signatures["serve_bytes"](image_bytes=tf.constant([image]))
        np.testing.assert_array_equal(np.array(answer["detection_boxes"], np.float32),
                                      solo["detection_boxes"][0])
        np.testing.assert_array_equal(np.array(answer["detection_scores"], np.float32),
                                      solo["detection_scores"][0])
        assert answer["num_detections"] == int(solo["num_detections"][0]) == 1
