"""PASCAL VOC 읽기: XML 주석(xmltodict), 이미지 검사, 박스 좌표 변환.

프로젝트 바깥의 VOC 데이터가 들어오는 유일한 경계이다. 여기서 한 번 검사하고
변환하면 그 뒤의 코드는 좌표계와 형식을 다시 의심하지 않는다. 클래스 목록과 이름 → id 는
`frcnn.data.classes` 가 맡는다 (VOC 클래스 이름 `VOC_CLASSES` 는 여기 있다).

용어:
  G: 한 이미지의 GT(정답) 박스 수.
  C: 데이터셋 클래스 수 (id 1..C, 0은 배경).
  VOC 박스: XML 의 (xmin, ymin, xmax, ymax), 1부터 시작하는 포함(inclusive) 픽셀.
  연속 박스: 라이브러리 내부 형식 [ymin, xmin, ymax, xmax] float32 픽셀,
    VOC (xmin, ymin, xmax, ymax) ↔ [ymin - 1, xmin - 1, ymax, xmax].
  허용 오차: 이미지 밖으로 1 픽셀 이내로 벗어난 VOC 박스는 [1, W] / [1, H] 로 잘라낸다.
"""

import dataclasses
import io
import os
import threading
import xml.parsers.expat

import numpy as np
import xmltodict
from PIL import Image, ImageFile

from frcnn.data import image_header

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
    "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)

# 이미지 밖으로 허용하는 VOC 픽셀 오차.
BOX_TOLERANCE_PIXELS = 1.0

ACCEPTED_IMAGE_FORMATS = ("JPEG", "PNG")

# `decode_image_checked` 가 PIL 의 잘린 이미지 허용 전역값을 잠깐 바꿀 때 쓰는 잠금.
_TRUNCATION_LOCK = threading.Lock()


class VocError(ValueError):
    """한 파일의 문제. str(err) == f"{path}: {problem}".

    Attributes:
      path: 문제가 있는 파일 경로 (또는 --classes 값).
      problem: 무엇이 잘못됐는지 설명하는 문장.
    """

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclasses.dataclass(frozen=True)
class VocAnnotation:
    """한 이미지의 검사된 VOC 주석.

    Attributes:
      image_id: 이미지 id, 예 '000005'.
      xml_path: 읽은 XML 파일 경로.
      image_path: <voc_dir>/JPEGImages/<XML 의 filename, 없으면 image_id + '.jpg'>.
      height: <size> 의 높이 H (픽셀).
      width: <size> 의 너비 W (픽셀).
      boxes: [G, 4] float32 연속 픽셀 박스 [ymin, xmin, ymax, xmax] (읽기 전용).
      class_names: [G] 클래스 이름.
      difficult: [G] bool, VOC difficult 표시 (읽기 전용).
      truncated: [G] bool, VOC truncated 표시 (읽기 전용).
    """

    image_id: str
    xml_path: str
    image_path: str
    height: int
    width: int
    boxes: np.ndarray
    class_names: tuple[str, ...]
    difficult: np.ndarray
    truncated: np.ndarray


def voc_to_boxes(voc_boxes) -> np.ndarray:
    """[G, 4] VOC 픽셀 (xmin, ymin, xmax, ymax) → [G, 4] float32 연속 픽셀 [ymin - 1, xmin - 1, ymax, xmax]."""
    voc_boxes = np.asarray(voc_boxes, dtype=np.float32).reshape(-1, 4)
    xmin, ymin, xmax, ymax = voc_boxes.T
    return np.stack([ymin - 1.0, xmin - 1.0, ymax, xmax], axis=1).astype(np.float32)


def boxes_to_voc(boxes_continuous) -> np.ndarray:
    """voc_to_boxes 의 역: [G, 4] 연속 픽셀 [ymin, xmin, ymax, xmax] → [G, 4] float32 VOC 픽셀
    (xmin + 1, ymin + 1, xmax, ymax)."""
    boxes_continuous = np.asarray(boxes_continuous, dtype=np.float32).reshape(-1, 4)
    ymin, xmin, ymax, xmax = boxes_continuous.T
    return np.stack([xmin + 1.0, ymin + 1.0, xmax, ymax], axis=1).astype(np.float32)


