"""FPN 검출기 몸통: torchvision `TwoMLPHead` (fasterrcnn_resnet50_fpn) 와 `FastRCNNConvFCHead` (_v2).

용어:
  N RoI 수, P RoI 출력 크기 (7), C RoI 특징 채널 (256), D 몸통 출력 (1024).
  v1 `two_mlp_head`: Flatten → fc6 (ReLU) → fc7 (ReLU) — `backbones.fc_head` 그대로 (dropout 없음).
  v2 `conv_fc_head`: (3×3 합성곱, bias 없음 → BatchNorm → ReLU) × 4 → Flatten → fc (ReLU) 하나.
  Flatten 순서: 여기는 [N, P, P, C] 를 (y, x, c) 로, torchvision 은 [N, C, P, P] 를 (c, y, x) 로 편다 — 가중치를
    가져올 때 첫 fc 의 입력 축을 바꿔 싣는다 (구조는 같다).
  층 이름: torchvision 의 `nn.Sequential` 경로에서 '.' 을 '_' 로 (box_head.0.0 → 0_0, BN 0_1, fc 5).
  클래스 로짓·박스 델타 (torchvision `FastRCNNPredictor`) 는 `heads.DetectorHead` 가 맡는다.
"""

import keras

from frcnn.modeling import backbones
from frcnn.modeling import resnet_tv

REPRESENTATION_SIZE = 1024


def two_mlp_head(channels=256, pool_size=7, units=REPRESENTATION_SIZE, name="box_head"):
    """v1 몸통 [N, P, P, C] → [N, D] (torchvision `TwoMLPHead`; 층 이름 fc6, fc7)."""
    return backbones.fc_head(units, 0.0, name, pool_size, channels)


def conv_fc_head(channels=256, pool_size=7, conv_layers=(256,) * 4, fc_layers=(REPRESENTATION_SIZE,),
                 name="box_head"):
    """v2 몸통 [N, P, P, C] → [N, D] (torchvision `FastRCNNConvFCHead(norm_layer=BatchNorm2d)`).

    합성곱 초기화는 torchvision 과 같은 kaiming_normal(fan_out) 이다.
    """
    inputs = keras.Input((pool_size, pool_size, channels))
    x = inputs
    for index, filters in enumerate(conv_layers):
        x = resnet_tv.torch_conv(x, filters, 3, 1, f"{index}_0")
        x = resnet_tv.norm_layer("batch", 1e-5, f"{index}_1")(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    for index, units in enumerate(fc_layers):
        # torchvision 의 Sequential 번호: 합성곱 블록들, Flatten, 그다음 (Linear, ReLU) 쌍
        x = keras.layers.Dense(units, activation="relu", name=str(len(conv_layers) + 1 + 2 * index))(x)
    return keras.Model(inputs, x, name=name)
