"""fpn_proposals 시험: torchvision `RegionProposalNetwork.filter_proposals` 에 같은 로짓·델타·앵커를 먹여 같은 제안
(박스 0.05 px, 점수 1e-4, 같은 개수와 순서) 이 나오는지 (torch 가 없으면 건너뛴다).

캔버스 128×160 (앵커 3840 + 960 + 240 + 60 + 18): P4–P6 은 사전 NMS 개수보다 앵커가 적다. 두 번째 이미지는 패딩
안의 작은 이미지 (자르기가 이미지 크기로). 로짓·델타는 무작위 (점수가 서로 같지 않다).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.modeling import fpn_proposals
from frcnn.ops import fpn_anchors
from tests import torch_reference

CANVAS = (128, 160)
IMAGE_SIZES = ((128, 160), (100, 130))


def _inputs(seed):
    anchors, counts = fpn_anchors.pyramid_anchors(*CANVAS)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, sum(counts))).astype(np.float32)
    deltas = (rng.normal(size=(2, sum(counts), 4)) * 0.5).astype(np.float32)  # torchvision 순서 dx, dy, dw, dh
    deltas[0, :50, 2:] = 6.0  # log(1000/16) 에서 잘리는 델타
    return anchors.numpy(), counts, logits, deltas


def _reference(anchors, counts, logits, deltas, pre_nms, post_nms):
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection import anchor_utils
    from torchvision.models.detection import rpn

    network = rpn.RegionProposalNetwork(
        anchor_utils.AnchorGenerator(), rpn.RPNHead(8, 3), 0.7, 0.3, 256, 0.5,
        pre_nms_top_n={"training": pre_nms, "testing": pre_nms},
        post_nms_top_n={"training": post_nms, "testing": post_nms}, nms_thresh=0.7).eval()
    xyxy = torch.from_numpy(anchors[:, [1, 0, 3, 2]])
    with torch.no_grad():
        proposals = network.box_coder.decode(torch.from_numpy(deltas).reshape(-1, 4), [xyxy, xyxy])
        boxes, scores = network.filter_proposals(proposals.view(2, -1, 4), torch.from_numpy(logits),
                                                 list(IMAGE_SIZES), counts)
    return [(box.numpy()[:, [1, 0, 3, 2]], score.numpy()) for box, score in zip(boxes, scores)]


@pytest.mark.parametrize("pre_nms,post_nms", [(300, 200), (1000, 1000)])
@pytest.mark.parametrize("training", [False, True])
def test_matches_torchvision_filter_proposals(pre_nms, post_nms, training):
    anchors, counts, logits, deltas = _inputs(seed=pre_nms)
    expected = _reference(anchors, counts, logits, deltas, pre_nms, post_nms)
    proposals, scores, valid = fpn_proposals.fpn_proposals(
        tf.constant(logits), tf.constant(deltas[..., [1, 0, 3, 2]]), tf.constant(anchors), counts,
        tf.constant(IMAGE_SIZES), pre_nms, post_nms, training=training)
    for image, (expected_boxes, expected_scores) in enumerate(expected):
        count = len(expected_boxes)
        assert int(tf.reduce_sum(tf.cast(valid[image], tf.int32))) == count
        assert bool(tf.reduce_all(valid[image, :count]))
        actual_scores = scores[image, :count].numpy()
        np.testing.assert_allclose(actual_scores, expected_scores, atol=1e-4)
        torch_reference.assert_same_ranking(proposals[image, :count].numpy(), actual_scores, expected_boxes,
                                            expected_scores)
        np.testing.assert_array_equal(scores[image, count:].numpy(), 0.0)


def test_level_top_k_keeps_each_level_apart():
    logits = tf.constant([[5.0, 1.0, 3.0, 9.0, 8.0, 0.0, 7.0]])
    indices, valid, sizes = fpn_proposals.level_top_k(logits, [3, 4], 2)
    assert sizes == [2, 2]
    np.testing.assert_array_equal(indices.numpy(), [[0, 2, 3, 4]])
    assert valid.numpy().all()


def test_level_top_k_with_dynamic_counts_pads_short_levels():
    """동적 A_l: 모든 수준이 k = pre_nms 개, A_l < pre_nms 인 수준의 남는 자리는 유효하지 않다."""
    logits = tf.constant([[5.0, 1.0, 3.0, 9.0, 8.0, 0.0, 7.0]])
    indices, valid, sizes = fpn_proposals.level_top_k(logits, [tf.constant(3), tf.constant(4)], 4)
    assert sizes == [4, 4]
    np.testing.assert_array_equal(indices.numpy(), [[0, 2, 1, 2, 3, 4, 6, 5]])
    np.testing.assert_array_equal(valid.numpy(), [[True, True, True, False, True, True, True, True]])


def test_training_path_compiles_with_xla():
    anchors, counts, logits, deltas = _inputs(seed=2)

    def proposals(logits, deltas):
        return fpn_proposals.fpn_proposals(logits, deltas, tf.constant(anchors), counts,
                                           tf.constant(IMAGE_SIZES), 300, 200, training=True)

    eager = proposals(tf.constant(logits), tf.constant(deltas))
    compiled = tf.function(proposals, jit_compile=True)(tf.constant(logits), tf.constant(deltas))
    for eager_part, compiled_part in zip(eager, compiled):
        np.testing.assert_allclose(compiled_part.numpy(), eager_part.numpy(), atol=1e-4)
