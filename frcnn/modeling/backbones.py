"""백본: 입력 정규화 → 공유 합성곱 특징 (stride 16 또는 8), 그리고 RoI 특징을 벡터로 만드는 검출기 몸통.

용어:
  B 배치, H·W 입력 크기, Hf·Wf 특징맵, C 채널, N RoI 총수, P RoI 출력 크기, D 몸통 출력 차원.
  백본(`Backbone`): 이미지 → 특징. RPN 과 검출기가 공유하는 합성곱 층이다.
  검출기 몸통(box head, `build_box_head`): RoI 특징 → 벡터. 같은 ImageNet 망의 뒷부분이나 fc6/fc7.
  vgg16        — conv5_3 (stride 16, 512), 몸통 fc6/fc7 (4096). 사전학습이면 conv1–conv2 를 얼린다.
  resnet50     — C4 = conv4_block6_out (stride 16, 1024), 몸통 conv5 블록 (stride 2) + 전역 평균.
  mobilenet_v2 — block_12_add (stride 16, 96), 몸통 block_13…out_relu + 전역 평균.
  small_cnn    — cpu_small 용 작은 BN-ReLU 합성곱망 (stride 8), 몸통 fc 두 층.
  가중치: none (처음부터), imagenet (Keras 가 내려받음), 또는 로컬 Keras 가중치 파일 경로.
"""

import os

import keras
import tensorflow as tf

# Caffe 방식 ImageNet 평균 (BGR) — VGG16/ResNet50 의 Keras 가중치가 기대하는 정규화.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def caffe_normalize(images):
    """RGB 0–255 → BGR − 평균 (Keras `preprocess_input(mode='caffe')` 와 같다)."""
    return images[..., ::-1] - tf.constant(CAFFE_MEAN_BGR, images.dtype)


def symmetric_normalize(images):
    """0–255 → [−1, 1] (MobileNetV2 의 `mode='tf'`)."""
    return images / 127.5 - 1.0


NORMALIZERS = {"caffe": caffe_normalize, "symmetric": symmetric_normalize}


class Backbone(keras.Model):
    """[B, H, W, 3] float 0–255 RGB 이미지 → 정규화 → [B, Hf, Wf, C] 특징.

    Attributes:
      features: keras.Model, 정규화된 이미지 → 특징 (변수는 이 모델이 가진다).
      normalization: `NORMALIZERS` 의 이름 ('caffe' 또는 'symmetric').
      stride: int, 특징맵 한 칸의 입력 픽셀 수.
      roi_size_multiplier: int, 검출기 몸통이 기대하는 RoI 크기 / P (conv5 처럼 stride 2 몸통이면 2).
      pad_to_stride: 추론 입력을 stride 배수로 패딩해야 하는가. 'same' 패딩의 stride-2 합성곱은 입력 크기가
        홀수면 격자가 반 칸 밀리므로 (ResNet, MobileNetV2, small_cnn) 학습 캔버스처럼 배수로 맞춘다. VGG16 은
        stride 1 합성곱과 valid 풀링뿐이라 크기와 무관하게 정렬된다 — 패딩 없이 ⌊h / 16⌋ 격자 (py-faster-rcnn 처럼).
      frozen_layers: 얼린 (학습하지 않는) `features` 층 이름들.
    """

    def __init__(self, features, normalization, stride, roi_size_multiplier, pad_to_stride=True,
                 frozen_layers=(), **kwargs):
        super().__init__(**kwargs)
        self.features = features
        self.normalization = normalization
        self.stride = stride
        self.roi_size_multiplier = roi_size_multiplier
        self.pad_to_stride = pad_to_stride
        self.frozen_layers = tuple(frozen_layers)
        for layer_name in self.frozen_layers:
            features.get_layer(layer_name).trainable = False

    def normalize(self, images):
        """[B, H, W, 3] 0–255 RGB → 이 백본의 가중치가 기대하는 입력."""
        return NORMALIZERS[self.normalization](images)

    def call(self, images, training=False):
        return self.features(self.normalize(tf.cast(images, self.compute_dtype)), training=training)


def _application(builder, weights, name, **kwargs):
    """keras.applications 모델을 만들고 가중치를 싣는다."""
    keras_weights = "imagenet" if weights == "imagenet" else None
    try:
        model = builder(include_top=False, weights=keras_weights, input_shape=(None, None, 3), **kwargs)
    except Exception as error:  # 내려받기 실패 등
        raise ValueError(f"could not load ImageNet weights for {name}: {error} "
                         "(no network? download the Keras weights file and pass its path to "
                         "--backbone_weights)") from None
    if weights not in ("none", "imagenet"):
        if not os.path.exists(weights):
            raise ValueError(f"{weights}: backbone weights file not found")
        try:
            model.load_weights(weights)
        except Exception as error:
            raise ValueError(f"{weights}: not Keras weights for {name} "
                             f"(include_top=False): {error}") from None
    return model


def _submodel(model, input_layer, output_layer, name):
    """함수형 모델의 중간 구간을 새 모델로 자른다 (층과 가중치는 공유)."""
    return keras.Model(model.get_layer(input_layer).output, model.get_layer(output_layer).output,
                       name=name)


