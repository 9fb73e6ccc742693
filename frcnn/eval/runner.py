"""평가 실행: VOC 디렉터리, COCO JSON 또는 TFRecord 를 읽어 검출 함수를 배치로 부르고, 지표와 보고서를 만든다.

흐름: `make_tfrecords` 와 같은 소스 (`frcnn.data.sources`, `coco`, `tfds_source`) 로 (이미지 바이트, GT) 읽기 →
`detect_fn(image_bytes [B] string)` → 정규화 박스를 이미지별 VOC 픽셀로 →
클래스 이름으로 GT 와 검출의 클래스 id 를 맞춤 → voc07 / voc12 / coco 지표 → 표, JSON, PR 그림.

클래스 맞추기: 검출과 GT 는 클래스 **이름** 으로 짝짓는다 (모델의 id 순서를 몰라도 된다).
  클래스 목록 (id 1..C 순서) = `classes_flag` 인자 (--classes 값: 쉼표 목록 또는 파일, frcnn.data.classes)
  가 있으면 그것, 없으면 VOC 디렉터리는 `frcnn.data.classes.discover_classes` 의 자동 규칙, COCO JSON 은
  범주 이름 (라벨 순서, `frcnn.data.coco`; --classes 는 고를 범주), TFRecord 는
  (label, text) 와 모델의 (detection_classes, detection_class_names) 쌍에서 id 순서로 모은 것.
  이름이 빈 검출은 id 로 목록에서 이름을 찾는다. 목록에 없는 검출 클래스 이름은 목록 끝에 붙는다
  (GT 가 없으니 AP 는 null).

용어:
  B: 배치 (이미지 수). N: 모델이 돌려주는 이미지당 검출 칸 수 (num_detections 뒤는 패딩).
  H, W: 원본 이미지 높이·너비 (픽셀).
  정규화 박스: [ymin, xmin, ymax, xmax] ∈ [0, 1] (모델 출력, TFRecord).
  연속 박스: 소스의 픽셀 박스 (`SourceExample.continuous_boxes`; 레코드는 정규화 × [H, W, H, W]).
  VOC 박스: frcnn.data.voc.boxes_to_voc 로 바꾼 (xmin, ymin, xmax, ymax).
  crowd GT (COCO iscrowd, 레코드의 image/object/is_crowd): COCO 지표는 pycocotools 대로 crowd 로 다루고,
    VOC 지표는 difficult 처럼 무시한다 (ImageGroundTruth.difficult 에 더한다).
"""

import dataclasses
import itertools
import time

import numpy as np
import tensorflow as tf

from frcnn.data import classes, coco, sources, voc
from frcnn.eval import coco_ap, report, voc_ap
from frcnn.export import signature


@dataclasses.dataclass(frozen=True)
class EvaluationInputs:
    """지표에 넣을 준비가 된 GT 와 검출: 클래스 이름 (id 1..C 순서), 같은 이미지 순서의 voc_ap.ImageGroundTruth·
    ImageDetections 목록."""

    class_names: tuple
    ground_truths: list
    detections: list


def normalized_to_voc(normalized_boxes, height, width):
    """[N, 4] 정규화 박스 → 크기 (H, W) 이미지의 [N, 4] float64 VOC 픽셀 (xmin = x0 * W + 1, …, ymax = y1 * H)."""
    normalized_boxes = np.asarray(normalized_boxes, dtype=np.float64).reshape(-1, 4)
    continuous_boxes = normalized_boxes * np.array([height, width, height, width], dtype=np.float64)
    return voc.boxes_to_voc(continuous_boxes).astype(np.float64)


def _split_outputs(outputs, sizes):
    """모델 출력 dict ([B, N, …], 이름은 선택) 를 이미지별 (VOC 픽셀 박스 [n, 4], 점수 [n], id [n], 이름 [n]) 로
    자른다 (sizes: 이미지별 (H, W)). 패딩 (클래스 0) 은 뺀다."""
    arrays = {key: np.asarray(value) for key, value in outputs.items()}
    per_image = []
    for image_index, (height, width) in enumerate(sizes):
        count = int(arrays[signature.NUM_DETECTIONS][image_index])
        class_ids = arrays[signature.CLASSES][image_index, :count].astype(np.int64)
        names = [_decode(name) for name in arrays[signature.CLASS_NAMES][image_index, :count]] \
            if signature.CLASS_NAMES in arrays else [""] * count
        keep = class_ids > 0
        per_image.append((
            normalized_to_voc(arrays[signature.BOXES][image_index, :count][keep], height, width),
            arrays[signature.SCORES][image_index, :count][keep].astype(np.float64),
            class_ids[keep],
            [name for name, kept in zip(names, keep) if kept],
        ))
    return per_image


