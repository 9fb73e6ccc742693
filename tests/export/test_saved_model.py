"""export 테스트: tools/export 로 내보낸 SavedModel 이 홀로 서는지, 시그니처 계약, 그리고 REST 서버.

작은 학습 결과(8 스텝, tests/testing.py 의 `tiny_config`)를 만들고 `tools.export` 를 subprocess 로 실행한다.
기대값은 같은 체크포인트를 이 프로세스에서 불러 `model.detect` 를 직접 부른 결과(리사이즈와 stride
배수 패딩은 numpy/TF 로 따로 계산)다. 불러오기는 frcnn·pipelines·keras 를 import 할 수 없는
subprocess 에서 한다.

용어: B 배치, N 최대 검출 수 (10), C 클래스 수 (2: "a", "b"); 박스는 정규화 [ymin, xmin, ymax, xmax].
"""

import base64
import functools
import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import image_header
from frcnn.data import record_spec
from frcnn.data import sources
from frcnn.export import loader
from frcnn.export import saved_model
from frcnn.modeling import model as model_lib
from frcnn.serving import make_server
from frcnn.training import loop
from frcnn.training import trainer
from frcnn.eval import runner
from tests.serving import hostile
from tests.testing import make_batches, tiny_config, write_voc_dir

# 모든 테스트가 tools.export 를 subprocess 로 돌린 결과를 쓴다.
pytestmark = pytest.mark.slow

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAX_DETECTIONS = 10
OUTPUT_SPECS = {  # 이름 → (dtype, 배치 뒤 모양)
    "detection_boxes": (tf.float32, [MAX_DETECTIONS, 4]),
    "detection_scores": (tf.float32, [MAX_DETECTIONS]),
    "detection_classes": (tf.int32, [MAX_DETECTIONS]),
    "detection_class_names": (tf.string, [MAX_DETECTIONS]),
    "num_detections": (tf.int32, []),
}
INPUT_SPECS = {"serving_default": ("images", tf.uint8, [None, None, None, 3]),
               "serve_bytes": ("image_bytes", tf.string, [None]),
               "serve_examples": ("examples", tf.string, [None])}


