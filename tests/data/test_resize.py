"""frcnn.data.resize 테스트: 리사이즈 배율·크기, 캔버스 패딩, 정규화 박스 → 캔버스 픽셀 (손 계산)."""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config
from frcnn.data import record_spec
from frcnn.data import resize

SPEC = record_spec.RecordSpec.from_config  # 설정 → 캔버스 명세


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
    resized, scale = resize.resize_image(image, cfg.input.min_size, cfg.input.max_size)
    assert resized.shape == (171, 128, 3)
    # 171×128 을 담는 가장 작은 캔버스: 세로형 176×128 (번호 1)
    assert int(resize.canvas_for_image(200, 150, SPEC(cfg))) == 1
    padded = resize.pad_to_canvas(resized + 1.0, record_spec.canvases(cfg)[1])
    assert padded.shape == (176, 128, 3)
    assert np.all(padded.numpy()[171:] == 0) and np.all(padded.numpy()[:171] == 1)
    dynamic = resize.pad_to_canvas(resized, tf.unstack(tf.constant(SPEC(cfg).canvas_shapes)[tf.constant(3)]))
    assert dynamic.shape == (192, 128, 3)


def _padding(height, width, canvas):
    """원본 (H, W) 이미지가 캔버스에서 차지하지 않는 비율 (vgg16_paper 의 리사이즈)."""
    scale = min(600 / min(height, width), 1000 / max(height, width))
    used = min(round(height * scale), 1000) * min(round(width * scale), 1000)
    return 1 - used / (canvas[0] * canvas[1])


@pytest.mark.parametrize("height, width", [(375, 500), (500, 375), (333, 500), (500, 333), (300, 400),
                                           (334, 500), (332, 500), (480, 640)])
def test_common_aspect_ratios_pad_at_most_5_percent(height, width):
    cfg = config.get_preset("vgg16_paper")
    canvas = record_spec.canvases(cfg)[int(resize.canvas_for_image(height, width, SPEC(cfg)))]
    assert _padding(height, width, canvas) <= 0.05, canvas


def test_no_shape_pads_more_than_on_the_one_canvas_per_orientation():
    cfg = config.get_preset("vgg16_paper")
    shapes = [(height, 500) for height in range(100, 1001, 7)]
    shapes += [(width, height) for height, width in shapes]
    indices = [int(resize.canvas_for_image(height, width, SPEC(cfg))) for height, width in shapes]
    for (height, width), index in zip(shapes, indices):
        canvas = record_spec.canvases(cfg)[index]
        old = (608, 1008) if width >= height else (1008, 608)
        _, resized = resize.resize_scale(height, width, 600, 1000)
        assert resized[0] <= canvas[0] and resized[1] <= canvas[1]  # 담는다
        assert canvas[0] * canvas[1] <= old[0] * old[1]


def test_canvas_boxes_hand_computed():
    cfg = config.build_config("cpu_small")  # 짧은 변 128, 긴 변 ≤ 192
    boxes = np.array([[[0.1, 0.25, 0.5, 1.0], [-1, -1, -1, -1]]], np.float32)
    # 300×400 → 배율 min(128/300, 192/400) = 0.42667 → (128, 171)
    gt_boxes, sizes = resize.canvas_boxes(boxes, np.array([300]), np.array([400]),
                                          cfg.input.min_size, cfg.input.max_size)
    assert sizes.numpy().tolist() == [[128.0, 171.0]]
    np.testing.assert_allclose(gt_boxes.numpy()[0, 0], [12.8, 42.75, 64.0, 171.0], rtol=1e-6)
    assert gt_boxes.numpy()[0, 1].tolist() == [-1, -1, -1, -1]
