"""truncated_svd 테스트: 알려진 특잇값으로 만든 행렬의 근사 오차(Eckart–Young), 계수(rank)가 낮은 헤드는
그대로 재현, 이득 없는 rank 는 그 층을 그대로 둠, fc 헤드가 없으면 오류, 내보낸 SavedModel 에 옛 fc6 가
남지 않고 검출이 원래 모델과 같음.

용어: u 입력 차원, v 출력 차원, t rank.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import record_spec
from frcnn.export import detection
from frcnn.export import saved_model
from frcnn.export import truncated_svd
from frcnn.modeling import backbones
from frcnn.modeling import model as model_lib
from tests.testing import tiny_config


def _matrix_with_singular_values(rows, columns, singular_values, seed):
    """W = Q1 diag(s) Q2ᵀ (Q 는 무작위 직교) — 특잇값을 알고 있는 행렬."""
    rng = np.random.default_rng(seed)
    q1, _ = np.linalg.qr(rng.normal(size=(rows, len(singular_values))))
    q2, _ = np.linalg.qr(rng.normal(size=(columns, len(singular_values))))
    return (q1 * singular_values) @ q2.T


def test_factorize_error_is_the_dropped_singular_values():
    singular_values = np.array([10.0, 5.0, 3.0, 1.0, 0.5])
    for shape, rank in [((40, 12), 1), ((40, 12), 3), ((40, 12), 5), ((12, 40), 2)]:
        kernel = _matrix_with_singular_values(*shape, singular_values, rank)
        first, second = truncated_svd.factorize(kernel, rank)
        assert first.shape == (shape[0], rank) and second.shape == (rank, shape[1])
        error = np.linalg.norm(kernel - first.astype(np.float64) @ second)
        np.testing.assert_allclose(error, np.sqrt(np.sum(singular_values[rank:] ** 2)), atol=1e-4)


def _fc_body(input_size=2, channels=4, units=32):
    return backbones.fc_head(units, 0.5, "head", input_size, channels)


def _set_low_rank(body, rank, seed):
    """fc6/fc7 커널을 rank 짜리로 바꾼다 (절단 SVD 가 정확히 재현해야 한다)."""
    for offset, name in enumerate(truncated_svd.FC_LAYER_NAMES):
        layer = body.get_layer(name)
        rows, columns = layer.kernel.shape
        kernel = _matrix_with_singular_values(rows, columns, np.linspace(2.0, 1.0, rank), seed + offset)
        bias = np.random.default_rng(seed).normal(size=columns) * 0.1
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])


def test_compressed_head_reproduces_a_low_rank_head():
    body = _fc_body()
    _set_low_rank(body, 3, 1)
    compressed, used = truncated_svd.compress_fc_head(body, (3, 3))
    assert used == {"fc6": 3, "fc7": 3}
    assert [layer.name for layer in compressed.layers if "svd" in layer.name] == [
        "fc6_svd_u", "fc6_svd_v", "fc7_svd_u", "fc7_svd_v"]
    features = np.random.default_rng(2).normal(size=(5, 2, 2, 4)).astype(np.float32)
    np.testing.assert_allclose(compressed(features), body(features, training=False), atol=1e-5)


def test_rank_without_gain_keeps_the_layer():
    body = _fc_body()  # fc6 16×32, fc7 32×32
    compressed, used = truncated_svd.compress_fc_head(body, (12, 0))  # 12·48 = 576 ≥ 512 → 그대로
    assert used == {"fc6": None, "fc7": None}
    features = np.random.default_rng(3).normal(size=(2, 2, 2, 4)).astype(np.float32)
    np.testing.assert_allclose(compressed(features), body(features, training=False), atol=1e-6)


def test_head_without_fc_layers_is_an_error():
    inputs = keras.Input((2, 2, 4))
    body = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs), name="conv5")
    with pytest.raises(ValueError, match="needs an fc6/fc7 head"):
        truncated_svd.compress_fc_head(body, (4, 4))
    with pytest.raises(ValueError, match="2 SVD ranks"):
        truncated_svd.compress_fc_head(_fc_body(), (4,))


def test_export_with_svd_drops_the_original_fc6_and_keeps_detections(tmp_path):
    cfg = tiny_config("detection.score_threshold=0.0,detection.max_detections=8")
    model = model_lib.FasterRCNN(cfg, 2)
    model.build_all(record_spec.largest_canvas(cfg))
    body = model.detector_head.body
    _set_low_rank(body, 4, 5)
    original_fc6 = tuple(body.get_layer("fc6").kernel.shape)
    trained_values = [variable.numpy().copy() for variable in model.variables]
    image = np.random.default_rng(4).integers(0, 255, (1, 64, 64, 3)).astype(np.uint8)
    module = detection.DetectionModule(model, cfg, ("a", "b"))  # tf.function 은 module 을 약하게 참조한다
    expected = module.serve_images(tf.constant(image))
    svd_config = saved_model.with_detection_overrides(cfg, fc_svd_ranks=(4, 4))
    used = saved_model.export_saved_model(model, svd_config, ("a", "b"), str(tmp_path / "saved"))
    assert used == {"fc6": 4, "fc7": 4}
    # 학습된 모델은 그대로다: 같은 몸통 객체, 같은 변수 값, 같은 설정.
    assert model.detector_head.body is body and model.config is cfg
    assert [layer.name for layer in body.layers if "svd" in layer.name] == []
    assert len(model.variables) == len(trained_values)
    for variable, value in zip(model.variables, trained_values):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    reader = tf.train.load_checkpoint(str(tmp_path / "saved" / "variables" / "variables"))
    shapes = [tuple(shape) for shape in reader.get_variable_to_shape_map().values()]
    # 추론 모델의 fc 커널은 출력 축 먼저 ([출력, 입력], heads.OutputMajorFcBody) 로 저장된다.
    assert original_fc6 not in shapes and original_fc6[::-1] not in shapes and (4, original_fc6[0]) in shapes
    got = loaded.signatures["serving_default"](images=tf.constant(image))
    np.testing.assert_allclose(got["detection_scores"], expected["detection_scores"], atol=1e-4)
    np.testing.assert_allclose(got["detection_boxes"], expected["detection_boxes"], atol=1e-4)


def test_parse_ranks():
    assert truncated_svd.parse_ranks(None) is None
    assert truncated_svd.parse_ranks("none") == () and truncated_svd.parse_ranks("") == ()
    assert truncated_svd.parse_ranks("1024,256") == (1024, 256)
    for bad in ("8,x", "1,2,3", "4", "-1,2"):
        with pytest.raises(ValueError, match="expected two integers"):
            truncated_svd.parse_ranks(bad)
