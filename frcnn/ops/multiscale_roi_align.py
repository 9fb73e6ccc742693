"""여러 수준 RoIAlign: torchvision `MultiScaleRoIAlign` (P2–P5, 7×7, sampling_ratio 2, aligned=False) 그대로.

용어:
  B 배치, R 이미지당 RoI 수, L 수준 수 (P2–P5 면 4), Hl·Wl 수준 l 의 특징맵, C 채널, P 출력 크기 (7),
  g 축당 bin 의 표본 수 (sampling_ratio = 2), S = P·g 축당 표본 수.
  박스 형식 `[ymin, xmin, ymax, xmax]`, 패딩된 입력의 픽셀. 수준 l 의 배율 1 / stride_l (P2 는 1/4).
  수준 고르기 (torchvision `LevelMapper`): k = ⌊4 + log2(√넓이 / 224) + 1e-6⌋ 를 [2, 5] 로 자른다. 넓이가 0 이하인
    박스 (−1 패딩) 는 가장 낮은 수준 (torchvision 에서는 넓이 0 이 −∞ → 최저 수준, 음수는 NaN).
  aligned=False 표본 (torchvision roi_align CPU 커널): 특징 좌표 u = 픽셀 · 배율 (반 칸 어긋남 없음), RoI 높이·너비는
    적어도 1 칸, bin 크기 = RoI / P, bin p 의 표본 i 는 시작 + p·bin + (i + 0.5)·bin / g. 표본이 −1 미만이거나
    크기를 넘으면 0, 그 사이면 [0, 크기 − 1] 로 자른 뒤 이웃 네 칸 쌍선형 보간. bin 값은 g·g 표본의 평균.
  gather 표본: 모든 수준의 특징맵을 평면 표 [Σ B·Hl·Wl, C] 로 잇고, bin 마다 g·g 표본 × 네 이웃 칸 (16 개) 의 행
    번호를 RoI 수준의 시작 위치에서 세어 tf.gather 한 번으로 읽은 뒤, 가중치 (쌍선형 × 평균) 와 배치 행렬곱 한 번으로
    bin 값을 낸다 (네 번 gather 해 더하는 것보다 큰 중간 텐서를 덜 오간다). 행렬곱 표본 (`roi_ops`) 은 R·P·Hl·Wl·C 곱셈이라 FPN 크기
    (800×1088 의 P2) 에서 너무 크다; 여기서는 R·S·S·C·4 만 읽는다. LiteRT 내장 연산 (GATHER) 로 표현된다.
"""

import math

import tensorflow as tf

OUTPUT_SIZE = 7
SAMPLING_RATIO = 2
STRIDES = (4, 8, 16, 32)  # P2–P5
CANONICAL_SIZE = 224
CANONICAL_LEVEL = 4
LEVEL_EPSILON = 1e-6


def roi_levels(boxes, min_level=2, max_level=5):
    """RoI 마다 수준 k ∈ [min_level, max_level] [..., ] int32 (torchvision `LevelMapper`).

    boxes: [..., 4] float32 픽셀.
    """
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    # 넓이 0 이하: log2 가 −∞ 가 되도록 아주 작은 양수로 (가장 낮은 수준)
    side = tf.sqrt(tf.maximum(area, 1e-30))
    log2 = tf.math.log(side / CANONICAL_SIZE) / math.log(2.0)
    levels = tf.floor(CANONICAL_LEVEL + log2 + LEVEL_EPSILON)
    return tf.cast(tf.clip_by_value(levels, min_level, max_level), tf.int32)


def _axis_samples(start, end, size, output_size, sampling_ratio):
    """한 축의 표본: 아래 칸, 위 칸, 위 칸 가중치, 유효 여부. 모두 [B, R, S].

    Args:
      start, end: [B, R] float32 특징 좌표.
      size: [B, R] float32, 그 RoI 수준의 축 길이.
    """
    extent = tf.maximum(end - start, 1.0)
    bin_size = extent / output_size
    bins = tf.repeat(tf.range(output_size, dtype=tf.float32), sampling_ratio)  # [S] p
    offsets = tf.tile(tf.range(sampling_ratio, dtype=tf.float32) + 0.5, [output_size])  # [S] i + 0.5
    positions = (start[..., None] + bins * bin_size[..., None]
                 + offsets * bin_size[..., None] / sampling_ratio)
    size = size[..., None]
    valid = (positions >= -1.0) & (positions <= size)
    positions = tf.clip_by_value(positions, 0.0, size - 1.0)
    low = tf.floor(positions)
    high = tf.minimum(low + 1.0, size - 1.0)
    return low, high, positions - low, valid