def _decode(value):
    """bytes 또는 str 을 str 로."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def collect(source, detect_fn, batch_size=8, max_images=None, progress=None):
    """소스의 이미지를 배치로 검출하고 GT 와 함께 돌려준다.

    Args:
      source: frcnn.data.sources.Source (`open_source`, 또는 VOC·COCO·tfds·레코드 소스를 직접 연 것).
      detect_fn: image_bytes [B] tf.string → 출력 dict (SavedModel 출력 키).
      batch_size: 한 번에 보낼 이미지 수 (크기가 서로 달라도 된다).
      max_images: 앞에서부터 이만큼만 (None 이면 전부).
      progress: None 또는 `progress(done, total)` — 시작할 때와 배치마다 끝낸 이미지 수로 부른다.

    Returns:
      EvaluationInputs.

    Raises:
      frcnn.data.sources.SourceError: 소스가 낸 첫 문제 (주석·이미지 파일, 목록에 없는 클래스, 잘못된 레코드).
    """
    report_progress = progress or (lambda done, total: None)
    total = source.num_examples if max_images is None else min(max_images, source.num_examples)
    pairs = []  # (SourceExample, 검출) 목록
    report_progress(0, total)
    for batch in _batches(itertools.islice(source.items, max_images), batch_size):
        image_bytes = tf.constant([example.image_bytes for example in batch], dtype=tf.string)
        detections = _split_outputs(detect_fn(image_bytes), [(item.height, item.width) for item in batch])
        pairs.extend(zip(batch, detections))
        report_progress(len(pairs), total)
    return _resolve_classes(source.classes, pairs)


def _batches(items, batch_size):
    """SourceItem 들을 batch_size 개씩의 SourceExample 목록으로 묶는다. 첫 SourceError 는 던진다."""
    items = iter(items)
    while batch := list(itertools.islice(items, batch_size)):
        errors = [item for item in batch if isinstance(item, sources.SourceError)]
        if errors:
            raise errors[0]
        yield batch


def open_source(voc_dir=None, split="test", record_paths=None, coco_annotations=None, coco_images_dir=None,
                classes_flag=None):
    """평가할 데이터를 `make_tfrecords` 와 같은 소스로 연다 (VOC 디렉터리, COCO JSON 또는 TFRecord 중 하나).

    클래스 목록: VOC 는 --classes 또는 자동 규칙 (frcnn.data.classes), COCO 는 범주 이름 (라벨 순서;
    --classes 는 고를 범주), 레코드는 --classes 또는 빈 목록 (그러면 `collect` 가 (id, 이름) 쌍에서 모은다).

    Returns:
      (frcnn.data.sources.Source, 보고서 "source" 에 적을 dict).

    Raises:
      frcnn.data.sources.SourceError: 분할·JSON 파일 전체·--classes 의 문제.
    """
    if voc_dir is not None:
        return sources.open_voc_source(voc_dir, split, classes_flag), {"voc_dir": voc_dir, "split": split}
    if coco_annotations is not None:
        source = coco.open_coco_source(coco_annotations, coco_images_dir, classes_flag)
        return source, {"coco_annotations": coco_annotations, "coco_images_dir": coco_images_dir}
    return sources.open_records_source(record_paths, classes_flag), {"records": list(record_paths)}


def _class_list(base_names, pairs):
    """클래스 이름 목록 (id 1..C 순서) 과 id → 이름 표 (`classes.from_id_name_pairs` 의 규칙)."""
    if base_names:
        return list(base_names), {index + 1: name for index, name in enumerate(base_names)}
    id_name_pairs = []
    for example, (_, _, class_ids, class_names) in pairs:
        id_name_pairs += zip(example.class_ids, example.class_names)
        id_name_pairs += zip(class_ids, class_names)
    names, id_to_name = classes.from_id_name_pairs(id_name_pairs)
    return list(names), id_to_name


def _resolve_classes(base_names, pairs):
    """이름으로 GT 와 검출의 클래스 id 를 하나의 목록에 맞추고 EvaluationInputs 를 만든다 (crowd 는 difficult 로도)."""
    names, id_to_name = _class_list(base_names, pairs)
    index_by_name = {name: index + 1 for index, name in enumerate(names)}

    def to_ids(class_ids, class_names):
        """[n] id 와 [n] 이름 (빈 이름은 id 로 찾음) → 목록 기준 [n] int64 id."""
        ids = []
        for class_id, name in zip(class_ids, class_names):
            name = name or id_to_name.get(int(class_id), classes.unnamed_class(class_id))
            if name not in index_by_name:
                names.append(name)
                index_by_name[name] = len(names)
            ids.append(index_by_name[name])
        return np.asarray(ids, dtype=np.int64)

    ground_truths, detections = [], []
    for example, (boxes, scores, class_ids, class_names) in pairs:
        crowd = False if example.is_crowd is None else example.is_crowd
        ground_truths.append(voc_ap.ImageGroundTruth(
            voc.boxes_to_voc(example.continuous_boxes()).astype(np.float64),
            to_ids(example.class_ids, example.class_names), np.asarray(example.difficult, bool) | crowd,
            example.image_id, example.is_crowd, example.areas))
        detections.append(voc_ap.ImageDetections(boxes, scores, to_ids(class_ids, class_names),
                                                 example.image_id))
    return EvaluationInputs(tuple(names), ground_truths, detections)


def compute_metrics(inputs, metrics, iou_threshold=voc_ap.DEFAULT_IOU_THRESHOLD, coco_verbose=False):
    """EvaluationInputs 에서 요청한 지표 (report.ALL_METRICS 의 부분) 를 계산한다.

    Returns:
      (voc_results dict 지표 → VocApResult, coco_result 또는 None).
    """
    num_classes = len(inputs.class_names)
    voc_results = {
        metric: voc_ap.evaluate_voc(inputs.ground_truths, inputs.detections, num_classes,
                                    iou_threshold, use_07_metric)
        for metric, use_07_metric in report.VOC_METRICS.items() if metric in metrics}
    coco_result = None
    if "coco" in metrics:
        coco_result = coco_ap.evaluate_coco(inputs.ground_truths, inputs.detections, num_classes,
                                            verbose=coco_verbose)
    return voc_results, coco_result


def evaluate(detect_fn, *, voc_dir=None, split="test", record_paths=None, coco_annotations=None,
             coco_images_dir=None, metrics=report.ALL_METRICS, output_path=None, plot_dir=None,
             batch_size=8, max_images=None, classes_flag=None, iou_threshold=voc_ap.DEFAULT_IOU_THRESHOLD,
             coco_verbose=False, progress=None, source_info=None):
    """검출 함수를 한 데이터 분할에서 평가하고 보고서를 만든다 (JSON·그림은 모든 계산이 끝난 뒤에 쓴다).

    Args:
      detect_fn: image_bytes [B] tf.string → SavedModel 출력 키의 dict.
      voc_dir, record_paths, coco_annotations: 데이터 (셋 중 하나만; 레코드 목록은 비면 안 되고 COCO 는
        coco_images_dir 와 함께). split 은 VOC 분할, classes_flag 는 --classes 값 (`open_source`).
      metrics: 계산할 지표 ("voc07", "voc12", "coco") 목록.
      output_path, plot_dir: JSON 보고서 경로, PR 곡선 PNG 디렉터리 (None 이면 쓰지 않음).
      batch_size, max_images, progress: `collect` 의 것.
      iou_threshold, coco_verbose: `compute_metrics` 의 것.
      source_info: 보고서 "source" 에 더할 dict (예: saved_model 경로).

    Returns:
      보고서 dict (report.build_report 모양).

    Raises:
      ValueError: 인자 조합이 틀렸거나, 이미지가 하나도 없거나, 레코드가 잘못됐을 때.
      frcnn.data.voc.VocError: VOC·COCO 파일 문제 (COCO 는 그 하위 클래스 SourceError).
    """
    _check_arguments(voc_dir, record_paths, coco_annotations, coco_images_dir, metrics, batch_size,
                     max_images)
    start_time = time.perf_counter()
    source, where = open_source(voc_dir, split, record_paths, coco_annotations, coco_images_dir, classes_flag)
    inputs = collect(source, detect_fn, batch_size, max_images, progress)
    if not inputs.ground_truths:
        raise ValueError(f"{voc_dir or coco_annotations or ', '.join(record_paths)}: no images to evaluate")
    voc_results, coco_result = compute_metrics(inputs, metrics, iou_threshold, coco_verbose)
    evaluation_report = report.build_report(
        inputs.class_names, inputs.ground_truths, inputs.detections, voc_results, coco_result,
        source={**(source_info or {}), **where}, metrics=list(metrics), iou_threshold=iou_threshold,
        num_images=len(inputs.ground_truths), wall_time_s=round(time.perf_counter() - start_time, 3))
    if plot_dir is not None:  # 그림 경로는 보고서 "plots" 에
        evaluation_report["plots"] = report.plot_precision_recall(inputs.class_names, voc_results, plot_dir)
    if output_path is not None:
        report.write_json_report(evaluation_report, output_path)
    return evaluation_report


def _check_arguments(voc_dir, record_paths, coco_annotations, coco_images_dir, metrics, batch_size,
                     max_images):
    """evaluate 인자 조합을 검사한다. 틀리면 ValueError."""
    if [voc_dir, record_paths, coco_annotations].count(None) != 2:
        raise ValueError("give exactly one of voc_dir, record_paths or coco_annotations")
    if (coco_annotations is None) != (coco_images_dir is None):
        raise ValueError("coco_annotations and coco_images_dir go together")
    if record_paths is not None and not record_paths:
        raise ValueError("record_paths is empty")
    unknown = [metric for metric in metrics if metric not in report.ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown or empty metrics {list(metrics)} "
                         f"(choose from {', '.join(report.ALL_METRICS)})")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
