"""평가 실행: VOC 디렉터리, COCO JSON 또는 TFRecord 를 읽어 검출 함수를 배치로 부르고, 지표와 보고서를 만든다.

흐름: (이미지 바이트, GT) 읽기 → `detect_fn(image_bytes [B] string)` → 정규화 박스를 이미지별 VOC 픽셀로 →
클래스 이름으로 GT 와 검출의 클래스 id 를 맞춤 → voc07 / voc12 / coco 지표 → 표, JSON, PR 그림.

클래스 맞추기: 검출과 GT 는 클래스 **이름** 으로 짝짓는다 (모델의 id 순서를 몰라도 된다).
  클래스 목록 (id 1..C 순서) = `classes_flag` 인자 (--classes 값: 쉼표 목록 또는 파일, frcnn.data.classes)
  가 있으면 그것, 없으면 VOC 디렉터리는 `frcnn.data.classes.resolve_classes` 의 자동 규칙, COCO JSON 은
  범주 이름 (라벨 순서, `frcnn.data.coco`; --classes 는 고를 범주), TFRecord 는
  (label, text) 와 모델의 (detection_classes, detection_class_names) 쌍에서 id 순서로 모은 것.
  이름이 빈 검출은 id 로 목록에서 이름을 찾는다. 목록에 없는 검출 클래스 이름은 목록 끝에 붙는다
  (GT 가 없으니 AP 는 null).

용어:
  B: 배치 (이미지 수). N: 모델이 돌려주는 이미지당 검출 칸 수 (num_detections 뒤는 패딩).
  H, W: 원본 이미지 높이·너비 (픽셀).
  정규화 박스: [ymin, xmin, ymax, xmax] ∈ [0, 1] (모델 출력, TFRecord).
  연속 박스: 정규화 × [H, W, H, W]. VOC 박스: frcnn.data.voc.boxes_to_voc 로 바꾼 (xmin, ymin, xmax, ymax).
  crowd GT (COCO iscrowd, 레코드의 image/object/is_crowd): COCO 지표는 pycocotools 대로 crowd 로 다루고,
    VOC 지표는 difficult 처럼 무시한다 (ImageGroundTruth.difficult 에 더한다).
"""

import dataclasses
import time

import numpy as np
import tensorflow as tf

from frcnn.data import classes, coco, records, sources, voc
from frcnn.eval import coco_ap, report, voc_ap
from frcnn.export import loader
from frcnn.export import runtimes


@dataclasses.dataclass
class _RawImage:
    """이름 맞추기 전의 한 이미지: GT 는 이름 또는 id, 검출은 id 와 이름."""

    image_id: str
    gt_boxes: np.ndarray          # [G, 4] VOC 픽셀
    gt_class_names: list          # [G] str, 모르면 ""
    gt_class_ids: np.ndarray      # [G] int64, 모르면 0
    difficult: np.ndarray         # [G] bool (crowd 포함)
    is_crowd: np.ndarray = None   # [G] bool, 없으면 모두 False
    areas: np.ndarray = None      # [G] COCO 주석 넓이, 없으면 박스 넓이
    det_boxes: np.ndarray = None  # [N, 4] VOC 픽셀
    det_scores: np.ndarray = None  # [N] float
    det_class_ids: np.ndarray = None  # [N] int64
    det_class_names: list = None  # [N] str, 없으면 ""


@dataclasses.dataclass(frozen=True)
class EvaluationInputs:
    """지표에 넣을 준비가 된 GT 와 검출.

    Attributes:
      class_names: 클래스 이름 tuple (id 1..C 순서).
      ground_truths: 이미지별 voc_ap.ImageGroundTruth 목록.
      detections: 같은 순서의 voc_ap.ImageDetections 목록.
    """

    class_names: tuple
    ground_truths: list
    detections: list


def normalized_to_voc(normalized_boxes, height, width):
    """정규화 박스를 한 이미지의 VOC 픽셀 박스로 바꾼다.

    Args:
      normalized_boxes: [N, 4] float [ymin, xmin, ymax, xmax] ∈ [0, 1].
      height: 이미지 높이 H.
      width: 이미지 너비 W.

    Returns:
      [N, 4] float64 VOC 픽셀 (xmin = x0 * W + 1, ymin = y0 * H + 1, xmax = x1 * W, ymax = y1 * H).
    """
    normalized_boxes = np.asarray(normalized_boxes, dtype=np.float64).reshape(-1, 4)
    continuous_boxes = normalized_boxes * np.array([height, width, height, width], dtype=np.float64)
    return voc.boxes_to_voc(continuous_boxes).astype(np.float64)