def _flat_table(features):
    """수준들을 평면 표 [Σ B·Hl·Wl, C] 로, 그리고 수준별 (시작 행 [L], 높이 [L], 너비 [L]) int32."""
    shapes = [tf.shape(level) for level in features]
    channels = features[0].shape[-1] or shapes[0][-1]
    table = tf.concat([tf.reshape(level, [-1, channels]) for level in features], axis=0)
    rows = tf.stack([shape[0] * shape[1] * shape[2] for shape in shapes])
    starts = tf.cumsum(rows, exclusive=True)
    heights = tf.stack([shape[1] for shape in shapes])
    widths = tf.stack([shape[2] for shape in shapes])
    return table, starts, heights, widths


def multiscale_roi_align(features, boxes, strides=STRIDES, output_size=OUTPUT_SIZE,
                         sampling_ratio=SAMPLING_RATIO):
    """RoI 마다 그 수준의 특징맵에서 aligned=False RoIAlign (torchvision `MultiScaleRoIAlign`).

    Args:
      features: L 개 [B, Hl, Wl, C] (P2 부터, 같은 dtype).
      boxes: [B, R, 4] float32 패딩된 입력의 픽셀.
      strides: 수준별 stride (int, 2 의 거듭제곱; 첫 수준이 `roi_levels` 의 최저 수준 log2(stride)).
      output_size: P.
      sampling_ratio: g.

    Returns:
      [B·R, P, P, C] RoI 특징 (features 의 dtype).
    """
    min_level = int(math.log2(strides[0]))
    boxes = tf.cast(boxes, tf.float32)
    level = roi_levels(boxes, min_level, min_level + len(strides) - 1) - min_level  # [B, R]
    table, starts, heights, widths = _flat_table(features)
    height, width = tf.gather(heights, level), tf.gather(widths, level)  # [B, R] int32
    scale = tf.gather(tf.constant([1.0 / stride for stride in strides], tf.float32), level)
    coords = boxes * scale[..., None]
    ymin, xmin, ymax, xmax = tf.unstack(coords, axis=-1)
    float_height, float_width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    rows = _axis_samples(ymin, ymax, float_height, output_size, sampling_ratio)
    cols = _axis_samples(xmin, xmax, float_width, output_size, sampling_ratio)
    batch = tf.range(tf.shape(boxes)[0])[:, None]
    # [B, R] RoI 의 수준·이미지가 평면 표에서 시작하는 행
    base = tf.gather(starts, level) + batch * height * width
    # [B·R·P·P, g·g·4] bin 마다 표본 g·g 개 × 이웃 네 칸의 행 번호와 가중치 (평균 1/(g·g) 포함)
    index, weight = _bin_taps(base, width, rows, cols, output_size, sampling_ratio)
    taps = tf.gather(table, index)  # [B·R·P·P, g·g·4, C]
    # bin 값 = 가중치 · 읽은 칸 (배치 행렬곱 한 번: [., 1, g·g·4] @ [., g·g·4, C])
    pooled = tf.matmul(tf.cast(weight, taps.dtype)[:, None, :], taps)
    channels = taps.shape[-1] or tf.shape(taps)[-1]
    return tf.reshape(pooled, [-1, output_size, output_size, channels])


def _bin_taps(base, width, rows, cols, output_size, sampling_ratio):
    """bin 마다 읽을 평면 표의 행 번호 [B·R·P·P, g·g·4] int32 와 가중치 [B·R·P·P, g·g·4] float32.

    Args:
      base: [B, R] int32 RoI 수준·이미지의 시작 행. width: [B, R] int32 수준 너비.
      rows, cols: `_axis_samples` 의 (아래 칸, 위 칸, 위 가중치, 유효) — 각 [B, R, S], S = P·g.
    """
    row_low, row_high, row_weight, row_valid = rows
    col_low, col_high, col_weight, col_valid = cols
    valid = tf.cast(row_valid[..., :, None] & col_valid[..., None, :], tf.float32)  # [B, R, S, S]
    indices, weights = [], []
    for row_index, row_factor in ((row_low, 1.0 - row_weight), (row_high, row_weight)):
        for col_index, col_factor in ((col_low, 1.0 - col_weight), (col_high, col_weight)):
            # [B, R, S, S] 평면 표의 행 번호와 가중치
            row_start = tf.cast(row_index, tf.int32)[..., :, None] * width[..., None, None]
            indices.append(base[..., None, None] + row_start + tf.cast(col_index, tf.int32)[..., None, :])
            weights.append(row_factor[..., :, None] * col_factor[..., None, :] * valid)
    shape = [-1, output_size, sampling_ratio, output_size, sampling_ratio, 4]
    taps = sampling_ratio * sampling_ratio * 4

    def per_bin(values):  # [B, R, S, S, 4] → [B·R·P·P, g·g·4] (bin 바깥, 표본·이웃 안쪽)
        binned = tf.transpose(tf.reshape(tf.stack(values, axis=-1), shape), [0, 1, 3, 2, 4, 5])
        return tf.reshape(binned, [-1, taps])

    return per_bin(indices), per_bin(weights) / float(sampling_ratio * sampling_ratio)
