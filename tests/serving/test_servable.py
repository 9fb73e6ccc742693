"""frcnn.serving.servable 테스트: 모델 불러오기, 워밍업 입력, TF 오류 메시지 줄이기, 워밍업 실행.

용어: SavedModel 은 conftest.py 의 작은 검출기 (세 시그니처). 워밍업 이미지는 32×32 회색 (값 128).
"""

import logging

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import records
from frcnn.serving import servable


def test_load_servable_from_path_and_object(saved_model_dir, loaded_model):
    from_path = servable.load_servable(saved_model_dir, version=3)
    assert sorted(from_path.signatures) == ["serve_bytes", "serve_examples", "serving_default"]
    assert from_path.version == 3
    from_object = servable.load_servable(loaded_model)
    assert from_object.model.model is loaded_model
    assert servable.load_servable(from_object) is from_object


def test_load_servable_errors(tmp_path):
    with pytest.raises(ValueError, match=r"not a SavedModel directory \(no saved_model.pb\)"):
        servable.load_servable(str(tmp_path))
    with pytest.raises(ValueError, match="SavedModel directory not found"):
        servable.load_servable(tmp_path / "missing")
    with pytest.raises(ValueError, match="the model has no serving signatures"):
        servable.load_servable(tf.Module())


def _decoded(image_bytes):
    return tf.io.decode_image(image_bytes, channels=3).numpy()


def test_warmup_array_for_each_input_kind():
    size = servable.WARMUP_IMAGE_SIZE
    gray = np.full([size, size, 3], 128, np.uint8)
    image_bytes = servable.warmup_array("image_bytes", tf.TensorSpec([None], tf.string))
    assert image_bytes.shape == (1,)
    np.testing.assert_array_equal(_decoded(image_bytes[0]), gray)
    examples = servable.warmup_array("examples", tf.TensorSpec([None], tf.string))
    values = records.read_example_numpy(examples[0])
    assert (values["format"], values["height"], values["width"]) == ("png", size, size)
    np.testing.assert_array_equal(_decoded(values["image_bytes"]), gray)
    images = servable.warmup_array("images", tf.TensorSpec([None, None, 48, 3], tf.uint8))
    assert images.shape == (1, size, 48, 3) and images.dtype == np.uint8 and (images == 128).all()
    assert servable.warmup_array("features", tf.TensorSpec([None, 4], tf.float32)) is None
    assert servable.warmup_array("images", tf.TensorSpec([None, None, None, 1], tf.uint8)) is None


def test_short_error_message_keeps_the_cause_line():
    message = ("Graph execution error:\n\nDetected at node DecodeImage defined at (most recent call last):\n"
               "<stack traces unavailable>\nUnknown image file format. One of JPEG, PNG, GIF, BMP required.\n"
               "\t [[{{node DecodeImage}}]] [Op:__inference_serve_bytes_123]")
    expected = "Unknown image file format. One of JPEG, PNG, GIF, BMP required."
    assert servable.short_error_message(message) == expected
    assert servable.short_error_message("  plain  ") == "plain"


def test_warmup_runs_every_signature(loaded_model, caplog):
    with caplog.at_level(logging.INFO, logger=servable.logger.name):
        servable.load_servable(loaded_model).warmup()
    warmed = sorted(record.getMessage().split("'")[1] for record in caplog.records
                    if record.getMessage().startswith("warmed up"))
    assert warmed == ["serve_bytes", "serve_examples", "serving_default"]
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
