"""특징 피라미드 (FPN): torchvision `FeaturePyramidNetwork` + `LastLevelMaxPool` 을 층 하나하나 그대로.

용어:
  B 배치, Hl·Wl 수준 l 의 특징맵 크기, C 출력 채널 (256).
  C2–C5: 백본 단계 출력 (`resnet_tv.resnet_body`), P2–P5: 피라미드 출력, P6 = P5 의 max-pool (k = 1, stride 2,
    곧 P5[::2, ::2]) — RPN 만 쓴다 (RoI 는 P2–P5).
  가로 연결 (inner_blocks_i): 1×1 합성곱 Ci → C. 출력 합성곱 (layer_blocks_i): 3×3 (PyTorch 패딩 1).
  위→아래 경로: 위 수준의 가로 합을 아래 수준 크기로 최근접 확대해 더한다. PyTorch 의 'nearest' (크기 지정) 는
    출력 칸 i 가 입력 칸 min(⌊i · (입력 / 출력)⌋, 입력 − 1) (float32 배율) 을 가져온다 — TF 의
    `tf.image.resize(method='nearest')` (반 칸 중심) 와 달라 gather 로 그대로 옮긴다. 크기가 꼭 두 배면 같다.
  norm: None (v1: 합성곱에 bias) 또는 'batch' (v2: bias 없는 합성곱 + BatchNorm, 활성화 없음).
  층 이름: torchvision state_dict 의 경로에서 '.' 을 '_' 로 (fpn.inner_blocks.0.0 → inner_blocks_0_0, v2 의 BN 은
    inner_blocks_0_1).
"""

import keras
import tensorflow as tf

from frcnn.modeling import resnet_tv

OUT_CHANNELS = 256
# torchvision FPN 의 합성곱 초기화: kaiming_uniform_(a=1) — 한계 √(3 / fan_in), bias 0.
CONV_INITIALIZER = keras.initializers.VarianceScaling(1.0, "fan_in", "uniform")


def nearest_indices(input_size, output_size):
    """PyTorch 'nearest' 의 한 축 원본 칸 [output_size] int32: min(⌊i · (입력 / 출력)⌋, 입력 − 1), float32 로.

    input_size, output_size: 스칼라 int32 텐서.
    """
    scale = tf.cast(input_size, tf.float32) / tf.cast(output_size, tf.float32)
    positions = tf.floor(tf.cast(tf.range(output_size), tf.float32) * scale)
    return tf.minimum(tf.cast(positions, tf.int32), input_size - 1)


class NearestResize(keras.layers.Layer):
    """[B, h, w, C] 를 참조 텐서 [B, H, W, ·] 의 크기로 PyTorch 'nearest' 확대 (gather 두 번)."""

    def call(self, inputs, reference):
        source_shape, target_shape = tf.shape(inputs), tf.shape(reference)
        rows = nearest_indices(source_shape[1], target_shape[1])
        cols = nearest_indices(source_shape[2], target_shape[2])
        return tf.gather(tf.gather(inputs, rows, axis=1), cols, axis=2)


def _conv_block(x, filters, kernel_size, name, norm):
    """torchvision `Conv2dNormActivation(activation=None)`: 합성곱 (norm 이 없으면 bias) [+ BatchNorm]."""
    x = resnet_tv.torch_conv(x, filters, kernel_size, 1, f"{name}_0", use_bias=norm is None,
                             initializer=CONV_INITIALIZER)
    if norm is not None:
        x = resnet_tv.norm_layer(norm, 1e-5, f"{name}_1")(x)
    return x


def feature_pyramid(in_channels, out_channels=OUT_CHANNELS, norm=None, name="fpn"):
    """C2–C5 → P2–P6 (torchvision `FeaturePyramidNetwork(extra_blocks=LastLevelMaxPool())`).

    Args:
      in_channels: 네 단계의 채널 수 (`resnet_tv.stage_channels`).
      out_channels: C.
      norm: None (v1) 또는 'batch' (v2).
      name: 모델 이름.

    Returns:
      keras.Model: [C2, C3, C4, C5] → [P2, P3, P4, P5, P6], 각 [B, Hl, Wl, C] (P6 는 ⌈H5 / 2⌉ × ⌈W5 / 2⌉).
    """
    inputs = [keras.Input((None, None, channels)) for channels in in_channels]
    last = len(inputs) - 1
    top_down = _conv_block(inputs[last], out_channels, 1, f"inner_blocks_{last}", norm)
    outputs = [_conv_block(top_down, out_channels, 3, f"layer_blocks_{last}", norm)]
    for index in range(last - 1, -1, -1):
        lateral = _conv_block(inputs[index], out_channels, 1, f"inner_blocks_{index}", norm)
        top_down = keras.layers.Add()([lateral, NearestResize()(top_down, lateral)])
        outputs.insert(0, _conv_block(top_down, out_channels, 3, f"layer_blocks_{index}", norm))
    # P6: F.max_pool2d(P5, kernel_size=1, stride=2, padding=0)
    outputs.append(keras.layers.MaxPooling2D(1, 2, padding="valid", name="pool")(outputs[-1]))
    return keras.Model(inputs, outputs, name=name)


def resnet_fpn(depth=50, variant="v1", epsilon=1e-5, trainable_layers=3, out_channels=OUT_CHANNELS,
               body_norm=None, name="backbone"):
    """torchvision `resnet_fpn_backbone` / `_resnet_fpn_extractor`: 정규화 이미지 → [P2, …, P6].

    variant 'v1': 백본 FrozenBatchNorm (eps = epsilon), FPN 은 bias 합성곱 (`fasterrcnn_resnet50_fpn`,
    사전학습 백본일 때). 'v2': 백본·FPN 모두 BatchNorm, FPN 합성곱은 bias 없음 (`fasterrcnn_resnet50_fpn_v2`).
    body_norm: 백본 정규화를 바꾼다 ('batch': 사전학습 없이 만든 torchvision v1 — 보통 BatchNorm).

    Returns:
      keras.Model: [B, H, W, 3] → 다섯 [B, Hl, Wl, 256]. 하위 모델 이름 'body' (ResNet), 'fpn'.

    Raises:
      ValueError: 모르는 variant, 깊이, trainable_layers.
    """
    norms = {"v1": ("frozen", None), "v2": ("batch", "batch")}
    if variant not in norms:
        raise ValueError(f"unknown FPN variant '{variant}' (expected one of {sorted(norms)})")
    default_norm, fpn_norm = norms[variant]
    body = resnet_tv.resnet_body(depth, body_norm or default_norm, epsilon, trainable_layers, name="body")
    pyramid = feature_pyramid(resnet_tv.stage_channels(depth), out_channels, norm=fpn_norm, name="fpn")
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, pyramid(body(inputs)), name=name)
