"""PASCAL VOC devkit 방식의 AP (numpy). 공식 `voc_eval.py`(py-faster-rcnn / VOCdevkit) 규칙을 그대로 따른다.

규칙 (클래스마다):
  1. 검출을 점수 내림차순으로 정렬한다 (동점은 입력 순서: 이미지 순서, 이미지 안 검출 순서).
  2. 각 검출에 대해 같은 이미지·같은 클래스 GT 중 IoU 가 가장 큰 것을 고른다.
     IoU 는 VOC 1-based 포함 픽셀의 +1 규약: `iw = min(xmax) - max(xmin) + 1`, 넓이 `(w + 1) * (h + 1)`.
  3. IoU > 임계값(기본 0.5)이면: 그 GT 가 difficult → 무시 (TP 도 FP 도 아님);
     아니고 아직 검출되지 않았으면 → TP (검출됨으로 표시); 이미 검출됐으면 → FP (중복).
     임계값 이하 → FP.
  4. npos = difficult 가 아닌 GT 수. recall = cumsum(TP) / npos, precision = cumsum(TP) / cumsum(TP + FP).
  5. AP: VOC07 11점 보간 (recall 임계 t = np.arange(0, 1.1, 0.1), 각 t 에서 recall ≥ t 인 최대 precision 의 평균.
     devkit 과 똑같이 np.arange 를 쓰므로 0.3, 0.6, 0.7 임계는 부동소수 오차로 아주 조금 크다),
     또는 VOC2010+ 전 점(all-point): 단조 precision 포락선 아래 계단 넓이.
  6. GT 가 없는 클래스 (npos = 0): AP 는 정의되지 않음 (NaN) 이고 mAP 에서 빠진다.
     GT 는 있지만 검출이 없는 클래스: AP 0.

용어:
  G: 한 이미지의 GT 수. N: 한 이미지의 검출 수. D: 한 클래스의 전체 검출 수. C: 클래스 수 (id 1..C).
  VOC 박스: (xmin, ymin, xmax, ymax), 1-based 포함 픽셀 (XML 그대로). 이 모듈의 모든 박스는 이 형식이다.
    연속 픽셀 [ymin, xmin, ymax, xmax] 에서 바꿀 때는 `frcnn.data.voc.boxes_to_voc` 를 쓴다.
"""

import dataclasses

import numpy as np

DEFAULT_IOU_THRESHOLD = 0.5


def _as_array(value, dtype, shape_tail, name):
    """입력을 dtype 배열로 바꾸고 모양이 [n, *shape_tail] 인지 검사한다 (빈 입력은 [0, *shape_tail])."""
    array = np.asarray(value, dtype=dtype)
    if array.size == 0:
        return array.reshape((0,) + shape_tail)
    if array.shape[1:] != shape_tail or array.ndim != 1 + len(shape_tail):
        expected = "".join(", " + str(size) for size in shape_tail)
        raise ValueError(f"{name} must have shape [n{expected}], got {array.shape}")
    return array


@dataclasses.dataclass(frozen=True)
class ImageGroundTruth:
    """한 이미지의 GT.

    Attributes:
      boxes: [G, 4] float64 VOC 픽셀 (xmin, ymin, xmax, ymax).
      classes: [G] int64 클래스 id 1..C.
      difficult: [G] bool, VOC difficult 표시 (VOC 지표가 무시하는 GT; crowd GT 도 여기 True 로 둔다).
      image_id: 이미지 이름 (보고용).
      is_crowd: [G] bool, COCO iscrowd (None 이면 모두 False; COCO 지표만 쓴다).
      areas: [G] float64, COCO 주석 넓이 (None 이면 박스 넓이; COCO 지표의 넓이 범위에만 쓴다).
    """

    boxes: np.ndarray
    classes: np.ndarray
    difficult: np.ndarray
    image_id: str = ""
    is_crowd: np.ndarray = None
    areas: np.ndarray = None

    def __post_init__(self):
        if self.is_crowd is None:  # 모두 crowd 아님
            num_boxes = len(_as_array(self.boxes, np.float64, (4,), "boxes"))
            object.__setattr__(self, "is_crowd", np.zeros(num_boxes, bool))
        _coerce(self, boxes=(np.float64, (4,)), classes=(np.int64, ()), difficult=(bool, ()),
                is_crowd=(bool, ()), areas=(np.float64, ()))


