"""피라미드 앵커: torchvision `AnchorGenerator` 를 그대로 (수준마다 크기 하나 × 종횡비, P2–P6).

용어:
  l 피라미드 수준 (P2 … P6), Hl·Wl 그 격자 크기, K 위치당 앵커 수 (= 크기 수 × 비율 수), A = Σ Hl·Wl·K.
  순서: 수준 → 행 y → 열 x → (비율 바깥, 크기 안쪽) — torchvision 이 수준별 RPN 출력을 펴서 잇는 순서
    ([B, Hl, Wl, K] 를 [B, Hl·Wl·K] 로) 와 같다. 이 프로젝트의 `ops.anchors` 는 크기 바깥·비율 안쪽이라 다르다.
  기본 앵커: 원점 중심, 너비 w = 크기 / √r, 높이 h = 크기 · √r (r = 높이/너비), [−w/2, −h/2, w/2, h/2] 를
    float32 로 계산해 짝수 반올림 (torch.round) — 그래서 정수 좌표다 (32, r = 0.5 → 너비 45.25 → ±23).
  격자: 칸 (i, j) 의 앵커는 기본 앵커 + (i·stride_y, j·stride_x) — 반 칸 어긋남 없음. stride 는 패딩된 입력
    크기 // 격자 크기 (정수 나눗셈): 800 높이면 P6 (13 칸) 의 stride 는 64 가 아니라 61 이다.
  격자 크기: ResNet 의 stride-2 단계마다 ⌈n / 2⌉ — P2 = ⌈⌈H/2⌉/2⌉, 그 위로 반씩 (P6 = P5 의 stride-2 max-pool).
  박스 형식 `[ymin, xmin, ymax, xmax]` (패딩된 입력의 픽셀; torchvision 은 [x1, y1, x2, y2]).
"""

import numpy as np
import tensorflow as tf

# torchvision `_default_anchorgen`: P2–P6 에 크기 32 … 512 하나씩, 비율 0.5, 1, 2.
SIZES = ((32,), (64,), (128,), (256,), (512,))
ASPECT_RATIOS = (0.5, 1.0, 2.0)
FIRST_LEVEL = 2  # P2 (stride 4)


def cell_anchors(sizes, aspect_ratios):
    """한 수준의 기본 앵커 [K, 4] float32 numpy `[ymin, xmin, ymax, xmax]` (torchvision `generate_anchors`).

    float32 로 계산하고 짝수 반올림한다 (numpy `round` 와 torch.round 는 모두 짝수 반올림).
    """
    scales = np.asarray(sizes, np.float32)
    height_ratios = np.sqrt(np.asarray(aspect_ratios, np.float32))
    width_ratios = np.float32(1.0) / height_ratios
    widths = (width_ratios[:, None] * scales[None, :]).reshape(-1)  # 비율 바깥, 크기 안쪽
    heights = (height_ratios[:, None] * scales[None, :]).reshape(-1)
    half = np.stack([-heights, -widths, heights, widths], axis=1) / np.float32(2.0)
    return np.round(half).astype(np.float32)


def grid_sizes(height, width, num_levels=len(SIZES)):
    """패딩된 입력 (H, W) 의 P2, P3, … 격자 크기 [(Hl, Wl), …] (Python int)."""
    sizes = []
    # ⌈n / d⌉ 를 (n + d − 1) // d 로: 음수 나눗셈이 없어야 ONNX (tf2onnx 는 정수 FloorDiv 를 버림 Div 로) 에서도 같다
    height, width = (height + 3) // 4, (width + 3) // 4  # 줄기: stride-2 합성곱 + stride-2 max pool
    for _ in range(num_levels):
        sizes.append((height, width))
        height, width = (height + 1) // 2, (width + 1) // 2
    return sizes


def level_anchors(grid_height, grid_width, stride_y, stride_x, base):
    """한 수준의 모든 앵커 [Hl·Wl·K, 4] float32 텐서.

    Args:
      grid_height, grid_width: Hl, Wl (Python int 또는 int32 스칼라 텐서).
      stride_y, stride_x: 패딩된 입력 크기 // 격자 크기 (같은 종류).
      base: [K, 4] 기본 앵커 (`cell_anchors`).
    """
    shifts_y = tf.range(grid_height, dtype=tf.float32) * tf.cast(stride_y, tf.float32)
    shifts_x = tf.range(grid_width, dtype=tf.float32) * tf.cast(stride_x, tf.float32)
    grid_y, grid_x = tf.meshgrid(shifts_y, shifts_x, indexing="ij")
    # [Hl·Wl, 1, 4] 칸마다 (y, x, y, x) 이동
    shifts = tf.reshape(tf.stack([grid_y, grid_x, grid_y, grid_x], axis=-1), [-1, 1, 4])
    return tf.reshape(shifts + tf.constant(base, tf.float32)[None], [-1, 4])


def pyramid_anchors(height, width, sizes=SIZES, aspect_ratios=ASPECT_RATIOS):
    """패딩된 입력 (H, W) 의 전체 앵커 [A, 4] float32 와 수준별 앵커 수.

    Args:
      height, width: 패딩된 입력 크기 (배치 텐서의 크기, 이미지 자신의 크기가 아니다): Python int (학습 캔버스,
        정적 개수) 또는 int32 스칼라 텐서 (추론의 임의 크기; 개수도 텐서).
      sizes: 수준마다 앵커 크기들 (P2 부터).
      aspect_ratios: 종횡비 (높이/너비), 모든 수준에 같다.

    Returns:
      anchors: [A, 4] float32 텐서 (수준 순서로 이어 붙임).
      counts: 수준별 앵커 수 Hl·Wl·K (Python int 목록).
    """
    levels, counts = [], []
    for (grid_height, grid_width), level_sizes in zip(grid_sizes(height, width, len(sizes)), sizes):
        base = cell_anchors(level_sizes, aspect_ratios)
        strides = (height // grid_height, width // grid_width)
        levels.append(level_anchors(grid_height, grid_width, *strides, base))
        counts.append(grid_height * grid_width * len(base))
    return tf.concat(levels, axis=0), counts
