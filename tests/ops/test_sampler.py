"""sampler 테스트: 양성 상한·음성 채우기 개수, 후보가 적을 때의 정확한 마스크, 무시 라벨, 고정 길이 인덱스,
XLA 에서의 같은 불변식, 씨앗 재현성과 고른 무작위 선택.

용어: B 배치, N 후보 수, S 뽑을 개수. 라벨 1 양성, 0 음성, −1 무시.
"""

import numpy as np
import tensorflow as tf

from frcnn.ops import sampler


def _masks(labels, num_samples, fraction, seed=(1, 2), jit_compile=False):
    function = tf.function(lambda values: sampler.sample_balanced(values, num_samples, fraction,
                                                                  seed=tf.constant(seed)),
                           jit_compile=jit_compile)
    return [mask.numpy() for mask in function(tf.constant(labels, tf.int32))]


def _check_counts(labels, positive, negative, expected_positive, expected_negative):
    assert positive.sum(axis=1).tolist() == expected_positive
    assert negative.sum(axis=1).tolist() == expected_negative
    # 양성 마스크는 양성 후보에만, 음성 마스크는 음성 후보에만 (무시 후보는 뽑지 않는다).
    assert not (positive & (labels != 1)).any() and not (negative & (labels != 0)).any()


def test_positive_cap_and_negative_fill_rpn_and_roi_settings():
    labels = np.full((3, 1000), -1, np.int32)
    labels[0, :300], labels[0, 300:900] = 1, 0  # 양성이 많다 → 상한
    labels[1, :10], labels[1, 10:50] = 1, 0  # 둘 다 적다 → 있는 만큼
    labels[2, :5], labels[2, 5:400] = 1, 0  # 양성이 적다 → 음성으로 채운다
    for jit_compile in (False, True):
        # RPN: S = 256, 양성 ≤ 128
        positive, negative = _masks(labels, 256, 0.5, jit_compile=jit_compile)
        _check_counts(labels, positive, negative, [128, 10, 5], [128, 40, 251])
        # RoI: S = 128, 전경 ≤ 32
        positive, negative = _masks(labels, 128, 0.25, jit_compile=jit_compile)
        _check_counts(labels, positive, negative, [32, 10, 5], [96, 40, 123])


def test_few_candidates_are_all_taken_exactly():
    labels = np.array([[1, -1, 0, 0, 1, -1, 0, -1]], np.int32)
    for jit_compile in (False, True):
        positive, negative = _masks(labels, 6, 0.5, jit_compile=jit_compile)
        np.testing.assert_array_equal(positive, labels == 1)
        np.testing.assert_array_equal(negative, labels == 0)


def test_no_positives_and_all_ignored():
    positive, negative = _masks(np.zeros((1, 500), np.int32), 64, 0.25)
    assert positive.sum() == 0 and negative.sum() == 64
    positive, negative = _masks(-np.ones((1, 50), np.int32), 64, 0.25)
    assert positive.sum() == 0 and negative.sum() == 0


def test_sampled_indices_put_positives_first_then_negatives_then_invalid():
    positive = np.zeros((2, 10), bool)
    negative = np.zeros((2, 10), bool)
    positive[0, [7, 2]] = True
    negative[0, [0, 5, 9]] = True
    negative[1, [1, 3, 4, 6, 8, 9]] = True
    for jit_compile in (False, True):
        function = tf.function(lambda p, n: sampler.sampled_indices(p, n, 6), jit_compile=jit_compile)
        indices, is_positive, valid = [value.numpy() for value in function(positive, negative)]
        assert indices.shape == (2, 6) and indices.dtype == np.int32
        assert is_positive.tolist() == [[True] * 2 + [False] * 4, [False] * 6]
        assert valid.tolist() == [[True] * 5 + [False], [True] * 6]
        assert sorted(indices[0, :2]) == [2, 7] and sorted(indices[0, 2:5]) == [0, 5, 9]
        assert sorted(indices[1]) == [1, 3, 4, 6, 8, 9]


def test_stateless_seed_is_reproducible_and_random():
    labels = np.r_[np.ones(100), np.zeros(100)].astype(np.int32)[None]
    first = _masks(labels, 20, 0.5, seed=(1, 2))[0]
    again = _masks(labels, 20, 0.5, seed=(1, 2))[0]
    other = _masks(labels, 20, 0.5, seed=(3, 4))[0]
    assert (first == again).all() and not (first == other).all()


def test_selection_is_uniform_over_candidates():
    # 양성 4 개 중 2 개, 음성 6 개 중 2 개: 씨앗 300 개에서 각 후보가 뽑힌 비율은 1/2 과 1/3 근처여야 한다.
    labels = np.array([[1, 1, 1, 1, 0, 0, 0, 0, 0, 0]], np.int32)
    counts = np.zeros(10)
    for seed in range(300):
        positive, negative = sampler.sample_balanced(tf.constant(labels), 4, 0.5, seed=tf.constant([seed, 7]))
        counts += (positive | negative).numpy()[0]
    frequency = counts / 300
    assert np.all(np.abs(frequency[:4] - 1 / 2) < 0.12), frequency
    assert np.all(np.abs(frequency[4:] - 1 / 3) < 0.12), frequency
