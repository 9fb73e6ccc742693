"""ops/nms 테스트: 네 NMS 변형을 numpy 탐욕 NMS 기준과 비교한다 (점수 동률, 똑같은 박스, 제외된 −1 점수).

용어:
  B 배치, T 박스 수, P 남길 개수, R RoI 수, C 클래스 수.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import nms


def _iou(box, others):
    """numpy IoU: [4] 와 [K, 4]."""
    top_left = np.maximum(box[:2], others[:, :2])
    bottom_right = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(others) - inter)


def greedy_nms(boxes, scores, count, iou_threshold, score_threshold=0.0):
    """교과서 탐욕 NMS (점수 내림차순, 같은 점수는 앞 번호 먼저; score > score_threshold 만) → 번호 목록."""
    order = sorted(np.flatnonzero(scores > score_threshold), key=lambda i: (-scores[i], i))
    kept = []
    for index in order:
        if len(kept) == count:
            break
        if not kept or np.all(_iou(boxes[index], boxes[kept]) <= iou_threshold):
            kept.append(index)
    return kept


def _dense_boxes(rng, batch, count):
    """빽빽한 박스 (IoU 0.5 에서 일부만 남는다), 5 번 = 4 번 (IoU 1), 동률 점수, 뒤 6 개는 −1 (제외)."""
    corners = rng.uniform(0, 20, size=(batch, count, 2)).astype(np.float32)
    sizes = rng.uniform(10, 30, size=(batch, count, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + sizes], axis=-1)
    boxes[:, 5] = boxes[:, 4]
    scores = np.sort(rng.choice([0.9, 0.8, 0.5, 0.3], size=(batch, count)))[:, ::-1].astype(np.float32)
    scores[:, -6:] = -1.0
    return boxes, np.ascontiguousarray(scores)


@pytest.mark.parametrize("nms_fn", [nms.padded_nms, nms.per_image_nms], ids=["padded", "per_image"])
@pytest.mark.parametrize("batch", [1, 3], ids=["static_batch_1", "map_fn"])
def test_rpn_nms_matches_greedy_reference(nms_fn, batch):
    boxes, scores = _dense_boxes(np.random.default_rng(3), batch, 40)
    keep = 30
    selected, num_valid = nms_fn(tf.constant(boxes), tf.constant(scores), keep, 0.5)
    assert selected.shape == (batch, keep) and num_valid.shape == (batch,)
    for image in range(batch):
        expected = greedy_nms(boxes[image], scores[image], keep, 0.5)
        assert 0 < len(expected) < keep
        assert int(num_valid[image]) == len(expected)
        np.testing.assert_array_equal(selected[image, :len(expected)], expected)


def test_padded_nms_compiles_under_xla():
    boxes, scores = _dense_boxes(np.random.default_rng(4), 2, 40)
    compiled = tf.function(lambda b, s: nms.padded_nms(b, s, 20, 0.5), jit_compile=True)
    eager = nms.padded_nms(tf.constant(boxes), tf.constant(scores), 20, 0.5)
    for a, b in zip(eager, compiled(tf.constant(boxes), tf.constant(scores))):
        np.testing.assert_array_equal(a, b)


def _class_inputs(seed, num_rois=12, num_classes=3):
    """[1, R, C, 4] 정규화 박스 (클래스마다 다른 박스), [1, R, C] 점수 (서로 다름: 순서가 하나로 정해진다)."""
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0, 0.5, size=(1, num_rois, num_classes, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0.2, 0.5, size=corners.shape)], -1)
    total = num_rois * num_classes
    scores = rng.permutation(total).reshape(1, num_rois, num_classes) / total
    return boxes.astype(np.float32), scores.astype(np.float32)


def _per_class_reference(boxes, scores, max_total, iou_threshold, score_threshold):
    """클래스마다 탐욕 NMS → 모아서 점수 순 상위 max_total: [(점수, 클래스, 박스)]."""
    found = []
    for c in range(boxes.shape[2]):
        for index in greedy_nms(boxes[0, :, c], scores[0, :, c], max_total, iou_threshold, score_threshold):
            found.append((scores[0, index, c], c, boxes[0, index, c]))
    return sorted(found, key=lambda item: -item[0])[:max_total]


@pytest.mark.parametrize("method", sorted(nms.CLASS_NMS))
def test_class_nms_matches_per_class_greedy_reference(method):
    boxes, scores = _class_inputs(seed=5)
    max_total = 8
    out_boxes, out_scores, out_classes, count = nms.CLASS_NMS[method](
        tf.constant(boxes), tf.constant(scores), max_total, max_total, 0.4, 0.1)
    expected = _per_class_reference(boxes, scores, max_total, 0.4, 0.1)
    assert int(count[0]) == len(expected) == max_total
    np.testing.assert_allclose(out_scores[0], [item[0] for item in expected], rtol=1e-6)
    np.testing.assert_array_equal(out_classes[0], [item[1] for item in expected])
    np.testing.assert_allclose(out_boxes[0], [item[2] for item in expected], atol=1e-6)


def test_class_offset_nms_under_tf_function_has_static_shapes():
    boxes, scores = _class_inputs(seed=6)
    traced = tf.function(lambda b, s: nms.class_offset_nms(b, s, 5, 5, 0.5, 0.05))
    out_boxes, out_scores, out_classes, count = traced(tf.constant(boxes), tf.constant(scores))
    assert out_boxes.shape == (1, 5, 4) and out_classes.shape == (1, 5) and count.shape == (1,)


def test_class_offset_precondition_is_checked_once_with_a_clear_message():
    nms.check_class_offset(100, 100)
    message = r"max_detections_per_class \(10\) ≥ detection.max_detections \(20\)"
    with pytest.raises(ValueError, match=message):
        nms.check_class_offset(10, 20)
    boxes, scores = _class_inputs(seed=7)
    with pytest.raises(ValueError, match="class-offset NMS needs"):
        nms.class_offset_nms(tf.constant(boxes), tf.constant(scores), 10, 20, 0.5, 0.05)
