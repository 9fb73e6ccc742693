"""frcnn.eval.voc_ap 테스트: devkit 규칙의 손 계산 예제 (중복, difficult, 검출 없음, GT 없는 클래스,
11점 vs 전 점, +1 픽셀 IoU 경계).

용어: VOC 박스 (xmin, ymin, xmax, ymax) 1-based 포함 픽셀. npos: difficult 가 아닌 GT 수. 클래스 id 1..C.
"""

import math

import numpy as np
import pytest

from frcnn.eval import voc_ap
from frcnn.eval.voc_ap import ImageDetections, ImageGroundTruth


def _gt(boxes, classes, difficult=None):
    difficult = [False] * len(classes) if difficult is None else difficult
    return ImageGroundTruth(boxes, classes, difficult)


def _det(boxes, scores, classes):
    return ImageDetections(boxes, scores, classes)


def test_voc_iou_uses_plus_one_inclusive_pixels():
    # gt (1,1,10,10): 10x10 = 100 픽셀. 검출 (1,1,10,5): 10x5 = 50, 교집합 50 → 50 / 100 = 0.5.
    # (+1 없이 계산하면 9x4 / 9x9 = 0.444)
    np.testing.assert_allclose(voc_ap.voc_iou(np.array([1, 1, 10, 5.0]), [[1, 1, 10, 10]]), [0.5])
    # 겹치지 않으면 0, 같은 박스는 1.
    np.testing.assert_allclose(voc_ap.voc_iou(np.array([1, 1, 10, 10.0]), [[1, 1, 10, 10], [20, 20, 30, 30]]),
                               [1.0, 0.0])


def test_iou_exactly_at_threshold_is_false_positive():
    # IoU 가 정확히 0.5 이면 devkit 은 '> 0.5' 이므로 FP → AP 0. 임계값 0.49 이면 TP → AP 1.
    ground_truths = [_gt([[1, 1, 10, 10]], [1])]
    detections = [_det([[1, 1, 10, 5]], [0.9], [1])]
    assert voc_ap.evaluate_voc(ground_truths, detections, 1).mean_ap == 0.0
    assert voc_ap.evaluate_voc(ground_truths, detections, 1, iou_threshold=0.49).mean_ap == pytest.approx(1.0)


def test_plus_one_convention_decides_match():
    # gt (1,1,2,2): +1 규약으로 2x2 = 4. 검출 (1,1,3,2): 3x2 = 6, 교집합 4 → IoU 4/6 = 0.667 → TP.
    # (+1 없이 계산하면 gt 1x1, 검출 2x1, 교집합 1 → 0.5 → FP 였을 것)
    is_tp, is_fp, num_gt = voc_ap.match_class([_gt([[1, 1, 2, 2]], [1])],
                                              [_det([[1, 1, 3, 2]], [0.9], [1])], 1)
    assert is_tp.tolist() == [True] and is_fp.tolist() == [False] and num_gt == 1


def test_duplicate_detection_is_false_positive_and_07_differs_from_all_point():
    # GT 2개 (A, B). 검출: A 0.9 → TP, A 중복 0.8 → FP, B 0.7 → TP.
    # recall [0.5, 0.5, 1], precision [1, 0.5, 2/3].
    # VOC07: t = 0..0.5 (6점) 에서 max precision 1, t = 0.6..1.0 (5점) 에서 2/3 → (6 + 5 * 2/3) / 11 = 0.848485.
    # 전 점: 0.5 * 1 + 0.5 * 2/3 = 0.833333.
    ground_truths = [_gt([[1, 1, 10, 10], [21, 21, 40, 40]], [1, 1])]
    detections = [_det([[1, 1, 10, 10], [1, 1, 10, 10], [21, 21, 40, 40]], [0.9, 0.8, 0.7], [1, 1, 1])]
    is_tp, is_fp, _ = voc_ap.match_class(ground_truths, detections, 1)
    assert is_tp.tolist() == [True, False, True]
    assert is_fp.tolist() == [False, True, False]
    result_07 = voc_ap.evaluate_voc(ground_truths, detections, 1, use_07_metric=True)
    result_12 = voc_ap.evaluate_voc(ground_truths, detections, 1, use_07_metric=False)
    assert result_07.mean_ap == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert result_12.mean_ap == pytest.approx(0.5 + 0.5 * 2 / 3)
    np.testing.assert_allclose(result_12.per_class[0].recall, [0.5, 0.5, 1.0])
    np.testing.assert_allclose(result_12.per_class[0].precision, [1.0, 0.5, 2 / 3])