def _image(height, width, seed):
    """밝은 사각형 두 개가 있는 uint8 [H, W, 3] 이미지 (학습 데이터와 비슷하게)."""
    rng = np.random.default_rng(seed)
    image = np.full([height, width, 3], 40, np.uint8)
    image[height // 6:height // 2, width // 8:width // 2] = 230
    image[height * 2 // 3:height - 2, width // 2:width * 5 // 6] = [200, 30, 30]
    return np.clip(image.astype(np.int16) + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)


def _png(image):
    return tf.io.encode_png(image).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model_dir, export_dir): 8 스텝 학습한 작은 모델과 tools.export 의 결과."""
    root = tmp_path_factory.mktemp("export")
    model_dir, export_dir = str(root / "run"), str(root / "saved_model")
    cfg = tiny_config("train.num_steps=8")
    loop.train(record_spec.RecordSpec.from_config(cfg, ["a", "b"], [1]), "x", model_dir, lambda batch_size,
               canvas: make_batches(cfg))
    result = _run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--score_threshold=0.01",
                         f"--max_detections={MAX_DETECTIONS}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "export: wrote" in result.stdout
    return model_dir, export_dir


def _run_export(*args):
    return subprocess.run([sys.executable, "-m", "tools.export", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)


@functools.lru_cache(maxsize=None)
def _load(model_dir):
    """내보내기와 같은 검출 설정(점수 0.01, N=10)으로 새 모델을 만들어 같은 체크포인트를 이 프로세스에서
    복원한다 (내보내기 코드와 따로)."""
    _, config, classes, checkpoint = trainer.load_trained_model(model_dir)
    config = saved_model.with_detection_overrides(config, 0.01, MAX_DETECTIONS)
    model = model_lib.FasterRCNN(config, len(classes))
    model.build_all(record_spec.largest_canvas(config))
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    return model, classes


def _reference(model_dir, image):
    """짧은 변 → 64 (긴 변 ≤ 64) 리사이즈, stride(8) 배수로만 패딩한 한 장으로 `model.detect`
    (small_cnn 은 stride-2 'same' 합성곱이 있어 `pad_to_stride`)."""
    model, classes = _load(model_dir)
    height, width = image.shape[:2]
    scale = min(64 / min(height, width), 64 / max(height, width))
    size = [int(round(height * scale)), int(round(width * scale))]
    resized = tf.image.resize(tf.cast(image[None], tf.float32), size, method="bilinear")
    padded = tf.image.pad_to_bounding_box(resized, 0, 0, -(-size[0] // 8) * 8, -(-size[1] // 8) * 8)
    detections = {key: value.numpy()[0] for key, value in model.detect(
        padded, tf.constant([size], tf.float32), tf.constant([scale], tf.float32)).items()}
    names = np.array([b""] + [name.encode() for name in classes])
    return {"detection_boxes": detections["boxes"], "detection_scores": detections["scores"],
            "detection_classes": detections["classes"], "detection_class_names": names[detections["classes"]],
            "num_detections": detections["num_detections"]}


STANDALONE_SCRIPT = textwrap.dedent("""
    import sys
    # 설치되지 않은 것처럼: import 는 ImportError, importlib.util.find_spec 은 None.
    for blocked in ("frcnn", "pipelines", "keras", "tf_keras"):
        sys.modules[blocked] = None
    import numpy as np
    import tensorflow as tf
    export_dir, inputs_path, output_path = sys.argv[1:4]
    inputs = np.load(inputs_path)
    model = tf.saved_model.load(export_dir)
    example = tf.train.Example(features=tf.train.Features(feature={"image/encoded": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[inputs["png_0"].tobytes()]))})).SerializeToString()
    calls = {
        "images": model.signatures["serving_default"](images=tf.constant(inputs["images"])),
        "bytes": model.signatures["serve_bytes"](image_bytes=tf.constant(
            [inputs["png_0"].tobytes(), inputs["png_1"].tobytes()])),
        "portrait": model.signatures["serve_bytes"](image_bytes=tf.constant([inputs["png_2"].tobytes()])),
        "examples": model.signatures["serve_examples"](examples=tf.constant([example])),
    }
    leaked = sorted(name for name, module in sys.modules.items()
                    if module is not None and name.split(".")[0] in ("frcnn", "pipelines", "keras"))
    assert not leaked, leaked
    plain = lambda array: array.astype("S") if array.dtype == object else array  # 문자열 → 고정 길이 bytes
    np.savez(output_path, **{f"{call}/{key}": plain(value.numpy()) for call, outputs in calls.items()
                             for key, value in outputs.items()})
