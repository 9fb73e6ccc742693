"""frcnn.export.loader 테스트: 진짜 SavedModel 을 불러오고, 잘못된 경로는 경로를 이름한 한 줄로 거절한다."""

import pytest
import tensorflow as tf

from frcnn.export import loader


class _Doubler(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def double(self, x):
        return {"y": 2.0 * x}


@pytest.fixture(scope="module")
def saved_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("loader") / "model")
    module = _Doubler()
    tf.saved_model.save(module, path, signatures={"serving_default": module.double})
    return path


def test_loads_and_runs(saved_dir):
    model = loader.load_saved_model(saved_dir, required_signatures=("serving_default",))
    outputs = model.signatures["serving_default"](x=tf.constant([1.0, 3.0]))
    assert outputs["y"].numpy().tolist() == [2.0, 6.0]


def test_missing_signature_names_the_ones_present(saved_dir):
    expected = r"model: SavedModel has no .serve_bytes. signature \(has: serving_default\)"
    with pytest.raises(ValueError, match=expected):
        loader.load_saved_model(saved_dir, required_signatures=("serve_bytes",))


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "absent", "SavedModel directory not found"),
    (lambda root: root, "not a SavedModel directory"),
])
def test_bad_paths(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        loader.load_saved_model(make(tmp_path))


def test_corrupt_saved_model(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match="cannot load SavedModel"):
        loader.load_saved_model(tmp_path)
