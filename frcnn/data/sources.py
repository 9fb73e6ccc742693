"""데이터셋 소스: 검사된 이미지·주석을 `SourceExample` 로 차례로 내는 것 (VOC 디렉터리, TFRecord; tfds 는
`tfds_source`, COCO JSON 은 `coco`).

변환기 (`pipelines.convert`, 앵커 라벨과 샤드 쓰기) 와 평가기 (`frcnn.eval.runner`, GT) 가 같은 소스로 읽는다.
주석은 소스를 열 때 이미지 없이 모두 읽고, 이미지는 `items` 를 돌 때 스레드 풀(`NUM_WORKERS`)에서 읽어 끝까지
디코딩해 검사한다 (PIL 과 expat 의 C 코드가 GIL 을 놓는다; 앞서 나간 작업은 `PREFETCH` 개까지).

용어:
  G: 한 이미지의 물체 수. C: 클래스 수 (id 1..C, `frcnn.data.classes`).
  H, W: 원본 이미지 크기.
  연속 픽셀 박스: [ymin, xmin, ymax, xmax], 0 부터 (`frcnn.data.voc` 의 관례; 평가기의 GT).
  정규화 박스: [ymin, xmin, ymax, xmax] = 연속 픽셀 박스 / (H, W, H, W) (레코드 좌표).
  SourceItem: `SourceExample` 또는 그 이미지 하나의 문제인 `SourceError` (변환기가 건너뛸 수 있다).
"""

import collections
import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional, Union

import numpy as np
import tensorflow as tf

from frcnn.data import classes
from frcnn.data import records
from frcnn.data import voc

# 이미지 읽기·디코딩 스레드 수 (2코어 기준).
NUM_WORKERS = 2
# 소비자보다 앞서 읽어 둘 항목 수의 상한 (메모리를 이만큼의 이미지로 묶는다).
PREFETCH = 8 * NUM_WORKERS


class SourceError(voc.VocError):
    """소스의 한 파일(또는 --classes 값)의 문제 (VOC 가 아닌 소스 포함). str(err) == f"{path}: {problem}"."""

    @classmethod
    def caused_by(cls, error: Exception, path: Optional[str] = None) -> "SourceError":
        """error 를 `__cause__` 로 지닌 SourceError (던지지 않고 항목으로 돌려줄 때도 원인이 남는다).

        path 가 None 이면 error (VocError) 의 경로·문제를, 아니면 path 와 str(error) 를 쓴다.
        """
        problem = cls(error.path, error.problem) if path is None else cls(path, str(error))
        problem.__cause__ = error
        return problem


@dataclasses.dataclass(frozen=True)
class SourceExample:
    """레코드 하나가 될 검사된 이미지와 주석.

    Attributes:
      image_id: 이미지 id (레코드의 source_id).
      filename: 이미지 파일 이름 (레코드의 filename).
      source_path: 오류 메시지에 쓸 주석 위치 (XML 경로 등).
      image_bytes: 원래 JPEG/PNG 바이트 (다시 인코딩하지 않음).
      image_format: 'jpeg' 또는 'png'.
      height: 원본 높이 H.
      width: 원본 너비 W.
      normalized_boxes: [G, 4] float32 정규화 [ymin, xmin, ymax, xmax].
      class_ids: [G] int64, 1..C.
      class_names: [G] 클래스 이름.
      difficult: [G] bool.
      truncated: [G] bool.
      is_crowd: [G] bool (COCO iscrowd), 또는 None (crowd 개념이 없는 소스: 모두 False).
      pixel_boxes: [G, 4] float64 연속 픽셀 박스 (소스의 정확한 값), 또는 None (정규화 박스 × 크기).
      areas: [G] float64 주석 넓이 (COCO 'area'), 또는 None (박스 넓이).
    """

    image_id: str
    filename: str
    source_path: str
    image_bytes: bytes
    image_format: str
    height: int
    width: int
    normalized_boxes: np.ndarray
    class_ids: np.ndarray
    class_names: tuple
    difficult: np.ndarray
    truncated: np.ndarray
    is_crowd: Optional[np.ndarray] = None
    pixel_boxes: Optional[np.ndarray] = None
    areas: Optional[np.ndarray] = None

    def continuous_boxes(self) -> np.ndarray:
        """[G, 4] float64 연속 픽셀 [ymin, xmin, ymax, xmax]: pixel_boxes, 없으면 정규화 박스 × (H, W, H, W)."""
        if self.pixel_boxes is not None:
            return np.asarray(self.pixel_boxes, np.float64).reshape(-1, 4)
        size = np.array([self.height, self.width] * 2, np.float64)
        return np.asarray(self.normalized_boxes, np.float64).reshape(-1, 4) * size


SourceItem = Union[SourceExample, SourceError]


@dataclasses.dataclass
class Source:
    """열린 변환 소스.

    Attributes:
      name: 'voc', 'tfds', 'coco' 또는 'records'.
      classes: 클래스 이름 (id 1..C 순서; 레코드 소스는 --classes 가 없으면 빈 tuple).
      num_examples: 예상 항목 수 (건너뛴 것 포함, 진행 표시·샤드 수용).
      items: 순서대로 SourceExample 또는 (건너뛸 수 있는) SourceError 를 내는 반복자.
      metadata: `<split>.json` 에 더할 소스 고유의 값 (예: COCO 범주 id ↔ 라벨).
    """

    name: str
    classes: tuple
    num_examples: int
    items: Iterator[SourceItem]
    metadata: dict = dataclasses.field(default_factory=dict)


