"""tv_size_portable 시험: int32 흉내가 float64 규칙 (`tv_transform.resized_size`) 과 비트 하나 다르지 않다 —
격자 전체, 반올림이 한 칸 내려갈 수 있는 경우 (a · x 가 s 로 나누어짐, 결과가 2 의 거듭제곱) 를 골라 만든 표본,
XLA, 그리고 LiteRT 내장 연산만으로 변환한 모델.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import tv_size_portable
from frcnn.data import tv_transform

# 설정 프리셋이 쓰는 (min_size, max_size)
PRESET_SIZES = [(800, 1333), (600, 1000), (224, 224), (128, 192)]

# (H, W) → (h, w), min 800 / max 1333: Python float 로 손 계산 (⌊변 · min(800 / 짧은 변, 1333 / 긴 변)⌋)
HAND_SIZES = {
    (289, 385): (799, 1065),    # 289 · (800 / 289) = 799.999…
    (375, 500): (800, 1066),
    (385, 289): (1065, 799),
    (100, 184): (724, 1333),    # 184 · (1333 / 184) = 1333.0 (반올림이 위로)
    (1600, 2666): (800, 1333),  # 800 / 1600 = 1333 / 2666: 두 몫이 같다
    (2666, 1600): (1333, 800),
    (49, 1333): (49, 1333),     # 긴 변이 묶고 배율이 정확히 1
    (1225, 1568): (799, 1023),  # 1568 · (800 / 1225) = 1023.999…: 정확한 값 1024 = 2^10 아래로
    (25, 512): (65, 1333),      # 긴 변이 묶는다; 25 · (1333 / 512) = 65.09
}


def _grid(low, high):
    """[N] int32 두 개: low … high 의 모든 (H, W)."""
    heights, widths = np.meshgrid(np.arange(low, high + 1), np.arange(low, high + 1), indexing="ij")
    return heights.ravel().astype(np.int32), widths.ravel().astype(np.int32)


def _assert_same(heights, widths, min_size, max_size):
    """portable 과 float64 기준이 모두 같다; 기준 [N, 2] 를 돌려준다."""
    expected = tv_transform.resized_size(heights, widths, min_size, max_size).numpy()
    actual = tv_size_portable.resized_size_portable(heights, widths, min_size, max_size).numpy()
    mismatched = np.flatnonzero((actual != expected).any(axis=-1))
    assert mismatched.size == 0, [(heights[i], widths[i], actual[i], expected[i]) for i in mismatched[:5]]
    return expected


def _divisible_sizes(rng, min_size, max_size, count):
    """a · x 가 s 로 나누어지는 (H, W) (a, s 는 묶는 쌍): 결과가 정수 n 이라 RN64 가 n − 1 로 내려갈 수 있는 경우.

    Returns:
      heights, widths: [N] int32 (1 … 16384).
    """
    limiting = rng.integers(1, tv_size_portable.MAX_SIDE + 1, count)  # s
    by_short = rng.random(count) < 0.5
    numerator = np.where(by_short, min_size, max_size)
    step = limiting // np.gcd(numerator, limiting)  # x 는 이것의 배수
    other = step * rng.integers(1, np.maximum(tv_size_portable.MAX_SIDE // step, 1) + 1)
    other = np.minimum(other, tv_size_portable.MAX_SIDE)
    swap = rng.random(count) < 0.5
    heights, widths = np.where(swap, other, limiting), np.where(swap, limiting, other)
    return heights.astype(np.int32), widths.astype(np.int32)


def _exact_floor(heights, widths, min_size, max_size):
    """[N, 2] int64 정확한 (유리수) ⌊x · min(m / S0, M / L)⌋ — 정수 연산."""
    short, long = np.minimum(heights, widths).astype(np.int64), np.maximum(heights, widths).astype(np.int64)
    by_short = min_size * long <= max_size * short
    numerator, denominator = np.where(by_short, min_size, max_size), np.where(by_short, short, long)
    return np.stack([numerator * heights // denominator, numerator * widths // denominator], axis=-1)


@pytest.mark.parametrize("original,expected", sorted(HAND_SIZES.items()))
def test_hand_computed(original, expected):
    assert tuple(tv_size_portable.resized_size_portable(*original).numpy()) == expected


@pytest.mark.parametrize("min_size,max_size", PRESET_SIZES)
def test_every_size_up_to_1500_matches_float64(min_size, max_size):
    heights, widths = _grid(1, 1500)
    expected = _assert_same(heights, widths, min_size, max_size)
    # 격자에는 float64 가 정확한 값보다 한 칸 아래인 크기가 있다 (시험이 그 경우를 지난다)
    assert (expected < _exact_floor(heights, widths, min_size, max_size)).any()


def test_random_sizes_and_size_limits_up_to_16384():
    rng = np.random.default_rng(0)
    pairs = PRESET_SIZES + [tuple(sorted(pair)) for pair in rng.integers(1, tv_size_portable.MAX_SIDE + 1,
                                                                         size=(12, 2))]
    pairs += [(1, 1), (1, tv_size_portable.MAX_SIDE), (tv_size_portable.MAX_SIDE, tv_size_portable.MAX_SIDE)]
    rounded_down = 0
    for min_size, max_size in pairs:
        heights, widths = rng.integers(1, tv_size_portable.MAX_SIDE + 1, size=(2, 20000)).astype(np.int32)
        _assert_same(heights, widths, min_size, max_size)
        heights, widths = _divisible_sizes(rng, min_size, max_size, 20000)
        expected = _assert_same(heights, widths, min_size, max_size)
        rounded_down += np.sum(expected < _exact_floor(heights, widths, min_size, max_size))
    assert rounded_down > 1000


def _power_of_two_sizes(min_size):
    """짧은 변 s 가 묶고 결과 긴 변이 정확히 2^k 인 (H, W) = (s, s · 2^k / m) 전부 (변 ≤ 2^14, 긴 변 제한 없음)."""
    heights, widths = [], []
    for power in range(15):
        step = min_size // np.gcd(min_size, 2 ** power)  # s · 2^k / m 이 정수가 되는 s 의 간격
        short = np.arange(step, tv_size_portable.MAX_SIDE + 1, step)
        long = short * 2 ** power // min_size
        keep = (long >= short) & (long <= tv_size_portable.MAX_SIDE)
        heights.append(short[keep])
        widths.append(long[keep])
    return np.concatenate(heights).astype(np.int32), np.concatenate(widths).astype(np.int32)


def test_power_of_two_results():
    """결과가 2^k 인 경우: n 아래 float64 간격이 절반이라 내려가는 문턱이 다르다."""
    rounded_down = 0
    for min_size in [1, 3, 128, 224, 600, 800, 1000, 1333, 2047, 9999]:
        heights, widths = _power_of_two_sizes(min_size)
        expected = _assert_same(heights, widths, min_size, tv_size_portable.MAX_SIDE)
        exact = _exact_floor(heights, widths, min_size, tv_size_portable.MAX_SIDE)[:, 1]
        assert np.all(exact & (exact - 1) == 0)  # 모두 2 의 거듭제곱
        rounded_down += np.sum(expected[:, 1] < exact)
    assert rounded_down > 1000


def test_compiled_with_xla():
    heights, widths = _divisible_sizes(np.random.default_rng(1), 800, 1333, 5000)
    heights = np.concatenate([heights, [h for h, _ in HAND_SIZES]]).astype(np.int32)
    widths = np.concatenate([widths, [w for _, w in HAND_SIZES]]).astype(np.int32)
    compiled = tf.function(tv_size_portable.resized_size_portable, jit_compile=True)
    np.testing.assert_array_equal(compiled(tf.constant(heights), tf.constant(widths)).numpy(),
                                  tv_transform.resized_size(heights, widths).numpy())
    assert tuple(compiled(tf.constant(289), tf.constant(385)).numpy()) == (799, 1065)


def _litert_interpreter(shape):
    """LiteRT 내장 연산만으로 변환한 (min 800, max 1333) 크기 모델의 인터프리터 (입력 int32 모양 shape)."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    spec = tf.TensorSpec(shape, tf.int32)

    @tf.function(input_signature=[spec, spec])
    def size(height, width):
        return tv_size_portable.resized_size_portable(height, width)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([size.get_concrete_function()], size)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = interpreter_module.Interpreter(model_content=converter.convert())
    # 실수 텐서가 하나도 없다: int32 와 bool 뿐
    dtypes = {np.dtype(detail["dtype"]) for detail in interpreter.get_tensor_details()}
    assert dtypes == {np.dtype(np.int32), np.dtype(np.bool_)}
    return interpreter


