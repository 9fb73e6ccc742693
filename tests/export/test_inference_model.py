"""inference_model 테스트: 학습된 모델의 가중치로 만든 추론 모델이 같은 검출을 내고, 학습된 모델은 바뀌지
않으며, 교대 학습의 RPN 전용 백본은 옮기지 않고, 구조가 다른 설정은 거부한다.

용어: B 배치 (2), C 클래스 수 (2); 이미지는 64×64 캔버스 (tiny_config).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.export import inference_model
from frcnn.export import saved_model
from frcnn.modeling import heads
from frcnn.modeling import model as model_lib
from tests.testing import tiny_config

CONFIG = tiny_config("detection.score_threshold=0.0,detection.max_detections=8")


def _trained(separate_rpn_backbone=False):
    """변수를 무작위로 흔든 (학습된 것처럼 0 이 아닌 편향) 모델."""
    tf.random.set_seed(3)
    model = model_lib.FasterRCNN(CONFIG, 2, separate_rpn_backbone=separate_rpn_backbone)
    model.build_all(record_spec.largest_canvas(CONFIG))
    rng = np.random.default_rng(0)
    for variable in model.trainable_variables:
        variable.assign(variable + rng.normal(0.0, 0.01, variable.shape).astype(np.float32))
    return model


def _detect(model):
    images = tf.constant(np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32))
    sizes = tf.constant([[64.0, 64.0], [48.0, 64.0]])
    return {key: value.numpy() for key, value in model.detect(images, sizes, tf.ones([2])).items()}


def _ids(variables):
    return {id(variable) for variable in variables}


@pytest.mark.parametrize("separate_rpn_backbone", [False, True])
def test_same_detections_and_the_trained_model_is_untouched(separate_rpn_backbone):
    trained = _trained(separate_rpn_backbone)
    values = [variable.numpy().copy() for variable in trained.variables]
    body = trained.detector_head.body
    model, compressed = inference_model.build_inference_model(trained, CONFIG)
    assert compressed == {}
    # 추론 모델은 자기 변수를 가진다 (공유하지 않는다) 그리고 RPN 전용 백본이 없다.
    assert not _ids(model.variables) & _ids(trained.variables)
    assert model.rpn_backbone is None and model.config.backbone.weights == "none"
    expected, got = _detect(trained), _detect(model)
    assert expected["num_detections"].sum() > 0
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, err_msg=key)
    assert trained.detector_head.body is body and trained.config is CONFIG
    for variable, value in zip(trained.variables, values):
        np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


def test_detection_overrides_apply_to_the_inference_model_only():
    trained = _trained()
    config = saved_model.with_detection_overrides(CONFIG, score_threshold=0.5, max_detections=3)
    model, _ = inference_model.build_inference_model(trained, config)
    assert model.config.detection.max_detections == 3 and trained.config.detection.max_detections == 8
    assert _detect(model)["scores"].shape == (2, 3)


def test_svd_head_replaces_fc6_fc7_in_the_inference_model_only():
    trained = _trained()
    config = saved_model.with_detection_overrides(CONFIG, fc_svd_ranks=(4, 0))
    model, compressed = inference_model.build_inference_model(trained, config)
    assert compressed == {"fc6": 4, "fc7": None}
    inference_weights = [weight.name for weight in model.detector_head.body.weights]
    assert "fc6_svd_u_kernel_out_major" in inference_weights
    assert "fc6_kernel_out_major" not in inference_weights and "fc7_kernel_out_major" in inference_weights
    assert "fc6" in [layer.name for layer in trained.detector_head.body.layers]


def test_a_different_architecture_is_rejected():
    trained = _trained()
    other = config_lib.build_config("cpu_small",
                                    "backbone.width=16,backbone.fc_units=32,rpn.conv_channels=16")
    with pytest.raises(ValueError, match="cannot copy the trained"):
        inference_model.build_inference_model(trained, other)


def test_output_major_fc_body_keeps_the_detections_of_a_random_vgg16_paper_model():
    """vgg16_paper (무작위 가중치, 작은 이미지): 출력 축 먼저 fc6/fc7 의 추론 모델이 학습된 모델과 같은 검출을
    낸다 — SavedModel 그래프와 이식 (LiteRT·ONNX) 그래프 모두 (박스·점수 1e-5 이내, 클래스·개수 같음)."""
    config = config_lib.build_config("vgg16_paper", "backbone.weights=none,detection.score_threshold=0.0")
    tf.random.set_seed(5)
    trained = model_lib.FasterRCNN(config, 20)
    trained.build_all((64, 64))
    images = tf.constant(np.random.default_rng(2).uniform(0, 255, (1, 128, 160, 3)).astype(np.float32))
    sizes, scales = tf.constant([[128.0, 160.0]]), tf.ones([1])
    expected = trained.detect(images, sizes, scales)
    model, _ = inference_model.build_inference_model(trained, config)
    assert isinstance(model.detector_head.body, heads.OutputMajorFcBody)
    assert int(expected["num_detections"][0]) > 0
    for portable in (False, True):
        got = model.detect(images, sizes, scales, portable=portable)
        reference = trained.detect(images, sizes, scales, portable=True) if portable else expected
        for key in ("num_detections", "classes"):
            np.testing.assert_array_equal(got[key], reference[key], err_msg=f"{key} portable={portable}")
        for key in ("boxes", "scores"):
            np.testing.assert_allclose(got[key], reference[key], atol=1e-5,
                                       err_msg=f"{key} portable={portable}")
