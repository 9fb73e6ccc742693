"""torchvision 의 ResNet (v1.5) 을 층 하나하나 그대로: 같은 가중치면 같은 C2–C5 특징을 낸다.

용어:
  B 배치, H·W 입력 (정규화된 이미지, `data.tv_transform`), C 채널.
  C2–C5: layer1–layer4 의 출력 (stride 4, 8, 16, 32). 한 stride-2 단계의 출력 크기는 ⌈n / 2⌉ 이다.
  v1.5: 병목 블록의 stride 가 3×3 합성곱 (conv2) 에 있다 (`keras.applications.ResNet50` 은 1×1 에 둔다 — 쓸 수 없다).
  PyTorch 패딩: 대칭 0 패딩 (k // 2) 을 먼저 붙이고 'valid' 합성곱 — TF 'same' 은 stride 2 에서 아래·오른쪽에만
    덧대 격자가 반 칸 밀린다. 줄기의 3×3 max pool (stride 2, 패딩 1) 도 0 패딩 + 'valid': 입력이 ReLU 뒤라
    (≥ 0) 0 패딩이 PyTorch 의 −∞ 패딩과 같은 최댓값을 낸다.
  정규화 층 (`norm`):
    'frozen' — torchvision `FrozenBatchNorm2d`: 고정된 weight·bias·running_mean·running_var 로 x·scale + shift
      (scale = weight / √(running_var + eps)). eps 기본 1e-5; torchvision 의 COCO v1 가중치는 eps 0 으로 쓴다.
    'batch'  — 보통 BatchNorm (v2 와, 사전학습 없이 만든 v1): eps 1e-5, momentum 0.1 (Keras 로는 0.9).
  층 이름: torchvision state_dict 의 모듈 경로에서 '.' 을 '_' 로 (layer1.0.downsample.0 → layer1_0_downsample_0).
  trainable_layers (torchvision `trainable_backbone_layers`, 0–5): 뒤에서부터 layer4, layer3, layer2, layer1,
    conv1 (5 면 줄기 bn1 도) 만 학습한다. 얼린 층의 가중치는 변하지 않는다. 'batch' 정규화의 얼린 BN 은
    PyTorch 처럼 학습 중에도 배치 통계로 정규화하고 이동 평균을 갱신한다 (gamma·beta 만 얼린다; Keras 의
    `trainable=False` BN 은 추론 모드로 바뀌어 torchvision 과 달라진다).
"""

import keras
import tensorflow as tf

# 깊이 → (블록 종류, 단계별 블록 수) — torchvision `resnet18` … `resnet101`.
ARCHITECTURES = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                 50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3))}
NORMS = ("frozen", "batch")
# trainable_layers 가 k 면 이 목록의 앞 k 개 접두어의 층만 학습한다 (torchvision `_resnet_fpn_extractor`).
TRAINABLE_PREFIXES = ("layer4", "layer3", "layer2", "layer1", "conv1")
BOTTLENECK_EXPANSION = 4
# torchvision ResNet 의 합성곱 초기화: kaiming_normal_(mode='fan_out', nonlinearity='relu').
CONV_INITIALIZER = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


class FrozenBatchNorm(keras.layers.Layer):
    """torchvision `FrozenBatchNorm2d`: 고정된 통계·아핀 값의 정규화 (학습되지 않는다).

    [B, H, W, C] → x · scale + shift, scale = weight · (running_var + eps)^(−1/2),
    shift = bias − running_mean · scale.
    변수 순서 (`get_weights`): weight, bias, running_mean, running_var — torchvision 의 버퍼 이름 그대로.
    """

    def __init__(self, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = input_shape[-1]
        for name, initial in (("weight", "ones"), ("bias", "zeros"), ("running_mean", "zeros"),
                              ("running_var", "ones")):
            setattr(self, name, self.add_weight(shape=(channels,), initializer=initial, trainable=False,
                                                name=name))

    def call(self, inputs):
        scale = self.weight * tf.math.rsqrt(self.running_var + self.epsilon)
        shift = self.bias - self.running_mean * scale
        return inputs * tf.cast(scale, inputs.dtype) + tf.cast(shift, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def norm_layer(norm, epsilon, name):
    """정규화 층 하나 ('frozen' 또는 'batch', 모듈 glossary 참고)."""
    if norm == "frozen":
        return FrozenBatchNorm(epsilon, name=name)
    if norm == "batch":
        return keras.layers.BatchNormalization(epsilon=epsilon, momentum=0.9, name=name)
    raise ValueError(f"unknown norm '{norm}' (expected one of {NORMS})")


def torch_conv(x, filters, kernel_size, strides, name, use_bias=False, initializer=CONV_INITIALIZER):
    """PyTorch 의 Conv2d(padding=k // 2): 대칭 0 패딩 + 'valid' 합성곱 (홀수 커널)."""
    if kernel_size // 2:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="valid", use_bias=use_bias,
                               kernel_initializer=initializer, name=name)(x)


def _conv_norm(x, filters, kernel_size, strides, name, norm):
    """합성곱 + 정규화 (이름: 합성곱 `name`, 정규화는 conv→bn 으로 바꾼 이름). norm = (종류, eps)."""
    x = torch_conv(x, filters, kernel_size, strides, name)
    return norm_layer(*norm, name=name.replace("conv", "bn"))(x)


def _shortcut(x, filters, strides, name, norm):
    """지름길: 모양이 같으면 그대로, 아니면 1×1 합성곱 (stride) + 정규화 (torchvision `downsample`)."""
    if strides == 1 and x.shape[-1] == filters:
        return x
    x = torch_conv(x, filters, 1, strides, f"{name}_downsample_0")
    return norm_layer(*norm, name=f"{name}_downsample_1")(x)


def basic_block(x, width, strides, name, norm):
    """BasicBlock (ResNet-18/34): 3×3 (stride) → 3×3, 더하기, ReLU. 출력 채널 = width."""
    identity = _shortcut(x, width, strides, name, norm)
    x = keras.layers.ReLU()(_conv_norm(x, width, 3, strides, f"{name}_conv1", norm))
    x = _conv_norm(x, width, 3, 1, f"{name}_conv2", norm)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add()([x, identity]))