def load_detect_fn(saved_model_dir, num_threads=None):
    """SavedModel 의 serve_bytes 서명 (또는 .tflite / .onnx 파일) 을 `detect_fn(image_bytes)` 로 감싼다.

    Args:
      saved_model_dir: tf.saved_model.save 로 쓴 디렉터리, 또는 `tools/export --formats=tflite,onnx` 의
        model.tflite / model.onnx (이미지를 하나씩 디코딩해 돌리고 배치로 쌓는다).
      num_threads: .tflite / .onnx 런타임의 스레드 수 (None 이면 `runtimes.usable_cores()`; SavedModel 에는 쓰지
        않는다: TF 가 정한다).

    Returns:
      image_bytes [B] tf.string 을 받아 출력 dict 를 돌려주는 함수.

    Raises:
      ValueError: `<경로>: <문제>` — SavedModel 이 아니거나 불러올 수 없거나 serve_bytes 서명이 없을 때
        (frcnn.export.loader).
    """
    if runtimes.kind_of(saved_model_dir):
        return runtimes.PortableRunner(saved_model_dir, num_threads).serve_bytes
    model = loader.load_saved_model(saved_model_dir, required_signatures=("serve_bytes",))
    signature = model.signatures["serve_bytes"]

    def detect_fn(image_bytes):
        """image_bytes: [B] tf.string. 출력 dict 를 그대로 돌려준다."""
        return signature(image_bytes=image_bytes)

    detect_fn.saved_model = model  # 서명이 모델보다 먼저 사라지지 않게 참조를 잡아 둔다.
    return detect_fn


def _split_outputs(outputs, sizes):
    """모델 출력 dict 를 이미지별 (VOC 박스, 점수, id, 이름) 로 자른다.

    Args:
      outputs: detection_boxes [B, N, 4], detection_scores [B, N], detection_classes [B, N],
        detection_class_names [B, N] (선택), num_detections [B].
      sizes: 이미지별 (H, W) 목록, 길이 B.

    Returns:
      길이 B 목록, 각 (boxes [n, 4] VOC 픽셀, scores [n], class_ids [n], class_names [n] str). 패딩(클래스 0)은 뺀다.
    """
    arrays = {key: np.asarray(value) for key, value in outputs.items()}
    per_image = []
    for image_index, (height, width) in enumerate(sizes):
        count = int(arrays["num_detections"][image_index])
        class_ids = arrays["detection_classes"][image_index, :count].astype(np.int64)
        if "detection_class_names" in arrays:
            names = [_decode(name) for name in arrays["detection_class_names"][image_index, :count]]
        else:
            names = [""] * count
        keep = class_ids > 0
        per_image.append((
            normalized_to_voc(arrays["detection_boxes"][image_index, :count][keep], height, width),
            arrays["detection_scores"][image_index, :count][keep].astype(np.float64),
            class_ids[keep],
            [name for name, kept in zip(names, keep) if kept],
        ))
    return per_image


