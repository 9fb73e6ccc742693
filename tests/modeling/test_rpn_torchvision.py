"""rpn.RpnHead 를 torchvision `RPNHead` (conv_depth 1 = fasterrcnn_resnet50_fpn, 2 = _v2) 와 비교한다: 같은 가중치로
다섯 수준 (P2–P6) 에 같은 헤드를 적용해 이은 객체성 로짓과 박스 델타가 같다 (torch 가 없으면 건너뛴다).

torchvision 의 델타는 앵커마다 (dx, dy, dw, dh), 이 프로젝트는 (dy, dx, dh, dw): bbox_pred 의 출력 채널을 앵커마다
[1, 0, 3, 2] 로 바꿔 싣는다 (가중치 가져오기도 같은 순서 바꾸기를 한다). 앵커 순서 (수준, y, x, a) 는 같다.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import rpn
from tests import torch_reference

CHANNELS = 16
ANCHORS = 3
GRIDS = ((24, 32), (12, 16), (6, 8), (3, 4), (2, 2))  # 96×128 입력의 P2–P6


def _keras_head(reference, conv_depth):
    head = rpn.RpnHead(CHANNELS, ANCHORS, conv_depth=conv_depth)
    head(tf.zeros([1, 4, 4, CHANNELS]))
    torch_reference.copy_rpn_head(reference, head)
    return head


@pytest.mark.parametrize("conv_depth", [1, 2])
def test_rpn_head_over_pyramid_matches_torchvision(conv_depth):
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection import rpn as tv_rpn

    torch.manual_seed(conv_depth)
    reference = tv_rpn.RPNHead(CHANNELS, ANCHORS, conv_depth=conv_depth).eval()
    with torch.no_grad():  # 초기값 (std 0.01, bias 0) 보다 큰 값: 점수가 서로 비슷해지지 않게
        for parameter in reference.parameters():
            parameter.copy_(torch.randn(parameter.shape) * 0.2)
    rng = np.random.default_rng(conv_depth)
    levels = [rng.normal(size=(2, height, width, CHANNELS)).astype(np.float32) for height, width in GRIDS]
    with torch.no_grad():
        logits, deltas = reference([torch.from_numpy(torch_reference.nchw(level)) for level in levels])
        expected_logits, expected_deltas = tv_rpn.concat_box_prediction_layers(logits, deltas)
    head = _keras_head(reference, conv_depth)
    outputs = [head(tf.constant(level)) for level in levels]
    actual_logits = tf.concat([logits for logits, _ in outputs], axis=1)
    actual_deltas = tf.concat([deltas for _, deltas in outputs], axis=1)
    torch_reference.assert_close_relative(actual_logits, expected_logits.numpy().reshape(2, -1))
    torch_reference.assert_close_relative(
        actual_deltas, expected_deltas.numpy().reshape(2, -1, 4)[..., list(torch_reference.DELTA_ORDER)])
