"""피라미드 프리셋의 백본과 검출기 몸통: 이미지 → [P2, …, P6], RoI 특징 → 벡터.

용어:
  B 배치, H·W 입력 (패딩된, 32 의 배수), C 피라미드 채널 (`fpn.channels`), D 몸통 출력 (`backbone.fc_units`).
  resnet_fpn — torchvision `resnet_fpn_backbone` 그대로 (`fpn.resnet_fpn`):
    ResNet v1.5 (깊이 `backbone.depth`) + FPN.
    정규화 ImageNet 평균·표준편차 (`tv_transform.normalize`). 사전학습 가중치가 없으면 torchvision 처럼 모든 층을
    학습하고 보통 BatchNorm 을 쓴다 (torchvision `weights_backbone=None`: FrozenBN·얼린 층 없음);
    있으면 v1 은 FrozenBatchNorm (eps `backbone.norm_epsilon`), 앞쪽 `freeze_blocks` 단계를 얼린다 (torchvision
    trainable_backbone_layers = 5 − freeze_blocks).
  small_fpn  — cpu_small_fpn 용 작은 BN-ReLU 합성곱망: stride 4, 8, 16, 32 의 C2–C5 (채널 w, 2w, 4w, 8w) + 같은 FPN.
  가중치 (`backbone.weights`): none; checkpoint (사전학습 구조로 만들되 싣지 않는다);
    resnet_fpn 은 ResNet 몸통의 층 이름 가중치 파일 (`layer_weights`, .npz —
    `tools/import_weights --arch=resnet50` 이 쓴 것) 또는 그 도구의 출력 디렉터리; 그 밖의 파일은 Keras 가중치
    파일 (백본 특징 모델 전체의 `save_weights`).
"""

import os

import keras

from frcnn import config as config_lib
from frcnn.modeling import backbones
from frcnn.modeling import fpn
from frcnn.modeling import fpn_box_heads
from frcnn.modeling import layer_weights

# 백본 특징의 stride (캔버스·추론 입력은 이 배수로 패딩한다)
PADDING_STRIDE = 32
# `tools/import_weights --arch=resnet50` 이 출력 디렉터리에 쓰는 ResNet 몸통 가중치 (`layer_weights`)
BODY_WEIGHTS_FILE = "resnet_body.npz"


def _load_weights(features, weights, backbone_name):
    """weights 가 디렉터리·.npz 면 ResNet 몸통 ('body') 에 층 이름으로, 다른 파일이면 특징 모델 전체에 싣는다.

    Raises:
      ValueError: imagenet (Keras 가 내려받을 수 있는 같은 구조의 가중치가 없다), 없는 파일, 맞지 않는 파일.
    """
    if weights in ("none", config_lib.CHECKPOINT_WEIGHTS):
        return
    if weights == "imagenet":
        raise ValueError(f"{backbone_name} has no Keras ImageNet weights (its ResNet is torchvision's v1.5); "
                         "write torchvision's with `python -m tools.import_weights --source=torchvision "
                         "--arch=resnet50 --model_dir=DIR` and pass --backbone_weights=DIR, or use "
                         "--backbone_weights=none to train from scratch")
    if os.path.isdir(weights):
        weights = os.path.join(weights, BODY_WEIGHTS_FILE)
    if not os.path.exists(weights):
        raise ValueError(f"{weights}: backbone weights file not found")
    if weights.endswith(layer_weights.SUFFIX):
        layer_weights.load_layers(features.get_layer("body"), weights)
    else:
        features.load_weights(weights)


def _resnet_fpn(config, name):
    pretrained = config.backbone.weights != "none"
    variant = config.fpn.variant
    body_norm = "frozen" if pretrained and variant == "v1" else "batch"
    trainable = 5 - config.backbone.freeze_blocks if pretrained else 5
    features = fpn.resnet_fpn(config.backbone.depth, variant, config.backbone.norm_epsilon, trainable,
                              out_channels=config.fpn.channels, body_norm=body_norm, name=f"{name}_features")
    _load_weights(features, config.backbone.weights, "resnet_fpn")
    return backbones.Backbone(features, "imagenet", PADDING_STRIDE, 1, name=name)


def _small_fpn(config, name):
    """작은 합성곱망 C2–C5 (stride-2 'same' 합성곱은 ⌈n / 2⌉ — `fpn_anchors.grid_sizes` 와 같은 격자) + FPN."""
    width = config.backbone.width
    inputs = keras.Input((None, None, 3))
    x = backbones.conv_bn(inputs, width, 2, "stem")
    stages = []
    for index, multiplier in enumerate((1, 2, 4, 8)):
        x = backbones.conv_bn(x, width * multiplier, 2, f"block{index + 2}a")
        x = backbones.conv_bn(x, width * multiplier, 1, f"block{index + 2}b")
        stages.append(x)
    body = keras.Model(inputs, stages, name="body")
    pyramid = fpn.feature_pyramid([width * m for m in (1, 2, 4, 8)], config.fpn.channels,
                                  norm="batch" if config.fpn.variant == "v2" else None, name="fpn")
    features = keras.Model(inputs, pyramid(body(inputs)), name=f"{name}_features")
    _load_weights(features, config.backbone.weights, "small_fpn")
    return backbones.Backbone(features, "symmetric", PADDING_STRIDE, 1, name=name)


def build_backbone(config, name="backbone"):
    """피라미드 백본 (`backbones.Backbone`; 출력은 [P2, …, P6] 목록)."""
    builders = {"resnet_fpn": _resnet_fpn, "small_fpn": _small_fpn}
    return builders[config.backbone.name](config, name)


def build_box_head(config, name="box_head"):
    """v1 `TwoMLPHead` 또는 v2 4×(합성곱-BN-ReLU) + fc: [N, P, P, C] → [N, D]."""
    channels, pool_size, units = config.fpn.channels, config.roi.pool_size, config.backbone.fc_units
    if config.fpn.variant == "v1":
        return fpn_box_heads.two_mlp_head(channels, pool_size, units, name=name)
    return fpn_box_heads.conv_fc_head(channels, pool_size, (channels,) * 4, (units,), name=name)