def parallel_map(function: Callable, items) -> Iterator:
    """`function` 을 스레드 풀에서 순서를 지키며 적용한다 (I/O·디코딩은 GIL 을 놓는다; PREFETCH 개까지 앞서)."""
    with ThreadPoolExecutor(NUM_WORKERS) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= PREFETCH:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# ---------------------------------------------------------------- VOC 디렉터리


def _load_annotation(voc_dir: str, image_id: str):
    """XML 하나를 읽는다. 오류는 던지지 않고 SourceError 로 돌려준다."""
    try:
        return voc.read_annotation(voc_dir, image_id)
    except voc.VocError as error:
        return SourceError.caused_by(error)


def _voc_example(annotation: voc.VocAnnotation, class_list) -> SourceItem:
    """검사된 주석과 끝까지 디코딩해 본 이미지 바이트로 SourceExample 을 만든다."""
    try:
        class_ids = classes.class_ids(annotation.class_names, class_list, annotation.xml_path)
        image_bytes = voc.read_image_checked(annotation)
    except voc.VocError as error:
        return SourceError.caused_by(error)
    size = np.array([annotation.height, annotation.width] * 2, np.float64)
    normalized = (np.asarray(annotation.boxes, np.float64) / size).astype(np.float32)
    return SourceExample(
        image_id=annotation.image_id,
        filename=os.path.basename(annotation.image_path),
        source_path=annotation.xml_path,
        image_bytes=image_bytes,
        image_format="png" if image_bytes.startswith(b"\x89PNG") else "jpeg",
        height=annotation.height,
        width=annotation.width,
        normalized_boxes=normalized.reshape(-1, 4),
        class_ids=class_ids,
        class_names=tuple(annotation.class_names),
        difficult=np.asarray(annotation.difficult, bool),
        truncated=np.asarray(annotation.truncated, bool),
        pixel_boxes=np.asarray(annotation.boxes, np.float64).reshape(-1, 4),
    )


def _voc_items(loaded: list, class_list) -> Iterator[SourceItem]:
    """읽은 주석(또는 오류) 목록을 순서대로 SourceItem 으로 바꾼다."""
    def load(item):
        return item if isinstance(item, SourceError) else _voc_example(item, class_list)
    yield from parallel_map(load, loaded)


def open_voc_source(voc_dir: str, split: str, classes_flag: Optional[str]) -> Source:
    """VOC 디렉터리의 한 분할을 연다: id 목록과 모든 XML 을 읽고 클래스 목록을 정한다.

    classes_flag 는 None/'' (자동), 쉼표 목록, 또는 클래스 파일 경로. 개별 XML·이미지 오류와 목록에 없는
    클래스는 items 안의 SourceError 로 나온다.

    Raises:
      SourceError: 분할 파일이나 --classes 자체의 문제, 분할이 비었을 때.
    """
    try:
        image_ids = voc.read_split_ids(voc_dir, split)
        explicit_classes = classes.parse_classes_flag(classes_flag) if classes_flag else None
    except voc.VocError as error:
        raise SourceError.caused_by(error) from error
    if not image_ids:
        split_path = os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt")
        raise SourceError(split_path, "the split lists no image ids")
    loaded = list(parallel_map(lambda image_id: _load_annotation(voc_dir, image_id), image_ids))
    found_names = (name for item in loaded if not isinstance(item, SourceError) for name in item.class_names)
    class_list = explicit_classes or classes.discover_classes(found_names)
    return Source("voc", tuple(class_list), len(image_ids), _voc_items(loaded, class_list))


# ---------------------------------------------------------------- TFRecord (TF Object Detection API 특징)


def _record_example(path: str, serialized: bytes) -> SourceItem:
    """레코드 예제 하나를 SourceExample 로 (이미지는 디코딩하지 않는다). 거부된 예제는 SourceError."""
    try:
        values = records.read_example_numpy(serialized)
    except ValueError as error:
        return SourceError.caused_by(error, path)
    image_format = values["format"] or ("png" if values["image_bytes"].startswith(b"\x89PNG") else "jpeg")
    return SourceExample(
        image_id=values["source_id"] or values["filename"], filename=values["filename"], source_path=path,
        image_bytes=values["image_bytes"], image_format=image_format, height=values["height"],
        width=values["width"], normalized_boxes=values["boxes"], class_ids=values["classes"],
        class_names=tuple(values["class_names"]), difficult=values["difficult"],
        truncated=values["truncated"], is_crowd=values["is_crowd"])


def open_records_source(record_paths, classes_flag: Optional[str] = None) -> Source:
    """TFRecord 파일들 (`make_tfrecords` 출력 또는 다른 도구의 TF OD API 레코드) 을 소스로 연다.

    파일은 주어진 순서로 읽는다. classes_flag 가 비면 classes 는 빈 tuple 이고, class_ids 는 레코드의 라벨 그대로,
    class_names 는 레코드의 텍스트 (없으면 ''). 필수 특징이 빠지거나 개수가 맞지 않는 예제는 items 안의
    SourceError (파일 경로로).

    Raises:
      SourceError: --classes 값의 문제.
    """
    record_paths = list(record_paths)
    try:
        class_list = classes.parse_classes_flag(classes_flag) if classes_flag else ()
    except voc.VocError as error:
        raise SourceError.caused_by(error) from error
    num_examples = sum(int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda count, _: count + 1))
                       for path in record_paths)

    def items():
        for path in record_paths:
            for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
                yield _record_example(path, serialized)

    return Source("records", tuple(class_list), num_examples, items())
