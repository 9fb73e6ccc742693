"""frcnn.eval.coco_ap 테스트: pycocotools 결과를 손 계산 및 VOC 전 점 AP 와 비교한다.

용어: VOC 박스 (xmin, ymin, xmax, ymax) 1-based 포함 픽셀, COCO 박스 [x, y, w, h]. 클래스 id 1..C.
"""

import numpy as np
import pytest

from frcnn.eval import coco_ap, voc_ap
from frcnn.eval.voc_ap import ImageDetections, ImageGroundTruth


def _gt(boxes, classes, difficult=None):
    difficult = [False] * len(classes) if difficult is None else difficult
    return ImageGroundTruth(boxes, classes, difficult)


def test_voc_to_coco_boxes():
    # VOC (1,1,10,10) 는 0-based 연속 [0, 0, 10, 10] 넓이 10x10.
    np.testing.assert_allclose(coco_ap.voc_to_coco_boxes([[1, 1, 10, 10], [5, 3, 7, 9]]),
                               [[0, 0, 10, 10], [4, 2, 3, 7]])


def _agreement_case():
    # 클래스 1: 이미지마다 GT 1개, 정확한 검출 → AP 1.
    # 클래스 2: 이미지마다 GT 1개. 검출 FP 0.9, TP 0.8 (이미지 1), FP 0.7, TP 0.6 (이미지 2).
    #   recall [0, .5, .5, 1], precision [0, .5, 1/3, .5] → 포락선은 어디서나 0.5:
    #   전 점 AP = 0.5, COCO 101점 AP50 = 0.5 (모든 recall 임계에서 0.5). FP 는 IoU 0, TP 는 IoU 1 이므로
    #   모든 COCO IoU 임계에서 같다 → AP@[.5:.95] 도 0.5. 평균 (1 + 0.5) / 2 = 0.75.
    ground_truths = [_gt([[1, 1, 10, 10], [21, 21, 40, 40]], [1, 2]),
                     _gt([[5, 5, 20, 20], [31, 31, 50, 50]], [1, 2])]
    detections = [
        ImageDetections([[1, 1, 10, 10], [60, 60, 70, 70], [21, 21, 40, 40]], [0.95, 0.9, 0.8], [1, 2, 2]),
        ImageDetections([[5, 5, 20, 20], [60, 60, 70, 70], [31, 31, 50, 50]], [0.95, 0.7, 0.6], [1, 2, 2]),
    ]
    return ground_truths, detections


def test_coco_ap50_agrees_with_voc_all_point():
    ground_truths, detections = _agreement_case()
    coco_result = coco_ap.evaluate_coco(ground_truths, detections, 2)
    voc_result = voc_ap.evaluate_voc(ground_truths, detections, 2, use_07_metric=False)
    assert voc_result.mean_ap == pytest.approx(0.75)
    assert coco_result.stats["AP50"] == pytest.approx(voc_result.mean_ap, abs=1e-9)
    assert coco_result.stats["AP"] == pytest.approx(0.75, abs=1e-9)
    assert coco_result.per_class_ap50[2] == pytest.approx(voc_result.per_class[1].ap, abs=1e-9)
    # 박스 넓이 100 ~ 400 (< 32²) → 모두 small; medium/large 에는 GT 가 없어 정의되지 않음.
    assert coco_result.stats["APs"] == pytest.approx(0.75, abs=1e-9)
    assert coco_result.stats["APm"] is None and coco_result.stats["APl"] is None


def test_coco_iou_threshold_is_inclusive():
    # gt (1,1,10,10) = [0,0,10,10], 검출 (1,1,10,5) = [0,0,10,5] → IoU 정확히 0.5.
    # COCO 는 IoU ≥ 0.5 로 매칭 → AP50 = 1, AP75 = 0, AP@[.5:.95] = 1/10. VOC devkit (> 0.5) 은 0.
    ground_truths = [_gt([[1, 1, 10, 10]], [1])]
    detections = [ImageDetections([[1, 1, 10, 5]], [0.9], [1])]
    coco_result = coco_ap.evaluate_coco(ground_truths, detections, 1)
    assert coco_result.stats["AP50"] == pytest.approx(1.0)
    assert coco_result.stats["AP75"] == pytest.approx(0.0)
    assert coco_result.stats["AP"] == pytest.approx(0.1)
    assert voc_ap.evaluate_voc(ground_truths, detections, 1).mean_ap == 0.0


def test_difficult_ground_truth_is_ignored():
    # GT A (보통), B (difficult). 검출 B 0.9, A 0.8. B 위 검출은 무시 → AP 1.
    # difficult 를 그냥 버렸다면 0.9 가 FP (precision [0, 0.5], 포락선 0.5) 라서 AP50 = 0.5 였을 것.
    ground_truths = [_gt([[1, 1, 10, 10], [31, 31, 50, 50]], [1, 1], [False, True])]
    detections = [ImageDetections([[31, 31, 50, 50], [1, 1, 10, 10]], [0.9, 0.8], [1, 1])]
    coco_result = coco_ap.evaluate_coco(ground_truths, detections, 1)
    assert coco_result.stats["AP50"] == pytest.approx(1.0)
    assert coco_result.stats["AP"] == pytest.approx(1.0)


def test_no_detections_and_absent_class(capsys):
    # 클래스 1 GT 있음·검출 없음 → 0, 클래스 2 GT 없음 → None (평균에서 제외).
    ground_truths = [_gt([[1, 1, 10, 10]], [1])]
    detections = [ImageDetections(np.zeros((0, 4)), [], [])]
    coco_result = coco_ap.evaluate_coco(ground_truths, detections, 2)
    assert coco_result.stats["AP"] == 0.0
    assert coco_result.per_class_ap == {1: 0.0, 2: None}
    assert capsys.readouterr().out == ""  # pycocotools 출력은 막혀 있다


def test_verbose_shows_pycocotools_summary(capsys):
    ground_truths, detections = _agreement_case()
    coco_ap.evaluate_coco(ground_truths, detections, 2, verbose=True)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in capsys.readouterr().out
