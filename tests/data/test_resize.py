import numpy as np
import tensorflow as tf

from frcnn import config
from frcnn.data import resize


def test_resize_scale_hand_computed():
    # 500×375 (가로형) → 짧은 변 600: 배율 1.6 → 600×800; 긴 변 제한 1000 은 안 걸린다.
    scale, size = resize.resize_scale(375, 500, 600, 1000)
    assert abs(float(scale) - 1.6) < 1e-6 and size.numpy().tolist() == [600, 800]
    # 매우 긴 이미지는 긴 변 제한: 100×1000 → 배율 1.0
    scale, size = resize.resize_scale(100, 1000, 600, 1000)
    assert size.numpy().tolist() == [100, 1000]


def test_resize_and_pad_portrait():
    cfg = config.get_preset("cpu_small")
    image = tf.zeros([200, 150, 3], tf.uint8)
    resized, scale = resize.resize_image(image, cfg)
    assert resized.shape == (171, 128, 3)
    padded = resize.pad_to_canvas(resized + 1.0, cfg, landscape=False)
    assert padded.shape == (192, 128, 3)
    assert np.all(padded.numpy()[171:] == 0) and np.all(padded.numpy()[:171] == 1)
