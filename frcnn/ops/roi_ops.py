"""RoI 연산: 특징맵에서 RoI 마다 고정 크기 특징을 뽑는다. 모두 그래프 안의 TF 연산이라 SavedModel 에 그대로
들어간다.

roi_pool — RoI max pooling (논문, py-faster-rcnn 의 RoIPool): 출력 칸(bin)마다 그 bin 이 걸치는 특징맵 칸을
  하나도 빼지 않고 최댓값을 낸다. 특징맵의 2차원 희소 표(sparse table, 구간 최댓값 질의)를 한 번 만들고
  bin 마다 네 번 찾아 본다 — 모양이 정적이고 XLA 로 컴파일되며, 학습·추론이 같은 연산을 쓴다.
roi_align — RoIAlign (Mask R-CNN, sampling_ratio = 2): bin 마다 2×2 표본을 쌍선형 보간해 평균. 같은 표본을
  두 방식으로 찍는다:
  matmul — 축별 보간 행렬의 배치 행렬곱. XLA 로 컴파일되고 역전파가 빠르다 (학습).
  crop_and_resize — `tf.image.crop_and_resize` (XLA 커널 없음). 순전파가 matmul 보다 빠르다 — 추론(내보낸
    그래프, 평가)에 쓴다.
  두 방식은 같은 값을 낸다 (테스트가 확인): 특징맵 가장자리를 한 칸 복제해 덧대면 crop_and_resize 의
  범위 밖 규칙이 아래 RoIAlign 규칙과 같아진다.

용어:
  B 배치, R 이미지당 RoI 수, Hf·Wf 특징맵 크기, C 채널, P 출력 크기 (7), S = 2P 표본 격자.
  박스 형식 `[ymin, xmin, ymax, xmax]`, 이미지 픽셀. 특징맵 칸 k 는 픽셀 [k·stride, (k+1)·stride).
  roi_pool 의 칸 좌표 v = 픽셀 / stride: RoI 의 p 번째 bin 은 [v1 + p·bh, v1 + (p+1)·bh), bh = (v2 − v1) / P.
    bin 의 칸은 걸치는 칸 모두 — floor(a + ε) … ceil(b − ε) − 1 (ε = `BIN_EPSILON`, 적어도 한 칸), 맵으로
    자른다. 맵 밖의 bin 은 0 (Caffe RoIPool 과 같다).
  희소 표 M[kh, kw][h, w] = 행 [h, h + 2^kh) × 열 [w, w + 2^kw) 의 최댓값, 수준 kh = 0..Lh, kw = 0..Lw
    (L = ⌊log2 축 길이⌋; 길이를 모르면 ⌊log2 max_feature_size⌋). 조각 (kh, kw) 은 유효한 시작 위치
    [Hf − 2^kh + 1, Wf − 2^kw + 1] 만 두고, 조각들을 평면 [B, N, C] 로 이어 tf.gather(batch_dims=1) 로 찾는다.
    n 칸 구간 [h0, h1) 의 최댓값은 수준 k = ⌊log2 n⌋ 의 두 조각 [h0, h0 + 2^k) 와 [h1 − 2^k, h1) (겹쳐도
    된다) 의 최댓값 — 두 축이면 네 조각. ⌊log2 n⌋ 은 정수 비교로 센다.
    크기: N = Σ(Hf − 2^kh + 1)·Σ(Wf − 2^kw + 1) — 38×63 맵이면 특징맵의 약 23배 (C = 512, float32: 107 MiB).
  칸 번호 h·Wf + w: 역전파가 쓰는 bin 최댓값 칸 (Caffe RoIPool 의 argmax). 역전파 때 표를 칸 번호와 함께 다시
    만든다 (tf.custom_gradient) — 순전파의 표를 학습 스텝 끝까지 들고 있지 않는다.
  roi_align 의 특징 좌표 u = 픽셀 / stride − 0.5 (칸 중심이 정수). 각 bin 에 2×2 표본을 쌍선형 보간으로 찍는다.
"""

import tensorflow as tf

SAMPLES_PER_BIN = 2
# bin 경계가 정수 칸 경계에 float 반올림만큼 못 미치거나 넘칠 때 옆 칸을 걸친 것으로 치지 않는 여유 (칸 단위).
BIN_EPSILON = 1e-4
IMPLEMENTATIONS = ("matmul", "crop_and_resize")