def test_detections_sorted_by_score_across_images():
    # 이미지 2장, GT 각 1개. 입력 순서와 달리 점수로 정렬: 0.9 (이미지 2, FP) → 0.8 (이미지 1, TP) → 0.7 (이미지 2, TP).
    # recall [0, 0.5, 1], precision [0, 0.5, 2/3]. 전 점 AP = 0.5 * 2/3 + 0.5 * 2/3 = 2/3.
    ground_truths = [_gt([[1, 1, 10, 10]], [1]), _gt([[1, 1, 10, 10]], [1])]
    detections = [_det([[1, 1, 10, 10]], [0.8], [1]),
                  _det([[1, 1, 10, 10], [50, 50, 60, 60]], [0.7, 0.9], [1, 1])]
    result = voc_ap.evaluate_voc(ground_truths, detections, 1, use_07_metric=False)
    np.testing.assert_allclose(result.per_class[0].precision, [0.0, 0.5, 2 / 3])
    assert result.mean_ap == pytest.approx(2 / 3)


def test_difficult_objects_neither_count_nor_penalize():
    # GT: A (보통), B (difficult). 검출: B 0.9 → 무시, A 0.8 → TP. npos = 1 → AP 1 (07, 전 점 모두).
    # difficult 를 무시하지 않으면 0.9 가 FP 가 되어 AP < 1.
    ground_truths = [_gt([[1, 1, 10, 10], [31, 31, 50, 50]], [1, 1], [False, True])]
    detections = [_det([[31, 31, 50, 50], [1, 1, 10, 10]], [0.9, 0.8], [1, 1])]
    is_tp, is_fp, num_gt = voc_ap.match_class(ground_truths, detections, 1)
    assert (is_tp.tolist(), is_fp.tolist(), num_gt) == ([False, True], [False, False], 1)
    for use_07_metric in (True, False):
        assert voc_ap.evaluate_voc(ground_truths, detections, 1, use_07_metric=use_07_metric).mean_ap == \
            pytest.approx(1.0)


def test_no_detections_gives_zero_and_absent_class_is_excluded():
    # 클래스 1: GT 1개, 검출 없음 → AP 0. 클래스 2: GT 1개, 완벽 → AP 1.
    # 클래스 3: GT 없음, 검출 1개 → AP 정의 안 됨 (NaN), mAP = (0 + 1) / 2 = 0.5.
    # 클래스 4: difficult GT 만 → npos 0 → NaN, 역시 제외.
    ground_truths = [_gt([[1, 1, 10, 10], [21, 21, 30, 30], [41, 41, 50, 50]], [1, 2, 4],
                         [False, False, True])]
    detections = [_det([[21, 21, 30, 30], [60, 60, 70, 70]], [0.9, 0.8], [2, 3])]
    for use_07_metric in (True, False):
        result = voc_ap.evaluate_voc(ground_truths, detections, 4, use_07_metric=use_07_metric)
        aps = [class_result.ap for class_result in result.per_class]
        assert aps[0] == 0.0 and aps[1] == pytest.approx(1.0)
        assert math.isnan(aps[2]) and math.isnan(aps[3])
        assert [class_result.num_gt for class_result in result.per_class] == [1, 1, 0, 0]
        assert result.mean_ap == pytest.approx(0.5)


def test_no_ground_truth_at_all_gives_nan_mean():
    result = voc_ap.evaluate_voc([_gt(np.zeros((0, 4)), [])], [_det([[1, 1, 5, 5]], [0.5], [1])], 2)
    assert math.isnan(result.mean_ap)


def test_average_precision_11_point_golden():
    # recall [0.2, 0.4], precision [1.0, 0.5]: t = 0, 0.1, 0.2 → 1; t = 0.3, 0.4 → 0.5; t ≥ 0.5 → 0.
    # (3 * 1 + 2 * 0.5) / 11 = 4 / 11. 전 점: 0.2 * 1 + 0.2 * 0.5 = 0.3.
    assert voc_ap.average_precision([0.2, 0.4], [1.0, 0.5], use_07_metric=True) == pytest.approx(4 / 11)
    assert voc_ap.average_precision([0.2, 0.4], [1.0, 0.5], use_07_metric=False) == pytest.approx(0.3)


def test_padding_class_zero_is_ignored_and_bad_inputs_raise():
    ground_truths = [_gt([[1, 1, 10, 10]], [1])]
    result = voc_ap.evaluate_voc(ground_truths, [_det([[1, 1, 10, 10], [0, 0, 0, 0]], [0.9, 0.0], [1, 0])], 1)
    assert result.per_class[0].num_detections == 1 and result.mean_ap == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ground-truth class outside"):
        voc_ap.evaluate_voc([_gt([[1, 1, 10, 10]], [3])], [_det(np.zeros((0, 4)), [], [])], 2)
    with pytest.raises(ValueError, match="detection images"):
        voc_ap.evaluate_voc(ground_truths, [], 1)
    with pytest.raises(ValueError, match="shape"):
        ImageGroundTruth([[1, 1, 10]], [1], [False])


def test_count_ground_truths():
    ground_truths = [_gt([[1, 1, 5, 5]] * 3, [1, 2, 2], [False, True, False])]
    num_gt, num_difficult = voc_ap.count_ground_truths(ground_truths, 3)
    assert num_gt.tolist() == [1, 1, 0] and num_difficult.tolist() == [0, 1, 0]
