import numpy as np
import tensorflow as tf

from frcnn.ops import sampler


def test_fixed_count_and_positive_cap():
    labels = np.full((2, 1000), -1, np.int32)
    labels[0, :300] = 1
    labels[0, 300:900] = 0
    labels[1, :10] = 1
    labels[1, 10:50] = 0
    fn = tf.function(lambda l: sampler.sample_balanced(l, 256, 0.5), jit_compile=True)
    pos, neg = [m.numpy() for m in fn(tf.constant(labels))]
    # 양성 상한 128, 나머지는 음성으로 채워 256
    assert pos[0].sum() == 128 and neg[0].sum() == 128
    # 양성이 적으면 있는 만큼, 음성도 있는 만큼
    assert pos[1].sum() == 10 and neg[1].sum() == 40
    assert not (pos & (labels != 1)).any() and not (neg & (labels != 0)).any()


def test_no_positives_and_all_ignored():
    labels = np.zeros((1, 500), np.int32)
    pos, neg = sampler.sample_balanced(tf.constant(labels), 64, 0.25)
    assert pos.numpy().sum() == 0 and neg.numpy().sum() == 64
    pos, neg = sampler.sample_balanced(-tf.ones([1, 50], tf.int32), 64, 0.25)
    assert pos.numpy().sum() == 0 and neg.numpy().sum() == 0


def test_stateless_seed_is_reproducible_and_random():
    labels = tf.constant(np.r_[np.ones(100), np.zeros(100)].astype(np.int32)[None])
    a = sampler.sample_balanced(labels, 20, 0.5, seed=tf.constant([1, 2]))[0].numpy()
    b = sampler.sample_balanced(labels, 20, 0.5, seed=tf.constant([1, 2]))[0].numpy()
    c = sampler.sample_balanced(labels, 20, 0.5, seed=tf.constant([3, 4]))[0].numpy()
    assert (a == b).all() and not (a == c).all()
