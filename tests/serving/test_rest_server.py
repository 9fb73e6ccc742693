"""frcnn.serving.rest_server (TF Serving 호환 REST 서버) 테스트.

모델은 conftest.py 의 작은 SavedModel (밝은 픽셀의 경계 상자 하나, 클래스 1 "thing", N=3 패딩).
기대값은 numpy 로 따로 계산하고, 서버 응답은 SavedModel 을 직접 부른 결과와도 비교한다.
모든 연결은 127.0.0.1 로만 한다.

용어: B 배치, N 검출 수(3), H/W 이미지 높이/너비; 박스는 정규화 [ymin, xmin, ymax, xmax].
"""

import base64
import contextlib
import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import records
from frcnn.serving import make_server
from tests.serving.harness import http_call, metrics_text, running

MODEL_NAME = "tiny"
OUTPUT_NAMES = ["detection_boxes", "detection_class_names", "detection_classes", "detection_scores",
                "num_detections"]


def _bright_image(height, width, box, level=255):
    """검은 바탕에 box=(ymin, xmin, ymax, xmax) 픽셀 영역만 밝은 uint8 [H, W, 3] 이미지."""
    image = np.zeros([height, width, 3], np.uint8)
    ymin, xmin, ymax, xmax = box
    image[ymin:ymax, xmin:xmax] = level
    return image


def _expected(image):
    """numpy 참조: 이미지 하나의 기대 검출 (첫 검출의 상자/점수, 클래스, 이름, 개수)."""
    brightness = image.astype(np.float64).mean(axis=-1) / 255.0
    ys, xs = np.nonzero(brightness > 0.5)
    height, width = brightness.shape
    if ys.size == 0:
        return {"box": [0.0] * 4, "score": 0.0, "classes": [0, 0, 0], "names": ["", "", ""], "count": 0}
    box = [ys.min() / height, xs.min() / width, (ys.max() + 1) / height, (xs.max() + 1) / width]
    return {"box": box, "score": brightness.mean(), "classes": [1, 0, 0], "names": ["thing", "", ""],
            "count": 1}


def _png(image):
    return tf.io.encode_png(image).numpy()


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _assert_prediction(prediction, image):
    """예측 하나(dict)가 numpy 참조와 맞는지 확인한다."""
    expected = _expected(image)
    assert sorted(prediction) == OUTPUT_NAMES
    np.testing.assert_allclose(prediction["detection_boxes"][0], expected["box"], rtol=1e-6)
    assert prediction["detection_boxes"][1:] == [[0.0] * 4] * 2
    np.testing.assert_allclose(prediction["detection_scores"][0], expected["score"], rtol=1e-5)
    assert prediction["detection_classes"] == expected["classes"]
    assert prediction["detection_class_names"] == expected["names"]
    assert prediction["num_detections"] == expected["count"]


IMAGES = [
    _bright_image(8, 10, (2, 3, 5, 9)),
    _bright_image(12, 6, (0, 1, 12, 4)),
    _bright_image(8, 10, (1, 1, 2, 2), level=200),
    np.zeros([5, 7, 3], np.uint8),
]


@pytest.fixture(scope="module")
def server(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0,
                             version_labels={"stable": 1, "canary": 2})) as rest_server:
        yield rest_server


def _call(server, method, path, document=None, body=None, headers=None):
    """요청 하나를 보내고 (상태, JSON 응답, 헤더) 를 돌려준다 (헤더 이름은 대소문자를 가리지 않는다)."""
    status, text, response_headers = http_call(server, method, path, document if body is None else body,
                                               headers)
    return status, json.loads(text), response_headers


def _predict(server, document, path=f"/v1/models/{MODEL_NAME}:predict"):
    status, payload, _ = _call(server, "POST", path, document)
    assert status == 200, payload
    return payload


def _assert_alive(server):
    status, payload, _ = _call(server, "GET", "/healthz")
    assert (status, payload) == (200, {"status": "ok"})


def test_healthz_and_status(server):
    _assert_alive(server)
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}
    for path in (f"/v1/models/{MODEL_NAME}", f"/v1/models/{MODEL_NAME}/versions/1"):
        status, payload, headers = _call(server, "GET", path)
        assert (status, payload) == (200, expected)
        assert headers["Content-Type"] == "application/json"


