"""anchor_labeling.label_used_anchors: 이미지 밖 앵커를 빼고 계산해도 `rpn_targets.label_anchors` 와 같은 코드.

기대값은 모든 앵커로 계산한 `label_anchors` (독립 경로). 경계를 넘는 앵커를 무시하는 설정 (vgg16_paper 의 rpn),
무작위 GT 두 이미지 (크기가 다르다), 그리고 어떤 앵커도 이미지 안에 들지 않는 아주 작은 이미지 (K = 0: 모두 −1).
"""

import numpy as np
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from pipelines import anchor_labeling

CONFIG = config_lib.build_config("vgg16_paper")


def _anchors(shape=(608, 800)):
    return anchors_lib.anchors_for_canvas(CONFIG, shape)


def _random_boxes(rng, sizes, count=5):
    boxes = np.full([len(sizes), 8, 4], -1.0, np.float32)
    for index, (height, width) in enumerate(sizes):
        y0 = rng.uniform(0, height * 0.7, count)
        x0 = rng.uniform(0, width * 0.7, count)
        boxes[index, :count] = np.stack([y0, x0, y0 + rng.uniform(20, height * 0.3, count),
                                         x0 + rng.uniform(20, width * 0.3, count)], axis=1)
    return tf.constant(boxes)


def test_same_codes_as_labelling_every_anchor():
    assert not CONFIG.rpn.allow_cross_boundary
    sizes = [(600.0, 800.0), (450.0, 600.0)]
    gt_boxes = _random_boxes(np.random.default_rng(0), sizes)
    image_sizes = tf.constant(sizes)
    expected = rpn_targets.label_anchors(_anchors(), gt_boxes, image_sizes, CONFIG.rpn)
    got = anchor_labeling.label_used_anchors(_anchors(), gt_boxes, image_sizes, CONFIG.rpn)
    assert got.dtype == tf.int32
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert (expected.numpy() > 0).any() and (expected.numpy() == 0).any() and (expected.numpy() == -1).any()


def test_no_anchor_inside_the_image_gives_all_ignored():
    gt_boxes = tf.constant([[[2.0, 2.0, 20.0, 20.0]]])
    image_sizes = tf.constant([[24.0, 24.0]])  # 가장 작은 앵커 (128·√0.5 ≈ 91) 도 들어가지 않는다
    got = anchor_labeling.label_used_anchors(_anchors(), gt_boxes, image_sizes, CONFIG.rpn)
    expected = rpn_targets.label_anchors(_anchors(), gt_boxes, image_sizes, CONFIG.rpn)
    np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert (got.numpy() == rpn_targets.IGNORE_CODE).all() and got.shape == (1, _anchors().shape[0])