def fc_head(units, dropout, name, input_size, channels):
    """Flatten → fc6 → fc7 (ReLU, 선택적 dropout) 몸통: [N, P, P, C] → [N, units]."""
    inputs = keras.Input((input_size, input_size, channels))
    x = keras.layers.Flatten()(inputs)
    for layer_name in ("fc6", "fc7"):
        x = keras.layers.Dense(units, activation="relu", name=layer_name)(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    return keras.Model(inputs, x, name=name)


def _pooled_head(model, input_layer, output_layer, name):
    """ResNet/MobileNet 뒷부분을 몸통으로: 중간 구간 + 전역 평균 풀링."""
    body = _submodel(model, input_layer, output_layer, f"{name}_body")
    inputs = keras.Input(body.input_shape[1:])
    outputs = keras.layers.GlobalAveragePooling2D()(body(inputs))
    return keras.Model(inputs, outputs, name=name)


# ---- VGG16 ----
def _vgg16(config, name):
    weights = config.backbone.weights
    application = _application(keras.applications.VGG16, weights, "vgg16")
    features = _submodel(application, application.layers[0].name, "block5_conv3", f"{name}_features")
    frozen = ()
    if weights != "none" and config.backbone.freeze_blocks > 0:
        prefixes = tuple(f"block{i}_" for i in range(1, config.backbone.freeze_blocks + 1))
        frozen = tuple(layer.name for layer in features.layers if layer.name.startswith(prefixes))
    return Backbone(features, "caffe", 16, 1, pad_to_stride=False, frozen_layers=frozen, name=name)


def _vgg16_head(config, name):
    head = fc_head(config.backbone.fc_units, config.backbone.dropout, name, config.roi.pool_size, 512)
    if config.backbone.weights == "imagenet":
        _load_vgg16_fc_weights(head, config.backbone.fc_units)
    return head


def _load_vgg16_fc_weights(head, units):
    """ImageNet VGG16 의 fc1/fc2 가중치를 fc6/fc7 로 옮긴다."""
    if units != 4096:
        raise ValueError("ImageNet fc6/fc7 weights need backbone.fc_units=4096")
    try:
        full = keras.applications.VGG16(include_top=True, weights="imagenet")
    except Exception as error:
        raise ValueError(f"could not load ImageNet weights for vgg16 fc6/fc7: {error}") from None
    head.get_layer("fc6").set_weights(full.get_layer("fc1").get_weights())
    head.get_layer("fc7").set_weights(full.get_layer("fc2").get_weights())


# ---- ResNet50, MobileNetV2: 특징은 앞부분, 몸통은 같은 망의 뒷부분 ----
_APPLICATION_SPLITS = {  # 이름 → (builder, 특징 끝 층, 몸통 끝 층, 정규화)
    "resnet50": (keras.applications.ResNet50, "conv4_block6_out", "conv5_block3_out", "caffe"),
    "mobilenet_v2": (keras.applications.MobileNetV2, "block_12_add", "out_relu", "symmetric"),
}


def _split_application(config, name):
    builder, split, _, normalization = _APPLICATION_SPLITS[config.backbone.name]
    application = _application(builder, config.backbone.weights, config.backbone.name)
    features = _submodel(application, application.layers[0].name, split, f"{name}_features")
    return Backbone(features, normalization, 16, 2, name=name)


def _split_application_head(config, name):
    builder, split, end, _ = _APPLICATION_SPLITS[config.backbone.name]
    application = _application(builder, config.backbone.weights, config.backbone.name)
    return _pooled_head(application, split, end, name)


# ---- small_cnn ----
def _conv_bn(x, filters, strides, name):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _small_cnn(config, name):
    """stride 8 의 작은 합성곱망: (s2 conv, conv) → pool → (conv, conv) → pool → (conv, conv)."""
    weights = config.backbone.weights
    if weights == "imagenet":
        raise ValueError("small_cnn has no ImageNet weights; use --backbone_weights=none or a file")
    width = config.backbone.width
    inputs = keras.Input((None, None, 3))
    x = _conv_bn(inputs, width, 2, "stem")
    x = _conv_bn(x, width, 1, "block1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv_bn(x, width * 2, 1, "block2a")
    x = _conv_bn(x, width * 2, 1, "block2b")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv_bn(x, width * 4, 1, "block3a")
    x = _conv_bn(x, width * 4, 1, "block3b")
    features = keras.Model(inputs, x, name=f"{name}_features")
    if weights != "none":
        if not os.path.exists(weights):
            raise ValueError(f"{weights}: backbone weights file not found")
        features.load_weights(weights)
    return Backbone(features, "symmetric", 8, 1, name=name)


def _small_cnn_head(config, name):
    return fc_head(config.backbone.fc_units, config.backbone.dropout, name, config.roi.pool_size,
                   config.backbone.width * 4)


_BUILDERS = {  # 이름 → (백본, 검출기 몸통)
    "vgg16": (_vgg16, _vgg16_head),
    "resnet50": (_split_application, _split_application_head),
    "mobilenet_v2": (_split_application, _split_application_head),
    "small_cnn": (_small_cnn, _small_cnn_head),
}


def build_backbone(config, name="backbone"):
    """설정의 백본 (`Backbone`) 을 만든다.

    Raises:
      ValueError: 없는 가중치 파일, 내려받을 수 없는 ImageNet 가중치, stride 불일치.
    """
    backbone = _BUILDERS[config.backbone.name][0](config, name)
    if backbone.stride != config.anchors.stride:
        raise ValueError(f"backbone {config.backbone.name} has stride {backbone.stride} but "
                         f"anchors.stride is {config.anchors.stride}")
    return backbone


def build_box_head(config, name="box_head"):
    """설정의 검출기 몸통: [N, P·k, P·k, C] RoI 특징 → [N, D] (k = `Backbone.roi_size_multiplier`).

    Raises:
      ValueError: 없는 가중치 파일, 내려받을 수 없는 ImageNet 가중치.
    """
    return _BUILDERS[config.backbone.name][1](config, name)