@dataclasses.dataclass(frozen=True)
class ImageDetections:
    """한 이미지의 검출.

    Attributes:
      boxes: [N, 4] float64 VOC 픽셀 (xmin, ymin, xmax, ymax).
      scores: [N] float64 점수.
      classes: [N] int64 클래스 id 1..C (0 = 패딩, 무시됨).
      image_id: 이미지 이름 (보고용).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    image_id: str = ""

    def __post_init__(self):
        _coerce(self, boxes=(np.float64, (4,)), scores=(np.float64, ()), classes=(np.int64, ()))


def _coerce(instance, **specs):
    """필드 (이름 → (dtype, 꼬리 모양); None 인 선택 필드는 건너뜀) 를 배열로 바꿔 다시 넣고 첫 차원 길이가
    모두 같은지 검사한다."""
    lengths = {}
    for name, (dtype, shape_tail) in specs.items():
        if getattr(instance, name) is not None:
            object.__setattr__(instance, name, _as_array(getattr(instance, name), dtype, shape_tail, name))
            lengths[name] = len(getattr(instance, name))
    if len(set(lengths.values())) > 1:
        raise ValueError(f"image {instance.image_id!r}: mismatched lengths {lengths}")


@dataclasses.dataclass(frozen=True)
class ClassAp:
    """한 클래스의 AP 결과.

    Attributes:
      class_id: 1..C.
      num_gt: difficult 가 아닌 GT 수 (npos).
      num_detections: 이 클래스의 검출 수 D.
      ap: AP, GT 가 없으면 NaN.
      precision: [D] float64, 점수 순 누적 precision (무시된 검출 제외 없이 devkit 과 같은 길이).
      recall: [D] float64, 누적 recall (GT 가 없으면 빈 배열).
    """

    class_id: int
    num_gt: int
    num_detections: int
    ap: float
    precision: np.ndarray
    recall: np.ndarray


@dataclasses.dataclass(frozen=True)
class VocApResult:
    """전체 VOC AP 결과.

    Attributes:
      per_class: 클래스 1..C 순서의 ClassAp.
      mean_ap: GT 가 있는 클래스들의 AP 평균, 그런 클래스가 없으면 NaN.
      use_07_metric: True 면 11점 보간, False 면 전 점.
      iou_threshold: 매칭 IoU 임계값 (초과해야 매칭).
    """

    per_class: tuple
    mean_ap: float
    use_07_metric: bool
    iou_threshold: float


def voc_iou(box, gt_boxes):
    """VOC +1 규약 IoU: VOC 픽셀 박스 [4] 하나와 GT [G, 4] → [G] float64."""
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    inter_width = np.maximum(
        np.minimum(gt_boxes[:, 2], box[2]) - np.maximum(gt_boxes[:, 0], box[0]) + 1.0, 0.0)
    inter_height = np.maximum(
        np.minimum(gt_boxes[:, 3], box[3]) - np.maximum(gt_boxes[:, 1], box[1]) + 1.0, 0.0)
    intersection = inter_width * inter_height
    box_area = (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
    gt_areas = (gt_boxes[:, 2] - gt_boxes[:, 0] + 1.0) * (gt_boxes[:, 3] - gt_boxes[:, 1] + 1.0)
    return intersection / (box_area + gt_areas - intersection)


def match_class(ground_truths, detections, class_id, iou_threshold=DEFAULT_IOU_THRESHOLD):
    """한 클래스의 검출을 점수 순으로 GT 와 짝지어 TP/FP 를 정한다 (devkit 규칙; 같은 이미지 순서의 목록들).

    Returns:
      (is_true_positive [D] bool, is_false_positive [D] bool, num_gt int).
      점수 내림차순. 둘 다 False 인 검출은 difficult GT 에 매칭되어 무시된 것.
    """
    gt_boxes, gt_difficult, gt_detected = [], [], []
    for ground_truth in ground_truths:
        in_class = ground_truth.classes == class_id
        gt_boxes.append(ground_truth.boxes[in_class])
        gt_difficult.append(ground_truth.difficult[in_class])
        gt_detected.append(np.zeros(int(in_class.sum()), dtype=bool))
    num_gt = int(sum(int((~difficult).sum()) for difficult in gt_difficult))
    image_indices, det_boxes, det_scores = _gather_class_detections(detections, class_id)
    order = np.argsort(-det_scores, kind="stable")
    is_true_positive = np.zeros(len(order), dtype=bool)
    is_false_positive = np.zeros(len(order), dtype=bool)
    for rank, det_index in enumerate(order):
        image_index = image_indices[det_index]
        overlaps = voc_iou(det_boxes[det_index], gt_boxes[image_index])
        if overlaps.size == 0 or overlaps.max() <= iou_threshold:
            is_false_positive[rank] = True
            continue
        best_gt = int(overlaps.argmax())
        if gt_difficult[image_index][best_gt]:
            continue
        if gt_detected[image_index][best_gt]:
            is_false_positive[rank] = True
        else:
            is_true_positive[rank] = True
            gt_detected[image_index][best_gt] = True
    return is_true_positive, is_false_positive, num_gt


def _gather_class_detections(detections, class_id):
    """모든 이미지에서 한 클래스의 검출을 모은다: (이미지 번호 [D], 박스 [D, 4], 점수 [D])."""
    image_indices, boxes, scores = [], [], []
    for image_index, detection in enumerate(detections):
        in_class = detection.classes == class_id
        image_indices.append(np.full(int(in_class.sum()), image_index, dtype=np.int64))
        boxes.append(detection.boxes[in_class])
        scores.append(detection.scores[in_class])
    if not image_indices:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0)
    return np.concatenate(image_indices), np.concatenate(boxes), np.concatenate(scores)


def average_precision(recall, precision, use_07_metric=True):
    """devkit `voc_ap`: 누적 recall [D] (증가 순)·precision [D] 곡선의 AP (float). use_07_metric 이면 VOC07 11점
    보간, 아니면 전 점 (포락선 아래 넓이)."""
    recall = np.asarray(recall, dtype=np.float64)
    precision = np.asarray(precision, dtype=np.float64)
    if use_07_metric:
        total = 0.0
        for threshold in np.arange(0.0, 1.1, 0.1):
            reached = recall >= threshold
            total += (precision[reached].max() if reached.any() else 0.0) / 11.0
        return float(total)
    padded_recall = np.concatenate(([0.0], recall, [1.0]))
    # 단조 감소 포락선: 각 점에서 오른쪽의 최대 precision
    envelope = np.maximum.accumulate(np.concatenate(([0.0], precision, [0.0]))[::-1])[::-1]
    steps = np.where(padded_recall[1:] != padded_recall[:-1])[0]
    return float(np.sum((padded_recall[steps + 1] - padded_recall[steps]) * envelope[steps + 1]))


def evaluate_class(ground_truths, detections, class_id, iou_threshold=DEFAULT_IOU_THRESHOLD,
                   use_07_metric=True):
    """한 클래스의 devkit AP (ClassAp). GT 가 없으면 ap = NaN, recall/precision 은 빈 배열."""
    is_true_positive, is_false_positive, num_gt = match_class(
        ground_truths, detections, class_id, iou_threshold)
    num_detections = len(is_true_positive)
    if num_gt == 0:
        empty = np.zeros(0, dtype=np.float64)
        return ClassAp(class_id, 0, num_detections, float("nan"), empty, empty)
    true_positives = np.cumsum(is_true_positive).astype(np.float64)
    false_positives = np.cumsum(is_false_positive).astype(np.float64)
    recall = true_positives / float(num_gt)
    precision = true_positives / np.maximum(true_positives + false_positives, np.finfo(np.float64).eps)
    ap = average_precision(recall, precision, use_07_metric)
    return ClassAp(class_id, num_gt, num_detections, ap, precision, recall)


def evaluate_voc(ground_truths, detections, num_classes, iou_threshold=DEFAULT_IOU_THRESHOLD,
                 use_07_metric=True):
    """모든 클래스의 devkit AP 와 mAP.

    Args:
      ground_truths, detections: 같은 길이·순서의 이미지별 ImageGroundTruth·ImageDetections 목록.
      num_classes: C, 클래스 id 는 1..C.
      iou_threshold: IoU 가 이 값을 넘어야 매칭 (devkit 0.5).
      use_07_metric: True 면 VOC07 11점, False 면 VOC2010+ 전 점.

    Returns:
      VocApResult. mean_ap 는 GT 가 있는 클래스만의 평균.

    Raises:
      ValueError: 목록 길이가 다르거나 클래스 id 가 범위를 벗어날 때.
    """
    ground_truths, detections = list(ground_truths), list(detections)
    check_inputs(ground_truths, detections, num_classes)
    per_class = tuple(
        evaluate_class(ground_truths, detections, class_id, iou_threshold, use_07_metric)
        for class_id in range(1, num_classes + 1))
    defined = [result.ap for result in per_class if result.num_gt > 0]
    mean_ap = float(np.mean(defined)) if defined else float("nan")
    return VocApResult(per_class, mean_ap, use_07_metric, iou_threshold)


def check_inputs(ground_truths, detections, num_classes):
    """GT/검출 목록의 길이와 클래스 id 범위를 검사한다.

    Raises:
      ValueError: 길이가 다르거나, GT 클래스가 1..C 밖, 검출 클래스가 0..C 밖일 때.
    """
    if len(ground_truths) != len(detections):
        raise ValueError(f"{len(ground_truths)} ground-truth images but {len(detections)} detection images")
    for ground_truth in ground_truths:
        classes = ground_truth.classes
        if classes.size and (classes.min() < 1 or classes.max() > num_classes):
            raise ValueError(f"image {ground_truth.image_id!r}: ground-truth class outside 1..{num_classes}")
    for detection in detections:
        if detection.classes.size and (detection.classes.min() < 0 or detection.classes.max() > num_classes):
            raise ValueError(f"image {detection.image_id!r}: detection class outside 0..{num_classes}")


def count_ground_truths(ground_truths, num_classes):
    """클래스별 GT 수: (difficult 아닌 GT 수 [C] int64, difficult 수 [C] int64), 인덱스 0 = 클래스 1."""
    num_gt = np.zeros(num_classes + 1, dtype=np.int64)
    num_difficult = np.zeros(num_classes + 1, dtype=np.int64)
    for ground_truth in ground_truths:
        np.add.at(num_gt, ground_truth.classes[~ground_truth.difficult], 1)
        np.add.at(num_difficult, ground_truth.classes[ground_truth.difficult], 1)
    return num_gt[1:], num_difficult[1:]
