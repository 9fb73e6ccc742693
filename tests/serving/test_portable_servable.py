""".tflite/.onnx 파일 서빙 테스트: ``tools/export --formats=tflite,onnx`` 가 쓰는 변환 (``portable.tflite_model``,
``portable.onnx_model``) 으로 conftest.py 의 작은 검출기를 바꾸고, 그 파일을 서빙한 REST 응답이 같은 검출기의
SavedModel 을 직접 부른 결과와 같은지 본다 (serving_default 배치 2 장, serve_bytes 크기가 다른 이미지).

용어: N 검출 수(3); 박스는 정규화 [ymin, xmin, ymax, xmax]. 파일의 배치는 1 (servable 이 한 장씩 돌린다).
"""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from frcnn.export import portable
from frcnn.export import signature
from frcnn.serving import make_server
from tests.serving.harness import http_call, running
from tests.testing import detect_one

MODEL_NAME = "tiny"


@tf.function(input_signature=[signature.PORTABLE_INPUT_SPEC])
def _portable_signature(images):
    """작은 검출기를 portable 의 꼴로: uint8 [1, H, W, 3] → 문자열 없는 출력 (클래스 이름은 메타데이터)."""
    outputs = detect_one(images[0])
    return {name: outputs[name][None] for name in signature.PORTABLE_OUTPUT_NAMES}


@pytest.fixture(scope="module", params=["tflite", "onnx"])
def portable_server(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("portable") / f"model.{request.param}"
    convert = portable.tflite_model if request.param == "tflite" else portable.onnx_model
    path.write_bytes(convert(_portable_signature, ["thing"]))
    with running(make_server(str(path), MODEL_NAME, "127.0.0.1", 0)) as server:
        yield server


def _call(server, method, path, document=None):
    status, text, _ = http_call(server, method, path, document)
    return status, json.loads(text)


def _image(height, width, box):
    image = np.zeros([height, width, 3], np.uint8)
    ymin, xmin, ymax, xmax = box
    image[ymin:ymax, xmin:xmax] = 255
    return image


def _assert_equal_detections(predictions, direct):
    for index, prediction in enumerate(predictions):
        np.testing.assert_allclose(prediction["detection_boxes"], direct["detection_boxes"][index], rtol=1e-6)
        np.testing.assert_allclose(prediction["detection_scores"], direct["detection_scores"][index],
                                   rtol=1e-6)
        assert prediction["detection_classes"] == direct["detection_classes"][index].numpy().tolist()
        assert prediction["num_detections"] == int(direct["num_detections"][index])
        assert prediction["detection_class_names"] == [
            name.decode() for name in direct["detection_class_names"][index].numpy()]


def test_serving_default_equals_the_saved_model(portable_server, loaded_model):
    images = np.stack([_image(8, 10, (2, 3, 5, 9)), _image(8, 10, (0, 0, 8, 1))])
    status, payload = _call(portable_server, "POST", f"/v1/models/{MODEL_NAME}:predict",
                            {"instances": images.tolist()})
    assert status == 200, payload
    _assert_equal_detections(payload["predictions"],
                             loaded_model.signatures["serving_default"](images=tf.constant(images)))


def test_serve_bytes_equals_the_saved_model(portable_server, loaded_model):
    images = [_image(12, 6, (0, 1, 12, 4)), _image(5, 7, (1, 1, 2, 6))]
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    status, payload = _call(portable_server, "POST", f"/v1/models/{MODEL_NAME}:predict", {
        "signature_name": "serve_bytes",
        "instances": [{"b64": base64.b64encode(data).decode()} for data in encoded]})
    assert status == 200, payload
    _assert_equal_detections(payload["predictions"],
                             loaded_model.signatures["serve_bytes"](image_bytes=tf.constant(encoded)))
    status, payload = _call(portable_server, "POST", f"/v1/models/{MODEL_NAME}:predict", {
        "signature_name": "serve_bytes", "instances": [{"b64": base64.b64encode(b"not an image").decode()}]})
    assert status == 400 and "Unknown image file format" in payload["error"]


def test_metadata_describes_the_two_signatures(portable_server):
    status, payload = _call(portable_server, "GET", f"/v1/models/{MODEL_NAME}/metadata")
    assert status == 200
    signature_defs = payload["metadata"]["signature_def"]["signature_def"]
    assert sorted(signature_defs) == ["serve_bytes", "serving_default"]
    assert signature_defs["serving_default"]["inputs"]["images"]["dtype"] == "DT_UINT8"
    assert signature_defs["serve_bytes"]["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert sorted(signature_defs["serve_bytes"]["outputs"]) == [
        "detection_boxes", "detection_class_names", "detection_classes", "detection_scores", "num_detections"]
