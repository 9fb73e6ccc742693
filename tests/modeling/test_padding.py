"""패딩이 결과에 새지 않는지: 학습 캔버스의 패딩은 정규화 뒤 0 (평균색) 이라 무엇으로 채웠든 특징이 같다."""

import numpy as np
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import backbones

IMAGE_SIZE = (40, 48)  # 64×64 캔버스 왼쪽 위의 이미지


def _canvas(fill, seed=0):
    """이미지 부분은 같고 패딩만 fill (스칼라, RGB, 또는 'noise') 인 [1, 64, 64, 3] 캔버스."""
    rng = np.random.default_rng(seed)
    canvas = rng.uniform(0, 255, [1, 64, 64, 3]).astype(np.float32) if fill == "noise" else \
        np.broadcast_to(np.asarray(fill, np.float32), [1, 64, 64, 3]).copy()
    canvas[0, :IMAGE_SIZE[0], :IMAGE_SIZE[1]] = np.random.default_rng(1).uniform(0, 255, IMAGE_SIZE + (3,))
    return tf.constant(canvas)


def _backbone(name, extra=""):
    overrides = f"backbone.name={name},backbone.weights=none,{extra}".strip(",")
    config = config_lib.build_config("cpu_small", overrides)
    return backbones.build_backbone(config)


def test_padding_content_does_not_change_features():
    backbone = _backbone("small_cnn")
    sizes = tf.constant([IMAGE_SIZE], tf.float32)
    reference = backbone(_canvas(0.0), image_sizes=sizes).numpy()
    for fill in (255.0, "noise"):
        np.testing.assert_allclose(backbone(_canvas(fill), image_sizes=sizes).numpy(), reference, atol=1e-5)
    # 마스크 없이는 패딩이 특징을 바꾼다 (위 비교가 의미 있다는 확인).
    assert not np.allclose(backbone(_canvas(255.0)).numpy(), backbone(_canvas(0.0)).numpy(), atol=1e-3)


def test_padding_is_the_mean_colour_after_caffe_normalization():
    """VGG16 (Caffe 정규화): 검은 패딩 + 마스크 = 평균색 패딩 (py-faster-rcnn 이 평균을 뺀 뒤 0 으로 패딩하는 것)."""
    backbone = _backbone("vgg16", "anchors.stride=16")
    mean_rgb = list(reversed(backbones.CAFFE_MEAN_BGR))
    masked = backbone(_canvas(0.0), image_sizes=tf.constant([IMAGE_SIZE], tf.float32))
    np.testing.assert_allclose(masked.numpy(), backbone(_canvas(mean_rgb)).numpy(), rtol=1e-4, atol=1e-3)


def test_inside_mask():
    mask = backbones.inside_mask(tf.constant([3, 4]), tf.constant([[2.0, 3.0], [3.0, 1.0]]))
    assert mask.shape == (2, 3, 4, 1)
    expected = np.zeros([2, 3, 4], bool)
    expected[0, :2, :3] = True
    expected[1, :3, :1] = True
    np.testing.assert_array_equal(mask.numpy()[..., 0], expected)


def test_model_detections_ignore_padding_content_only_with_neutral_padding():
    """`input.neutral_padding`: 켜면 패딩에 무엇이 있든 검출이 같고, 끄면 (cpu_small) 패딩이 검정으로 보인다."""
    from frcnn.modeling import model as model_lib
    sizes = tf.constant([IMAGE_SIZE], tf.float32)
    for neutral in (True, False):
        config = config_lib.build_config(
            "cpu_small", f"input.neutral_padding={neutral},backbone.width=8,backbone.fc_units=32,"
            "rpn.conv_channels=16,detection.score_threshold=0.0")
        model = model_lib.FasterRCNN(config, 2)
        model.build_all((64, 64))
        black, noise = (model.detect(_canvas(fill), sizes, tf.ones([1])) for fill in (0.0, "noise"))
        same = np.allclose(black["scores"].numpy(), noise["scores"].numpy(), atol=1e-5)
        assert same == neutral, neutral
