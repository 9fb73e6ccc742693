"""anchors 테스트: 셀 앵커의 손 계산 값, 격자 순서와 중심, 프리셋별 앵커 수, 동적 특징 크기.

용어: A 앵커 수, K 위치당 앵커 수, 박스 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀.
"""

import numpy as np
import tensorflow as tf

from frcnn import config
from frcnn.data import record_spec
from frcnn.ops import anchors


def test_cell_anchors_hand_computed():
    cells = anchors.cell_anchors([32.0], [0.5, 1.0, 2.0])
    h = 32 * np.sqrt(0.5)
    w = 32 / np.sqrt(0.5)
    np.testing.assert_allclose(cells[0], [-h / 2, -w / 2, h / 2, w / 2], rtol=1e-6)
    np.testing.assert_allclose(cells[1], [-16, -16, 16, 16])
    areas = (cells[:, 2] - cells[:, 0]) * (cells[:, 3] - cells[:, 1])
    np.testing.assert_allclose(areas, 32 * 32, rtol=1e-5)


def test_grid_order_and_centers():
    grid = anchors.generate_anchors(2, 3, 16, [16.0], [1.0]).numpy()
    assert grid.shape == (6, 4)
    # 두 번째 행 첫 칸: 중심 (24, 8)
    np.testing.assert_allclose(grid[3], [16, 0, 32, 16])
    np.testing.assert_allclose(grid[2], [0, 32, 16, 48])


def test_vgg16_seed_has_1764_anchors():
    cfg = config.get_preset("vgg16_seed")
    assert record_spec.canvases(cfg) == ((224, 224),)
    assert record_spec.num_anchors(cfg, (224, 224)) == 14 * 14 * 9 == 1764
    assert anchors.anchors_for_canvas(cfg, (224, 224)).shape == (1764, 4)


def test_vgg16_paper_anchor_counts_like_the_paper():
    cfg = config.get_preset("vgg16_paper")
    grid = anchors.anchors_for_canvas(cfg, record_spec.largest_canvas(cfg)).numpy()
    # 논문: 1000×600 이미지에 약 20000 앵커, 경계 안은 "약 6000" (정확한 수는 앵커 모양 반올림에 따라 6–8천)
    assert 19000 <= grid.shape[0] <= 22000
    inside = ((grid[:, 0] >= 0) & (grid[:, 1] >= 0) & (grid[:, 2] <= 600) & (grid[:, 3] <= 1000)).sum()
    assert 5000 <= inside <= 8500, inside


def test_each_canvas_has_its_own_anchor_grid():
    cfg = config.get_preset("vgg16_paper")
    for height, width in record_spec.canvases(cfg):
        grid = anchors.anchors_for_canvas(cfg, (height, width)).numpy()
        assert grid.shape == (record_spec.num_anchors(cfg, (height, width)), 4)
        # 마지막 칸의 중심은 (Hc − 8, Wc − 8)
        np.testing.assert_allclose((grid[-1, :2] + grid[-1, 2:]) / 2, [height - 8, width - 8])


def test_dynamic_feature_size_under_tf_function():
    fn = tf.function(lambda h, w: anchors.generate_anchors(h, w, 8, [16.0, 32.0], [1.0]))
    assert fn(tf.constant(3), tf.constant(5)).shape[0] == 3 * 5 * 2