def bottleneck_block(x, width, strides, name, norm):
    """Bottleneck v1.5 (ResNet-50/101): 1×1 → 3×3 (stride) → 1×1 (4·width), 더하기, ReLU."""
    filters = width * BOTTLENECK_EXPANSION
    identity = _shortcut(x, filters, strides, name, norm)
    x = keras.layers.ReLU()(_conv_norm(x, width, 1, 1, f"{name}_conv1", norm))
    x = keras.layers.ReLU()(_conv_norm(x, width, 3, strides, f"{name}_conv2", norm))
    x = _conv_norm(x, filters, 1, 1, f"{name}_conv3", norm)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add()([x, identity]))


_BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def stage_channels(depth):
    """C2–C5 의 채널 수 (torchvision `in_channels_list`): ResNet-18/34 (64, …, 512), 50/101 (256, …, 2048)."""
    block, _ = ARCHITECTURES[depth]
    expansion = BOTTLENECK_EXPANSION if block == "bottleneck" else 1
    return tuple(64 * 2 ** stage * expansion for stage in range(4))


def resnet_body(depth=50, norm="frozen", epsilon=1e-5, trainable_layers=5, name="body"):
    """torchvision ResNet 의 줄기와 layer1–layer4: [B, H, W, 3] 정규화 이미지 → [C2, C3, C4, C5].

    Args:
      depth: 18, 34, 50 또는 101.
      norm: 'frozen' 또는 'batch' (모듈 glossary).
      epsilon: 정규화의 eps (torchvision 1e-5; COCO v1 가중치는 0).
      trainable_layers: 0–5, torchvision `trainable_backbone_layers`.
      name: 모델 이름.

    Returns:
      keras.Model, 출력 네 개 [B, ⌈H/4⌉, ⌈W/4⌉, c2] … [B, ⌈H/32⌉, ⌈W/32⌉, c5] (`stage_channels`).

    Raises:
      ValueError: 모르는 깊이·정규화, 범위 밖 trainable_layers.
    """
    if depth not in ARCHITECTURES:
        raise ValueError(f"unsupported ResNet depth {depth} (expected one of {sorted(ARCHITECTURES)})")
    block_kind, counts = ARCHITECTURES[depth]
    block, norm_spec = _BLOCKS[block_kind], (norm, epsilon)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.ReLU()(_conv_norm(inputs, 64, 7, 2, "conv1", norm_spec))
    x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="maxpool")(x)
    outputs = []
    for stage, count in enumerate(counts):
        for index in range(count):
            strides = 2 if stage > 0 and index == 0 else 1
            x = block(x, 64 * 2 ** stage, strides, f"layer{stage + 1}_{index}", norm_spec)
        outputs.append(x)
    model = keras.Model(inputs, outputs, name=name)
    freeze_layers(model, trainable_layers)
    return model


def freeze_layers(model, trainable_layers):
    """torchvision `trainable_backbone_layers`: 뒤에서 trainable_layers 개 단계만 학습하게 둔다.

    Raises:
      ValueError: trainable_layers 가 0–5 밖일 때.
    """
    if not 0 <= trainable_layers <= len(TRAINABLE_PREFIXES):
        raise ValueError(f"trainable_layers must be in [0, {len(TRAINABLE_PREFIXES)}], "
                         f"got {trainable_layers}")
    prefixes = TRAINABLE_PREFIXES[:trainable_layers]
    if trainable_layers == len(TRAINABLE_PREFIXES):
        prefixes += ("bn1",)
    for layer in model.layers:
        if not layer.weights or layer.name.startswith(prefixes):
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            # PyTorch 의 requires_grad=False BN: 아핀 값만 얼고, 학습 모드에서는 여전히 배치 통계를 쓴다.
            layer.gamma.trainable = False
            layer.beta.trainable = False
        else:
            layer.trainable = False
