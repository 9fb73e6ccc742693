"""torchvision 의 float64 리사이즈 크기 규칙 (`tv_transform.resized_size`) 을 int32 연산만으로, 비트 하나 다르지 않게.

LiteRT (TFLite 내장 연산) 에는 float64 가 없다. 여기서는 FLOOR_DIV·FLOOR_MOD·MUL·ADD·SUB·비교·SELECT·SUM·GATHER
(모두 int32) 만 쓴다 — 표도, float32 도 없다.

용어:
  H, W 원본 크기; 짧은 변 S0 = min(H, W), 긴 변 L = max(H, W); m = min_size, M = max_size.
  RN(·) float64 반올림 (가장 가까운 값, 동률은 짝수); torchvision 의 값은 변 x 마다 ⌊RN(x · q)⌋,
    q = RN(min(m / S0, M / L)).
  묶는 쌍 (a, s): m · L ≤ M · S0 (정확한 정수 비교) 이면 (m, S0), 아니면 (M, L). RN 은 단조라
    min(RN(m / S0), RN(M / L)) = RN(min(m / S0, M / L)) = RN(a / s) — 두 몫이 같거나 반올림이 겹쳐도 같은 값.
  n = ⌊a · x / s⌋ (정확한 값의 바닥). 답은 n 또는 n − 1 이다:
    · a · x mod s ≠ 0: 정확한 값은 정수에서 1/s 이상 떨어져 있고, 두 번의 반올림 오차는 (a · x / s) · 2^-52 보다
      작아 (a · x < 2^51 이면 1/s 미만) 정수를 넘지 못한다 → n.
    · a · x mod s = 0: 정확한 값이 정수 n. q 가 a / s 보다 작게 반올림됐고 (q = (a·2^E − r0) / (s·2^E),
      0 < 2·r0 < s) 부족분 D = x · r0 / (s · 2^E) 가 n 아래 float64 간격의 절반보다 크면 RN(x · q) 는 n 아래의
      이웃 (n − 간격, 바닥 n − 1) 이다. 절반과 같으면 짝수 쪽 n (n < 2^52 의 가수는 짝수).
  j = ⌊log2(a / s)⌋, E = 52 − j: q 의 가수 (53 비트 정수) 는 a · 2^E / s 를 반올림한 것, r0 = a · 2^E mod s
    (2^E mod s 는 제곱-곱셈으로). 동률 (2·r0 = s) 은 s 가 2^(E+1) 로 나누어져야 하므로 일어나지 않는다.
  k = ⌊log2 n⌋: n 아래 간격의 절반은 2^(k−53) (n = 2^k 이면 2^(k−54)). 그래서 한 칸 내려가는 조건은
    x · r0 · 2^53 > s · 2^(E+k) (n = 2^k 이면 2^54), 곧 c = k − j − 1 − [n = 2^k] 로 x · r0 > s · 2^c
    (c 는 −2 … 13, 음수면 왼쪽에 2^(−c) 를 곱한다).
  범위: 모든 변과 m, M 이 1 … 16384 (2^14). 이때 모든 int32 곱이 2^31 미만이다 (가장 큰 것: x · r0 · 4 < 2^30,
    a · x, m · L, s · 2^14, r0², s · 2^c 는 2^28 이하). 이 밖 (0 이하 변 포함) 의 값은 검사하지 않는다.
"""

import tensorflow as tf

from frcnn.data import tv_transform

MAX_SIDE = 2 ** 14
FLOAT64_MANTISSA_BITS = 52
EXPONENT_BITS = 7  # E = 52 − j ∈ [38, 66] < 2^7

# [31] 2^0 … 2^30
_POWERS_OF_TWO = [2 ** i for i in range(31)]


# 새 축은 tf.expand_dims 로 (x[..., None] 의 ellipsis StridedSlice 는 tf2onnx 가 ONNX 로 옮기지 못한다)
def _count_true(conditions):
    """[...] int32: 마지막 축 [..., K] 의 참 개수."""
    return tf.reduce_sum(tf.cast(conditions, tf.int32), axis=-1)