def read_split_ids(voc_dir: str, split: str) -> list[str]:
    """<voc_dir>/ImageSets/Main/<split>.txt 의 이미지 id 목록 (파일 순서, 빈 줄은 건너뜀) 을 읽는다.

    Raises:
      VocError: 파일이 없거나 읽을 수 없거나, 한 줄에 id 가 둘 이상일 때.
    """
    split_path = os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt")
    text = read_text(split_path, what="split file")
    image_ids = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) > 1:
            raise VocError(split_path, f"line {line_number}: expected one image id, got {line.strip()!r}")
        image_ids.append(words[0])
    return image_ids


def read_annotation(voc_dir: str, image_id: str) -> VocAnnotation:
    """Annotations/<image_id>.xml 을 xmltodict 로 읽고 검사한다.

    <object> 는 없거나 하나거나 여럿일 수 있다. <difficult>/<truncated> 가 없으면 False.
    이미지 밖으로 1 픽셀 이내로 벗어난 박스는 잘라내고, 그보다 크면 오류다.

    Raises:
      VocError: 파일 없음/읽기 실패, XML 문법 오류, <annotation> 루트 없음, <size> 오류,
        <name>/<bndbox>/좌표 누락, 숫자가 아닌 값, 뒤집힌 박스, 이미지 밖 박스.
    """
    xml_path = os.path.join(voc_dir, "Annotations", f"{image_id}.xml")
    root = _parse_xml_root(xml_path)
    width, height = _parse_size(xml_path, root)
    filename = _text(xml_path, root.get("filename"), "<filename>") or f"{image_id}.jpg"
    objects = root.get("object") or []
    parsed = [_parse_object(xml_path, obj, index, width, height) for index, obj in enumerate(objects)]
    voc_boxes = np.array([item[1] for item in parsed], dtype=np.float32).reshape(-1, 4)
    return VocAnnotation(
        image_id=image_id,
        xml_path=xml_path,
        image_path=os.path.join(voc_dir, "JPEGImages", filename),
        height=height,
        width=width,
        boxes=_read_only(voc_to_boxes(voc_boxes)),
        class_names=tuple(item[0] for item in parsed),
        difficult=_read_only(np.array([item[2] for item in parsed], dtype=bool)),
        truncated=_read_only(np.array([item[3] for item in parsed], dtype=bool)),
    )


def read_image_checked(annotation: VocAnnotation) -> bytes:
    """주석의 이미지 파일을 `read_image_file_checked` 로 읽는다 (크기는 XML <size> 와 비교)."""
    stated = f"the XML <size> {annotation.width}x{annotation.height} in {annotation.xml_path}"
    return read_image_file_checked(annotation.image_path, annotation.width, annotation.height, stated)


def read_image_file_checked(image_path: str, width: int, height: int, stated: str) -> bytes:
    """이미지 파일을 읽어 끝까지 디코딩하고 크기가 주석이 적은 (width, height) 와 같은지 검사한 뒤 원래 바이트
    (다시 인코딩하지 않음) 를 돌려준다. stated: 크기가 다를 때 메시지에 쓸 주석 쪽 설명 ("the XML <size> 40x30 in …").

    Raises:
      VocError: 파일 없음/읽기 실패, 손상되거나 잘린 이미지, JPEG/PNG 가 아님, 크기가 다를 때.
    """
    image_bytes = _read_bytes(image_path, what="image file")
    image_format, (decoded_width, decoded_height) = decode_image_checked(image_path, image_bytes)
    if image_format not in ACCEPTED_IMAGE_FORMATS:
        raise VocError(image_path, f"unsupported image format {image_format} (expected JPEG or PNG)")
    if (decoded_width, decoded_height) != (width, height):
        raise VocError(image_path, f"decoded image size {decoded_width}x{decoded_height} (WxH) differs from "
                                   f"{stated}")
    return image_bytes