def test_metadata_matches_tf_serving_layout(server):
    status, payload, _ = _call(server, "GET", f"/v1/models/{MODEL_NAME}/metadata")
    assert status == 200
    assert payload["model_spec"] == {"name": MODEL_NAME, "signature_name": "", "version": "1"}
    signature_defs = payload["metadata"]["signature_def"]["signature_def"]
    assert sorted(signature_defs) == ["serve_bytes", "serve_examples", "serving_default"]

    def dims(*sizes):
        return {"dim": [{"size": size, "name": ""} for size in sizes], "unknown_rank": False}

    bytes_signature = signature_defs["serve_bytes"]
    assert bytes_signature["method_name"] == "tensorflow/serving/predict"
    assert bytes_signature["inputs"] == {"image_bytes": {
        "dtype": "DT_STRING", "tensor_shape": dims("-1"), "name": "serve_bytes_image_bytes:0"}}
    images_input = signature_defs["serving_default"]["inputs"]["images"]
    assert (images_input["dtype"], images_input["tensor_shape"]) == ("DT_UINT8", dims("-1", "-1", "-1", "3"))
    outputs = bytes_signature["outputs"]
    assert sorted(outputs) == OUTPUT_NAMES
    assert {name: (info["dtype"], info["tensor_shape"]) for name, info in outputs.items()} == {
        "detection_boxes": ("DT_FLOAT", dims("-1", "3", "4")),
        "detection_class_names": ("DT_STRING", dims("-1", "3")),
        "detection_classes": ("DT_INT32", dims("-1", "3")),
        "detection_scores": ("DT_FLOAT", dims("-1", "3")),
        "num_detections": ("DT_INT32", dims("-1")),
    }
    status, versioned, _ = _call(server, "GET", f"/v1/models/{MODEL_NAME}/versions/1/metadata")
    assert (status, versioned) == (200, payload)


def test_predict_b64_instances_of_different_sizes(server, loaded_model):
    encoded = [_png(image) for image in IMAGES]
    payload = _predict(server, {"signature_name": "serve_bytes",
                                "instances": [{"b64": _b64(data)} for data in encoded]})
    assert len(payload["predictions"]) == len(IMAGES)
    for prediction, image in zip(payload["predictions"], IMAGES):
        _assert_prediction(prediction, image)
    # SavedModel 을 직접 부른 결과와 같아야 한다.
    direct = loaded_model.signatures["serve_bytes"](image_bytes=tf.constant(encoded))
    for name in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        served = np.array([prediction[name] for prediction in payload["predictions"]])
        np.testing.assert_array_equal(served.astype(direct[name].dtype.as_numpy_dtype), direct[name].numpy())
    names = [[name.decode() for name in row] for row in direct["detection_class_names"].numpy()]
    assert [prediction["detection_class_names"] for prediction in payload["predictions"]] == names


def test_predict_named_instances_and_version_path(server):
    payload = _predict(server, {"signature_name": "serve_bytes",
                                "instances": [{"image_bytes": {"b64": _b64(_png(IMAGES[1]))}}]},
                       path=f"/v1/models/{MODEL_NAME}/versions/1:predict")
    _assert_prediction(payload["predictions"][0], IMAGES[1])


def test_version_labels_choose_their_version(server):
    labelled = f"/v1/models/{MODEL_NAME}/labels/stable"
    payload = _predict(server, {"signature_name": "serve_bytes",
                                "instances": [{"image_bytes": {"b64": _b64(_png(IMAGES[1]))}}]},
                       path=f"{labelled}:predict")
    _assert_prediction(payload["predictions"][0], IMAGES[1])
    status, document, _ = _call(server, "GET", f"{labelled}/metadata")
    assert status == 200 and document["model_spec"]["version"] == "1"
    # 라벨이 가리키는 버전 2 는 없다: 404; 모르는 라벨: 400 (TF Serving 의 INVALID_ARGUMENT)
    status, document, _ = _call(server, "POST", f"/v1/models/{MODEL_NAME}/labels/canary:predict",
                                {"instances": [[[[0, 0, 0]]]]})
    assert status == 404 and "Specific(tiny, 2)" in document["error"]
    status, document, _ = _call(server, "GET", f"/v1/models/{MODEL_NAME}/labels/nope/metadata")
    assert status == 400 and document["error"] == "Unrecognized servable version label: nope"
    # 상태는 TF Serving 처럼 라벨을 보지 않고 모든 버전을 답한다
    for label in ("stable", "nope"):
        status, document, _ = _call(server, "GET", f"/v1/models/{MODEL_NAME}/labels/{label}")
        assert status == 200 and [entry["version"] for entry in document["model_version_status"]] == ["1"]
    _assert_alive(server)


