"""backbones 테스트: 백본별 stride·헤드 출력 모양, 사전학습 가중치 파일 (VGG16 fc6/fc7 까지)과 층 얼리기,
잘못된 가중치와 네트워크 없는 ImageNet 의 오류 문구.

용어:
  B 배치, H·W 입력 크기, Hf·Wf 특징맵, N RoI 수, P RoI 출력 크기, D 헤드 출력 차원.
  top 파일: keras.applications 의 include_top=True 가중치 파일 (VGG16 이면 fc1/fc2 가 든다).
  어떤 테스트도 가중치를 내려받지 않는다: 파일은 weights=None (무작위) 모델에서 쓴다.
"""

import dataclasses
import os
import re

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import backbones
from frcnn import config as config_lib

INPUT_HEIGHT, INPUT_WIDTH = 64, 96


def _config(name, stride, weights="none", pool_size=7, fc_units=32):
    """작은 fc 헤드(32)로 빠르게 만드는 설정 (사전학습 VGG16 fc6/fc7 을 실을 때는 fc_units=4096)."""
    base = config_lib.ExperimentConfig()
    return dataclasses.replace(
        base,
        anchors=dataclasses.replace(base.anchors, stride=stride),
        backbone=dataclasses.replace(base.backbone, name=name, weights=weights, width=8, fc_units=fc_units,
                                     dropout=0.0),
        roi=dataclasses.replace(base.roi, pool_size=pool_size))


@pytest.mark.parametrize("name, stride, channels", [
    ("vgg16", 16, 512), ("resnet50", 16, 1024), ("mobilenet_v2", 16, 96), ("small_cnn", 8, 32)])
def test_feature_stride_and_box_head_output(name, stride, channels):
    config = _config(name, stride, pool_size=2)
    backbone = backbones.build_backbone(config)
    assert backbone.stride == stride and backbone.frozen_layers == ()
    features = backbone(tf.random.uniform([1, INPUT_HEIGHT, INPUT_WIDTH, 3], 0.0, 255.0), training=False)
    assert features.shape == (1, INPUT_HEIGHT // stride, INPUT_WIDTH // stride, channels)
    roi_size = config.roi.pool_size * backbone.roi_size_multiplier
    output = backbones.build_box_head(config)(tf.zeros([3, roi_size, roi_size, channels]), training=False)
    assert output.shape.rank == 2 and output.shape[0] == 3
    # 가중치 없이 만든 백본은 모든 층이 학습되고, 변수는 Keras 가 평소대로 추적한다.
    assert all(layer.trainable for layer in backbone.features.layers)
    assert backbone.trainable_variables and len(backbone.variables) == len(backbone.features.variables)


def test_backbone_normalizes_before_the_features():
    config = _config("small_cnn", 8)
    backbone = backbones.build_backbone(config)
    images = tf.random.uniform([1, 16, 16, 3], 0.0, 255.0)
    expected = backbone.features(backbones.symmetric_normalize(images), training=False)
    np.testing.assert_allclose(backbone(images, training=False), expected, atol=1e-6)


def test_normalizers():
    pixel = tf.constant([[[[10.0, 20.0, 30.0]]]])
    # caffe: RGB → BGR 후 평균 빼기
    np.testing.assert_allclose(backbones.caffe_normalize(pixel).numpy().ravel(),
                               [30.0 - 103.939, 20.0 - 116.779, 10.0 - 123.68], rtol=1e-6)
    np.testing.assert_allclose(backbones.symmetric_normalize(tf.constant([0.0, 127.5, 255.0])).numpy(),
                               [-1.0, 0.0, 1.0])


def test_vgg16_weights_file_loads_and_freezes_conv1_conv2(tmp_path):
    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "w.weights.h5")
    source.save_weights(path)
    backbone = backbones.build_backbone(_config("vgg16", 16, weights=path))
    features = backbone.features
    # 파일의 가중치가 실린다 (새로 만든 무작위 값이 아니다).
    for layer_name in ("block1_conv1", "block3_conv2", "block5_conv3"):
        for loaded, saved in zip(features.get_layer(layer_name).get_weights(),
                                 source.get_layer(layer_name).get_weights()):
            np.testing.assert_array_equal(loaded, saved)
    frozen_convs = {"block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2"}
    assert frozen_convs <= set(backbone.frozen_layers)
    for layer in features.layers:
        if "conv" in layer.name:
            assert layer.trainable == (layer.name not in frozen_convs), layer.name
    # 학습 변수는 block3–block5 합성곱 9 개 × (커널, 편향)
    assert len(features.trainable_variables) == 18


