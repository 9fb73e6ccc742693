"""fpn_anchors 시험: 손으로 계산한 기본 앵커·stride, 그리고 torchvision `AnchorGenerator` 와 같은 앵커 (torch 가 없으면
그 시험만 건너뛴다).

박스: 이 프로젝트 `[ymin, xmin, ymax, xmax]`, torchvision `[x1, y1, x2, y2]`.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import fpn_anchors
from tests import torch_reference

# 패딩된 입력 크기: 800 높이 (P6 stride 61), 세로형, 1333 변의 32 배수 (1344), 작은 것, 32 배수가 아닌 것.
PADDED_SIZES = ((800, 1088), (1088, 800), (800, 1216), (1344, 800), (96, 128), (100, 130))


def test_cell_anchors_are_rounded_like_torchvision():
    # 크기 32: r = 0.5 → 너비 32·√2 = 45.25, 높이 22.63 → 반 ±22.63, ±11.31 → 반올림 ±23, ±11
    expected = [[-11, -23, 11, 23], [-16, -16, 16, 16], [-23, -11, 23, 11]]
    np.testing.assert_array_equal(fpn_anchors.cell_anchors((32,), (0.5, 1.0, 2.0)), expected)


def test_cell_anchor_order_is_ratio_outer_size_inner():
    anchors = fpn_anchors.cell_anchors((16, 32), (1.0, 4.0))
    # r = 1: 16, 32; r = 4: 너비 8, 16 · 높이 32, 64
    np.testing.assert_array_equal(anchors, [[-8, -8, 8, 8], [-16, -16, 16, 16],
                                            [-16, -4, 16, 4], [-32, -8, 32, 8]])


def test_stride_is_padded_size_floor_divided_by_grid():
    """800×1088: P6 격자 13×17 → stride (800 // 13, 1088 // 17) = (61, 64); 반 칸 어긋남 없음."""
    assert fpn_anchors.grid_sizes(800, 1088) == [(200, 272), (100, 136), (50, 68), (25, 34), (13, 17)]
    anchors, counts = fpn_anchors.pyramid_anchors(800, 1088)
    assert counts == [200 * 272 * 3, 100 * 136 * 3, 50 * 68 * 3, 25 * 34 * 3, 13 * 17 * 3]
    p6 = anchors.numpy()[sum(counts[:4]):].reshape(13, 17, 3, 4)
    base = fpn_anchors.cell_anchors((512,), fpn_anchors.ASPECT_RATIOS)
    np.testing.assert_array_equal(p6[0, 0], base)
    np.testing.assert_array_equal(p6[2, 3], base + [2 * 61, 3 * 64, 2 * 61, 3 * 64])


def test_level_anchors_compile_with_xla():
    base = fpn_anchors.cell_anchors((32,), fpn_anchors.ASPECT_RATIOS)
    compiled = tf.function(lambda: fpn_anchors.level_anchors(5, 7, 4, 4, base), jit_compile=True)
    np.testing.assert_array_equal(compiled().numpy(), fpn_anchors.level_anchors(5, 7, 4, 4, base).numpy())


@pytest.mark.parametrize("height,width", PADDED_SIZES)
def test_pyramid_anchors_match_torchvision_anchor_generator(height, width):
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList

    generator = AnchorGenerator(fpn_anchors.SIZES, (fpn_anchors.ASPECT_RATIOS,) * len(fpn_anchors.SIZES))
    # 이미지 자신의 크기는 앵커와 무관하다 (패딩된 배치 크기만 쓴다): 작게 준다.
    images = ImageList(torch.zeros(1, 3, height, width), [(height - 7, width - 5)])
    features = [torch.zeros(1, 1, *size) for size in fpn_anchors.grid_sizes(height, width)]
    expected = generator(images, features)[0].numpy()  # [A, 4] x1, y1, x2, y2
    anchors, counts = fpn_anchors.pyramid_anchors(height, width)
    assert sum(counts) == len(expected)
    np.testing.assert_array_equal(anchors.numpy(), expected[:, [1, 0, 3, 2]])
