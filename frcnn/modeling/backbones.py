"""백본: 입력 정규화 → 공유 합성곱 특징 (stride 16 또는 8), 그리고 RoI 특징을 벡터로 만드는 검출기 몸통.

용어:
  B 배치, H·W 입력 크기, Hf·Wf 특징맵, C 채널, N RoI 총수, P RoI 출력 크기, D 몸통 출력 차원.
  백본(`Backbone`): 이미지 → 특징. RPN 과 검출기가 공유하는 합성곱 층이다.
  검출기 몸통(box head, `build_box_head`): RoI 특징 → 벡터. 같은 ImageNet 망의 뒷부분이나 fc6/fc7.
  vgg16        — conv5_3 (stride 16, 512), 몸통 fc6/fc7 (4096). 사전학습이면 conv1–conv2 를 얼린다.
  resnet50     — C4 = conv4_block6_out (stride 16, 1024), 몸통 conv5 블록 (stride 2) + 전역 평균.
  mobilenet_v2 — block_12_add (stride 16, 96), 몸통 block_13…out_relu + 전역 평균.
  small_cnn    — cpu_small 용 작은 BN-ReLU 합성곱망 (stride 8), 몸통 fc 두 층.
  가중치: none (처음부터), imagenet (Keras 가 내려받음), 또는 로컬 Keras 가중치 파일 경로 — 옛 `.h5`
    (내려받은 `vgg16_weights_tf_dim_ordering_tf_kernels.h5` 등) 나 Keras 3 `save_weights` 의 `.weights.h5`.
    파일은 include_top=True 로 먼저, 안 되면 False 로 싣고 층 이름으로 복사한다. VGG16 의 fc6/fc7 은 파일의
    fc1/fc2 에서 오므로 분류 층 없는 파일로 사전학습 VGG16 몸통을 만들면 오류다 (fc6/fc7 이 무작위로 남는다).
"""

import os
import warnings

import keras
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.ops import normalize

# Caffe 방식 ImageNet 평균 (BGR) — VGG16/ResNet50 의 Keras 가중치가 기대하는 정규화.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def caffe_normalize(images):
    """RGB 0–255 → BGR − 평균 (Keras `preprocess_input(mode='caffe')` 와 같다)."""
    return tf.reverse(images, axis=[-1]) - tf.constant(CAFFE_MEAN_BGR, images.dtype)


def symmetric_normalize(images):
    """0–255 → [−1, 1] (MobileNetV2 의 `mode='tf'`)."""
    return images / 127.5 - 1.0


NORMALIZERS = {"caffe": caffe_normalize, "symmetric": symmetric_normalize,
               "imagenet": normalize.imagenet_normalize}


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

    def call(self, images, training=False, image_sizes=None):
        """images [B, H, W, 3] 0–255 RGB (선택 image_sizes [B, 2] int32 (h, w)) → [B, Hf, Wf, C].

        image_sizes 는 int32 로 준다: Keras 는 float 인자를 혼합 정밀도의 계산 dtype (bfloat16) 으로 바꾸는데,
        bfloat16 은 256 을 넘는 정수를 정확히 담지 못한다 (375 → 376).

        image_sizes 를 주면 이미지 밖 (캔버스 패딩) 픽셀은 정규화 **뒤에** 0, 곧 평균색이 된다 (py-faster-rcnn 이
        평균을 뺀 뒤 패딩하는 것과 같다): 어떤 값으로 패딩했든 특징이 같다.
        """
        normalized = self.normalize(tf.cast(images, self.compute_dtype))
        # 채널 수는 늘 3: 동적 크기 그래프 (LiteRT 변환) 에서도 합성곱의 입력 채널이 정적이게.
        normalized.set_shape([None, None, None, 3])
        if image_sizes is not None:
            mask = inside_mask(tf.shape(images)[1:3], image_sizes)
            normalized = normalized * tf.cast(mask, normalized.dtype)
        return self.features(normalized, training=training)


def inside_mask(canvas_size, image_sizes):
    """[B, H, W, 1] bool: 픽셀 (y, x) 가 왼쪽 위에 놓인 이미지 (h, w) 안인지.

    Args:
      canvas_size: [2] int32 (H, W).
      image_sizes: [B, 2] 정수값 (h, w), int32 또는 float32.
    """
    image_sizes = tf.cast(image_sizes, tf.int32)
    rows = tf.range(canvas_size[0])[None, :, None] < image_sizes[:, 0, None, None]
    cols = tf.range(canvas_size[1])[None, None, :] < image_sizes[:, 1, None, None]
    return tf.expand_dims(rows & cols, -1)  # bool 의 StridedSlice 는 TFLite 내장 연산에 없다