def _count_at_most(values, bounds):
    """[...] int32: values 이하인 bounds ([K] 상수) 의 개수."""
    return _count_true(tf.constant(bounds, tf.int32) <= tf.expand_dims(values, -1))


def _floor_log2_ratio(numerator, denominator):
    """[...] int32 ⌊log2(a / s)⌋ (a, s 는 1 … 2^14): 2^i · s ≤ a 인 i ≥ 1 의 수 − a · 2^i < s 인 i ≥ 0 의 수."""
    numerator, denominator = tf.expand_dims(numerator, -1), tf.expand_dims(denominator, -1)
    up = _count_true(denominator * tf.constant(_POWERS_OF_TWO[1:15]) <= numerator)
    down = _count_true(numerator * tf.constant(_POWERS_OF_TWO[0:15]) < denominator)
    return up - down


def _scaled_remainder(numerator, denominator, exponent):
    """[...] int32 a · 2^E mod s (제곱-곱셈, 높은 비트부터; 중간값 < s² ≤ 2^28)."""
    power = tf.math.floormod(1, denominator)  # 2^0 mod s (s = 1 이면 0)
    for bit in reversed(range(EXPONENT_BITS)):
        power = tf.math.floormod(power * power, denominator)
        bit_set = tf.equal(tf.math.floormod(tf.math.floordiv(exponent, 2 ** bit), 2), 1)
        power = tf.where(bit_set, tf.math.floormod(2 * power, denominator), power)
    return tf.math.floormod(tf.math.floormod(numerator, denominator) * power, denominator)


def _side(side, numerator, denominator, ratio_log2, remainder):
    """[...] int32 ⌊RN(x · RN(a / s))⌋ 한 변 (용어 참고)."""
    product = numerator * side
    floor = tf.math.floordiv(product, denominator)  # n
    powers = tf.constant(_POWERS_OF_TWO, tf.int32)
    floor_log2 = _count_at_most(floor, _POWERS_OF_TWO[1:])  # k
    is_power = tf.cast(tf.equal(floor, tf.gather(powers, floor_log2)), tf.int32)
    shift = floor_log2 - ratio_log2 - 1 - is_power  # c
    deficit = side * remainder * tf.gather(powers, tf.maximum(-shift, 0))
    half_gap = denominator * tf.gather(powers, tf.maximum(shift, 0))
    rounds_down = (tf.equal(tf.math.floormod(product, denominator), 0)
                   & (2 * remainder < denominator) & (deficit > half_gap))
    return floor - tf.cast(rounds_down, tf.int32)


def resized_size_portable(height, width, min_size=tv_transform.MIN_SIZE, max_size=tv_transform.MAX_SIZE):
    """`tv_transform.resized_size` 와 같은 [..., 2] int32 (h, w) 를 int32 내장 연산만으로.

    Args:
      height, width: 같은 모양 (스칼라 또는 [B]) 의 원본 크기, 정수 텐서 (1 … 16384).
      min_size, max_size: int (1 … 16384).

    Raises:
      ValueError: min_size·max_size 가 범위 밖일 때.
    """
    for name, value in (("min_size", min_size), ("max_size", max_size)):
        if not 1 <= value <= MAX_SIDE:
            raise ValueError(f"tv_size_portable: {name}={value} is outside 1..{MAX_SIDE}")
    min_size, max_size = int(min_size), int(max_size)  # numpy 정수도 int32 텐서와 섞이게
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    # m / S0 ≤ M / L 이면 짧은 변이 묶는다 (정확한 정수 비교)
    by_short = min_size * long <= max_size * short
    numerator = tf.where(by_short, min_size, max_size)  # a
    denominator = tf.where(by_short, short, long)  # s
    ratio_log2 = _floor_log2_ratio(numerator, denominator)  # j
    remainder = _scaled_remainder(numerator, denominator, FLOAT64_MANTISSA_BITS - ratio_log2)  # r0
    return tf.stack([_side(side, numerator, denominator, ratio_log2, remainder) for side in (height, width)],
                    axis=-1)
