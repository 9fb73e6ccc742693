"""resnet_tv 시험: torchvision ResNet 과 같은 가중치로 같은 C2–C5 를 내는지 (torch 가 없으면 torchvision 과 비교하는 시험만
건너뛴다).

기준: torchvision 의 `resnet18`/`resnet50` 을 `_resnet_fpn_extractor` 로 감싼 백본의 `body` (IntermediateLayerGetter),
무작위 가중치에 BN 값도 무작위로 바꾼 것. 입력은 32 의 배수가 아닌 100×130 (⌈n/2⌉ 단계와 대칭 패딩을 드러낸다).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import resnet_tv
from frcnn.ops import fpn_anchors
from tests import torch_reference


def keras_body(reference, depth, variant, trainable_layers=3, epsilon=1e-5):
    norm = "frozen" if variant == "v1" else "batch"
    body = resnet_tv.resnet_body(depth, norm, epsilon, trainable_layers)
    torch_reference.copy_weights(reference.body, body)
    return body


def compare_body(depth, variant, epsilon=1e-5, shape=torch_reference.INPUT_SHAPE):
    torch, _ = torch_reference.import_torchvision()
    reference = torch_reference.reference_backbone(depth, variant, epsilon=epsilon)
    body = keras_body(reference, depth, variant, epsilon=epsilon)
    images = torch_reference.random_images(shape=shape)
    with torch.no_grad():
        expected = reference.body(torch.from_numpy(images))
    actual = body(tf.constant(torch_reference.nhwc(torch.from_numpy(images))))
    for key, level in zip(expected, actual):
        torch_reference.assert_close_relative(level, torch_reference.nhwc(expected[key]))


@pytest.mark.parametrize("variant,epsilon", [("v1", 1e-5), ("v1", 0.0), ("v2", 1e-5)])
def test_resnet18_body_matches_torchvision(variant, epsilon):
    compare_body(18, variant, epsilon)


@pytest.mark.slow
@pytest.mark.parametrize("variant,epsilon", [("v1", 0.0), ("v2", 1e-5)])
def test_resnet50_body_matches_torchvision(variant, epsilon):
    compare_body(50, variant, epsilon, shape=(1, 3, 64, 96))


def test_stage_grid_sizes_match_torchvision():
    """fpn_anchors.grid_sizes (⌈n/2⌉ 단계) 가 torchvision 백본의 C2–C5 와 P6 크기와 같다."""
    torch, _ = torch_reference.import_torchvision()
    reference = torch_reference.reference_backbone(18, "v1")
    for height, width in ((100, 130), (64, 96), (33, 31)):
        with torch.no_grad():
            outputs = reference(torch.zeros(1, 3, height, width))
        expected = [tuple(level.shape[-2:]) for level in outputs.values()]
        assert fpn_anchors.grid_sizes(height, width) == expected


@pytest.mark.parametrize("variant", ["v1", "v2"])
@pytest.mark.parametrize("trainable_layers", [0, 3, 5])
def test_trainable_layers_match_torchvision(variant, trainable_layers):
    """학습되는 층이 torchvision 의 requires_grad 매개변수를 가진 모듈과 같다 (BN 의 gamma·beta 포함)."""
    reference = torch_reference.reference_backbone(18, variant, trainable_layers)
    expected = {name.rsplit(".", 1)[0].replace(".", "_")
                for name, parameter in reference.body.named_parameters() if parameter.requires_grad}
    body = resnet_tv.resnet_body(18, "frozen" if variant == "v1" else "batch", 1e-5, trainable_layers)
    actual = {layer.name for layer in body.layers if layer.trainable_weights}
    assert actual == expected


def test_frozen_batch_norm_layers_still_use_batch_statistics_in_training():
    """v2 의 얼린 BN (줄기, layer1) 도 PyTorch 처럼 학습 모드에서 배치 통계로 정규화한다."""
    torch, _ = torch_reference.import_torchvision()
    reference = torch_reference.reference_backbone(18, "v2", trainable_layers=2)
    body = keras_body(reference, 18, "v2", trainable_layers=2)
    images = torch_reference.random_images(seed=3)
    with torch.no_grad():
        expected = reference.body.train()(torch.from_numpy(images))
    actual = body(tf.constant(torch_reference.nhwc(torch.from_numpy(images))), training=True)
    for key, level in zip(expected, actual):
        torch_reference.assert_close_relative(level, torch_reference.nhwc(expected[key]))


def test_frozen_batch_norm_formula():
    """FrozenBatchNorm: x · w / √(v + eps) + (b − m · w / √(v + eps)), 손으로 계산한 값."""
    layer = resnet_tv.FrozenBatchNorm(epsilon=0.25)
    layer.build((None, 2))
    layer.set_weights([np.array([2.0, 1.0]), np.array([0.5, -1.0]), np.array([1.0, 0.0]),
                       np.array([0.75, 3.75])])
    outputs = layer(tf.constant([[3.0, 4.0]]))
    # 채널 0: 2/√1 = 2 → 3·2 + 0.5 − 2 = 4.5; 채널 1: 1/√4 = 0.5 → 4·0.5 − 1 = 1
    np.testing.assert_allclose(outputs.numpy(), [[4.5, 1.0]], rtol=1e-6)
    assert not layer.trainable_weights


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="depth"):
        resnet_tv.resnet_body(depth=42)
    with pytest.raises(ValueError, match="trainable_layers"):
        resnet_tv.resnet_body(depth=18, trainable_layers=6)
    with pytest.raises(ValueError, match="norm"):
        resnet_tv.resnet_body(depth=18, norm="group")
