"""앵커 생성: 크기 × 종횡비를 stride 간격 격자에 깐다.

용어:
  Hf, Wf 특징맵 높이·너비 (= 캔버스 / stride), K 위치당 앵커 수 (= 크기 수 × 비율 수),
  A = Hf·Wf·K 전체 앵커 수. 순서는 (y, x, 크기, 비율) — RPN 헤드 출력 [B, Hf, Wf, K] 을
  [B, A] 로 펴는 순서와 같다.
  종횡비 r = 높이/너비, 넓이 보존: h = s·√r, w = s/√r. 중심은 칸의 가운데 ((i + 0.5)·stride).
  박스 형식 `[ymin, xmin, ymax, xmax]` (캔버스 연속 픽셀).
"""

import numpy as np
import tensorflow as tf

from frcnn.ops import fpn_anchors


def cell_anchors(sizes, aspect_ratios):
    """원점 중심의 기본 앵커 K 개 [K, 4] float32 (numpy). 순서: 크기 바깥, 비율 안쪽."""
    shapes = []
    for size in sizes:
        for ratio in aspect_ratios:
            height = size * np.sqrt(ratio)
            width = size / np.sqrt(ratio)
            shapes.append([-height / 2, -width / 2, height / 2, width / 2])
    return np.asarray(shapes, np.float32)


def generate_anchors(feature_height, feature_width, stride, sizes, aspect_ratios):
    """격자 위 모든 앵커.

    Args:
      feature_height: int, Hf.
      feature_width: int, Wf.
      stride: int, 특징맵 한 칸의 캔버스 픽셀 수.
      sizes: 앵커 한 변 크기들 (픽셀).
      aspect_ratios: 높이/너비 비율들.

    Returns:
      [Hf·Wf·K, 4] float32 텐서.
    """
    base = tf.constant(cell_anchors(sizes, aspect_ratios))  # [K, 4]
    centers_y = (tf.range(feature_height, dtype=tf.float32) + 0.5) * stride
    centers_x = (tf.range(feature_width, dtype=tf.float32) + 0.5) * stride
    grid_y, grid_x = tf.meshgrid(centers_y, centers_x, indexing="ij")
    # [Hf·Wf, 1, 4] 중심 좌표
    centers = tf.reshape(tf.stack([grid_y, grid_x, grid_y, grid_x], axis=-1), [-1, 1, 4])
    return tf.reshape(centers + base[None], [-1, 4])


def anchors_for_canvas(config, canvas):
    """캔버스 (높이, 너비) 하나의 앵커 [A, 4] (`RecordSpec.canvas_shapes` 의 한 모양). 피라미드 프리셋
    (`fpn.variant`) 이면 P2–P6 앵커 (`fpn_anchors.pyramid_anchors`, 수준마다 anchors.sizes 하나)."""
    height, width = canvas
    if config.fpn.variant:
        sizes = pyramid_sizes(config)
        return fpn_anchors.pyramid_anchors(height, width, sizes, config.anchors.aspect_ratios)[0]
    stride = config.anchors.stride
    return generate_anchors(height // stride, width // stride, stride,
                            config.anchors.sizes, config.anchors.aspect_ratios)


def pyramid_sizes(config):
    """피라미드 프리셋의 수준별 앵커 크기 ((s_P2,), (s_P3,), …) (`fpn_anchors` 형식)."""
    return tuple((size,) for size in config.anchors.sizes)


def num_anchors(config, canvas):
    """캔버스 (높이, 너비) 하나의 앵커 수 A (Python int)."""
    height, width = canvas
    if config.fpn.variant:
        grids = fpn_anchors.grid_sizes(height, width, len(config.anchors.sizes))
        return sum(rows * cols for rows, cols in grids) * len(config.anchors.aspect_ratios)
    stride = config.anchors.stride
    return (height // stride) * (width // stride) * config.anchors.num_anchors_per_location