def _save_legacy_h5(model, path):
    """내려받는 `vgg16_weights_tf_dim_ordering_tf_kernels.h5` 와 같은 옛 Keras HDF5 꼴로 쓴다.

    루트 속성 layer_names (모든 층), 층마다 그룹과 weight_names 속성, 그 이름의 데이터셋.
    """
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = file.create_group(layer.name)
            names = [f"{layer.name}/{variable.name}:0" for variable in layer.weights]
            group.attrs["weight_names"] = [name.encode() for name in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def _save_weights(model, directory, file_format):
    """file_format: 'legacy_h5' (옛 `.h5`) 또는 'keras3' (`save_weights` 의 `.weights.h5`). 반환: 경로."""
    if file_format == "legacy_h5":
        path = str(directory / "vgg16_weights.h5")
        _save_legacy_h5(model, path)
    else:
        path = str(directory / "vgg16.weights.h5")
        model.save_weights(path)
    return path


@pytest.mark.slow
def test_vgg16_top_files_load_convolutions_and_fc6_fc7(tmp_path):
    """옛 `.h5` 와 Keras 3 `.weights.h5` top 파일 모두 (한 테스트에서 차례로: 파일 하나가 약 550 MB,
    프로세스 메모리가 6 GB 가까이 되므로 두 xdist 워커가 동시에 돌리지 않게)."""
    keras.utils.set_random_seed(3)
    source = keras.applications.VGG16(include_top=True, weights=None)  # 무작위, ImageNet top 파일과 같은 층
    original = keras.Model(source.get_layer("flatten").input, source.get_layer("fc2").output)
    pooled = tf.random.uniform([2, 7, 7, 512], 0.0, 2.0, seed=1)
    for file_format in ("legacy_h5", "keras3"):
        path = _save_weights(source, tmp_path, file_format)
        config = _config("vgg16", 16, weights=path, fc_units=4096)
        features = backbones.build_backbone(config).features
        head = backbones.build_box_head(config)
        os.remove(path)
        # 합성곱 13 개 모두 파일의 값 그대로, fc6/fc7 은 fc1/fc2 그대로.
        convs = [layer for layer in features.layers if layer.weights]
        assert len(convs) == 13
        pairs = [(layer, source.get_layer(layer.name)) for layer in convs]
        pairs += [(head.get_layer("fc6"), source.get_layer("fc1")),
                  (head.get_layer("fc7"), source.get_layer("fc2"))]
        for loaded, saved in pairs:
            for loaded_value, saved_value in zip(loaded.weights, saved.weights, strict=True):
                # 같은 모양, 모든 원소가 같다 (fc6 은 1 억 원소라 numpy 사본 없이 TF 에서 비교한다).
                assert loaded_value.shape == saved_value.shape
                same = bool(tf.reduce_all(tf.equal(loaded_value, saved_value)))
                assert same, (file_format, loaded_value.path)
        # 몸통의 Flatten 순서가 VGG16 의 것과 같다: 같은 7×7×512 특징에 원래 망의 fc2 출력과 같은 값.
        np.testing.assert_allclose(head(pooled, training=False), original(pooled), rtol=1e-4, atol=1e-4)
        del features, head


def test_vgg16_file_without_top_layers_is_an_error_for_fc6_fc7(tmp_path):
    source = keras.applications.VGG16(include_top=False, weights=None)
    path = str(tmp_path / "notop.weights.h5")
    source.save_weights(path)
    with pytest.raises(ValueError) as error:
        backbones.build_box_head(_config("vgg16", 16, weights=path, fc_units=4096))
    message = str(error.value)
    assert message.startswith(f"{path}: VGG16 weights without the top layers (include_top=False), "
                              "so fc6/fc7 would stay random")
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in message and "--backbone_weights" in message


@pytest.mark.parametrize("weights", ["imagenet", "/no/such/file.h5"])
def test_pretrained_vgg16_fc_needs_imagenet_shapes(weights):
    # 모양 검사는 내려받기나 파일보다 먼저다.
    with pytest.raises(ValueError, match=r"backbone.fc_units=4096 and roi.pool_size=7 \(got 32 and 7\)"):
        backbones.build_box_head(_config("vgg16", 16, weights=weights))
    with pytest.raises(ValueError, match=r"\(got 4096 and 5\)"):
        backbones.build_box_head(_config("vgg16", 16, weights=weights, fc_units=4096, pool_size=5))


@pytest.mark.parametrize("include_top", [True, False])
def test_mobilenet_v2_file_with_or_without_top_loads_features_and_body(tmp_path, include_top):
    keras.utils.set_random_seed(4)
    source = keras.applications.MobileNetV2(include_top=include_top, weights=None)
    path = str(tmp_path / "mobilenet_v2.weights.h5")
    source.save_weights(path)
    config = _config("mobilenet_v2", 16, weights=path)
    features = backbones.build_backbone(config).features
    body = backbones.build_box_head(config).get_layer("box_head_body")
    loaded_layers = [layer for layer in features.layers + body.layers if layer.weights]
    names = {layer.name for layer in loaded_layers}
    assert {"Conv1", "block_12_project", "block_13_expand", "Conv_1"} <= names
    for layer in loaded_layers:
        saved_values = source.get_layer(layer.name).get_weights()
        for loaded, saved in zip(layer.get_weights(), saved_values, strict=True):
            np.testing.assert_array_equal(loaded, saved)


def test_file_that_is_not_the_backbones_weights_names_the_file(tmp_path):
    path = str(tmp_path / "small_cnn.weights.h5")
    backbones.build_backbone(_config("small_cnn", 8)).features.save_weights(path)
    with pytest.raises(ValueError, match=rf"^{re.escape(path)}: not Keras MobileNetV2 weights "
                                         r"\(include_top=True: .*; include_top=False: .*\); download "):
        backbones.build_backbone(_config("mobilenet_v2", 16, weights=path))


@pytest.mark.parametrize("build", [backbones.build_backbone, backbones.build_box_head])
def test_imagenet_without_network_says_how_to_pass_a_local_file(monkeypatch, build):
    vgg16 = keras.applications.VGG16

    def offline_vgg16(*args, weights=None, **kwargs):
        if weights == "imagenet":
            raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- "
                            "[Errno -2] Name or service not known")
        return vgg16(*args, weights=weights, **kwargs)

    monkeypatch.setattr(keras.applications, "VGG16", offline_vgg16)
    with pytest.raises(ValueError) as error:
        build(_config("vgg16", 16, weights="imagenet", fc_units=4096))
    assert str(error.value) == (
        "could not get the ImageNet weights for vgg16 (URL fetch failure on "
        "https://storage.googleapis.com/...: None -- [Errno -2] Name or service not known); "
        "without the network, download "
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5 or, on a machine with the network, save one with "
        "keras.applications.VGG16(weights='imagenet').save_weights('vgg16.weights.h5'), and pass it with "
        "--backbone_weights=PATH (or --backbone_weights=none to train from scratch)")


