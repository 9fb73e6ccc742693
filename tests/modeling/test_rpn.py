"""rpn 테스트: RPN 헤드 모양과 제안 생성(개수·패딩·이미지 안·NMS·작은 박스 제거·기울기 차단).

용어:
  B 배치, A 앵커 수, T 사전 NMS top-k, P 사후 NMS 제안 수.
  박스 `[ymin, xmin, ymax, xmax]` 이미지 픽셀.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from frcnn.ops import anchors as anchors_lib
from frcnn import config as config_lib
from frcnn.modeling import rpn

CANVAS = (64, 96)
STRIDE = 16
RPN_CONFIG = dataclasses.replace(
    config_lib.RpnConfig(), pre_nms_top_k=60, post_nms_top_k=40, test_pre_nms_top_k=30,
    test_post_nms_top_k=10, nms_iou=0.7, min_box_size=6.0)


def _inputs(seed=0):
    """캔버스 64×96, stride 16 → 4×6 격자 × 앵커 2 (크기 16, 40) = 48 앵커.

    이미지 0 은 캔버스 전체(배율 1), 이미지 1 은 48×72 (나머지는 패딩, 배율 0.5).
    """
    rng = np.random.default_rng(seed)
    anchors = anchors_lib.generate_anchors(CANVAS[0] // STRIDE, CANVAS[1] // STRIDE, STRIDE,
                                           (16.0, 40.0), (1.0,))
    num_anchors = anchors.shape[0]
    logits = rng.normal(size=(2, num_anchors)).astype(np.float32)
    deltas = rng.normal(scale=0.4, size=(2, num_anchors, 4)).astype(np.float32)
    image_sizes = np.array([[64.0, 96.0], [48.0, 72.0]], np.float32)
    scales = np.array([1.0, 0.5], np.float32)
    return anchors.numpy(), logits, deltas, image_sizes, scales


def _iou(box, other):
    height = max(min(box[2], other[2]) - max(box[0], other[0]), 0.0)
    width = max(min(box[3], other[3]) - max(box[1], other[1]), 0.0)
    intersection = height * width
    union = ((box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1])
             - intersection)
    return intersection / union if union > 0 else 0.0


def _reference_proposals(anchors, logits, deltas, image_size, scale, pre_nms, post_nms):
    """한 이미지의 numpy 기준: 중심이 이미지 안인 앵커의 top-k → 디코딩 (가중치 1) → 자르기 → 작은 박스 제거
    → 탐욕 NMS."""
    centre_y, centre_x = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    inside = (centre_y < image_size[0]) & (centre_x < image_size[1])
    order = [index for index in np.argsort(-logits) if inside[index]][:pre_nms]
    kept_boxes = []
    for index in order:
        ymin, xmin, ymax, xmax = anchors[index].astype(np.float64)
        height, width = ymax - ymin, xmax - xmin
        dy, dx, dh, dw = deltas[index].astype(np.float64)
        center_y, center_x = ymin + height / 2 + dy * height, xmin + width / 2 + dx * width
        height = height * math.exp(min(dh, math.log(1000 / 16)))
        width = width * math.exp(min(dw, math.log(1000 / 16)))
        box = np.array([center_y - height / 2, center_x - width / 2,
                        center_y + height / 2, center_x + width / 2])
        box = np.clip(box, 0.0, [image_size[0], image_size[1], image_size[0], image_size[1]])
        min_size = RPN_CONFIG.min_box_size * scale
        if box[2] - box[0] < min_size or box[3] - box[1] < min_size:
            continue
        if all(_iou(box, kept) <= RPN_CONFIG.nms_iou for kept, _ in kept_boxes):
            kept_boxes.append((box, 1.0 / (1.0 + math.exp(-logits[index]))))
        if len(kept_boxes) == post_nms:
            break
    return kept_boxes


def _generate(anchors, logits, deltas, image_sizes, scales, training):
    return [t.numpy() for t in rpn.generate_proposals(
        tf.constant(logits), tf.constant(deltas), tf.constant(anchors), tf.constant(image_sizes),
        tf.constant(scales), RPN_CONFIG, training)]


def test_rpn_head_output_shapes():
    head = rpn.RpnHead(8, 3)
    logits, deltas = head(tf.zeros([2, 4, 6, 5]))
    assert logits.shape == (2, 4 * 6 * 3) and deltas.shape == (2, 4 * 6 * 3, 4)
    assert logits.dtype == tf.float32 and deltas.dtype == tf.float32


def test_deeper_rpn_head_round_trips_through_a_checkpoint(tmp_path):
    """conv_depth 2 (resnet50_fpn_v2) 의 둘째 합성곱도 tf.train.Checkpoint 에 저장되고 복원된다."""
    heads = [rpn.RpnHead(8, 3, conv_depth=2) for _ in range(2)]
    features = tf.random.stateless_normal([1, 4, 6, 5], (0, 1))
    for head in heads:
        head(features)
    path = tf.train.Checkpoint(head=heads[0]).write(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(head=heads[1]).read(path).assert_existing_objects_matched()
    for saved, restored in zip(heads[0].weights, heads[1].weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy(), err_msg=saved.path)


def test_proposals_match_numpy_reference_train_and_test():
    anchors, logits, deltas, image_sizes, scales = _inputs()
    for training, pre_nms, post_nms in [(True, 60, 40), (False, 30, 10)]:
        proposals, scores, valid = _generate(anchors, logits, deltas, image_sizes, scales, training)
        assert proposals.shape == (2, post_nms, 4) and scores.shape == (2, post_nms)
        assert valid.shape == (2, post_nms) and valid.dtype == bool
        for b in range(2):
            expected = _reference_proposals(anchors, logits[b], deltas[b], image_sizes[b], scales[b],
                                            min(pre_nms, len(anchors)), post_nms)
            count = len(expected)
            assert valid[b].sum() == count and valid[b, :count].all()
            np.testing.assert_allclose(proposals[b, :count], [box for box, _ in expected], atol=1e-3)
            np.testing.assert_allclose(scores[b, :count], [score for _, score in expected], rtol=1e-5)


def test_padding_rows_zero_and_valid_rows_invariants():
    anchors, logits, deltas, image_sizes, scales = _inputs(seed=1)
    proposals, scores, valid = _generate(anchors, logits, deltas, image_sizes, scales, training=True)
    # 이미지 1 (48×72 로 자르고 작은 박스 제거·NMS) 은 40 개를 다 채우지 못해 패딩이 생긴다.
    assert valid[0].all() and (~valid[1]).any()
    assert np.all(proposals[~valid] == 0.0) and np.all(scores[~valid] == 0.0)
    for b in range(2):
        boxes = proposals[b][valid[b]]
        height, width = image_sizes[b]
        # 이미지 (패딩이 아닌) 안
        assert (boxes >= 0.0).all()
        assert (boxes[:, 2] <= height).all() and (boxes[:, 3] <= width).all()
        # 작은 박스는 없다 (원본 픽셀 기준 min_box_size × 배율)
        assert ((boxes[:, 2] - boxes[:, 0]) >= RPN_CONFIG.min_box_size * scales[b] - 1e-4).all()
        assert ((boxes[:, 3] - boxes[:, 1]) >= RPN_CONFIG.min_box_size * scales[b] - 1e-4).all()
        # 유효 제안끼리 IoU ≤ nms_iou, 점수는 내림차순 (0, 1]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                assert _iou(boxes[i], boxes[j]) <= RPN_CONFIG.nms_iou + 1e-5
        valid_scores = scores[b][valid[b]]
        assert (valid_scores > 0).all() and (valid_scores <= 1).all()
        assert (np.diff(valid_scores) <= 0).all()


def test_tiny_boxes_are_dropped():
    # 앵커 두 개: 점수가 가장 높은 앵커는 델타로 높이 2 픽셀로 줄어들어 빠져야 한다.
    anchors = np.array([[10.0, 10.0, 42.0, 42.0], [50.0, 50.0, 82.0, 82.0]], np.float32)
    logits = np.array([[5.0, 1.0]], np.float32)
    deltas = np.zeros((1, 2, 4), np.float32)
    deltas[0, 0, 2] = math.log(2.0 / 32.0)
    proposals, scores, valid = _generate(anchors, logits, deltas, np.array([[96.0, 96.0]], np.float32),
                                         np.array([1.0], np.float32), training=False)
    assert valid[0].tolist() == [True] + [False] * 9
    np.testing.assert_allclose(proposals[0, 0], anchors[1])
    np.testing.assert_allclose(scores[0, 0], 1.0 / (1.0 + math.exp(-1.0)), rtol=1e-6)


def test_proposals_are_gradient_stopped():
    anchors, logits, deltas, image_sizes, scales = _inputs(seed=2)
    logits, deltas = tf.Variable(logits), tf.Variable(deltas)
    with tf.GradientTape(persistent=True) as tape:
        proposals, scores, _ = rpn.generate_proposals(logits, deltas, tf.constant(anchors),
                                                      tf.constant(image_sizes), tf.constant(scales),
                                                      RPN_CONFIG, True)
        total = tf.reduce_sum(proposals) + tf.reduce_sum(scores)
    assert tape.gradient(total, logits) is None and tape.gradient(total, deltas) is None


def test_generate_proposals_under_xla_matches_eager():
    anchors, logits, deltas, image_sizes, scales = _inputs(seed=3)
    eager = _generate(anchors, logits, deltas, image_sizes, scales, training=True)
    compiled = tf.function(
        lambda *args: rpn.generate_proposals(*args, RPN_CONFIG, True), jit_compile=True)
    result = compiled(tf.constant(logits), tf.constant(deltas), tf.constant(anchors),
                      tf.constant(image_sizes), tf.constant(scales))
    for a, b in zip(eager, result):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-4)


def test_anchors_centred_in_padding_never_become_proposals():
    """이미지 1 (48×72) 의 패딩에 중심이 있는 앵커에 가장 큰 로짓을 줘도 제안이 되지 않는다."""
    anchors, logits, deltas, image_sizes, scales = _inputs(seed=1)
    centre_y, centre_x = (anchors[:, 0] + anchors[:, 2]) / 2, (anchors[:, 1] + anchors[:, 3]) / 2
    outside = (centre_y >= image_sizes[1, 0]) | (centre_x >= image_sizes[1, 1])
    assert 0 < outside.sum() < len(anchors)
    logits[1, outside] = 50.0
    deltas[1, outside] = 0.0  # 자르면 이미지 안에 크게 남는 박스들
    for training in (True, False):
        proposals, scores, valid = _generate(anchors, logits, deltas, image_sizes, scales, training)
        assert valid[1].any() and np.all(scores[1][valid[1]] < 0.999)  # 로짓 50 (σ ≈ 1) 인 앵커는 없다