def test_predict_nested_arrays_default_signature(server, loaded_model):
    images = [IMAGES[0], IMAGES[2]]
    payload = _predict(server, {"instances": [image.tolist() for image in images]})
    for prediction, image in zip(payload["predictions"], images):
        _assert_prediction(prediction, image)
    direct = loaded_model.signatures["serving_default"](images=tf.constant(np.stack(images)))
    served_boxes = np.array([prediction["detection_boxes"] for prediction in payload["predictions"]],
                            np.float32)
    np.testing.assert_array_equal(served_boxes, direct["detection_boxes"].numpy())


def test_predict_columnar_inputs(server, loaded_model):
    encoded = [_png(IMAGES[0]), _png(IMAGES[3])]
    batch = [{"b64": _b64(data)} for data in encoded]
    named = _predict(server, {"signature_name": "serve_bytes", "inputs": {"image_bytes": batch}})
    bare = _predict(server, {"signature_name": "serve_bytes", "inputs": batch})
    assert named == bare
    outputs = named["outputs"]
    assert sorted(outputs) == OUTPUT_NAMES
    direct = loaded_model.signatures["serve_bytes"](image_bytes=tf.constant(encoded))
    np.testing.assert_array_equal(np.array(outputs["detection_boxes"], np.float32),
                                  direct["detection_boxes"].numpy())
    np.testing.assert_array_equal(outputs["num_detections"], direct["num_detections"].numpy())
    assert outputs["detection_class_names"] == [["thing", "", ""], ["", "", ""]]


def test_predict_serve_examples(server):
    height, width = IMAGES[1].shape[:2]
    example = records.image_example(_png(IMAGES[1]), "png", height, width).SerializeToString()
    payload = _predict(server, {"signature_name": "serve_examples", "instances": [{"b64": _b64(example)}]})
    _assert_prediction(payload["predictions"][0], IMAGES[1])


GOOD_B64 = {"b64": _b64(_png(IMAGES[0]))}
MALFORMED_REQUESTS = [
    ("json", b"{not json", "JSON Parse error"),
    ("not_object", b"[1, 2]", "JSON object"),
    ("bad_base64", {"signature_name": "serve_bytes", "instances": [{"b64": "@@not base64@@"}]}, "base64"),
    ("not_an_image", {"signature_name": "serve_bytes", "instances": [{"b64": _b64(b"hello, not an image")}]},
     "InvalidArgumentError: Unknown image file format"),
    ("unknown_signature", {"signature_name": "nope", "instances": [GOOD_B64]}, 'signature name: "nope"'),
    ("neither", {"signature_name": "serve_bytes"}, "exactly one of 'instances'"),
    ("both", {"signature_name": "serve_bytes", "instances": [GOOD_B64], "inputs": [GOOD_B64]},
     "exactly one of 'instances'"),
    ("empty_instances", {"signature_name": "serve_bytes", "instances": []}, "non-empty list"),
    ("wrong_input_name", {"signature_name": "serve_bytes", "instances": [{"pictures": GOOD_B64}]},
     "pictures"),
    ("wrong_columnar_name", {"signature_name": "serve_bytes", "inputs": {"pictures": [GOOD_B64]}},
     "pictures"),
    ("differing_image_sizes", {"instances": [IMAGES[0].tolist(), IMAGES[1].tolist()]}, "different shapes"),
    ("ragged_array", {"instances": [[[[1, 2, 3]], [[1, 2]]]]}, "different lengths"),
    ("out_of_range", {"instances": [[[[0, 0, 300]]]]}, "out of range"),
    ("floats_for_uint8", {"instances": [[[[0.5, 0, 0]]]]}, "expected integers"),
    ("wrong_rank", {"instances": [[1, 2, 3]]}, "shape"),
    ("number_for_string", {"signature_name": "serve_bytes", "instances": [7]}, "DT_STRING"),
]


@pytest.mark.parametrize("body, message", [case[1:] for case in MALFORMED_REQUESTS],
                         ids=[case[0] for case in MALFORMED_REQUESTS])