@pytest.mark.parametrize("weights", ["none", "checkpoint"])
@pytest.mark.parametrize("name", ["vgg16", "mobilenet_v2"])
def test_no_weights_builds_without_downloading_or_reading_files(monkeypatch, name, weights):
    builder_name = backbones._APPLICATIONS[name][0]
    builder = getattr(keras.applications, builder_name)
    requested = []

    def recording_builder(*args, weights, **kwargs):
        requested.append(weights)
        return builder(*args, weights=weights, **kwargs)

    def no_file(*args, **kwargs):
        raise AssertionError("weights=none must not read a weights file")

    monkeypatch.setattr(keras.applications, builder_name, recording_builder)
    monkeypatch.setattr(keras.Model, "load_weights", no_file)
    config = _config(name, 16, weights=weights)
    backbone = backbones.build_backbone(config)
    backbones.build_box_head(config)
    assert requested and all(requested_weights is None for requested_weights in requested)
    # checkpoint 은 사전학습 구조: VGG16 의 conv1–conv2 를 얼린다 (none 은 얼리지 않는다)
    if name == "vgg16":
        assert bool(backbone.frozen_layers) == (weights == "checkpoint")


def _resnet_fpn_norms(weights):
    """resnet50_fpn (ResNet-18 로) 을 weights 로 만든 몸통의 (정규화 층 클래스 이름 집합, 학습되는 conv1 여부)."""
    from frcnn.modeling import builder
    config = config_lib.build_config("resnet50_fpn", f"backbone.depth=18,backbone.weights={weights}")
    body = builder.build_model(config, 2).backbone.features.get_layer("body")
    norms = {type(layer).__name__ for layer in body.layers if "bn" in layer.name}
    return norms, body.get_layer("conv1").trainable


def test_checkpoint_weights_build_resnet_fpn_as_pretrained_and_export_keeps_the_structure():
    """checkpoint: torchvision 의 사전학습 구조 (v1 FrozenBatchNorm, 앞 단계 얼림) 이되 아무것도 읽지 않는다.
    without_pretrained_weights (내보내기·init_from 원본) 는 imagenet·파일을 checkpoint 로, none 은 그대로 둔다:
    학습 때와 변수 이름이 같아야 체크포인트가 복원된다 (FrozenBatchNorm 과 BatchNormalization 은 다르다)."""
    assert _resnet_fpn_norms("checkpoint") == ({"FrozenBatchNorm"}, False)
    assert _resnet_fpn_norms("none") == ({"BatchNormalization"}, True)
    for weights, expected in (("imagenet", "checkpoint"), ("/some/file.npz", "checkpoint"), ("none", "none")):
        config = config_lib.build_config("resnet50_fpn", f"backbone.weights={weights}")
        assert config_lib.without_pretrained_weights(config).backbone.weights == expected


def test_missing_weights_file_names_the_path(tmp_path):
    missing = str(tmp_path / "nowhere" / "vgg.weights.h5")
    with pytest.raises(ValueError, match="nowhere/vgg.weights.h5"):
        backbones.build_backbone(_config("vgg16", 16, weights=missing))
    with pytest.raises(ValueError, match="nowhere/vgg.weights.h5"):
        backbones.build_backbone(_config("small_cnn", 8, weights=missing))


def test_small_cnn_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="small_cnn"):
        backbones.build_backbone(_config("small_cnn", 8, weights="imagenet"))


def test_stride_mismatch_is_rejected():
    with pytest.raises(ValueError, match="stride"):
        backbones.build_backbone(_config("small_cnn", 16))
