"""COCO JSON (instances) 읽기: pycocotools 로 파일을 열고 이미지·주석을 검사해 이미지별 픽셀 박스와 라벨로 낸다.

변환 소스 (`open_coco_source`) 를 `make_tfrecords --source=coco` 와 평가기 (`frcnn.eval.runner`) 가 함께 쓴다.
파일 전체의 문제 (JSON 문법, 목록·키 없음, 중복 id, --classes 에 없는 범주) 는 바로 `sources.SourceError`;
이미지 하나의 문제 (없는 이미지 파일, 모르는 범주 id, 잘못된 박스, 크기 불일치) 와 모르는 이미지 id 의 주석은
`CocoDataset` 안의 SourceError 로 남아 `--skip_invalid` 가 건너뛸 수 있다. 메시지는 파일과 이미지·주석 id 를 적는다.

용어:
  G: 한 이미지의 물체 수 (crowd 포함). C: 고른 범주 수 (라벨 1..C).
  COCO 박스: 주석의 'bbox' [x, y, w, h], 0 부터 시작하는 연속 픽셀 (x 는 왼쪽 가장자리).
  연속 박스: 라이브러리 형식 [ymin, xmin, ymax, xmax] = [y, x, y + h, x + w] (`frcnn.data.voc` 와 같은 관례).
  라벨: 범주 id 오름차순으로 1..C, 이름은 그대로. --classes 가 있으면 그 이름의 범주만 그 순서로 (다른 범주의
    주석은 빠지고, 그 물체만 있던 이미지는 음성 이미지로 남는다).
  허용 오차: 이미지 밖으로 1 픽셀 (`voc.BOX_TOLERANCE_PIXELS`) 이내로 벗어난 박스는 [0, W] × [0, H] 로 자른다.
  crowd: iscrowd=1 주석 (여러 물체를 한 영역으로 묶은 것). 레코드에 표시와 함께 남고 학습에서는 양성이 되지
    않는다 (`frcnn.modeling.crowd`); 평가에서는 pycocotools 가 crowd 로, VOC 지표는 difficult 처럼 무시한다.
  넓이: 주석의 'area' (COCO 는 분할 마스크 넓이; COCOeval 의 small/medium/large 구분), 없으면 w·h.
"""

import collections
import contextlib
import dataclasses
import io
import math
import os
from typing import Optional, Union

import numpy as np
from pycocotools.coco import COCO

from frcnn.data import classes
from frcnn.data import sources
from frcnn.data import voc


@dataclasses.dataclass(frozen=True)
class CocoImage:
    """한 이미지의 검사된 COCO 주석 (고른 범주만).

    Attributes:
      image_id: COCO 이미지 id (JSON 값 그대로).
      file_name: 이미지 항목의 'file_name'.
      image_path: <images_dir>/<file_name>.
      height: 이미지 항목의 높이 H.
      width: 이미지 항목의 너비 W.
      boxes: [G, 4] float64 연속 픽셀 [ymin, xmin, ymax, xmax] (잘라낸 뒤).
      labels: [G] int64, 1..C.
      class_names: [G] 범주 이름.
      is_crowd: [G] bool.
      areas: [G] float64 주석 넓이.
    """

    image_id: object
    file_name: str
    image_path: str
    height: int
    width: int
    boxes: np.ndarray
    labels: np.ndarray
    class_names: tuple
    is_crowd: np.ndarray
    areas: np.ndarray


CocoItem = Union[CocoImage, sources.SourceError]


@dataclasses.dataclass(frozen=True)
class CocoDataset:
    """읽고 검사한 COCO 파일.

    Attributes:
      annotations_path: JSON 경로.
      categories: 고른 범주의 (COCO 범주 id, 이름) tuple, 라벨 1..C 순서.
      orphans: 모르는 이미지 id 를 가리키는 주석마다 하나의 SourceError.
      images: 파일의 이미지 순서대로 CocoImage 또는 그 이미지의 SourceError.
    """

    annotations_path: str
    categories: tuple
    orphans: list
    images: list

    @property
    def class_names(self) -> tuple:
        """라벨 1..C 의 이름."""
        return tuple(name for _, name in self.categories)


