"""적대적 요청 테스트: 픽셀 예산 (디코딩 전, 머리에서), 요청당 이미지 수, gRPC TensorProto 의 모양·내용 검사,
깊은 JSON·UTF-8 이 아닌 본문·빈 텐서 — 모두 4xx (TF Serving 의 오류 모양) 이고 서버는 계속 답한다.

모델은 conftest.py 의 작은 SavedModel (그래프에 예산 검사가 없는, 이 변경 전에 내보낸 모델과 같은 꼴): 막는 것은
서버의 파이썬 검사다. 폭탄은 tests/serving/hostile.py 가 만든 진짜 PNG·JPEG·GIF. 연결은 127.0.0.1 로만.
"""

import base64
import json
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from frcnn.data import records
from frcnn.serving import make_server
from frcnn.serving import codec
from tests.testing import TinyDetector
from tests.serving import hostile
from tests.serving.harness import http_call, metrics_text, running

MODEL_NAME = "tiny"
STRING = tf.string.as_datatype_enum
PREDICT = f"/v1/models/{MODEL_NAME}:predict"
SMALL_PNG = tf.io.encode_png(np.full([8, 10, 3], 200, np.uint8)).numpy()
BOMBS = {"png": hostile.png_bomb(20000, 20000), "jpeg": hostile.jpeg_claiming(30000, 30000),
         "gif": hostile.gif_bomb(4000, 4000, 10)}


@pytest.fixture(scope="module")
def server(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, grpc_port=0,
                             max_images_per_request=4)) as serving:
        yield serving


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def _post(server, document, headers=None):
    status, text, _ = http_call(server, "POST", PREDICT, document, headers)
    return status, json.loads(text)


def _budget_rejections(server, protocol):
    for line in metrics_text(server).splitlines():
        if line.startswith("frcnn_serving_budget_rejections_total{") and f'protocol="{protocol}"' in line:
            return float(line.split()[-1])
    return 0.0


def _example(encoded):
    feature = {records.ENCODED: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
    return example_pb2.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _assert_serves(server):
    status, payload = _post(server, {"signature_name": "serve_bytes", "instances": [_b64(SMALL_PNG)]})
    assert status == 200 and payload["predictions"][0]["num_detections"] == 1, payload


@pytest.mark.parametrize("kind,size", [("png", "20000x20000"), ("jpeg", "30000x30000"),
                                       ("gif", "4000x4000 pixels x 10 frames")])
def test_bombs_over_rest_are_refused_from_the_header(server, kind, size):
    before = _budget_rejections(server, "rest")
    status, payload = _post(server, {"signature_name": "serve_bytes", "instances": [_b64(BOMBS[kind])]})
    assert status == 400
    assert f"image of {size}" in payload["error"]
    assert "exceeds the pixel budget of 67108864" in payload["error"]
    assert "--max_image_pixels" in payload["error"]
    assert _budget_rejections(server, "rest") == before + 1
    _assert_serves(server)


def test_bomb_inside_a_tf_example_is_refused(server):
    status, payload = _post(server, {"signature_name": "serve_examples",
                                     "instances": [_b64(_example(BOMBS["png"]))]})
    assert status == 400 and "20000x20000" in payload["error"]
    status, payload = _post(server, {"signature_name": "serve_examples", "instances": [_b64(b"\x0a\xff")]})
    assert status == 400 and "tf.Example" in payload["error"]


def test_request_total_and_images_per_request_are_bounded(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, max_image_pixels=150,
                             warmup=False)) as small:
        png = tf.io.encode_png(np.zeros([10, 10, 3], np.uint8)).numpy()  # 100 픽셀: 하나는 되고 둘은 넘는다
        assert _post(small, {"signature_name": "serve_bytes", "instances": [_b64(png)]})[0] == 200
        status, payload = _post(small, {"signature_name": "serve_bytes", "instances": [_b64(png)] * 2})
        assert status == 400 and "200 pixels together" in payload["error"]
        status, payload = _post(small, {"instances": np.zeros([1, 13, 12, 3], np.uint8).tolist()})
        assert status == 400 and "12x13 pixels exceed the pixel budget of 150" in payload["error"]
        assert _budget_rejections(small, "rest") == 2


def test_images_per_request_cap(server):
    status, payload = _post(server, {"signature_name": "serve_bytes", "instances": [_b64(SMALL_PNG)] * 5})
    assert status == 400 and "at most 4 per request" in payload["error"]