def _decode(value):
    """bytes 또는 str 을 str 로."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _run_batches(examples, detect_fn, batch_size, total, progress):
    """(이미지 바이트, (H, W), _RawImage) 를 배치로 모아 detect_fn 을 부르고 검출을 채운다.

    Args:
      examples: (이미지 바이트, (H, W), _RawImage) 의 iterable.
      detect_fn: image_bytes [B] tf.string → 출력 dict.
      batch_size: 한 번에 보낼 이미지 수.
      total: 이미지 수 (progress 에 넘길 값; 모르면 None).
      progress: None 또는 `progress(done, total)` — 시작할 때와 배치마다 끝낸 이미지 수로 부른다.

    Returns:
      검출이 채워진 _RawImage 목록 (입력 순서).
    """
    report_progress = progress or (lambda done, total: None)
    raw_images, pending = [], []
    report_progress(0, total)
    for example in examples:
        pending.append(example)
        if len(pending) == batch_size:
            raw_images.extend(_detect_batch(pending, detect_fn))
            report_progress(len(raw_images), total)
            pending = []
    if pending:
        raw_images.extend(_detect_batch(pending, detect_fn))
        report_progress(len(raw_images), total)
    return raw_images


def _detect_batch(batch, detect_fn):
    """한 배치를 검출하고 각 _RawImage 에 결과를 넣는다."""
    image_bytes = tf.constant([image for image, _, _ in batch], dtype=tf.string)
    outputs = detect_fn(image_bytes)
    per_image = _split_outputs(outputs, [size for _, size, _ in batch])
    raw_images = []
    for (_, _, raw_image), (boxes, scores, class_ids, class_names) in zip(batch, per_image):
        raw_image.det_boxes, raw_image.det_scores = boxes, scores
        raw_image.det_class_ids, raw_image.det_class_names = class_ids, class_names
        raw_images.append(raw_image)
    return raw_images


def _voc_examples(voc_dir, annotations):
    """VOC 주석마다 (검사한 이미지 바이트, (H, W), _RawImage) 를 낸다."""
    for annotation in annotations:
        image_bytes = voc.read_image_checked(annotation)
        raw_image = _RawImage(
            image_id=annotation.image_id,
            gt_boxes=voc.boxes_to_voc(annotation.boxes).astype(np.float64),
            gt_class_names=list(annotation.class_names),
            gt_class_ids=np.zeros(len(annotation.class_names), dtype=np.int64),
            difficult=np.asarray(annotation.difficult, dtype=bool))
        yield image_bytes, (annotation.height, annotation.width), raw_image


def collect_from_voc(voc_dir, split, detect_fn, batch_size=8, max_images=None, classes_flag=None,
                     progress=None):
    """VOC 디렉터리의 한 분할을 검출하고 GT 와 함께 돌려준다.

    Args:
      voc_dir: VOC 루트 (…/VOC2007).
      split: ImageSets/Main/<split>.txt 의 이름.
      detect_fn: image_bytes [B] tf.string → 출력 dict (SavedModel 출력 키).
      batch_size: 한 번에 보낼 이미지 수 (크기가 서로 달라도 된다).
      max_images: 앞에서부터 이만큼만 (None 이면 전부).
      classes_flag: None (자동) 또는 --classes 값 (쉼표 목록 또는 파일; frcnn.data.classes).
      progress: None 또는 `progress(done, total)` 콜백 (이미지 수).

    Returns:
      EvaluationInputs.

    Raises:
      frcnn.data.voc.VocError: 분할·주석·이미지 파일 문제, 목록에 없는 클래스.
    """
    image_ids = voc.read_split_ids(voc_dir, split)
    if max_images is not None:
        image_ids = image_ids[:max_images]
    annotations = [voc.read_annotation(voc_dir, image_id) for image_id in image_ids]
    labelled = [(annotation.xml_path, annotation.class_names) for annotation in annotations]
    base_names = classes.resolve_classes(classes_flag, labelled)
    raw_images = _run_batches(_voc_examples(voc_dir, annotations), detect_fn, batch_size,
                              len(annotations), progress)
    return _resolve_classes(base_names, raw_images)


def _coco_examples(annotations_path, images):
    """COCO 이미지마다 (검사한 이미지 바이트, (H, W), _RawImage) 를 낸다 (crowd 는 VOC 지표에서 difficult)."""
    for image in images:
        image_bytes = coco.read_image_checked(annotations_path, image)
        raw_image = _RawImage(
            image_id=str(image.image_id),
            gt_boxes=voc.boxes_to_voc(image.boxes).astype(np.float64),
            gt_class_names=list(image.class_names),
            gt_class_ids=np.zeros(len(image.class_names), dtype=np.int64),
            difficult=image.is_crowd.copy(), is_crowd=image.is_crowd, areas=image.areas)
        yield image_bytes, (image.height, image.width), raw_image


def collect_from_coco(annotations_path, images_dir, detect_fn, batch_size=8, max_images=None,
                      classes_flag=None, progress=None):
    """COCO JSON 의 이미지들을 검출하고 GT 와 함께 돌려준다.

    Args:
      annotations_path: COCO instances JSON 경로.
      images_dir: 이미지 'file_name' 의 기준 디렉터리.
      detect_fn: image_bytes [B] tf.string → 출력 dict.
      batch_size: 한 번에 보낼 이미지 수.
      max_images: 앞에서부터 이만큼만 (None 이면 전부).
      classes_flag: None (모든 범주) 또는 --classes 값 (고를 범주 이름; frcnn.data.coco).
      progress: None 또는 `progress(done, total)` 콜백 (이미지 수).

    Returns:
      EvaluationInputs (클래스 목록 = 범주 이름, 라벨 순서).

    Raises:
      frcnn.data.sources.SourceError: JSON·주석·이미지 파일의 첫 문제 (모르는 이미지 id 의 주석 포함).
    """
    dataset = coco.read_coco(annotations_path, images_dir, classes_flag)
    images = dataset.images if max_images is None else dataset.images[:max_images]
    problems = dataset.orphans + [item for item in images if isinstance(item, sources.SourceError)]
    if problems:
        raise problems[0]
    raw_images = _run_batches(_coco_examples(annotations_path, images), detect_fn, batch_size, len(images),
                              progress)
    return _resolve_classes(dataset.class_names, raw_images)


def _record_example(path, serialized):
    """TF Object Detection API 형식 tf.Example 하나를 (바이트, (H, W), _RawImage) 로 읽는다.

    Raises:
      ValueError: `<path>: <문제>` — frcnn.data.records.read_example_numpy 가 거부한 예제.
    """
    try:
        values = records.read_example_numpy(serialized)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    height, width = values["height"], values["width"]
    raw_image = _RawImage(
        image_id=values["source_id"] or values["filename"],
        gt_boxes=normalized_to_voc(values["boxes"], height, width),
        gt_class_names=values["class_names"],
        gt_class_ids=values["classes"],
        difficult=values["difficult"] | values["is_crowd"],
        is_crowd=values["is_crowd"])
    return values["image_bytes"], (height, width), raw_image


def _record_examples(record_paths, max_images):
    """TFRecord 파일들의 예제를 차례로 낸다 (max_images 개까지)."""
    count = 0
    for path in record_paths:
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            if max_images is not None and count >= max_images:
                return
            count += 1
            yield _record_example(path, serialized)


def _count_records(record_paths, max_images):
    """진행 보고용 예제 수 (max_images 로 자른다)."""
    total = 0
    for path in record_paths:
        total += int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda count, _: count + 1))
        if max_images is not None and total >= max_images:
            return max_images
    return total


def collect_from_records(record_paths, detect_fn, batch_size=8, max_images=None, classes_flag=None,
                         progress=None):
    """TFRecord (TF OD API 특징 이름) 를 검출하고 GT 와 함께 돌려준다.

    Args:
      record_paths: TFRecord 파일 경로 목록.
      detect_fn: image_bytes [B] tf.string → 출력 dict.
      batch_size: 한 번에 보낼 이미지 수.
      max_images: 앞에서부터 이만큼만 (None 이면 전부).
      classes_flag: None 또는 --classes 값 (쉼표 목록 또는 파일; frcnn.data.classes).
      progress: None 또는 `progress(done, total)` 콜백 (이미지 수; 있을 때만 레코드 수를 미리 센다).

    Returns:
      EvaluationInputs.

    Raises:
      ValueError: 필수 특징이 빠진 예제 (파일 경로와 함께).
    """
    base_names = classes.parse_classes_flag(classes_flag) if classes_flag else ()
    total = _count_records(record_paths, max_images) if progress is not None else None
    raw_images = _run_batches(_record_examples(record_paths, max_images), detect_fn, batch_size,
                              total, progress)
    return _resolve_classes(base_names, raw_images)


def _class_list(base_names, raw_images):
    """클래스 이름 목록 (id 1..C 순서) 과 id → 이름 표 (`classes.from_id_name_pairs` 의 규칙)."""
    if base_names:
        return list(base_names), {index + 1: name for index, name in enumerate(base_names)}
    pairs = []
    for raw_image in raw_images:
        pairs += zip(raw_image.gt_class_ids, raw_image.gt_class_names)
        pairs += zip(raw_image.det_class_ids, raw_image.det_class_names)
    names, id_to_name = classes.from_id_name_pairs(pairs)
    return list(names), id_to_name


def _resolve_classes(base_names, raw_images):
    """이름으로 GT 와 검출의 클래스 id 를 하나의 목록에 맞추고 EvaluationInputs 를 만든다."""
    names, id_to_name = _class_list(base_names, raw_images)
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
    for raw_image in raw_images:
        ground_truths.append(voc_ap.ImageGroundTruth(
            raw_image.gt_boxes, to_ids(raw_image.gt_class_ids, raw_image.gt_class_names),
            raw_image.difficult, raw_image.image_id, raw_image.is_crowd, raw_image.areas))
        detections.append(voc_ap.ImageDetections(
            raw_image.det_boxes, raw_image.det_scores,
            to_ids(raw_image.det_class_ids, raw_image.det_class_names), raw_image.image_id))
    return EvaluationInputs(tuple(names), ground_truths, detections)


def compute_metrics(inputs, metrics, iou_threshold=voc_ap.DEFAULT_IOU_THRESHOLD, coco_verbose=False):
    """요청한 지표를 계산한다.

    Args:
      inputs: EvaluationInputs.
      metrics: report.ALL_METRICS 의 부분 목록.
      iou_threshold: VOC 매칭 임계값.
      coco_verbose: pycocotools 출력을 보일지.

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
      voc_dir: VOC 루트. voc_dir, record_paths, coco_annotations 중 하나만.
      split: VOC 분할 이름.
      record_paths: TFRecord 파일 경로 목록 (비어 있으면 안 된다).
      coco_annotations: COCO instances JSON 경로 (coco_images_dir 와 함께).
      coco_images_dir: COCO 이미지 디렉터리.
      metrics: 계산할 지표 ("voc07", "voc12", "coco") 목록.
      output_path: JSON 보고서 경로 (None 이면 쓰지 않음).
      plot_dir: PR 곡선 PNG 디렉터리 (None 이면 그리지 않음; voc 지표가 하나라도 있어야 함).
      batch_size: 배치 크기.
      max_images: 앞에서부터 이만큼만.
      classes_flag: None 또는 --classes 값.
      iou_threshold: VOC 매칭 임계값.
      coco_verbose: pycocotools 출력을 보일지.
      progress: None 또는 `progress(done, total)` 콜백 (검출을 마친 이미지 수, 전체 이미지 수).
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
    source = dict(source_info or {})
    if voc_dir is not None:
        source.update(voc_dir=voc_dir, split=split)
        inputs = collect_from_voc(voc_dir, split, detect_fn, batch_size, max_images, classes_flag, progress)
    elif coco_annotations is not None:
        source.update(coco_annotations=coco_annotations, coco_images_dir=coco_images_dir)
        inputs = collect_from_coco(coco_annotations, coco_images_dir, detect_fn, batch_size, max_images,
                                   classes_flag, progress)
    else:
        source.update(records=list(record_paths))
        inputs = collect_from_records(record_paths, detect_fn, batch_size, max_images, classes_flag,
                                      progress)
    if not inputs.ground_truths:
        raise ValueError(f"{voc_dir or coco_annotations or ', '.join(record_paths)}: no images to evaluate")
    voc_results, coco_result = compute_metrics(inputs, metrics, iou_threshold, coco_verbose)
    evaluation_report = report.build_report(
        inputs.class_names, inputs.ground_truths, inputs.detections, voc_results, coco_result,
        source=source, metrics=list(metrics), iou_threshold=iou_threshold,
        num_images=len(inputs.ground_truths), wall_time_s=round(time.perf_counter() - start_time, 3))
    _write_outputs(evaluation_report, inputs.class_names, voc_results, output_path, plot_dir)
    return evaluation_report


def _write_outputs(evaluation_report, class_names, voc_results, output_path, plot_dir):
    """PR 그림 (경로를 보고서 "plots" 에 더한다) 과 JSON 보고서를 쓴다. None 인 출력은 건너뛴다."""
    if plot_dir is not None:
        evaluation_report["plots"] = report.plot_precision_recall(class_names, voc_results, plot_dir)
    if output_path is not None:
        report.write_json_report(evaluation_report, output_path)


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