def load_coco(annotations_path: str) -> COCO:
    """JSON 을 pycocotools 로 읽는다 (pycocotools 의 출력은 막는다).

    Raises:
      sources.SourceError: 파일 없음, JSON 문법 오류, COCO 색인을 만들 수 없는 구조.
    """
    if not os.path.isfile(annotations_path):
        raise sources.SourceError(annotations_path, "COCO annotation file not found")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(annotations_path)
    except (ValueError, OSError, AssertionError, KeyError, TypeError) as error:
        raise sources.SourceError(annotations_path, _load_problem(error)) from error


def _load_problem(error: Exception) -> str:
    """pycocotools 가 파일을 읽다 던진 예외를 한 문장으로 (JSONDecodeError·UnicodeDecodeError 는 ValueError)."""
    if isinstance(error, UnicodeDecodeError):
        return "malformed JSON: not UTF-8 text"
    if isinstance(error, ValueError):
        return f"malformed JSON: {error}"
    if isinstance(error, OSError):
        return f"cannot read: {error.strerror or error}"
    if isinstance(error, AssertionError):
        return "not a COCO file: its top level is not an object"
    if isinstance(error, KeyError):
        return f"not a COCO instances file: an entry lacks the key {error}"
    return f"not a COCO instances file: {error}"


def read_coco(annotations_path: str, images_dir: str, classes_flag: Optional[str] = None) -> CocoDataset:
    """COCO JSON 을 읽고 범주를 라벨로 맞추고 모든 주석을 검사한다 (이미지 파일은 `read_image_checked` 가).

    images_dir 는 이미지 'file_name' 의 기준 디렉터리, classes_flag 는 None/'' (모든 범주, id 순서) 또는 고를
    범주 이름 (--classes 값).

    Raises:
      sources.SourceError: 파일 전체의 문제 (`load_coco`, 목록이 없음, 범주·이미지 id 중복·잘못된 범주,
        --classes 의 문제나 파일에 없는 이름).
    """
    coco = load_coco(annotations_path)
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.dataset.get(key), list):
            raise sources.SourceError(annotations_path, f"not a COCO instances file: no '{key}' list")
    categories = _categories(annotations_path, coco.dataset["categories"])
    selected = _select(annotations_path, categories, classes_flag)
    label_of = {category_id: label for label, (category_id, _) in enumerate(selected, start=1)}
    duplicates = _duplicates(image["id"] for image in coco.dataset["images"])
    if duplicates:
        raise sources.SourceError(annotations_path, f"duplicate image ids: {duplicates}")
    context = _Context(annotations_path, images_dir, dict(categories), label_of)
    orphans = [_error(context, f"annotation id {annotation.get('id')}: unknown image id {image_id!r}")
               for image_id, annotations in coco.imgToAnns.items() if image_id not in coco.imgs
               for annotation in annotations]
    images = [_image(context, image, coco.imgToAnns.get(image["id"], [])) for image in coco.dataset["images"]]
    return CocoDataset(annotations_path, tuple(selected), orphans, images)


def read_image_checked(annotations_path: str, image: CocoImage) -> bytes:
    """이미지 파일을 읽어 끝까지 디코딩하고 크기가 JSON 의 width·height 와 같은지 검사한다.

    Raises:
      sources.SourceError: 이미지 경로로 — 파일 없음, 손상, JPEG/PNG 아님, 크기 불일치 (이미지 id 와 JSON 이름).
    """
    where = f"image id {image.image_id!r} in {annotations_path}"
    try:
        return voc.read_image_file_checked(image.image_path, image.width, image.height,
                                           f"the size {image.width}x{image.height} of {where}")
    except voc.VocError as error:
        problem = error.problem if where in error.problem else f"{error.problem} ({where})"
        raise sources.SourceError(error.path, problem) from error