# ---- ImageNet 망 (keras.applications): 가중치는 Keras 가 내려받거나 로컬 파일에서 ----
_KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
_APPLICATIONS = {  # 이름 → (keras.applications 생성자 이름, include_top=True ImageNet 가중치 파일 주소의 꼬리)
    "vgg16": ("VGG16", "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5"),
    "resnet50": ("ResNet50", "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5"),
    "mobilenet_v2": ("MobileNetV2",
                     "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5"),
}


def _build_application(name, include_top, weights):
    """keras.applications 모델 (include_top=False 면 입력 크기 자유)."""
    builder = getattr(keras.applications, _APPLICATIONS[name][0])
    shape = {} if include_top else {"input_shape": (None, None, 3)}
    return builder(include_top=include_top, weights=weights, **shape)


def _one_line(error, limit=200):
    """예외 문구를 한 줄로 (Keras 의 여러 줄 문구를 오류 한 줄 안에 넣으려고)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _local_file_hint(name):
    """로컬 가중치 파일을 구해 넘기는 방법 (오류 문구의 끝)."""
    builder, file_path = _APPLICATIONS[name]
    return (f"download {_KERAS_WEIGHTS_URL}{file_path} or, on a machine with the network, save one with "
            f"keras.applications.{builder}(weights='imagenet').save_weights('{name}.weights.h5'), "
            "and pass it with --backbone_weights=PATH (or --backbone_weights=none to train from scratch)")


def _imagenet_application(name, include_top):
    """Keras 가 ImageNet 가중치를 내려받아 실은 모델. include_top=False 면 입력 크기가 자유롭다."""
    try:
        return _build_application(name, include_top, "imagenet")
    except Exception as error:  # 내려받기 실패 등
        raise ValueError(f"could not get the ImageNet weights for {name} ({_one_line(error)}); "
                         f"without the network, {_local_file_hint(name)}") from None


def _file_application(name, path):
    """로컬 Keras 가중치 파일 (옛 `.h5` 또는 Keras 3 `.weights.h5`) 을 실은 모델과 분류 층이 있었는지.

    include_top=True 모델에 먼저 싣고 (fc 까지 든 파일), 안 되면 include_top=False 에 싣는다.

    Returns:
      (keras.Model, has_top: bool).
    Raises:
      ValueError: 없는 파일, 어느 쪽으로도 실리지 않는 파일 (파일 경로를 밝힌다).
    """
    if not os.path.exists(path):
        raise ValueError(f"{path}: backbone weights file not found")
    errors = []
    for include_top in (True, False):
        model = _build_application(name, include_top, None)
        error = _load_weights_quietly(model, path)
        if error is None:
            return model, include_top
        errors.append(f"include_top={include_top}: {_one_line(error)}")
    raise ValueError(f"{path}: not Keras {_APPLICATIONS[name][0]} weights ({'; '.join(errors)}); "
                     f"{_local_file_hint(name)}")


def _load_weights_quietly(model, path):
    """`model.load_weights(path)`; 실패하면 그 예외를 돌려준다 (실패한 시도의 Keras 경고는 버린다).

    Returns:
      None (성공; 그동안의 경고는 다시 낸다) 또는 실패의 예외.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as error:
            return error
    for warning in caught:
        warnings.warn(warning.message)
    return None


def _copy_weights(source, target, renames=()):
    """`target` 의 가중치 층마다 `source` 의 같은 이름 (renames 로 바꾼 이름) 층 가중치를 복사한다."""
    renames = dict(renames)
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(renames.get(layer.name, layer.name)).get_weights())


# 가중치를 싣지 않는 값: none (처음부터), checkpoint (사전학습 구조, 가중치는 체크포인트에서)
_LOADS_NOTHING = ("none", config_lib.CHECKPOINT_WEIGHTS)


