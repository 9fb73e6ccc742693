"""COCO AP@[.5:.95], AP50, AP75, APs/APm/APl: pycocotools 를 메모리 안 dict 로 부른다.

VOC 와 다른 점 (의도된 것):
  - COCO 는 IoU ≥ 임계값이면 매칭, VOC 는 > 0.5.
  - COCO 박스는 0-based 연속 픽셀 [x, y, w, h]: VOC (xmin, ymin, xmax, ymax) →
    [xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]. 그래서 IoU 값은 VOC +1 규약과 같다.
  - crowd GT (COCO iscrowd=1) 는 그대로 iscrowd=1 로 넘긴다: pycocotools 가 무시하고, 검출 넓이에 대한 겹침
    (IoA) 으로 여러 검출과 매칭한다. 넓이는 GT 의 areas (COCO 주석 넓이) 가 있으면 그것, 없으면 박스 넓이.
  - (crowd 가 아닌) difficult GT 는 iscrowd=0 으로 두고 area = -1 로 표시해 모든 넓이 범위 밖 ("무시") 이 되게 한다.
    COCOeval 은 무시 GT 에 매칭된 검출을 TP/FP 어느 쪽에도 세지 않는다. 단 VOC 와 달리 무시 GT 하나는
    검출 하나와만 매칭되므로, 같은 difficult 물체의 두 번째 검출은 FP 가 된다.
  - 이미지당 점수 상위 100 개 검출만 본다 (COCO maxDets=100), 101점 recall 보간.

용어:
  C: 클래스 수 (COCO category id = 클래스 id 1..C). 박스 입력은 voc_ap 와 같은 VOC 픽셀.
"""

import contextlib
import dataclasses
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

# COCOeval.stats 의 앞 6개 이름 (bbox).
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")

# difficult GT 를 모든 넓이 범위 밖으로 보내는 넓이 값.
IGNORED_AREA = -1.0


@dataclasses.dataclass(frozen=True)
class CocoResult:
    """COCO 평가 결과.

    Attributes:
      stats: COCO_STAT_NAMES → 값, 정의되지 않으면 (해당 GT 없음) None.
      per_class_ap: 클래스 id → AP@[.5:.95] (GT 없으면 None).
      per_class_ap50: 클래스 id → AP@0.5 (101점 보간, GT 없으면 None).
    """

    stats: dict
    per_class_ap: dict
    per_class_ap50: dict


def voc_to_coco_boxes(voc_boxes):
    """[N, 4] VOC 픽셀 박스 → [N, 4] float64 COCO [x, y, w, h] (0-based 연속 픽셀)."""
    voc_boxes = np.asarray(voc_boxes, dtype=np.float64).reshape(-1, 4)
    xmin, ymin, xmax, ymax = voc_boxes.T
    return np.stack([xmin - 1.0, ymin - 1.0, xmax - xmin + 1.0, ymax - ymin + 1.0], axis=1)


def _ground_truth_dataset(ground_truths, num_classes):
    """GT 목록을 COCO 데이터셋 dict 로 만든다 (이미지 id = 목록 위치 + 1)."""
    annotations = []
    for image_index, ground_truth in enumerate(ground_truths):
        coco_boxes = voc_to_coco_boxes(ground_truth.boxes)
        areas = coco_boxes[:, 2] * coco_boxes[:, 3] if ground_truth.areas is None else ground_truth.areas
        flags = zip(ground_truth.classes, ground_truth.difficult, ground_truth.is_crowd, areas)
        for box, (class_id, difficult, crowd, area) in zip(coco_boxes, flags):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_index + 1, "category_id": int(class_id),
                "bbox": [float(value) for value in box], "iscrowd": int(crowd),
                "area": IGNORED_AREA if difficult and not crowd else float(area),
            })
    return {
        "images": [{"id": image_index + 1} for image_index in range(len(ground_truths))],
        "annotations": annotations,
        "categories": [{"id": class_id} for class_id in range(1, num_classes + 1)],
    }


def _detection_annotations(detections):
    """검출 목록을 COCO 결과 annotation 목록으로 만든다 (패딩 클래스 0 은 뺀다)."""
    annotations = []
    for image_index, detection in enumerate(detections):
        coco_boxes = voc_to_coco_boxes(detection.boxes)
        for box, score, class_id in zip(coco_boxes, detection.scores, detection.classes):
            if class_id == 0:
                continue
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_index + 1, "category_id": int(class_id),
                "bbox": [float(value) for value in box], "score": float(score),
                "area": float(box[2] * box[3]), "iscrowd": 0,
            })
    return annotations


def _make_coco(dataset):
    """dict 에서 COCO 객체를 만든다 (createIndex 의 출력은 호출자가 막는다)."""
    coco = COCO()
    coco.dataset = dataset
    coco.createIndex()
    return coco


def _defined(value):
    """pycocotools 의 -1 (정의 안 됨) 을 None 으로."""
    return None if value is None or value < 0 else float(value)


def _per_class_ap(precision, iou_index=None):
    """COCOeval.eval['precision'] [T, R, K, A, M] (-1 = 정의 안 됨) 에서 클래스별 AP [K] (float 또는 None; 넓이
    all, maxDets 100). iou_index 가 None 이면 모든 IoU 임계 평균, 아니면 그 임계 하나."""
    iou_rows = slice(None) if iou_index is None else slice(iou_index, iou_index + 1)
    values = precision[iou_rows, :, :, 0, -1]
    results = []
    for class_index in range(values.shape[2]):
        class_values = values[:, :, class_index]
        class_values = class_values[class_values > -1]
        results.append(float(class_values.mean()) if class_values.size else None)
    return results


def evaluate_coco(ground_truths, detections, num_classes, verbose=False):
    """pycocotools 로 COCO bbox 지표를 계산한다.

    ground_truths·detections 는 같은 순서의 voc_ap.ImageGroundTruth·ImageDetections 목록 (VOC 픽셀), verbose 면
    pycocotools 의 출력 (요약 표 포함) 을 그대로 보여 준다.

    Returns:
      CocoResult.

    Raises:
      ValueError: 목록 길이가 다를 때.
    """
    ground_truths, detections = list(ground_truths), list(detections)
    if len(ground_truths) != len(detections):
        raise ValueError(f"{len(ground_truths)} ground-truth images but {len(detections)} detection images")
    output = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with output:
        coco_gt = _make_coco(_ground_truth_dataset(ground_truths, num_classes))
        coco_dt = _make_coco({"images": coco_gt.dataset["images"],
                              "annotations": _detection_annotations(detections),
                              "categories": coco_gt.dataset["categories"]})
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    precision = coco_eval.eval["precision"]
    # iouThrs[0] = 0.5 → per_class_ap50
    class_ids = [int(class_id) for class_id in coco_eval.params.catIds]
    return CocoResult(
        stats={name: _defined(value) for name, value in zip(COCO_STAT_NAMES, coco_eval.stats)},
        per_class_ap=dict(zip(class_ids, _per_class_ap(precision))),
        per_class_ap50=dict(zip(class_ids, _per_class_ap(precision, iou_index=0))),
    )