def open_coco_source(annotations_path: str, images_dir: str, classes_flag: Optional[str]) -> sources.Source:
    """COCO JSON 한 파일을 변환 소스로 연다 (인자는 `read_coco` 의 것).

    items 는 모르는 이미지 id 의 주석 (SourceError) 다음에 파일 순서의 이미지들, metadata 는
    'coco_annotations' (경로) 와 'coco_categories' ([{label, id, name}], 라벨 순서).

    Raises:
      sources.SourceError: 파일 전체의 문제 (`read_coco`).
    """
    dataset = read_coco(annotations_path, images_dir, classes_flag)

    def example(item: CocoItem) -> sources.SourceItem:
        return item if isinstance(item, sources.SourceError) else _source_example(dataset, item)

    def items():
        yield from dataset.orphans
        yield from sources.parallel_map(example, dataset.images)

    metadata = {
        "coco_annotations": annotations_path,
        "coco_categories": [{"label": label, "id": category_id, "name": name}
                            for label, (category_id, name) in enumerate(dataset.categories, start=1)],
    }
    return sources.Source("coco", dataset.class_names, len(dataset.orphans) + len(dataset.images), items(),
                          metadata)


# ---------------------------------------------------------------- 내부 도우미


@dataclasses.dataclass(frozen=True)
class _Context:
    """이미지 검사에 필요한 파일 전체의 값."""

    annotations_path: str
    images_dir: str
    name_of: dict    # 범주 id → 이름 (모든 범주)
    label_of: dict   # 고른 범주 id → 라벨 1..C


def _error(context: _Context, problem: str) -> sources.SourceError:
    return sources.SourceError(context.annotations_path, problem)


def _categories(annotations_path: str, entries: list) -> list:
    """범주 목록을 검사해 (id, 이름) 을 id 오름차순으로 돌려준다."""
    categories = []
    for entry in entries:
        category_id, name = entry.get("id"), entry.get("name")
        if not _is_integer(category_id) or not isinstance(name, str) or not name.strip():
            raise sources.SourceError(annotations_path, f"category {entry!r} needs an integer 'id' and a "
                                                        "non-empty 'name'")
        categories.append((int(category_id), name))
    for index, key in ((0, "ids"), (1, "names")):
        duplicates = _duplicates(category[index] for category in categories)
        if duplicates:
            raise sources.SourceError(annotations_path, f"duplicate category {key}: {duplicates}")
    if not categories:
        raise sources.SourceError(annotations_path, "the 'categories' list is empty")
    return sorted(categories)


def _select(annotations_path: str, categories: list, classes_flag: Optional[str]) -> list:
    """--classes 로 고른 범주 (id, 이름) 목록 (라벨 순서). 없으면 모든 범주 (id 순서)."""
    if not classes_flag:
        return list(categories)
    try:
        names = classes.parse_classes_flag(classes_flag)
    except voc.VocError as error:
        raise sources.SourceError.caused_by(error) from error
    id_of = {name: category_id for category_id, name in categories}
    unknown = [name for name in names if name not in id_of]
    if unknown:
        unknown_text = ", ".join(map(repr, unknown))
        raise sources.SourceError(annotations_path, f"--classes names {unknown_text} are not categories "
                                                    f"(known: {', '.join(id_of)})")
    return [(id_of[name], name) for name in names]


def _duplicates(values) -> str:
    """두 번 이상 나온 값들 (쉼표로 이은 문자열, 없으면 '')."""
    counts = collections.Counter(values)
    return ", ".join(sorted(str(value) for value, count in counts.items() if count > 1))


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _image(context: _Context, image: dict, annotations: list) -> CocoItem:
    """이미지 항목 하나와 그 주석들을 검사해 CocoImage 로. 문제가 있으면 SourceError."""
    image_id = image["id"]
    file_name, width, height = image.get("file_name"), image.get("width"), image.get("height")
    if not isinstance(file_name, str) or not file_name:
        return _error(context, f"image id {image_id!r} has no 'file_name'")
    for key, value in (("width", width), ("height", height)):
        if not _is_number(value) or value <= 0 or value != int(value):
            return _error(context, f"image id {image_id!r}: '{key}' must be a positive integer, "
                                   f"got {value!r}")
    width, height = int(width), int(height)
    objects = []
    for annotation in annotations:
        checked = _annotation(context, annotation, image_id, width, height)
        if isinstance(checked, sources.SourceError):
            return checked
        if checked is not None:
            objects.append(checked)
    boxes = np.array([item[0] for item in objects], np.float64).reshape(-1, 4)
    return CocoImage(
        image_id=image_id, file_name=file_name, image_path=os.path.join(context.images_dir, file_name),
        height=height, width=width, boxes=boxes,
        labels=np.array([context.label_of[item[1]] for item in objects], np.int64),
        class_names=tuple(context.name_of[item[1]] for item in objects),
        is_crowd=np.array([item[2] for item in objects], bool),
        areas=np.array([item[3] for item in objects], np.float64))