def _sample_positions(start, end, num_samples):
    """[start, end] 를 num_samples 칸으로 나눈 각 칸 중심 좌표 [..., num_samples]."""
    fractions = (tf.range(num_samples, dtype=tf.float32) + 0.5) / num_samples
    return start[..., None] + (end - start)[..., None] * fractions


def _interpolation_matrix(positions, size):
    """한 축의 쌍선형 보간 행렬: 표본 위치마다 격자 칸의 가중치 (삼각 커널 max(0, 1 − |u − k|)).
    범위 밖(−1 미만 또는 size 초과) 표본은 0, 그 밖은 [0, size − 1] 로 자른다 (RoIAlign 규칙).

    Args:
      positions: [B, R, S] float32 특징 좌표.
      size: 스칼라 int32 (정적 int 도 가능), 그 축의 길이.

    Returns:
      [B, R, S, size] float32.
    """
    size_float = tf.cast(size, tf.float32)
    valid = tf.cast((positions >= -1.0) & (positions <= size_float), tf.float32)
    positions = tf.clip_by_value(positions, 0.0, size_float - 1.0)
    grid = tf.range(size_float, dtype=tf.float32)
    weights = tf.nn.relu(1.0 - tf.abs(positions[..., None] - grid))
    return weights * valid[..., None]


def _bin_matrix(start, end, size, output_size):
    """한 축의 bin 보간 행렬: bin 안 표본들의 가중치를 평균해 bin 하나의 행으로 접는다 (평균은 선형이라
    RoIAlign 의 2×2 평균을 행렬 안에서 끝낸다).

    Returns:
      [B, R, P, size] float32.
    """
    weights = _interpolation_matrix(_sample_positions(start, end, output_size * SAMPLES_PER_BIN), size)
    shape = tf.shape(weights)
    folded = tf.reshape(weights, [shape[0], shape[1], output_size, SAMPLES_PER_BIN, shape[3]])
    return tf.reduce_mean(folded, axis=3)


