"""RoI 연산: 특징맵에서 RoI 마다 고정 크기 특징을 뽑는다. 모두 그래프 안의 TF 연산이라 SavedModel 에 그대로
들어간다. 같은 표본을 두 방식으로 찍는다:
  matmul — 축별 보간 행렬의 배치 행렬곱. XLA 로 컴파일되고 역전파가 빠르다 (학습).
  crop_and_resize — `tf.image.crop_and_resize` (XLA 커널 없음). 순전파가 matmul 보다 빠르다 — 추론(내보낸
    그래프, 평가)에 쓴다.
  두 방식은 같은 값을 낸다 (테스트가 확인): 특징맵 가장자리를 한 칸 복제해 덧대면 crop_and_resize 의
  범위 밖 규칙이 아래 RoIAlign 규칙과 같아진다.

용어:
  B 배치, R 이미지당 RoI 수, Hf·Wf 특징맵 크기, C 채널, P 출력 크기 (7), S = 2P 표본 격자.
  박스 형식 `[ymin, xmin, ymax, xmax]`, 이미지 픽셀. 특징 좌표 u = 픽셀 / stride − 0.5 (칸 중심이 정수).
  각 출력 칸(bin)에 2×2 표본을 쌍선형 보간으로 찍고:
    roi_pool  — 표본의 최댓값 (논문의 RoI max pooling; tf-faster-rcnn 과 같은 근사),
    roi_align — 표본의 평균 (Mask R-CNN 의 RoIAlign, sampling_ratio = 2).
"""

import tensorflow as tf

SAMPLES_PER_BIN = 2


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


def _bin_matrix(start, end, size, output_size, samples_per_bin, average):
    """한 축의 보간 행렬. `average` 면 칸 안 표본들의 가중치를 평균해 칸 하나의 행으로 접는다
    (평균은 선형이라 RoIAlign 의 2×2 평균을 행렬 안에서 끝낸다).

    Returns:
      [B, R, S, size] float32, S = output_size (average) 또는 output_size·samples_per_bin.
    """
    num_samples = output_size * samples_per_bin
    weights = _interpolation_matrix(_sample_positions(start, end, num_samples), size)
    if not average:
        return weights
    shape = tf.shape(weights)
    folded = tf.reshape(weights, [shape[0], shape[1], output_size, samples_per_bin, shape[3]])
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


def bilinear_samples(features, boxes, stride, output_size, average):
    """RoI 마다 격자 표본을 쌍선형 보간으로 뽑는다: 축마다 보간 행렬을 곱한다 (gather/scatter 없이
    배치 행렬곱 두 번 — CPU·GPU 에서 빠르고 XLA 로 컴파일된다).

    Args:
      features: [B, Hf, Wf, C].
      boxes: [B, R, 4] float32 이미지 픽셀.
      stride: int, 특징맵 한 칸의 픽셀 수.
      output_size: int, P.
      average: bool, True 면 칸마다 2×2 표본 평균 [B, R, P, P, C], 아니면 표본 그대로 [B, R, 2P, 2P, C].

    Returns:
      [B, R, S, S, C] (features 의 dtype).
    """
    shape = tf.shape(features)
    height = features.shape[1] or shape[1]
    width = features.shape[2] or shape[2]
    channels = features.shape[3]
    coords = boxes / float(stride) - 0.5
    ymin, xmin, ymax, xmax = tf.unstack(coords, axis=-1)
    dtype = features.dtype
    # [B, R, S, Hf], [B, R, S, Wf] 축별 보간 가중치
    row_weights = tf.cast(_bin_matrix(ymin, ymax, height, output_size, SAMPLES_PER_BIN, average), dtype)
    col_weights = tf.cast(_bin_matrix(xmin, xmax, width, output_size, SAMPLES_PER_BIN, average), dtype)
    batch_size, num_rois, num_samples = shape[0], tf.shape(boxes)[1], row_weights.shape[2]
    # [B, R·S, Wf·C] 행 방향 보간: [B, R·S, Hf] @ [B, Hf, Wf·C]
    rows = tf.matmul(tf.reshape(row_weights, [batch_size, -1, height]),
                     tf.reshape(features, [batch_size, height, -1]))
    rows = tf.reshape(rows, [batch_size, num_rois, num_samples, width, channels])
    # [B, R, S, S, C] 열 방향 보간: [B, R, 1, S, Wf] @ [B, R, S, Wf, C]
    return tf.matmul(col_weights[:, :, None], rows)


IMPLEMENTATIONS = ("matmul", "crop_and_resize")


def _grid_samples(features, boxes, stride, output_size, implementation):
    """칸마다 2×2 표본 [B·R, 2P, 2P, C] (구현을 고른다)."""
    size = output_size * SAMPLES_PER_BIN
    if implementation == "crop_and_resize":
        return _crop_and_resize_samples(features, boxes / float(stride) - 0.5, size)
    if implementation != "matmul":
        raise ValueError(f"unknown RoI implementation '{implementation}' (expected {IMPLEMENTATIONS})")
    samples = bilinear_samples(features, boxes, stride, output_size, average=False)
    return tf.reshape(samples, [-1, size, size, samples.shape[-1]])


def roi_pool(features, boxes, stride, output_size=7, implementation="matmul"):
    """RoI max pooling.

    Args:
      features: [B, Hf, Wf, C].
      boxes: [B, R, 4] float32 이미지 픽셀.
      stride: int.
      output_size: int, P.
      implementation: 'matmul' (학습, XLA) 또는 'crop_and_resize' (추론).

    Returns:
      [B·R, P, P, C] RoI 특징.
    """
    samples = _grid_samples(features, boxes, stride, output_size, implementation)
    # [B·R, 2P, 2P, C] 표본 → 2×2 max pooling → [B·R, P, P, C]
    return tf.nn.max_pool2d(samples, SAMPLES_PER_BIN, SAMPLES_PER_BIN, "VALID")


def roi_align(features, boxes, stride, output_size=7, implementation="matmul"):
    """RoIAlign (칸마다 2×2 표본 평균). 인자와 반환은 `roi_pool` 과 같다."""
    if implementation == "matmul":  # 평균을 보간 행렬 안에서 접는다 (표본 격자를 만들지 않음)
        samples = bilinear_samples(features, boxes, stride, output_size, average=True)
        return tf.reshape(samples, [-1, output_size, output_size, samples.shape[-1]])
    samples = _grid_samples(features, boxes, stride, output_size, implementation)
    return tf.nn.avg_pool2d(samples, SAMPLES_PER_BIN, SAMPLES_PER_BIN, "VALID")


def roi_features(features, boxes, stride, output_size, op, implementation="matmul"):
    """설정(`roi.op`)에 따라 pool 또는 align 을 고른다."""
    if op == "pool":
        return roi_pool(features, boxes, stride, output_size, implementation)
    if op == "align":
        return roi_align(features, boxes, stride, output_size, implementation)
    raise ValueError(f"unknown RoI op '{op}' (expected 'pool' or 'align')")
