"""fpn 시험: torchvision `FeaturePyramidNetwork` + `LastLevelMaxPool` 과 같은 P2–P6 (torch 가 없으면 torchvision 과
비교하는 시험만 건너뛴다).

단계마다 기준의 입력을 먹인다: FPN 에는 torchvision 백본 (body) 이 낸 C2–C5 를 그대로 넣는다. 백본 전체
(`resnet_fpn`) 도 끝에서 끝까지 한 번 비교한다. 입력 100×130 은 위→아래 경로에 두 배가 아닌 확대 (7 → 13 등) 를 만든다.
"""

from collections import OrderedDict

import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import fpn
from frcnn.modeling import resnet_tv
from tests import torch_reference


def _pyramid(variant):
    return fpn.feature_pyramid(resnet_tv.stage_channels(18), norm=None if variant == "v1" else "batch")


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_pyramid_fed_torchvision_stage_outputs_matches(variant):
    torch, _ = torch_reference.import_torchvision()
    reference = torch_reference.reference_backbone(18, variant)
    images = torch.from_numpy(torch_reference.random_images())
    with torch.no_grad():
        stages = reference.body(images)
        expected = reference.fpn(stages)
    pyramid = _pyramid(variant)
    torch_reference.copy_weights(reference.fpn, pyramid)
    actual = pyramid([tf.constant(torch_reference.nhwc(level)) for level in stages.values()])
    assert list(expected) == ["0", "1", "2", "3", "pool"]
    for level, reference_level in zip(actual, expected.values()):
        torch_reference.assert_close_relative(level, torch_reference.nhwc(reference_level))


def test_resnet_fpn_matches_torchvision_end_to_end():
    torch, _ = torch_reference.import_torchvision()
    reference = torch_reference.reference_backbone(18, "v2", seed=5)
    backbone = fpn.resnet_fpn(18, "v2")
    torch_reference.copy_weights(reference.body, backbone.get_layer("body"))
    torch_reference.copy_weights(reference.fpn, backbone.get_layer("fpn"))
    images = torch_reference.random_images(seed=7)
    with torch.no_grad():
        expected = reference(torch.from_numpy(images))
    actual = backbone(tf.constant(images.transpose(0, 2, 3, 1)))
    for level, reference_level in zip(actual, expected.values()):
        torch_reference.assert_close_relative(level, torch_reference.nhwc(reference_level))


@pytest.mark.parametrize("source,target", [(7, 13), (13, 25), (3, 7), (4, 8), (5, 9), (6, 6)])
def test_nearest_resize_matches_torch_interpolate(source, target):
    torch, _ = torch_reference.import_torchvision()
    values = np.arange(source * (source + 1), dtype=np.float32).reshape(1, source, source + 1, 1)
    expected = torch.nn.functional.interpolate(torch.from_numpy(torch_reference.nchw(values)),
                                               size=(target, target + 2), mode="nearest")
    actual = fpn.NearestResize()(tf.constant(values), tf.zeros([1, target, target + 2, 1]))
    np.testing.assert_array_equal(actual.numpy(), torch_reference.nhwc(expected))


def test_p6_is_every_other_cell_of_p5():
    """P6 = max_pool(k=1, s=2): P5[::2, ::2] (홀수 크기면 ⌈n/2⌉)."""
    pyramid = _pyramid("v1")
    stages = [tf.random.normal([1, 2 * size, 2 * size + 1, channels], seed=1)
              for size, channels in zip((20, 10, 5, 3), resnet_tv.stage_channels(18))]
    outputs = pyramid(stages)
    np.testing.assert_array_equal(outputs[4].numpy(), outputs[3].numpy()[:, ::2, ::2])


def test_layer_names_follow_the_torchvision_state_dict():
    """Keras 층 이름 = torchvision state_dict 모듈 경로의 '.' → '_' (가중치 가져오기가 이름만으로 짝짓는다)."""
    reference = torch_reference.reference_backbone(18, "v2")
    torch_names = OrderedDict.fromkeys(key.rsplit(".", 1)[0].replace(".", "_")
                                       for key in reference.fpn.state_dict())
    pyramid = _pyramid("v2")
    assert sorted(layer.name for layer in pyramid.layers if layer.weights) == sorted(torch_names)