def test_budget_stored_in_the_saved_model_is_the_default(tmp_path):
    module = TinyDetector()
    module.max_image_pixels = tf.Variable(50, dtype=tf.int64, trainable=False)
    tf.saved_model.save(module, str(tmp_path), signatures={"serve_bytes": module.serve_bytes})
    with running(make_server(str(tmp_path), MODEL_NAME, "127.0.0.1", 0, warmup=False)) as stored:
        status, payload = _post(stored, {"signature_name": "serve_bytes", "instances": [_b64(SMALL_PNG)]})
        assert status == 400 and "budget of 50 pixels" in payload["error"]


@pytest.mark.parametrize("body,message", [
    (b"[" * 5000 + b"]" * 5000, "nesting depth 5000"),
    (b'{"instances": ' + b"[" * 40 + b"]" * 40 + b"}", "nesting depth 41"),
    (b'{"instances": ["\xff\xfe"]}', "not UTF-8"),
    (b'{"instances": [[[[1e999]]]]}', "got floats"),
    (b'{"instances": [[[[300]]]]}', "out of range"),
    (b'{"instances": [[1, 2, 3]]}', "shape"),
    (b'{"inputs": []}', "shape"),
    (b'{"signature_name": "serve_bytes", "inputs": []}', "empty"),
    (b'{"signature_name": "serve_bytes", "instances": [{"b64": "AAAA"}]}', "Unknown image file format"),
    (b'{"signature_name": "serve_bytes", "instances": [{"b64": "iVBORw0KGgoAAAANSUhE"}]}', "truncated PNG"),
])
def test_malformed_rest_bodies_are_400_with_tf_serving_error_shape(server, body, message):
    status, payload = _post(server, body)
    assert status == 400 and list(payload) == ["error"] and message in payload["error"], payload


def test_json_depth_ignores_brackets_inside_strings():
    assert codec.json_depth('{"a": "[[[[[[\\"[[[", "b": [[1]]}') == 3


def _grpc_request(signature_name, name, proto):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature_name
    request.inputs[name].CopyFrom(proto)
    return request


def _grpc_error(stub, request):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(request, timeout=30)
    return caught.value.code(), caught.value.details()


@pytest.mark.parametrize("signature,name,proto,message", [
    ("", "images", hostile.huge_tensor_proto([1, 100000, 100000, 3]), "100000x100000 pixels exceed"),
    ("", "images", hostile.huge_tensor_proto([10 ** 12, 1, 1, 3]), "at most 4 per request"),
    ("serve_bytes", "image_bytes", hostile.huge_tensor_proto([3], STRING), "has 0 values"),
    ("", "images", hostile.huge_tensor_proto([1, -5, 2, 3]), "negative dimension"),
    ("", "images", hostile.huge_tensor_proto([1, 2, 3]), "rank 3"),
    ("", "images", hostile.huge_tensor_proto([1, 0, 0, 3]), "empty"),
])
def test_huge_or_inconsistent_tensor_protos_are_refused_before_make_ndarray(server, stub, signature, name,
                                                                            proto, message):
    code, details = _grpc_error(stub, _grpc_request(signature, name, proto))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details


def test_tensor_content_must_match_the_shape(stub):
    proto = tf.make_tensor_proto(np.zeros([1, 4, 4, 3], np.uint8))
    proto.tensor_shape.dim[1].size = 400
    code, details = _grpc_error(stub, _grpc_request("", "images", proto))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "tensor_content has 48 bytes" in details


def test_bomb_over_grpc_is_refused_and_counted(server, stub):
    before = _budget_rejections(server, "grpc")
    proto = tf.make_tensor_proto(np.array([BOMBS["png"]], dtype=object))
    code, details = _grpc_error(stub, _grpc_request("serve_bytes", "image_bytes", proto))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "20000x20000" in details
    assert _budget_rejections(server, "grpc") == before + 1


def test_oversized_body_with_expect_100_continue_reads_its_413(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, max_body_bytes=1024,
                             warmup=False)) as small:
        with socket.create_connection(small.server_address[:2], timeout=10) as connection:
            connection.sendall(f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               f"Content-Length: {50 * 1024 * 1024}\r\nExpect: 100-continue\r\n\r\n".encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                answer += connection.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in answer


def test_oversized_body_without_expect_still_reads_its_413(saved_model_dir):
    """본문을 다 보내는 클라이언트 (Expect 없음) 도 연결 재설정 대신 413 을 읽는다 (서버는 본문을 버리며 읽는다)."""
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, max_body_bytes=1024,
                             warmup=False)) as small:
        body = json.dumps({"instances": np.zeros([1, 300, 300, 3], np.uint8).tolist()}).encode()
        assert len(body) > 1024 * 100
        status, text, headers = http_call(small, "POST", PREDICT, body)
        assert status == 413 and "exceeds the limit of 1024 bytes" in json.loads(text)["error"]
        assert headers["Connection"] == "close"
