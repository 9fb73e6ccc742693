"""backbones 테스트: 백본별 stride·헤드 출력 모양, VGG16 사전학습 가중치 파일과 층 얼리기, 잘못된 가중치.

용어:
  B 배치, H·W 입력 크기, Hf·Wf 특징맵, N RoI 수, P RoI 출력 크기, D 헤드 출력 차원.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import backbones
from frcnn import config as config_lib

INPUT_HEIGHT, INPUT_WIDTH = 64, 96


def _config(name, stride, weights="none", pool_size=7):
    """작은 fc 헤드(32)로 빠르게 만드는 설정."""
    base = config_lib.ExperimentConfig()
    return dataclasses.replace(
        base,
        anchors=dataclasses.replace(base.anchors, stride=stride),
        backbone=dataclasses.replace(base.backbone, name=name, weights=weights, width=8, fc_units=32,
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