""")


def test_saved_model_stands_alone_and_matches_the_in_process_model(exported, tmp_path):
    model_dir, export_dir = exported
    same_size = [_image(48, 64, 0), _image(48, 64, 1)]
    portrait = _image(64, 40, 2)
    pngs = {f"png_{index}": np.frombuffer(_png(image), np.uint8)
            for index, image in enumerate(same_size + [portrait])}
    np.savez(tmp_path / "inputs.npz", images=np.stack(same_size), **pngs)
    script = tmp_path / "standalone.py"
    script.write_text(STANDALONE_SCRIPT)
    result = subprocess.run([sys.executable, str(script), export_dir, str(tmp_path / "inputs.npz"),
                             str(tmp_path / "outputs.npz")], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    expected_per_call = {"images": same_size, "bytes": same_size, "portrait": [portrait],
                         "examples": [same_size[0]]}
    for call, images in expected_per_call.items():
        for index, image in enumerate(images):
            expected = _reference(model_dir, image)
            assert expected["num_detections"] > 0
            for key, value in expected.items():
                got = outputs[f"{call}/{key}"][index]
                if value.dtype.kind in "fc":
                    np.testing.assert_allclose(got, value, atol=2e-5, err_msg=f"{call}/{key}[{index}]")
                else:
                    np.testing.assert_array_equal(got, value, err_msg=f"{call}/{key}[{index}]")
            count = expected["num_detections"]
            boxes = outputs[f"{call}/detection_boxes"][index]
            assert np.all((boxes[:count] >= 0) & (boxes[:count] <= 1))
            assert set(outputs[f"{call}/detection_class_names"][index][:count]) <= {b"a", b"b"}
            assert np.all(outputs[f"{call}/detection_classes"][index][count:] == 0)


def test_signature_names_dtypes_and_shapes(exported):
    loaded = tf.saved_model.load(exported[1])
    assert set(loaded.signatures) == set(INPUT_SPECS)
    for name, (input_name, dtype, shape) in INPUT_SPECS.items():
        function = loaded.signatures[name]
        _, keyword_specs = function.structured_input_signature
        assert list(keyword_specs) == [input_name]
        assert keyword_specs[input_name].dtype == dtype
        assert keyword_specs[input_name].shape.as_list() == shape
        assert set(function.structured_outputs) == set(OUTPUT_SPECS)
        for key, (out_dtype, out_shape) in OUTPUT_SPECS.items():
            spec = function.structured_outputs[key]
            assert spec.dtype == out_dtype, (name, key)
            assert spec.shape.as_list()[1:] == out_shape, (name, key, spec.shape)


def test_export_refuses_to_overwrite_and_bad_model_dir(exported, tmp_path):
    model_dir, export_dir = exported
    before = sorted(os.listdir(export_dir))
    result = _run_export(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert result.returncode == 1 and "already exists" in result.stderr
    assert sorted(os.listdir(export_dir)) == before
    result = _run_export(f"--model_dir={tmp_path}", f"--export_dir={tmp_path / 'out'}")
    assert result.returncode == 1 and "run.json" in result.stderr
    assert not os.path.exists(tmp_path / "out")
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # 임시 디렉터리가 남지 않는다
    result = _run_export(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'svd'}", "--fc_svd_ranks=8,x")
    assert result.returncode != 0 and "--fc_svd_ranks='8,x'" in result.stderr
    assert not os.path.exists(tmp_path / "svd")


def test_bombs_fail_inside_the_exported_graph_with_the_budget_error(exported):
    """TF Serving 이 돌려도 막히도록 그래프 자체가 머리로 예산을 검사한다 (tf.saved_model.load 만으로)."""
    loaded = tf.saved_model.load(exported[1])
    assert int(loaded.max_image_pixels.numpy()) == image_header.DEFAULT_MAX_IMAGE_PIXELS == 64 * 1024 * 1024
    bombs = {"20000x20000 pixels exceeds": hostile.png_bomb(20000, 20000),
             "30000x30000 pixels exceeds": hostile.jpeg_claiming(30000, 30000),
             "3000x3000 pixels x 10 frames exceeds": hostile.gif_bomb(3000, 3000, 10)}
    example = tf.train.Example(features=tf.train.Features(feature={"image/encoded": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[bombs["20000x20000 pixels exceeds"]]))})).SerializeToString()
    calls = [("serve_bytes", "image_bytes", [_png(_image(40, 30, 0)), data], message)
             for message, data in bombs.items()]
    calls.append(("serve_examples", "examples", [example], "20000x20000 pixels exceeds"))
    for signature, name, values, message in calls:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message + " the pixel budget of 67108864"):
            loaded.signatures[signature](**{name: tf.constant(values)})


def test_export_flag_sets_the_budget(exported, tmp_path):
    export_dir = str(tmp_path / "budget")
    model_dir = f"--model_dir={exported[0]}"
    result = _run_export(model_dir, f"--export_dir={export_dir}", "--max_image_pixels=1000")
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = tf.saved_model.load(export_dir)
    assert int(loaded.max_image_pixels.numpy()) == 1000
    outputs = loaded.signatures["serve_bytes"](image_bytes=tf.constant([_png(_image(40, 25, 0))]))
    assert outputs["num_detections"].shape == [1]
    with pytest.raises(tf.errors.InvalidArgumentError, match="image of 30x40 pixels exceeds the pixel budget "
                                                             "of 1000 pixels"):
        loaded.signatures["serve_bytes"](image_bytes=tf.constant([_png(_image(40, 30, 0))]))
    result = _run_export(model_dir, f"--export_dir={tmp_path / 'zero'}", "--max_image_pixels=0")
    assert result.returncode != 0 and "--max_image_pixels must be > 0" in result.stderr


def test_rest_server_serves_the_exported_model(exported):
    """TF Serving 클라이언트처럼: b64 행 형식과 열 형식 요청이 SavedModel 을 직접 부른 결과와 같다."""
    export_dir = exported[1]
    loaded = tf.saved_model.load(export_dir)
    image = _image(48, 64, 3)
    direct = loaded.signatures["serve_bytes"](image_bytes=tf.constant([_png(image)]))
    server = make_server(export_dir, "frcnn", "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        b64 = base64.b64encode(_png(image)).decode("ascii")
        rows = _post(server, {"signature_name": "serve_bytes", "instances": [{"b64": b64}]})["predictions"]
        columns = _post(server, {"inputs": {"images": image[None].tolist()}})["outputs"]
        for prediction in (rows[0], {key: value[0] for key, value in columns.items()}):
            np.testing.assert_allclose(prediction["detection_boxes"], direct["detection_boxes"][0], atol=1e-5)
            np.testing.assert_allclose(prediction["detection_scores"], direct["detection_scores"][0],
                                       atol=1e-5)
            assert prediction["detection_classes"] == direct["detection_classes"][0].numpy().tolist()
            assert prediction["num_detections"] == int(direct["num_detections"][0])
        not_an_image = base64.b64encode(b"not an image").decode()
        request = {"signature_name": "serve_bytes", "instances": [{"b64": not_an_image}]}
        status, body = _request(server, "POST", "/v1/models/frcnn:predict", json.dumps(request))
        assert status == 400 and "error" in body
    finally:
        assert server.graceful_shutdown(drain_timeout=10)
        thread.join(timeout=10)


def _request(server, method, path, body):
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, json.loads(response.read().decode("utf-8"))
    finally:
        connection.close()


def _post(server, document):
    status, body = _request(server, "POST", "/v1/models/frcnn:predict", json.dumps(document))
    assert status == 200, body
    return body


def _assert_same_detections(got, expected, label):
    """한 이미지의 출력 dict 두 개가 같은지: 개수·클래스는 똑같이, 박스·점수는 1e-4 안."""
    count = int(expected["num_detections"])
    assert int(got["num_detections"]) == count, label
    np.testing.assert_array_equal(got["detection_classes"], expected["detection_classes"], err_msg=label)
    for key in ("detection_boxes", "detection_scores"):
        np.testing.assert_allclose(got[key], expected[key], atol=1e-4, err_msg=f"{label} {key}")


def _row(outputs, index):
    return {key: value.numpy()[index] for key, value in outputs.items()}


def _example(png):
    return tf.train.Example(features=tf.train.Features(feature={"image/encoded": tf.train.Feature(
        bytes_list=tf.train.BytesList(value=[png]))})).SerializeToString()


def test_detections_do_not_depend_on_batch_mates(exported):
    """한 이미지의 검출은 혼자 보낸 것과 같다: 더 큰 (또는 다른 방향의) 이미지 옆에서도, 모든 시그니처에서."""
    loaded = tf.saved_model.load(exported[1])
    small, large, portrait = _image(40, 56, 3), _image(120, 160, 4), _image(90, 50, 5)
    pngs = [_png(image) for image in (small, large, portrait)]
    calls = {
        "serve_bytes": lambda items: loaded.signatures["serve_bytes"](image_bytes=tf.constant(items)),
        "serve_examples": lambda items: loaded.signatures["serve_examples"](
            examples=tf.constant([_example(item) for item in items])),
    }
    for name, call in calls.items():
        alone = _row(call([pngs[0]]), 0)
        assert alone["num_detections"] > 0
        for batch, index in (([pngs[0], pngs[1]], 0), ([pngs[1], pngs[2], pngs[0]], 2)):
            _assert_same_detections(_row(call(batch), index), alone, f"{name} beside larger images")
    # serving_default 는 같은 크기 배치만 받는다: 내용이 다른 같은 크기 이미지 옆.
    images = loaded.signatures["serving_default"]
    alone = _row(images(images=tf.constant(small[None])), 0)
    _assert_same_detections(_row(images(images=tf.constant(np.stack([_image(40, 56, 9), small]))), 1), alone,
                            "serving_default beside another image")


def test_evaluation_does_not_depend_on_batch_size(exported, tmp_path):
    """tools/evaluate 의 수집: batch_size 1 과 4 (크기가 다른 VOC 이미지들) 의 검출이 같다."""
    voc_dir = write_voc_dir(tmp_path)
    detect_fn = loader.load(exported[1], ("serve_bytes",)).serve_bytes
    one, four = (runner.collect(sources.open_voc_source(voc_dir, "trainval", None), detect_fn,
                                batch_size=size) for size in (1, 4))
    assert sum(len(detections.boxes) for detections in one.detections) > 0
    for alone, batched in zip(one.detections, four.detections):
        np.testing.assert_array_equal(batched.classes, alone.classes)
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-2)  # VOC 픽셀 (정규화 1e-4 × 크기)
        np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-4)