def read_text(path: str, what: str) -> str:
    """UTF-8 텍스트 파일을 읽는다. 없거나 읽을 수 없으면 VocError."""
    try:
        return _read_bytes(path, what).decode("utf-8")
    except UnicodeDecodeError as error:
        raise VocError(path, f"{what} is not UTF-8 text") from error


def decode_image_checked(image_path: str, image_bytes: bytes) -> tuple:
    """이미지를 끝까지 디코딩해 (형식, (W, H)) 를 돌려준다. 잘린 파일도 오류로 본다.

    픽셀 예산: 디코딩하기 전에 머리의 크기가 PIL 의 `Image.MAX_IMAGE_PIXELS` (도구들이 --max_image_pixels 로
    정한다) 를 넘으면 "image of WxH pixels exceeds the pixel budget …" 로 거절한다 (압축 폭탄을 풀지 않는다).

    PIL 의 전역 `ImageFile.LOAD_TRUNCATED_IMAGES` 는 기본값(False)이면 건드리지 않는다 (여러 스레드가 동시에
    디코딩한다). 호출자가 True 로 켜 두었으면 잠금 안에서만 잠깐 끄고 되돌리므로 검사는 순서대로 돈다.
    """
    _check_budget(image_path, image_bytes)
    with _TRUNCATION_LOCK:
        if ImageFile.LOAD_TRUNCATED_IMAGES:
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            try:
                return _decode_fully(image_path, image_bytes)
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = True
    return _decode_fully(image_path, image_bytes)


def _check_budget(image_path: str, image_bytes: bytes) -> None:
    """머리의 픽셀이 PIL 의 한도 (`Image.MAX_IMAGE_PIXELS`, None 이면 검사하지 않음) 이하인지 (디코딩 없이)."""
    if Image.MAX_IMAGE_PIXELS is None:
        return
    try:
        image_header.check_pixels(image_bytes, Image.MAX_IMAGE_PIXELS)
    except image_header.PixelBudgetError as error:
        raise VocError(image_path, str(error)) from None
    except image_header.ImageHeaderError:
        pass  # 깨진 머리는 PIL 이 "corrupt or truncated image" 로 알린다