def _crop_and_resize_samples(features, coords, num_samples):
    """`tf.image.crop_and_resize` 로 [B·R, S, S, C] 표본을 찍는다 (matmul 방식과 같은 위치·규칙).

    Args:
      features: [B, Hf, Wf, C].
      coords: [B, R, 4] 특징 좌표 (u = 픽셀 / stride − 0.5).
      num_samples: S.
    """
    shape = tf.shape(features)
    batch_size, num_rois = shape[0], tf.shape(coords)[1]
    # 가장자리 한 칸 복제: u ∈ [−1, 0) 은 0 번 칸 값 (자르기), u < −1 이나 u > Hf 는 0 (범위 밖).
    padded = tf.pad(features, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    starts, ends = coords[..., :2], coords[..., 2:]
    first = starts + (ends - starts) * (0.5 / num_samples)
    last = starts + (ends - starts) * ((num_samples - 0.5) / num_samples)
    # 덧댄 맵의 정규화 좌표: (u + 1) / (Hf + 1)
    extent = tf.cast(tf.stack([shape[1], shape[2]]), tf.float32) + 1.0
    normalized = tf.concat([(first + 1.0) / extent, (last + 1.0) / extent], axis=-1)
    box_indices = tf.repeat(tf.range(batch_size), num_rois)
    samples = tf.image.crop_and_resize(tf.cast(padded, tf.float32), tf.reshape(normalized, [-1, 4]),
                                       box_indices, [num_samples, num_samples])
    return tf.cast(samples, features.dtype)


def bilinear_bin_means(features, boxes, stride, output_size):
    """RoI 마다 bin 의 2×2 쌍선형 표본 평균: 축마다 bin 보간 행렬을 곱한다 (gather/scatter 없이 배치
    행렬곱 두 번 — CPU·GPU 에서 빠르고 XLA 로 컴파일된다).

    Args:
      features: [B, Hf, Wf, C].
      boxes: [B, R, 4] float32 이미지 픽셀.
      stride: int, 특징맵 한 칸의 픽셀 수.
      output_size: int, P.

    Returns:
      [B, R, P, P, C] (features 의 dtype).
    """
    shape = tf.shape(features)
    height = features.shape[1] or shape[1]
    width = features.shape[2] or shape[2]
    channels = features.shape[3]
    coords = boxes / float(stride) - 0.5
    ymin, xmin, ymax, xmax = tf.unstack(coords, axis=-1)
    dtype = features.dtype
    # [B, R, P, Hf], [B, R, P, Wf] 축별 보간 가중치
    row_weights = tf.cast(_bin_matrix(ymin, ymax, height, output_size), dtype)
    col_weights = tf.cast(_bin_matrix(xmin, xmax, width, output_size), dtype)
    batch_size, num_rois = shape[0], tf.shape(boxes)[1]
    # [B, R·P, Wf·C] 행 방향 보간: [B, R·P, Hf] @ [B, Hf, Wf·C]
    rows = tf.matmul(tf.reshape(row_weights, [batch_size, -1, height]),
                     tf.reshape(features, [batch_size, height, -1]))
    rows = tf.reshape(rows, [batch_size, num_rois, output_size, width, channels])
    # [B, R, P, P, C] 열 방향 보간: [B, R, 1, P, Wf] @ [B, R, P, Wf, C]
    return tf.matmul(col_weights[:, :, None], rows)


def _axis_extent(features, axis, max_feature_size):
    """희소 표의 한 축: (길이 — 정적 int 또는 스칼라 텐서, 최고 수준 L — 정적 int).

    정적 길이를 알면 L = ⌊log2 길이⌋, 모르면 상한 `max_feature_size` 로 정하고 실행 때 길이 ≤ 상한을 검사한다
    (상한을 넘는 맵이면 큰 bin 의 가운데를 건너뛸 수 있다).
    """
    static_size = features.shape[axis]
    if static_size is not None:
        return static_size, static_size.bit_length() - 1
    if max_feature_size is None:
        raise ValueError("roi_pool needs a static feature map size or max_feature_size")
    size = tf.shape(features)[axis]
    tf.debugging.assert_less_equal(size, max_feature_size,
                                   message="roi_pool: feature map larger than max_feature_size")
    return size, int(max_feature_size).bit_length() - 1


def _bin_cells(start, end, size, output_size, max_level):
    """한 축에서 각 bin 이 걸치는 칸 구간 [h0, h1) 과 그 구간을 덮는 희소 표의 두 조각.

    Args:
      start, end: [B, R] float32 칸 좌표 (픽셀 / stride).
      size: 그 축의 칸 수 (int 또는 스칼라 int32).
      output_size: P.
      max_level: 정적 int L.

    Returns:
      level [B, R, P] int32 (k = ⌊log2 n⌋), first·second [B, R, P] int32 (두 조각의 시작 h0, h1 − 2^k; 맵 밖
      bin 도 맵 안 색인), inside [B, R, P] bool (맵 안에 칸이 있는 bin).
    """
    fractions = tf.range(output_size + 1, dtype=tf.float32) / output_size
    edges = start[..., None] + (end - start)[..., None] * fractions  # [B, R, P + 1]
    low = tf.cast(tf.floor(edges[..., :-1] + BIN_EPSILON), tf.int32)
    high = tf.maximum(tf.cast(tf.math.ceil(edges[..., 1:] - BIN_EPSILON), tf.int32), low + 1)
    low, high = tf.maximum(low, 0), tf.minimum(high, size)
    count = tf.maximum(high - low, 1)
    # ⌊log2 n⌋ 를 정수 비교로: n ≥ 2, 4, …, 2^L 인 개수. 2^k 는 상수 표에서 (LeftShift 는 LiteRT 내장 연산이 아니다)
    powers = _powers_of_two(max_level)  # [L+1] 1, 2, …, 2^L
    level = tf.reduce_sum(tf.cast(count[..., None] >= powers[1:], tf.int32), axis=-1)
    second = high - tf.gather(powers, level)
    last_cell = tf.cast(size, tf.int32) - 1
    return (level, tf.clip_by_value(low, 0, last_cell), tf.clip_by_value(second, 0, last_cell),
            high > low)


def _level_lengths(size, max_level):
    """희소 표 한 축의 수준 k = 0..L 조각 길이 (유효한 시작 위치 수) max(n − 2^k + 1, 0): [L+1] int32."""
    return tf.maximum(size - _powers_of_two(max_level) + 1, 0)


def _powers_of_two(max_level):
    """[L+1] int32 상수 2^0 … 2^L."""
    return tf.constant([1 << level for level in range(max_level + 1)], tf.int32)


def _table_indices(boxes, stride, output_size, extents):
    """bin 마다 평면 희소 표에서 찾을 네 조각의 색인과 맵 안 여부.

    평면 표 (`_sparse_table`) 는 조각 (kh, kw) — [Hf − 2^kh + 1, Wf − 2^kw + 1] 위치, 행 우선 — 을 (kh, kw)
    순서로 잇는다.

    Args:
      boxes: [B, R, 4] 이미지 픽셀.
      stride, output_size: int.
      extents: ((Hf, Lh), (Wf, Lw)), `_axis_extent` 의 결과.

    Returns:
      indices: 네 [B, R·P·P] int32 — 행 조각 (h0, h1 − 2^kh) × 열 조각 (w0, w1 − 2^kw).
      inside: [B, R·P·P, 1] bool, 맵 안에 칸이 있는 bin.
    """
    (height, row_levels), (width, col_levels) = extents
    ymin, xmin, ymax, xmax = tf.unstack(tf.cast(boxes, tf.float32) / float(stride), axis=-1)
    # 각 [B, R, P]: 행 bin 은 [..., :, None], 열 bin 은 [..., None, :] 로 펼쳐 [B, R, P, P]
    row_level, row_first, row_second, row_inside = _bin_cells(ymin, ymax, height, output_size, row_levels)
    col_level, col_first, col_second, col_inside = _bin_cells(xmin, xmax, width, output_size, col_levels)
    widths = _level_lengths(width, col_levels)
    piece_sizes = _level_lengths(height, row_levels)[:, None] * widths
    offsets = tf.cumsum(tf.reshape(piece_sizes, [-1]), exclusive=True)
    offset = tf.gather(offsets, row_level[..., :, None] * (col_levels + 1) + col_level[..., None, :])
    piece_width = tf.gather(widths, col_level)[..., None, :]
    batch_size = tf.shape(boxes)[0]
    indices = [tf.reshape(offset + row[..., :, None] * piece_width + col[..., None, :], [batch_size, -1])
               for row in (row_first, row_second) for col in (col_first, col_second)]
    inside = tf.reshape(row_inside[..., :, None] & col_inside[..., None, :], [batch_size, -1, 1])
    return indices, inside


def _larger(first, second):
    """원소별로 값이 큰 쪽 (같으면 first). 각각 [값] 또는 [값, 칸 번호] — 칸 번호도 그쪽을 따른다."""
    larger = [tf.maximum(first[0], second[0])]
    if len(first) > 1:
        larger.append(tf.where(first[0] >= second[0], first[1], second[1]))
    return larger


def _axis_levels(level_zero, axis, max_level):
    """axis 방향 1차원 희소 표의 수준 0..L ([값] 또는 [값, 칸 번호] 목록).

    수준 k 는 유효한 시작 위치 n − 2^k + 1 개만 둔다 (n 은 그 축의 길이; 동적 크기에서 n < 2^k 면 빈
    조각): 위치 i 는 수준 k − 1 의 i 와 i + 2^(k−1) 중 큰 쪽.
    """
    levels = [level_zero]
    for level in range(1, max_level + 1):
        previous, shift = levels[-1], 2 ** (level - 1)
        size, minimum = previous[0].shape[axis], min
        if size is None:
            size, minimum = tf.shape(previous[0])[axis], tf.minimum
        start = minimum(shift, size)
        begin, extent = [0] * previous[0].shape.rank, [-1] * previous[0].shape.rank
        extent[axis] = size - start
        heads = [tf.slice(tensor, begin, extent) for tensor in previous]
        begin[axis] = start
        levels.append(_larger(heads, [tf.slice(tensor, begin, extent) for tensor in previous]))
    return levels


def _sparse_table(level_zero, row_levels, col_levels):
    """2차원 희소 표를 평면으로 (`_table_indices` 의 순서): [값] 또는 [값, 칸 번호], 각 [B, N, C]."""
    pieces = [piece for rows in _axis_levels(level_zero, 1, row_levels)
              for piece in _axis_levels(rows, 2, col_levels)]
    shape = tf.shape(level_zero[0])
    flat_shape = [shape[0], -1, level_zero[0].shape[3] or shape[3]]
    return [tf.concat([tf.reshape(piece[part], flat_shape) for piece in pieces], axis=1)
            for part in range(len(level_zero))]


def _bin_maxima(features, indices, levels, with_argmax):
    """bin 최댓값 [B, N, C] (N = R·P·P) 과, with_argmax 면 그 칸 번호 h·Wf + w [B, N, C] int32 를 목록으로."""
    level_zero = [features]
    if with_argmax:
        shape = tf.shape(features)
        cells = tf.reshape(tf.range(shape[1] * shape[2]), [1, shape[1], shape[2], 1])
        level_zero.append(tf.broadcast_to(cells, shape))
    tables = _sparse_table(level_zero, *levels)
    maxima = None
    for index in indices:
        found = [tf.gather(table, index, batch_dims=1) for table in tables]
        maxima = found if maxima is None else _larger(maxima, found)
    return maxima


def _scatter_to_cells(upstream, argmax, shape):
    """bin 기울기 [B, N, C] 를 칸 번호 argmax [B, N, C] 의 칸으로 모아 더한다 → [B, Hf, Wf, C]."""
    cells = shape[1] * shape[2]
    ids = (tf.range(shape[0])[:, None, None] * cells + argmax) * shape[3] + tf.range(shape[3])
    summed = tf.math.unsorted_segment_sum(tf.reshape(upstream, [-1]), tf.reshape(ids, [-1]),
                                          shape[0] * cells * shape[3])
    return tf.reshape(summed, shape)


def roi_pool(features, boxes, stride, output_size=7, max_feature_size=None):
    """RoI max pooling: bin 이 걸치는 모든 특징맵 칸의 최댓값 (py-faster-rcnn RoIPool, 연속 좌표).

    역전파는 Caffe RoIPool 처럼 bin·채널마다 최댓값 칸 하나로 간다 (같은 값이 여럿이면 그중 하나). 희소 표는
    순전파가 끝나면 버리고, 역전파 때 칸 번호와 함께 다시 만든다 — 학습 스텝 내내 표를 들고 있지 않는다.

    Args:
      features: [B, Hf, Wf, C] (float32, float16, bfloat16).
      boxes: [B, R, 4] 이미지 픽셀.
      stride: int.
      output_size: int, P.
      max_feature_size: 선택 int, Hf·Wf 의 상한 (칸). 특징맵 크기가 정적이 아닐 때 (내보낸 추론 그래프)
        필요하다 — 희소 표의 수준 수를 정한다.

    Returns:
      [B·R, P, P, C] RoI 특징 (features 의 dtype).

    Raises:
      ValueError: 특징맵 크기를 모르는데 max_feature_size 가 없을 때.
    """
    extents = (_axis_extent(features, 1, max_feature_size), _axis_extent(features, 2, max_feature_size))
    indices, inside = _table_indices(boxes, stride, output_size, extents)
    levels = (extents[0][1], extents[1][1])

    @tf.custom_gradient
    def pool(features):
        maxima, = _bin_maxima(features, indices, levels, with_argmax=False)
        mask = tf.cast(inside, maxima.dtype)

        def gradient(upstream):
            _, argmax = _bin_maxima(features, indices, levels, with_argmax=True)
            return _scatter_to_cells(upstream * mask, argmax, tf.shape(features))

        return maxima * mask, gradient

    pooled = pool(features)
    return tf.reshape(pooled, [-1, output_size, output_size, features.shape[3] or tf.shape(features)[3]])


def roi_align(features, boxes, stride, output_size=7, implementation="matmul"):
    """RoIAlign (bin 마다 2×2 쌍선형 표본 평균).

    Args:
      features: [B, Hf, Wf, C].
      boxes: [B, R, 4] float32 이미지 픽셀.
      stride: int.
      output_size: int, P.
      implementation: 'matmul' (학습, XLA) 또는 'crop_and_resize' (추론).

    Returns:
      [B·R, P, P, C] RoI 특징.
    """
    if implementation == "matmul":  # 평균을 보간 행렬 안에서 접는다 (표본 격자를 만들지 않음)
        samples = bilinear_bin_means(features, boxes, stride, output_size)
        return tf.reshape(samples, [-1, output_size, output_size, samples.shape[-1]])
    if implementation != "crop_and_resize":
        raise ValueError(f"unknown RoI implementation '{implementation}' (expected {IMPLEMENTATIONS})")
    size = output_size * SAMPLES_PER_BIN
    samples = _crop_and_resize_samples(features, boxes / float(stride) - 0.5, size)
    return tf.nn.avg_pool2d(samples, SAMPLES_PER_BIN, SAMPLES_PER_BIN, "VALID")


def roi_features(features, boxes, stride, output_size, op, implementation="matmul", max_feature_size=None):
    """설정(`roi.op`)에 따라 pool 또는 align 을 고른다.

    `implementation` 은 align 의 방식 (pool 은 학습·추론 모두 정확한 bin 최댓값 하나), `max_feature_size` 는
    pool 의 특징맵 크기 상한 (`roi_pool` 참고).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown RoI implementation '{implementation}' (expected {IMPLEMENTATIONS})")
    if op == "pool":
        return roi_pool(features, boxes, stride, output_size, max_feature_size)
    if op == "align":
        return roi_align(features, boxes, stride, output_size, implementation)
    raise ValueError(f"unknown RoI op '{op}' (expected 'pool' or 'align')")