def _run_litert(interpreter, heights, widths):
    """입력 이름 (height, width) 에 맞춰 넣고 돌린 출력."""
    values = {"height": heights, "width": widths}
    details = interpreter.get_input_details()
    for detail in details:
        interpreter.resize_tensor_input(detail["index"], np.shape(heights))
    interpreter.allocate_tensors()
    for detail in details:
        value = next(value for key, value in values.items() if key in detail["name"])
        interpreter.set_tensor(detail["index"], np.asarray(value, np.int32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def test_litert_builtin_ops_scalar_inputs():
    interpreter = _litert_interpreter([])
    heights, widths = _divisible_sizes(np.random.default_rng(2), 800, 1333, 150)
    heights = np.concatenate([heights, [h for h, _ in HAND_SIZES]])
    widths = np.concatenate([widths, [w for _, w in HAND_SIZES]])
    expected = tv_transform.resized_size(heights, widths).numpy()
    actual = [_run_litert(interpreter, np.int32(h), np.int32(w)) for h, w in zip(heights, widths)]
    np.testing.assert_array_equal(actual, expected)


def test_litert_builtin_ops_batched_inputs():
    interpreter = _litert_interpreter([None])
    heights, widths = _grid(1, 700)
    more_heights, more_widths = _divisible_sizes(np.random.default_rng(3), 800, 1333, 100000)
    heights, widths = np.concatenate([heights, more_heights]), np.concatenate([widths, more_widths])
    np.testing.assert_array_equal(_run_litert(interpreter, heights, widths),
                                  tv_transform.resized_size(heights, widths).numpy())
