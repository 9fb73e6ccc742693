"""모델 버전 테스트: ``model_base_path`` 의 번호 디렉터리, 클라이언트가 도는 중의 새 버전 바꿔 끼우기 (실패 0),
깨진 버전 (상태에 오류, 옛 버전이 계속 서빙), 폴링 규칙 (VersionManager 단위).

모델은 conftest.py 의 작은 SavedModel 을 버전 디렉터리로 복사해 쓴다. 폴링 간격은 0.05 초; 기다림은 상태가
바뀔 때까지 (시간 상한만 둔다).

용어: 버전 = 양의 정수 이름의 하위 디렉터리; 상태 = TF Serving 의 ModelVersionStatus (AVAILABLE, END).
"""

import base64
import http.client
import json
import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from frcnn.serving import make_server
from frcnn.serving.versions import VersionManager, directory_fingerprint, numbered_versions
from tests.serving.harness import http_call, metrics_text

MODEL_NAME = "tiny"
IMAGE = np.zeros([6, 8, 3], np.uint8)
IMAGE[1:4, 2:5] = 255
PNG = tf.io.encode_png(IMAGE).numpy()
PREDICT_BODY = json.dumps({"signature_name": "serve_bytes",
                           "instances": [{"b64": base64.b64encode(PNG).decode()}]})


def _get(server, path):
    status, text, _ = http_call(server, "GET", path)
    return status, json.loads(text)