def _decode_fully(image_path: str, image_bytes: bytes) -> tuple:
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.load()
            return image.format, image.size
    except Image.DecompressionBombError as error:  # 머리를 읽지 못하는 형식 (PIL 자신의 폭탄 검사)
        raise VocError(image_path, f"exceeds the pixel budget of {Image.MAX_IMAGE_PIXELS} pixels "
                                   f"(--max_image_pixels): {error}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise VocError(image_path, f"corrupt or truncated image: {error}") from error


# ---------------------------------------------------------------- 내부 도우미


def _read_bytes(path: str, what: str) -> bytes:
    """파일 바이트를 읽는다. 없거나 읽을 수 없으면 VocError."""
    if not os.path.isfile(path):
        raise VocError(path, f"{what} not found")
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise VocError(path, f"cannot read {what}: {error.strerror or error}") from error


def _read_only(array: np.ndarray) -> np.ndarray:
    """frozen 주석 안의 배열이 바뀌지 않도록 쓰기를 막는다."""
    array.flags.writeable = False
    return array


def _parse_xml_root(xml_path: str) -> dict:
    """XML 을 파싱하고 <annotation> 루트의 dict 를 돌려준다 (<object> 는 항상 list)."""
    xml_bytes = _read_bytes(xml_path, what="annotation file")
    try:
        document = xmltodict.parse(xml_bytes, force_list=("object",))
    except xml.parsers.expat.ExpatError as error:
        raise VocError(xml_path, f"XML parse error: {error}") from error
    if "annotation" not in document:
        root_name = next(iter(document), None)
        raise VocError(xml_path, f"root element is <{root_name}>, expected <annotation>")
    root = document["annotation"]
    if not isinstance(root, dict):
        raise VocError(xml_path, "empty <annotation>")
    return root


def _text(xml_path: str, node, where: str):
    """요소의 텍스트(앞뒤 공백 제거)를 돌려준다. 요소가 없거나 비었으면 None."""
    if isinstance(node, dict):
        node = node.get("#text")
    if node is None:
        return None
    if not isinstance(node, str):
        raise VocError(xml_path, f"{where} appears more than once or is not plain text")
    return node.strip() or None


def _number(xml_path: str, node, where: str) -> float:
    """요소의 텍스트를 유한한 실수로 읽는다. 없거나 숫자가 아니면 VocError."""
    text = _text(xml_path, node, where)
    if text is None:
        raise VocError(xml_path, f"missing {where}")
    try:
        value = float(text)
    except ValueError as error:
        raise VocError(xml_path, f"{where} is not a number: {text!r}") from error
    if not np.isfinite(value):
        raise VocError(xml_path, f"{where} is not a finite number: {text!r}")
    return value


def _flag(xml_path: str, node, where: str) -> bool:
    """0/1 표시(<difficult>, <truncated>)를 읽는다. 없거나 비었으면 False."""
    if _text(xml_path, node, where) is None:
        return False
    value = _number(xml_path, node, where)
    if value not in (0.0, 1.0):
        raise VocError(xml_path, f"{where} must be 0 or 1, got {value:g}")
    return value == 1.0


def _parse_size(xml_path: str, root: dict) -> tuple:
    """<size> 의 (width, height) 를 양의 정수로 읽는다."""
    size = root.get("size")
    if not isinstance(size, dict):
        raise VocError(xml_path, "missing <size>")
    dimensions = []
    for key in ("width", "height"):
        where = f"<size>/<{key}>"
        value = _number(xml_path, size.get(key), where)
        if value <= 0 or value != int(value):
            raise VocError(xml_path, f"{where} must be a positive integer, got {value:g}")
        dimensions.append(int(value))
    return tuple(dimensions)


def _parse_object(xml_path: str, obj, index: int, width: int, height: int) -> tuple:
    """<object> 하나를 (이름, VOC 박스 [4], difficult, truncated) 로 읽고 검사한다."""
    where = f"<object> #{index + 1}"
    if not isinstance(obj, dict):
        raise VocError(xml_path, f"{where} is empty (no <name>)")
    name = _text(xml_path, obj.get("name"), f"{where} <name>")
    if name is None:
        raise VocError(xml_path, f"{where} has no <name>")
    where = f"{where} ({name!r})"
    bndbox = obj.get("bndbox")
    if not isinstance(bndbox, dict):
        raise VocError(xml_path, f"{where} has no <bndbox>")
    xmin, ymin, xmax, ymax = (
        _number(xml_path, bndbox.get(key), f"{where} <bndbox>/<{key}>")
        for key in ("xmin", "ymin", "xmax", "ymax"))
    voc_box = _check_and_clip_box(xml_path, where, (xmin, ymin, xmax, ymax), width, height)
    difficult = _flag(xml_path, obj.get("difficult"), f"{where} <difficult>")
    truncated = _flag(xml_path, obj.get("truncated"), f"{where} <truncated>")
    return name, voc_box, difficult, truncated


def _check_and_clip_box(xml_path: str, where: str, voc_box: tuple, width: int, height: int) -> tuple:
    """VOC 박스가 뒤집히지 않았고 이미지 안(1 픽셀 허용)인지 검사한 뒤 [1, W]/[1, H] 로 자른다."""
    xmin, ymin, xmax, ymax = voc_box
    box_text = f"(xmin={xmin:g}, ymin={ymin:g}, xmax={xmax:g}, ymax={ymax:g})"
    if xmax <= xmin or ymax <= ymin:
        raise VocError(xml_path, f"{where} has an empty or inverted box {box_text}")
    lowest = 1.0 - BOX_TOLERANCE_PIXELS
    outside = (xmin < lowest or ymin < lowest
               or xmax > width + BOX_TOLERANCE_PIXELS or ymax > height + BOX_TOLERANCE_PIXELS)
    if outside:
        raise VocError(xml_path, f"{where} box {box_text} lies outside the {width}x{height} "
                                 "image by more than one pixel")
    return (min(max(xmin, 1.0), width), min(max(ymin, 1.0), height),
            min(max(xmax, 1.0), width), min(max(ymax, 1.0), height))