def _application(name, weights):
    """가중치를 실은 include_top=False keras.applications 모델 (입력 크기 자유).

    weights: 'none', 'checkpoint' (싣지 않는다), 'imagenet' 또는 로컬 파일 경로 (분류 층이 있든 없든 합성곱
    부분만 쓴다).
    """
    if weights == "imagenet":
        return _imagenet_application(name, include_top=False)
    model = _build_application(name, False, None)
    if weights not in _LOADS_NOTHING:
        _copy_weights(_file_application(name, weights)[0], model)
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
    application = _application("vgg16", weights)
    features = _submodel(application, application.layers[0].name, "block5_conv3", f"{name}_features")
    frozen = ()
    if weights != "none" and config.backbone.freeze_blocks > 0:
        prefixes = tuple(f"block{i}_" for i in range(1, config.backbone.freeze_blocks + 1))
        frozen = tuple(layer.name for layer in features.layers if layer.name.startswith(prefixes))
    return Backbone(features, "caffe", 16, 1, pad_to_stride=False, frozen_layers=frozen, name=name)


def _vgg16_head(config, name):
    source = None if config.backbone.weights in _LOADS_NOTHING else _vgg16_with_top(config)
    head = fc_head(config.backbone.fc_units, config.backbone.dropout, name, config.roi.pool_size, 512)
    if source is not None:
        _copy_weights(source, head, {"fc6": "fc1", "fc7": "fc2"})
    return head


def _check_vgg16_fc_shape(config):
    """사전학습 fc6/fc7 (ImageNet fc1/fc2: 7·7·512 → 4096 → 4096) 이 몸통에 맞는지."""
    if config.backbone.fc_units != 4096 or config.roi.pool_size != 7:
        raise ValueError(f"pretrained VGG16 fc6/fc7 need backbone.fc_units=4096 and roi.pool_size=7 "
                         f"(got {config.backbone.fc_units} and {config.roi.pool_size}); set them or use "
                         "--backbone_weights=none to train from scratch")


def _vgg16_with_top(config):
    """fc1/fc2 까지 가중치를 실은 VGG16 (include_top=True) — 몸통 fc6/fc7 의 출처.

    Raises:
      ValueError: 몸통 모양이 fc1/fc2 와 다를 때 (무엇이든 읽기 전에), 분류 층 없는 파일 (그대로 두면
        fc6/fc7 이 조용히 무작위로 남는다).
    """
    _check_vgg16_fc_shape(config)
    weights = config.backbone.weights
    if weights == "imagenet":
        return _imagenet_application("vgg16", include_top=True)
    model, has_top = _file_application("vgg16", weights)
    if not has_top:
        raise ValueError(f"{weights}: VGG16 weights without the top layers (include_top=False), so fc6/fc7 "
                         f"would stay random; use a file with fc1/fc2: {_local_file_hint('vgg16')}")
    return model


# ---- ResNet50, MobileNetV2: 특징은 앞부분, 몸통은 같은 망의 뒷부분 ----
_APPLICATION_SPLITS = {  # 이름 → (특징 끝 층, 몸통 끝 층, 정규화)
    "resnet50": ("conv4_block6_out", "conv5_block3_out", "caffe"),
    "mobilenet_v2": ("block_12_add", "out_relu", "symmetric"),
}


def _split_application(config, name):
    split, _, normalization = _APPLICATION_SPLITS[config.backbone.name]
    application = _application(config.backbone.name, config.backbone.weights)
    features = _submodel(application, application.layers[0].name, split, f"{name}_features")
    return Backbone(features, normalization, 16, 2, name=name)


def _split_application_head(config, name):
    split, end, _ = _APPLICATION_SPLITS[config.backbone.name]
    application = _application(config.backbone.name, config.backbone.weights)
    return _pooled_head(application, split, end, name)


# ---- small_cnn ----
def conv_bn(x, filters, strides, name):
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
    x = conv_bn(inputs, width, 2, "stem")
    x = conv_bn(x, width, 1, "block1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = conv_bn(x, width * 2, 1, "block2a")
    x = conv_bn(x, width * 2, 1, "block2b")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = conv_bn(x, width * 4, 1, "block3a")
    x = conv_bn(x, width * 4, 1, "block3b")
    features = keras.Model(inputs, x, name=f"{name}_features")
    if weights not in _LOADS_NOTHING:
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
      ValueError: 없는 가중치 파일, 내려받을 수 없는 ImageNet 가중치, 사전학습 VGG16 인데 fc1/fc2 가 없는
        파일이거나 fc6/fc7 모양 (backbone.fc_units, roi.pool_size) 이 ImageNet 과 다를 때.
    """
    return _BUILDERS[config.backbone.name][1](config, name)
