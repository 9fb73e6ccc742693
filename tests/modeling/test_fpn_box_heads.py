"""fpn_box_heads 시험: torchvision `TwoMLPHead` / `FastRCNNConvFCHead` + `FastRCNNPredictor` 와 같은 클래스 로짓·박스
델타 (torch 가 없으면 건너뛴다). 헤드 단계만: 입력은 기준과 같은 RoI 특징 (무작위) 이다.

작은 크기 (채널 8, P 7, D 32, 클래스 4 + 배경). torchvision 의 델타 (dx, dy, dw, dh) 는 클래스마다 [1, 0, 3, 2] 로
바꿔 싣는다 (이 프로젝트 (dy, dx, dh, dw)). v2 의 BN 값은 무작위로.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import fpn_box_heads
from frcnn.modeling import heads
from tests import torch_reference

CHANNELS, POOL, UNITS, CLASSES = 8, 7, 32, 4


def _reference(variant):
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection import faster_rcnn

    torch.manual_seed(len(variant))
    if variant == "v1":
        body = faster_rcnn.TwoMLPHead(CHANNELS * POOL * POOL, UNITS)
    else:
        body = faster_rcnn.FastRCNNConvFCHead((CHANNELS, POOL, POOL), [CHANNELS] * 4, [UNITS],
                                              norm_layer=torch.nn.BatchNorm2d)
        torch_reference.randomize_(body, seed=9)
    return body.eval(), faster_rcnn.FastRCNNPredictor(UNITS, CLASSES + 1).eval()


def _keras_head(variant, reference_body, predictor):
    if variant == "v1":
        body = fpn_box_heads.two_mlp_head(CHANNELS, POOL, UNITS)
        first_fc = "fc6"
    else:
        body = fpn_box_heads.conv_fc_head(CHANNELS, POOL, (CHANNELS,) * 4, (UNITS,))
        first_fc = "5"
    linear = dict(reference_body.named_modules())[first_fc]
    torch_reference.copy_weights(reference_body, body, overrides={
        first_fc: torch_reference.flattened_dense_values(linear, CHANNELS, POOL, POOL)})
    head = heads.DetectorHead(body, CLASSES)
    head(tf.zeros([1, POOL, POOL, CHANNELS]))
    torch_reference.copy_box_predictor(predictor, head)
    return head


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_box_head_and_predictor_match_torchvision(variant):
    torch, _ = torch_reference.import_torchvision()
    reference_body, predictor = _reference(variant)
    features = np.random.default_rng(1).normal(size=(6, CHANNELS, POOL, POOL)).astype(np.float32)
    with torch.no_grad():
        expected_logits, expected_deltas = predictor(reference_body(torch.from_numpy(features)))
    head = _keras_head(variant, reference_body, predictor)
    logits, deltas = head(tf.constant(torch_reference.nhwc(torch.from_numpy(features))))
    torch_reference.assert_close_relative(logits, expected_logits.numpy())
    expected_deltas = expected_deltas.numpy().reshape(6, CLASSES + 1, 4)
    expected_deltas = expected_deltas[..., list(torch_reference.DELTA_ORDER)]
    torch_reference.assert_close_relative(deltas, expected_deltas)


def test_conv_fc_head_layer_names_follow_the_torchvision_state_dict():
    torch, _ = torch_reference.import_torchvision()
    reference_body, _ = _reference("v2")
    expected = {key.rsplit(".", 1)[0].replace(".", "_") for key in reference_body.state_dict()}
    body = fpn_box_heads.conv_fc_head(CHANNELS, POOL, (CHANNELS,) * 4, (UNITS,))
    assert {layer.name for layer in body.layers if layer.weights} == expected