def _annotation(context: _Context, annotation: dict, image_id, width: int, height: int):
    """주석 하나를 검사한다: (연속 박스, 범주 id, crowd, 넓이), 고르지 않은 범주면 None, 문제면 SourceError."""
    where = f"annotation id {annotation.get('id')!r} (image id {image_id!r})"
    category_id = annotation.get("category_id")
    if category_id not in context.name_of:
        return _error(context, f"{where}: unknown category id {category_id!r}")
    if category_id not in context.label_of:
        return None
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(value) for value in bbox):
        return _error(context, f"{where}: 'bbox' must be four finite numbers [x, y, w, h], "
                               f"got {bbox!r}")
    iscrowd = annotation.get("iscrowd", 0)
    if iscrowd not in (0, 1) or isinstance(iscrowd, float):
        return _error(context, f"{where}: 'iscrowd' must be 0 or 1, got {iscrowd!r}")
    box = _check_and_clip_box(bbox, width, height)
    if isinstance(box, str):
        return _error(context, f"{where}: {box}")
    area = annotation.get("area")
    area = float(area) if _is_number(area) else float(bbox[2] * bbox[3])
    return box, category_id, bool(iscrowd), area


def _check_and_clip_box(bbox: list, width: int, height: int):
    """COCO [x, y, w, h] 를 검사해 잘라낸 연속 박스 [ymin, xmin, ymax, xmax] 로, 문제면 그 설명 문자열."""
    x, y, box_width, box_height = (float(value) for value in bbox)
    box_text = f"[x={x:g}, y={y:g}, w={box_width:g}, h={box_height:g}]"
    if box_width <= 0 or box_height <= 0:
        return f"box {box_text} has w <= 0 or h <= 0"
    tolerance = voc.BOX_TOLERANCE_PIXELS
    xmax, ymax = x + box_width, y + box_height
    if x < -tolerance or y < -tolerance or xmax > width + tolerance or ymax > height + tolerance:
        return f"box {box_text} lies outside the {width}x{height} image by more than one pixel"
    clipped = (min(max(y, 0.0), height), min(max(x, 0.0), width),
               min(max(ymax, 0.0), height), min(max(xmax, 0.0), width))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return f"box {box_text} is empty inside the {width}x{height} image"
    return clipped


def _source_example(dataset: CocoDataset, image: CocoImage) -> sources.SourceItem:
    """검사된 이미지와 끝까지 디코딩해 본 이미지 바이트로 SourceExample 을 만든다."""
    try:
        image_bytes = read_image_checked(dataset.annotations_path, image)
    except sources.SourceError as error:
        return error
    size = np.array([image.height, image.width] * 2, np.float64)
    return sources.SourceExample(
        image_id=str(image.image_id),
        filename=image.file_name,
        source_path=f"{dataset.annotations_path} (image id {image.image_id!r})",
        image_bytes=image_bytes,
        image_format="png" if image_bytes.startswith(b"\x89PNG") else "jpeg",
        height=image.height,
        width=image.width,
        normalized_boxes=(image.boxes / size).astype(np.float32).reshape(-1, 4),
        class_ids=image.labels,
        class_names=image.class_names,
        difficult=np.zeros(len(image.labels), bool),
        truncated=np.zeros(len(image.labels), bool),
        is_crowd=image.is_crowd,
        pixel_boxes=image.boxes,
        areas=image.areas,
    )
