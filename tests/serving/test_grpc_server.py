"""frcnn.serving gRPC 테스트: ``tensorflow-serving-api`` 의 스텁으로 TF Serving 클라이언트가 부르는 그대로 부른다.

모델은 conftest.py 의 작은 SavedModel (밝은 픽셀의 경계 상자 하나, 클래스 1 "thing", N=3 패딩). gRPC 의 검출은
SavedModel 을 직접 부른 결과, 그리고 같은 서버의 REST 응답과 같아야 한다. 오류마다 TF Serving 의 상태 코드를
받고 서버는 계속 돈다. 아무것도 보내지 않는 연결은 다른 클라이언트를 막지 않는다.

용어: B 배치, N 검출 수(3); 박스는 정규화 [ymin, xmin, ymax, xmax]. 스텁: ``*_pb2_grpc`` 의 클라이언트.
"""

import base64
import http.client
import json
import socket

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from frcnn.serving import make_server
from tests.serving.harness import running

MODEL_NAME = "tiny"
OUTPUT_NAMES = ["detection_boxes", "detection_class_names", "detection_classes", "detection_scores",
                "num_detections"]


def _bright_image(height, width, box):
    """검은 바탕에 box=(ymin, xmin, ymax, xmax) 픽셀 영역만 밝은 uint8 [H, W, 3] 이미지."""
    image = np.zeros([height, width, 3], np.uint8)
    ymin, xmin, ymax, xmax = box
    image[ymin:ymax, xmin:xmax] = 255
    return image


IMAGES = [_bright_image(8, 10, (2, 3, 5, 9)), _bright_image(12, 6, (0, 1, 12, 4)),
          np.zeros([5, 7, 3], np.uint8)]
ENCODED = [tf.io.encode_png(image).numpy() for image in IMAGES]


@pytest.fixture(scope="module")
def server(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, grpc_port=0, request_timeout=1.0,
                             version_labels={"stable": 1, "canary": 2})) as serving:
        yield serving


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as opened:
        yield opened


def _request(signature_name="", version=None, **inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def _predict(channel, request):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)


def _outputs(response):
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _rest_predict(server, document):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        connection.request("POST", f"/v1/models/{MODEL_NAME}:predict", body=json.dumps(document))
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _assert_same_outputs(served, direct):
    assert sorted(served) == OUTPUT_NAMES
    for name in OUTPUT_NAMES:
        np.testing.assert_array_equal(served[name], direct[name].numpy())


def test_serve_bytes_equals_saved_model_and_rest(server, channel, loaded_model):
    response = _predict(channel, _request("serve_bytes", image_bytes=np.array(ENCODED, dtype=object)))
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL_NAME, 1)
    assert response.model_spec.signature_name == "serve_bytes"
    served = _outputs(response)
    _assert_same_outputs(served, loaded_model.signatures["serve_bytes"](image_bytes=tf.constant(ENCODED)))
    status, payload = _rest_predict(server, {"signature_name": "serve_bytes", "inputs": {
        "image_bytes": [{"b64": base64.b64encode(data).decode()} for data in ENCODED]}})
    assert status == 200
    rest = payload["outputs"]
    np.testing.assert_array_equal(np.array(rest["detection_boxes"], np.float32), served["detection_boxes"])
    np.testing.assert_array_equal(rest["num_detections"], served["num_detections"])
    assert rest["detection_class_names"] == [[name.decode() for name in row]
                                             for row in served["detection_class_names"]]


def test_serving_default_with_version_and_output_filter(server, channel, loaded_model):
    images = np.stack([IMAGES[0], np.zeros_like(IMAGES[0])])
    request = _request(version=1, images=images)
    response = _predict(channel, request)
    assert response.model_spec.signature_name == "serving_default"
    direct = loaded_model.signatures["serving_default"](images=tf.constant(images))
    _assert_same_outputs(_outputs(response), direct)
    request.output_filter.append("num_detections")
    assert list(_predict(channel, request).outputs) == ["num_detections"]


def test_get_model_metadata_matches_rest(server, channel):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL_NAME
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.GetModelMetadata(request, timeout=30)
    assert response.model_spec.version.value == 1
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    assert sorted(signature_map.signature_def) == ["serve_bytes", "serve_examples", "serving_default"]
    images = signature_map.signature_def["serving_default"].inputs["images"]
    assert images.dtype == tf.uint8.as_datatype_enum
    assert [dim.size for dim in images.tensor_shape.dim] == [-1, -1, -1, 3]
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    connection.request("GET", f"/v1/models/{MODEL_NAME}/metadata")
    rest = json.loads(connection.getresponse().read())["metadata"]["signature_def"]["signature_def"]
    connection.close()
    grpc_outputs = signature_map.signature_def["serve_bytes"].outputs
    assert sorted(rest["serve_bytes"]["outputs"]) == sorted(grpc_outputs)


def test_get_model_status(server, channel):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL_NAME
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=30)
    [status] = response.model_version_status
    assert (status.version, status.state, status.status.error_code) == (
        1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)


def _with_spec(request, name=MODEL_NAME, version=None, label=None):
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    return request


