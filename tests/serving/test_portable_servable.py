""".tflite/.onnx 파일 서빙 테스트: ``tools/export --formats=tflite,onnx`` 가 쓰는 변환 (``portable.tflite_model``,
``portable.onnx_model``) 으로 conftest.py 의 작은 검출기를 바꾸고, 그 파일을 서빙한 REST 응답이 같은 검출기의
SavedModel 을 직접 부른 결과와 같은지 본다 (serving_default 배치 2 장, serve_bytes 크기가 다른 이미지).

용어: N 검출 수(3); 박스는 정규화 [ymin, xmin, ymax, xmax]. 파일의 배치는 1 (servable 이 한 장씩 돌린다).
"""

import base64
import concurrent.futures
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from frcnn.export import portable
from frcnn.export import runtimes
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


def _predict_bytes(server, encoded):
    return _call(server, "POST", f"/v1/models/{MODEL_NAME}:predict", {
        "signature_name": "serve_bytes", "instances": [{"b64": base64.b64encode(encoded).decode()}]})


def test_concurrent_requests_equal_serial_requests(portable_server):
    """여러 클라이언트가 함께 보내도 (LiteRT 인터프리터는 invoke 중 공유할 수 없다) 한 장씩 보낸 답과 같다."""
    images = [_image(12 + index % 5, 9 + index % 7, (index % 4, 1, 10, 8)) for index in range(12)]
    encoded = [tf.io.encode_png(image).numpy() for image in images]
    serial = [_predict_bytes(portable_server, data) for data in encoded]
    assert all(status == 200 for status, _ in serial)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        concurrent_results = list(pool.map(lambda data: _predict_bytes(portable_server, data), encoded * 4))
    assert concurrent_results == serial * 4


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_runner_pool_runs_concurrent_calls_like_serial_calls(tmp_path, kind):
    """인터프리터 풀 (2 개, 각 1 스레드) 의 실행기를 8 스레드가 함께 불러도 결과가 한 장씩 부른 것과 같다."""
    path = tmp_path / f"model.{kind}"
    convert = portable.tflite_model if kind == "tflite" else portable.onnx_model
    path.write_bytes(convert(_portable_signature, ["thing"]))
    runner = runtimes.PortableRunner(path, num_threads=2, num_interpreters=2)
    images = [_image(8 + index % 3, 10, (index % 5, 2, 7, 9))[None] for index in range(16)]
    serial = [runner(image) for image in images]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(runner, images * 3))
    for got, expected in zip(together, serial * 3):
        assert sorted(got) == sorted(expected)
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])


def test_runner_threads_default_to_the_usable_cores(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(portable.onnx_model(_portable_signature, ["thing"]))
    assert runtimes.PortableRunner(path).num_threads == runtimes.usable_cores()
    message = r"model.onnx: num_threads \(0\) and num_interpreters \(1\) must be >= 1"
    with pytest.raises(ValueError, match=message):
        runtimes.PortableRunner(path, num_threads=0)


@pytest.mark.parametrize("text, expected", [("max 100000", None), ("50000 100000", 1),
                                            ("150000 100000", 2), ("not a quota", None)])
def test_usable_cores_reads_the_cgroup_quota(tmp_path, text, expected):
    """cgroup v2 cpu.max: 할당 ÷ 주기를 올림한 값과 친화성 마스크 중 작은 것; 할당이 없거나 읽을 수 없으면 마스크."""
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(text + "\n")
    affinity = len(os.sched_getaffinity(0))
    assert runtimes.usable_cores(str(cpu_max)) == (affinity if expected is None else min(affinity, expected))
    assert runtimes.usable_cores(str(tmp_path / "missing")) == affinity
