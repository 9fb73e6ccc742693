"""frcnn.export.loader 테스트: 진짜 SavedModel (tests/testing.py 의 작은 검출기) 을 불러오고, 잘못된 경로는 경로를 이름한
한 줄로 거절한다."""

import numpy as np
import pytest

from frcnn.export import loader
from frcnn.export import signature


def test_loads_and_runs(saved_model_dir):
    model = loader.load(saved_model_dir, required_signatures=("serving_default",))
    images = np.zeros([1, 8, 8, 3], np.uint8)
    images[0, 2:5, 3:7] = 255
    outputs = model.run("serving_default", {"images": images})
    assert sorted(outputs) == sorted(signature.OUTPUT_NAMES)
    np.testing.assert_allclose(outputs["detection_boxes"][0, 0], [2 / 8, 3 / 8, 5 / 8, 7 / 8])
    assert sorted(model.signatures["serve_bytes"][0]) == ["image_bytes"]


def test_missing_signature_names_the_ones_present(saved_model_dir):
    expected = (r"the model has no 'serve_tflite' signature "
                r"\(has: serve_bytes, serve_examples, serving_default\)")
    with pytest.raises(ValueError, match=expected):
        loader.load(saved_model_dir, required_signatures=("serve_tflite",))


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "absent", "SavedModel directory not found"),
    (lambda root: root, "not a SavedModel directory"),
])
def test_bad_paths(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        loader.load(make(tmp_path))


def test_corrupt_saved_model(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="cannot load SavedModel"):
        loader.load(tmp_path)