def test_malformed_requests_answer_400_and_server_keeps_serving(server, body, message):
    raw_body = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    status, payload, headers = _call(server, "POST", f"/v1/models/{MODEL_NAME}:predict", body=raw_body)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert list(payload) == ["error"] and message in payload["error"]
    _assert_alive(server)
    _assert_prediction(_predict(server, {"signature_name": "serve_bytes", "instances": [GOOD_B64]})
                       ["predictions"][0], IMAGES[0])


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/v1/models/other", 404),
    ("POST", "/v1/models/other:predict", 404),
    ("GET", f"/v1/models/{MODEL_NAME}/versions/2", 404),
    ("GET", "/v2/something", 404),
    ("GET", f"/v1/models/{MODEL_NAME}:classify", 404),
    ("GET", f"/v1/models/{MODEL_NAME}:predict", 405),
    ("POST", f"/v1/models/{MODEL_NAME}/metadata", 405),
    ("DELETE", f"/v1/models/{MODEL_NAME}", 405),
    ("POST", "/healthz", 405),
])
def test_not_found_and_wrong_method(server, method, path, status):
    answered, payload, headers = _call(server, method, path, body=b"{}" if method == "POST" else None)
    assert answered == status
    assert "error" in payload
    if status == 405:
        assert headers["Allow"] in ("GET", "POST")
    _assert_alive(server)


def test_oversized_body_answers_413(loaded_model):
    small_server = make_server(loaded_model, MODEL_NAME, "127.0.0.1", 0, max_body_bytes=1024, warmup=False)
    with running(small_server):
        document = {"signature_name": "serve_bytes", "instances": [{"b64": "A" * 4000}]}
        status, payload, _ = _call(small_server, "POST", f"/v1/models/{MODEL_NAME}:predict", document)
        assert status == 413 and "1024" in payload["error"]
        status, _, _ = _call(small_server, "POST", f"/v1/models/{MODEL_NAME}:predict", body=b"{}",
                             headers={"Content-Length": "abc"})
        assert status == 400
        # 한도 안의 요청은 계속 처리된다.
        small_image = {"b64": _b64(_png(_bright_image(2, 2, (0, 0, 1, 1))))}
        payload = _predict(small_server, {"signature_name": "serve_bytes", "instances": [small_image]})
        assert payload["predictions"][0]["detection_boxes"][0] == [0.0, 0.0, 0.5, 0.5]


def _raw_exchange(server, data):
    """날 바이트를 보내고 서버가 연결을 닫을 때까지 받은 바이트와 걸린 초를 돌려준다."""
    start = time.monotonic()
    with socket.create_connection(server.server_address[:2], timeout=30) as connection:
        connection.sendall(data)
        answer = b"".join(iter(lambda: connection.recv(4096), b""))
    return answer, time.monotonic() - start


