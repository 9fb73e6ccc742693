"""변환 소스: 검사된 이미지·주석을 `SourceExample` 로 차례로 내는 것 (VOC 디렉터리; tfds 는 `tfds_source`,
COCO JSON 은 `coco`).

소스는 레코드 한 개가 될 값을 모두 검사해 넘긴다. 앵커 라벨과 샤드 쓰기는 `pipelines.convert` 가 한다.
이미지는 스레드 풀(`NUM_WORKERS`)에서 끝까지 디코딩해 검사한다 (PIL 과 expat 의 C 코드가 GIL 을 놓는다).

용어:
  G: 한 이미지의 물체 수. C: 클래스 수 (id 1..C, `frcnn.data.classes`).
  H, W: 원본 이미지 크기.
  정규화 박스: [ymin, xmin, ymax, xmax] = 연속 픽셀 박스 / (H, W, H, W) (레코드 좌표).
  SourceItem: `SourceExample` 또는 그 이미지 하나의 문제인 `SourceError` (변환기가 건너뛸 수 있다).
"""

import dataclasses
import os
from multiprocessing.pool import ThreadPool
from typing import Callable, Iterator, Optional, Union

import numpy as np

from frcnn.data import classes
from frcnn.data import voc

# 이미지 읽기·디코딩 스레드 수 (2코어 기준).
NUM_WORKERS = 2


class SourceError(voc.VocError):
    """소스의 한 파일(또는 --classes 값)의 문제 (VOC 가 아닌 소스 포함). str(err) == f"{path}: {problem}"."""


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


SourceItem = Union[SourceExample, SourceError]


@dataclasses.dataclass
class Source:
    """열린 변환 소스.

    Attributes:
      name: 'voc', 'tfds' 또는 'coco'.
      classes: 클래스 이름 (id 1..C 순서).
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
    """`function` 을 스레드 풀에서 순서를 지키며 적용한다 (I/O·디코딩은 GIL 을 놓는다)."""
    with ThreadPool(NUM_WORKERS) as pool:
        yield from pool.imap(function, items, chunksize=4)


# ---------------------------------------------------------------- VOC 디렉터리


def _load_annotation(voc_dir: str, image_id: str):
    """XML 하나를 읽는다. 오류는 던지지 않고 SourceError 로 돌려준다."""
    try:
        return voc.read_annotation(voc_dir, image_id)
    except voc.VocError as error:
        return SourceError(error.path, error.problem)


def _voc_example(annotation: voc.VocAnnotation, class_list) -> SourceItem:
    """검사된 주석과 끝까지 디코딩해 본 이미지 바이트로 SourceExample 을 만든다."""
    try:
        class_ids = classes.class_ids(annotation.class_names, class_list, annotation.xml_path)
        image_bytes = voc.read_image_checked(annotation)
    except voc.VocError as error:
        return SourceError(error.path, error.problem)
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
    )


def _voc_items(loaded: list, class_list) -> Iterator[SourceItem]:
    """읽은 주석(또는 오류) 목록을 순서대로 SourceItem 으로 바꾼다."""
    def load(item):
        return item if isinstance(item, SourceError) else _voc_example(item, class_list)
    yield from parallel_map(load, loaded)


def open_voc_source(voc_dir: str, split: str, classes_flag: Optional[str]) -> Source:
    """VOC 디렉터리의 한 분할을 연다: id 목록과 모든 XML 을 읽고 클래스 목록을 정한다.

    Args:
      voc_dir: VOC 루트 (…/VOC2007).
      split: ImageSets/Main/<split>.txt 의 분할 이름.
      classes_flag: None/'' (자동), 쉼표 목록, 또는 클래스 파일 경로.

    Returns:
      Source. 개별 XML·이미지 오류와 목록에 없는 클래스는 items 안의 SourceError 로 나온다.

    Raises:
      SourceError: 분할 파일이나 --classes 자체의 문제, 분할이 비었을 때.
    """
    try:
        image_ids = voc.read_split_ids(voc_dir, split)
        explicit_classes = classes.parse_classes_flag(classes_flag) if classes_flag else None
    except voc.VocError as error:
        raise SourceError(error.path, error.problem) from None
    if not image_ids:
        split_path = os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt")
        raise SourceError(split_path, "the split lists no image ids")
    loaded = list(parallel_map(lambda image_id: _load_annotation(voc_dir, image_id), image_ids))
    found_names = (name for item in loaded if not isinstance(item, SourceError) for name in item.class_names)
    class_list = explicit_classes or classes.discover_classes(found_names)
    return Source("voc", tuple(class_list), len(image_ids), _voc_items(loaded, class_list))
