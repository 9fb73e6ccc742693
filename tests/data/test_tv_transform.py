"""tv_transform 시험: 손으로 계산한 리사이즈 크기, 그리고 torchvision `GeneralizedRCNNTransform` 과 같은 크기·픽셀·
패딩·박스 되돌리기 (torch 가 없으면 그 시험만 건너뛴다).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import tv_transform
from frcnn.ops import normalize
from tests import torch_reference

# (H, W) → (h, w): ⌊변 · min(800 / 짧은 변, 1333 / 긴 변)⌋, float64 (Python 으로 손 계산)
HAND_SIZES = {
    (289, 385): (799, 1065),   # 289 · (800 / 289) = 799.999…
    (375, 500): (800, 1066),   # 1066.67 (float32 반올림 규칙은 1067)
    (500, 375): (1066, 800),
    (300, 1000): (399, 1333),  # 긴 변이 묶는다: 300 · 1.333 = 399.9
    (1000, 300): (1333, 399),
    (333, 500): (800, 1201),
    (100, 184): (724, 1333),   # 184 · (1333 / 184) = 1333.0; float32 배율 (torchvision 의 TorchScript 경로) 은 1332
}


@pytest.mark.parametrize("original,expected", sorted(HAND_SIZES.items()))
def test_resized_size_hand_computed(original, expected):
    assert tuple(tv_transform.resized_size(*original).numpy()) == expected


def test_resized_size_batched_and_compiled():
    heights, widths = zip(*HAND_SIZES)
    compiled = tf.function(tv_transform.resized_size, jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(heights), tf.constant(widths)).numpy(),
                                  list(HAND_SIZES.values()))


def test_padded_size_rounds_up_to_32():
    assert tv_transform.padded_size(799, 1065) == (800, 1088)
    assert tv_transform.padded_size(800, 1066) == (800, 1088)
    assert tv_transform.padded_size(64, 33) == (64, 64)


def _reference_transform():
    _, torchvision = torch_reference.import_torchvision()
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return GeneralizedRCNNTransform(tv_transform.MIN_SIZE, tv_transform.MAX_SIZE, normalize.IMAGENET_MEAN,
                                    normalize.IMAGENET_STD).eval()


def test_sizes_match_torchvision_over_a_sweep():
    torch, _ = torch_reference.import_torchvision()
    transform = _reference_transform()
    rng = np.random.default_rng(0)
    shapes = [tuple(shape) for shape in rng.integers(20, 1600, size=(40, 2))] + list(HAND_SIZES)
    for height, width in shapes:
        with torch.no_grad():
            images, _ = transform([torch.zeros(3, int(height), int(width))])
        expected = tuple(images.image_sizes[0])
        assert tuple(tv_transform.resized_size(height, width).numpy()) == expected, (height, width)
        assert tv_transform.padded_size(*expected) == tuple(images.tensors.shape[-2:])


@pytest.mark.parametrize("height,width", [(37, 50), (289, 385), (1100, 900)])
def test_pixels_match_torchvision(height, width):
    """정규화 → 쌍선형 리사이즈 (확대·축소) → 0 패딩이 torchvision 의 배치 텐서와 같다."""
    torch, _ = torch_reference.import_torchvision()
    image = np.random.default_rng(height).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    with torch.no_grad():
        # torchvision 의 입력은 0–1 float (ToTensor: uint8 / 255)
        expected, _ = _reference_transform()([torch.from_numpy(image).permute(2, 0, 1).float() / 255.0])
    resized, size = tv_transform.transform_image(tf.constant(image))
    padded = tv_transform.pad_image(resized)
    assert tuple(size.numpy()) == tuple(expected.image_sizes[0])
    torch_reference.assert_close_relative(padded[None], torch_reference.nhwc(expected.tensors))


def test_boxes_map_back_like_torchvision_postprocess():
    torch, _ = torch_reference.import_torchvision()
    boxes = np.array([[10.0, 20.0, 300.0, 700.5], [0.0, 0.0, 799.0, 1065.0]], np.float32)  # y1 x1 y2 x2
    resized, original = (799, 1065), (289, 385)
    detections = [{"boxes": torch.from_numpy(boxes[:, [1, 0, 3, 2]])}]
    expected = _reference_transform().postprocess(detections, [resized], [original])[0]["boxes"].numpy()
    actual = tv_transform.rescale_boxes(tf.constant(boxes), resized, original).numpy()
    np.testing.assert_allclose(actual, expected[:, [1, 0, 3, 2]], atol=0.05)
    np.testing.assert_array_equal(actual, expected[:, [1, 0, 3, 2]])  # 같은 float32 곱