def test_uvicorn_protocol_subclass_adds_json_400_and_a_request_head_deadline(loaded_model):
    """`_protocol_class` (uvicorn 의 비공개 H11Protocol 하위 클래스) 가 더하는 두 가지: uvicorn 이 text/plain 으로
    답하는 잘못된 HTTP 에도 다른 오류와 같은 JSON 400 을 주고 연결을 닫는다; uvicorn 에는 없는 요청 머리 시간 제한 —
    머리를 request_timeout 안에 다 보내지 않은 연결 (slowloris) 은 답 없이 닫는다 (uvicorn 을 올리면 이 테스트로 확인)."""
    with running(make_server(loaded_model, MODEL_NAME, "127.0.0.1", 0, request_timeout=0.5,
                             warmup=False)) as timed_server:
        answer, _ = _raw_exchange(timed_server, b"NOT AN HTTP REQUEST\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
        assert b"connection: close" in head.lower() and list(json.loads(body)) == ["error"]
        answer, seconds = _raw_exchange(timed_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert answer == b"" and seconds >= 0.5  # 닫힌 것은 시간 제한 때문 (그 전에는 닫지 않는다)
        _assert_alive(timed_server)


def _held_request(server, sent, content_length):
    """predict 요청 머리와 본문 앞 sent 바이트만 보내고 멈춘 연결 (그 바이트만큼 본문 예산을 잡고 있다)."""
    connection = socket.create_connection(server.server_address[:2], timeout=30)
    connection.sendall(f"POST /v1/models/{MODEL_NAME}:predict HTTP/1.1\r\nHost: x\r\n"
                       f"Content-Length: {content_length}\r\n\r\n".encode() + b"{" * sent)
    return connection


def _wait_for_metric(server, line):
    deadline = time.monotonic() + 30
    while line not in metrics_text(server):
        assert time.monotonic() < deadline, f"metric never reached: {line}"
        time.sleep(0.01)


def test_bodies_in_flight_share_a_budget_and_the_overflow_gets_503(loaded_model):
    budget_server = make_server(loaded_model, MODEL_NAME, "127.0.0.1", 0, max_body_bytes=1024, warmup=False)
    path = f"/v1/models/{MODEL_NAME}:predict"
    held = []
    with running(budget_server), contextlib.ExitStack() as connections:
        connections.callback(lambda: [connection.close() for connection in held])  # 서버를 멈추기 전에 닫는다
        # 머리만 보낸 연결은 예산을 쓰지 않는다
        held.append(_held_request(budget_server, 0, 1024))
        # 예산 16 × 1024 = 16384 바이트: 1000 바이트씩 보낸 16 개가 16000 을 잡는다
        held += [_held_request(budget_server, 1000, 1024) for _ in range(16)]
        _wait_for_metric(budget_server, "frcnn_serving_request_body_bytes_in_flight 16000.0")
        overflow = json.dumps({"signature_name": "serve_bytes", "instances": []}).ljust(1000)
        status, payload, headers = _call(budget_server, "POST", path, body=overflow.encode())
        assert status == 503 and "server busy" in payload["error"] and headers["Connection"] == "close"
        # 한도를 넘는 본문은 예산이 차 있어도 413 (다시 보내도 소용없으므로 503 이 아니다)
        status, _, _ = _call(budget_server, "POST", path, body=b"x" * 2000)
        assert status == 413
        # 잡힌 본문 하나를 마저 보내면 (JSON 이 아니라 400) 그 바이트가 풀려 다음 요청이 들어간다
        held[1].sendall(b"x" * 24)
        assert held[1].recv(4096).startswith(b"HTTP/1.1 400 ")
        _wait_for_metric(budget_server, "frcnn_serving_request_body_bytes_in_flight 15000.0")
        small_image = {"b64": _b64(_png(_bright_image(2, 2, (0, 0, 1, 1))))}
        payload = _predict(budget_server, {"signature_name": "serve_bytes", "instances": [small_image]})
        assert payload["predictions"][0]["num_detections"] == 1
        rejected = ('frcnn_serving_requests_total{model="tiny",protocol="rest",signature="",'
                    'status="UNAVAILABLE"} 1.0')
        assert rejected in metrics_text(budget_server)


def test_concurrent_clients_get_their_own_answers(server):
    images = [_bright_image(16, 16, (index, 1, index + 4, 2 + index)) for index in range(8)]
    results, errors = {}, []

    def client(index):
        try:
            for _ in range(3):
                instances = [{"b64": _b64(_png(images[index]))}]
                document = {"signature_name": "serve_bytes", "instances": instances}
                results.setdefault(index, []).append(_predict(server, document)["predictions"][0])
        except Exception as error:  # noqa: BLE001 - 스레드 밖 단언을 위해 모은다.
            errors.append(error)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    for index, image in enumerate(images):
        assert len(results[index]) == 3
        for prediction in results[index]:
            _assert_prediction(prediction, image)


def test_graceful_shutdown_finishes_in_flight_request(loaded_model):
    stopping_server = make_server(loaded_model, MODEL_NAME, "127.0.0.1", 0, warmup=False)
    serve_thread = threading.Thread(target=stopping_server.serve_forever, daemon=True)
    serve_thread.start()
    host, port = stopping_server.server_address[:2]
    body = json.dumps({"signature_name": "serve_bytes", "instances": [GOOD_B64]}).encode("utf-8")
    # 헤더와 본문 절반만 보내 요청이 처리 중인 채로 멈춰 있게 한다.
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.putrequest("POST", f"/v1/models/{MODEL_NAME}:predict")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders()
    connection.send(body[:10])
    deadline = time.monotonic() + 10
    while stopping_server.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    outcome = {}
    shutdown_thread = threading.Thread(
        target=lambda: outcome.update(drained=stopping_server.graceful_shutdown(drain_timeout=20)))
    shutdown_thread.start()
    time.sleep(0.3)
    assert shutdown_thread.is_alive()  # 처리 중 요청을 기다리는 중
    connection.send(body[10:])
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Connection") == "close"
    _assert_prediction(json.loads(response.read())["predictions"][0], IMAGES[0])
    connection.close()
    shutdown_thread.join(timeout=20)
    serve_thread.join(timeout=5)
    assert outcome == {"drained": True} and not serve_thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(host, port, timeout=5).connect()


def test_listening_socket_is_tcp_with_nodelay():
    """asyncio 는 proto 가 IPPROTO_TCP 인 소켓에만 TCP_NODELAY 를 켠다: 없으면 응답마다 Nagle·지연 ACK 지연."""
    from frcnn.serving.rest_server import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()