def _wait_until(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _states(server):
    status, payload = _get(server, f"/v1/models/{MODEL_NAME}")
    assert status == 200
    return {entry["version"]: (entry["state"], entry["status"]["error_code"],
                               entry["status"]["error_message"]) for entry in payload["model_version_status"]}


def _rest_client(server, stop, results):
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    while not stop.is_set():
        connection.request("POST", f"/v1/models/{MODEL_NAME}:predict", body=PREDICT_BODY)
        response = connection.getresponse()
        payload = json.loads(response.read())
        ok = response.status == 200 and payload["predictions"][0]["num_detections"] == 1
        results.append(("rest", ok, response.status))
    connection.close()


def _grpc_client(server, stop, results):
    request = predict_pb2.PredictRequest(inputs={"image_bytes": tf.make_tensor_proto([PNG])})
    request.model_spec.name, request.model_spec.signature_name = MODEL_NAME, "serve_bytes"
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while not stop.is_set():
            try:
                response = stub.Predict(request, timeout=30)
            except grpc.RpcError as error:
                results.append(("grpc", False, error.code()))
                continue
            results.append(("grpc", tf.make_ndarray(response.outputs["num_detections"]).tolist() == [1],
                            response.model_spec.version.value))


@pytest.fixture
def base_path(tmp_path, saved_model_dir):
    shutil.copytree(saved_model_dir, tmp_path / "1")
    return tmp_path


def test_new_version_swaps_in_under_load_and_broken_version_keeps_the_old(base_path, saved_model_dir):
    server = make_server(model_name=MODEL_NAME, host="127.0.0.1", port=0, model_base_path=str(base_path),
                         poll_seconds=0.05, grpc_port=0)
    serve_thread = threading.Thread(target=server.serve_forever, daemon=True)
    serve_thread.start()
    stop, results = threading.Event(), []
    clients = [threading.Thread(target=target, args=(server, stop, results))
               for target in (_rest_client, _rest_client, _grpc_client, _grpc_client)]
    try:
        assert _states(server) == {"1": ("AVAILABLE", "OK", "")}
        for client in clients:
            client.start()
        _wait_until(lambda: len(results) >= 8)
        shutil.copytree(saved_model_dir, base_path / "2")  # 클라이언트가 도는 중에 복사한다
        _wait_until(lambda: _states(server).get("2", ("",))[0] == "AVAILABLE")
        seen = len(results)
        _wait_until(lambda: len(results) >= seen + 8)  # 새 버전으로도 요청이 돈다
        # 깨진 버전: saved_model.pb 가 SavedModel 이 아니다.
        os.makedirs(base_path / "3")
        (base_path / "3" / "saved_model.pb").write_bytes(b"not a saved model")
        _wait_until(lambda: "3" in _states(server) and _states(server)["3"][0] == "END")
        seen = len(results)
        _wait_until(lambda: len(results) >= seen + 8)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
    try:
        states = _states(server)
        assert states["1"] == ("END", "OK", "") and states["2"] == ("AVAILABLE", "OK", "")
        assert states["3"][:2] == ("END", "UNKNOWN") and "cannot load SavedModel" in states["3"][2]
        failures = [result for result in results if not result[1]]
        assert not failures, failures[:5]
        grpc_versions = [result[2] for result in results if result[0] == "grpc"]
        assert grpc_versions[0] == 1 and grpc_versions[-1] == 2 and set(grpc_versions) == {1, 2}
        assert _get(server, f"/v1/models/{MODEL_NAME}/versions/2/metadata")[0] == 200
        assert _get(server, f"/v1/models/{MODEL_NAME}/versions/1/metadata")[0] == 404
        metrics = metrics_text(server)
        assert 'frcnn_serving_model_version{model="tiny",state="AVAILABLE",version="2"} 1.0' in metrics
        assert 'frcnn_serving_model_version{model="tiny",state="END",version="3"} 1.0' in metrics
    finally:
        assert server.graceful_shutdown(drain_timeout=10)
        serve_thread.join(timeout=10)


class _Loaded:
    """가짜 servable: 어느 경로에서 불러왔는지만 기억한다."""

    def __init__(self, path, version):
        self.path, self.version = path, version


def _fake_load(path, version):
    if not os.path.isfile(os.path.join(path, "ok")):
        raise ValueError(f"{path}: not ready")
    return _Loaded(path, version)


def test_poll_retries_a_failed_version_when_its_files_change(tmp_path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "ok").write_text("")
    (tmp_path / "notes").mkdir()  # 숫자가 아닌 디렉터리는 버전이 아니다
    (tmp_path / "0").mkdir()
    manager = VersionManager.from_base_path(str(tmp_path), warmup=False, load=_fake_load)
    assert sorted(numbered_versions(str(tmp_path))) == [1]
    assert manager.current().version == 1
    (tmp_path / "4").mkdir()
    (tmp_path / "4" / "partial").write_text("x")  # 복사 중: 아직 불러올 수 없다
    manager.poll()
    assert manager.current().version == 1
    assert [(status.version, status.state) for status in manager.statuses()] == [(4, "END"), (1, "AVAILABLE")]
    fingerprint = directory_fingerprint(str(tmp_path / "4"))
    manager.poll()  # 바뀌지 않았으면 다시 시도하지 않는다
    assert directory_fingerprint(str(tmp_path / "4")) == fingerprint
    (tmp_path / "4" / "ok").write_text("")  # 복사가 끝났다
    manager.poll()
    assert manager.current().version == 4 and manager.current(version=1) is None
    assert [(status.version, status.state) for status in manager.statuses()] == [(4, "AVAILABLE"), (1, "END")]


def test_base_path_without_a_loadable_version_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="model base path not found"):
        VersionManager.from_base_path(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"no loadable version \(no numbered version directory"):
        VersionManager.from_base_path(str(tmp_path))
    (tmp_path / "2").mkdir()
    with pytest.raises(ValueError, match="version 2: .*not a SavedModel directory"):
        VersionManager.from_base_path(str(tmp_path), warmup=False)


def test_saved_model_serves_one_version(saved_model_dir):
    server = make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, model_version=5, warmup=False)
    try:
        assert server.service.versions.current().version == 5
        assert [status.version for status in server.service.versions.statuses()] == [5]
    finally:
        assert server.graceful_shutdown(drain_timeout=5)
    with pytest.raises(ValueError, match="exactly one of"):
        make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, model_base_path=saved_model_dir)