ERROR_CASES = [
    ("unknown_model", lambda: _with_spec(_request("serve_bytes", image_bytes=[ENCODED[0]]), name="other"),
     grpc.StatusCode.NOT_FOUND, "Latest(other)"),
    ("unknown_version", lambda: _request("serve_bytes", version=7, image_bytes=[ENCODED[0]]),
     grpc.StatusCode.NOT_FOUND, "Specific(tiny, 7)"),
    ("unknown_label", lambda: _with_spec(_request("serve_bytes", image_bytes=[ENCODED[0]]), label="nope"),
     grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
    ("label_of_a_missing_version", lambda: _with_spec(_request("serve_bytes", image_bytes=[ENCODED[0]]),
                                                      label="canary"),
     grpc.StatusCode.NOT_FOUND, "Specific(tiny, 2)"),
    ("bad_signature", lambda: _request("nope", image_bytes=[ENCODED[0]]),
     grpc.StatusCode.INVALID_ARGUMENT, '"nope"'),
    ("wrong_input_name", lambda: _request("serve_bytes", pictures=[ENCODED[0]]),
     grpc.StatusCode.INVALID_ARGUMENT, "pictures"),
    ("wrong_dtype", lambda: _request(images=IMAGES[0][None].astype(np.float32)),
     grpc.StatusCode.INVALID_ARGUMENT, "DT_UINT8"),
    ("wrong_rank", lambda: _request(images=IMAGES[0]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
    ("undecodable_image", lambda: _request("serve_bytes", image_bytes=[b"not an image"]),
     grpc.StatusCode.INVALID_ARGUMENT, "Unknown image file format"),
    ("unknown_output_filter", lambda: _with_spec(
        predict_pb2.PredictRequest(output_filter=["boxes"], inputs={
            "image_bytes": tf.make_tensor_proto([ENCODED[0]])})), grpc.StatusCode.INVALID_ARGUMENT, "boxes"),
]


@pytest.mark.parametrize("make_request, code, message", [case[1:] for case in ERROR_CASES],
                         ids=[case[0] for case in ERROR_CASES])
def test_errors_answer_tf_serving_codes_and_server_keeps_serving(channel, make_request, code, message):
    request = make_request()
    if request.model_spec.signature_name == "" and "image_bytes" in request.inputs:
        request.model_spec.signature_name = "serve_bytes"
    with pytest.raises(grpc.RpcError) as caught:
        _predict(channel, request)
    assert caught.value.code() == code
    assert message in caught.value.details()
    response = _predict(channel, _request("serve_bytes", image_bytes=[ENCODED[0]]))
    assert _outputs(response)["num_detections"].tolist() == [1]


def test_version_label_chooses_its_version(channel):
    request = _with_spec(_request("serve_bytes", image_bytes=[ENCODED[0]]), label="stable")
    response = _predict(channel, request)
    assert response.model_spec.version.value == 1 and _outputs(response)["num_detections"].tolist() == [1]
    for label in ("stable", "nope"):  # 상태는 TF Serving 처럼 라벨을 보지 않는다
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            _with_spec(get_model_status_pb2.GetModelStatusRequest(), label=label), timeout=30)
        assert [entry.version for entry in status.model_version_status] == [1]
    metadata = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
        _with_spec(get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]),
                   label="stable"), timeout=30)
    assert metadata.model_spec.version.value == 1


def test_status_and_metadata_errors(channel):
    status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    for version, name in ((None, "other"), (3, MODEL_NAME)):
        with pytest.raises(grpc.RpcError) as caught:
            request = _with_spec(get_model_status_pb2.GetModelStatusRequest(), name, version)
            status_stub.GetModelStatus(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(
            _with_spec(get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["other"])))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_message_is_resource_exhausted(loaded_model):
    small = make_server(loaded_model, MODEL_NAME, "127.0.0.1", 0, max_body_bytes=2048, warmup=False,
                        grpc_port=0)
    with running(small), grpc.insecure_channel(f"127.0.0.1:{small.grpc_port}") as small_channel:
        with pytest.raises(grpc.RpcError) as caught:
            _predict(small_channel, _request("serve_bytes", image_bytes=[b"A" * 5000]))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        response = _predict(small_channel, _request("serve_bytes", image_bytes=[ENCODED[0]]))
        assert _outputs(response)["num_detections"].tolist() == [1]


def test_silent_connections_do_not_block_others_and_are_closed(server, channel):
    silent = [socket.create_connection(server.server_address[:2], timeout=10) for _ in range(20)]
    half_request = socket.create_connection(server.server_address[:2], timeout=10)
    half_request.sendall(b"POST /v1/models/tiny:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        instances = [{"b64": base64.b64encode(ENCODED[1]).decode()}]
        status, payload = _rest_predict(server, {"signature_name": "serve_bytes", "instances": instances})
        assert status == 200 and payload["predictions"][0]["num_detections"] == 1
        response = _predict(channel, _request("serve_bytes", image_bytes=[ENCODED[0]]))
        assert _outputs(response)["num_detections"].tolist() == [1]
        # request_timeout (1 s) 이 지나면 서버가 닫는다: 조용한 연결은 그냥, 본문이 덜 온 요청은 408 과 함께.
        assert silent[0].recv(1024) == b""
        answer = b"".join(iter(lambda: half_request.recv(4096), b""))
        assert answer.startswith(b"HTTP/1.1 408") and b"request body not received" in answer
    finally:
        for connection in silent + [half_request]:
            connection.close()
