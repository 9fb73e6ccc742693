"""검출 결과를 RGB 배열 위에 그린다 (Pillow 사용). 파일은 다루지 않는다.

노트북의 `get_FasterRCNN_output` 은 cv2 로 채워진 사각형 하나만 그렸다. 여기서는 검출마다
클래스별 고정 색의 테두리 사각형과, 그 위에 "이름 점수" 라벨 상자를 그린다 (`draw_detections`).
이미지 파일 찾기, SavedModel 실행, 출력 파일 쓰기는 `tools/detect.py` (와 `tools/detect_io.py`) 의 일이다.

용어:
    H, W: 이미지 높이, 너비 (픽셀).
    N: 검출 수 (SavedModel 출력의 고정 길이, 뒤쪽은 패딩일 수 있음).
    K: 그릴 검출 수 (`select_detections` 가 고른 것).
    박스 형식: 정규화된 [ymin, xmin, ymax, xmax] (0~1, 입력 이미지 기준).
    연속 픽셀 좌표: 정규화 좌표 × (H 또는 W). 픽셀 i 는 구간 [i, i+1) 을 차지하므로,
        연속 박스 [y0, x0, y1, x1] 의 테두리 바깥 끝은 행 round(y0)..round(y1)-1,
        열 round(x0)..round(x1)-1 이다. 테두리는 이 바깥 끝에서 안쪽으로 두께만큼 그린다.
    클래스 이름: str 또는 UTF-8 bytes (SavedModel 의 string 출력 원소). 빈 이름은 패딩.
"""

import functools
import math
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# 서로 잘 구별되는 20색 팔레트 (Sasha Trubetskoy) 에서 회색·흰색 계열을 뺀 것.
PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
)
# 라벨 글자와 라벨 상자 가장자리 사이 여백 (픽셀).
LABEL_PADDING = 2
# 이 밝기(ITU-R 601 휘도)보다 밝은 배경에는 검은 글자, 아니면 흰 글자.
DARK_TEXT_LUMINANCE = 150.0


def class_color(class_name):
    """클래스 이름 (str 또는 UTF-8 bytes) 에 결정적으로 대응하는 `PALETTE` 의 (r, g, b).

    프로세스마다 달라지는 `hash()` 대신 CRC32 를 써서, 실행이 바뀌어도 같은 이름은 같은 색이다.
    """
    name = decode_class_name(class_name)
    return PALETTE[zlib.crc32(name.encode("utf-8")) % len(PALETTE)]


def line_width_for(height, width):
    """이미지 크기에 비례한 테두리 두께 (픽셀): max(1, round((H + W) / 400)). 예: 375×500 → 2, 64×64 → 1."""
    return max(1, _round_half_up((height + width) / 400.0))


def font_size_for(height, width):
    """이미지 크기에 비례한 라벨 글자 크기 (픽셀): max(10, round((H + W) / 60))."""
    return max(10, _round_half_up((height + width) / 60.0))


def select_detections(boxes, scores, class_names, num_detections=None,
                      score_threshold=0.0, classes=None):
    """그릴(보고할) 검출의 인덱스를 고른다.

    앞쪽 `num_detections` 개 안에 있고, 점수가 `score_threshold` 이상이며, 클래스 id 가 0(배경·패딩)이
    아니고 이름이 비어 있지 않으며, 박스 좌표가 유한한 검출만 남긴다.

    Args:
        boxes: float [N, 4] 정규화 [ymin, xmin, ymax, xmax].
        scores: float [N] 점수.
        class_names: 길이 N 의 클래스 이름 (str 또는 bytes).
        num_detections: 유효한 검출 수 (앞쪽부터). None 이면 N 전체.
        score_threshold: 이 값보다 낮은 점수의 검출은 버린다.
        classes: 선택. int [N] 1부터 시작하는 클래스 id; 0 인 검출은 버린다.

    Returns:
        int64 [K] 남은 검출의 인덱스 (원래 순서).

    Raises:
        ValueError: 배열 모양이 서로 맞지 않을 때.
    """
    boxes, scores = _check_detection_shapes(boxes, scores, class_names, classes)
    count = len(scores) if num_detections is None else int(num_detections)
    keep = np.arange(len(scores)) < max(0, count)
    keep &= scores >= score_threshold
    keep &= np.all(np.isfinite(boxes), axis=1)
    keep &= np.array([len(decode_class_name(name)) > 0 for name in class_names], dtype=bool)
    if classes is not None:
        keep &= np.asarray(classes).reshape(-1) != 0
    return np.flatnonzero(keep)


def draw_detections(image, boxes, scores, class_names, num_detections=None,
                    score_threshold=0.0, classes=None):
    """검출 박스와 "이름 점수" 라벨을 그린 새 이미지를 돌려준다 (입력은 바꾸지 않는다).

    점수가 높은 검출이 위에 보이도록 낮은 점수부터 그린다. 라벨 상자는 박스 위쪽 바깥에 붙이고,
    박스가 이미지 위쪽 경계에 닿아 자리가 없으면 박스 안쪽 위에 붙인다.

    image 는 uint8 [H, W, 3] RGB, 나머지 인자는 `select_detections` 의 것 (그것이 고른 검출만 그린다).

    Raises:
        ValueError: 이미지가 uint8 [H, W, 3] 이 아니거나 검출 배열 모양이 맞지 않을 때.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    indices = select_detections(boxes, scores, class_names, num_detections,
                                score_threshold, classes)
    height, width = image.shape[:2]
    canvas = Image.fromarray(np.ascontiguousarray(image))
    image_draw = ImageDraw.Draw(canvas)
    order = indices[np.argsort(np.asarray(scores, np.float64)[indices], kind="stable")]
    for index in order:
        name = decode_class_name(class_names[index])
        rectangle = _pixel_rectangle(np.asarray(boxes[index], np.float64), height, width)
        color = class_color(name)
        image_draw.rectangle(rectangle, outline=color, width=line_width_for(height, width))
        _draw_label(image_draw, rectangle, f"{name} {float(scores[index]):.2f}", color,
                    (height, width))
    return np.asarray(canvas, dtype=np.uint8).copy()


def _draw_label(image_draw, rectangle, text, color, image_size):
    """박스 `rectangle` 의 왼쪽 위에 색 `color` 로 채운 라벨 상자와 글자를 그린다."""
    height, width = image_size
    left, top, _, _ = rectangle
    font = _font(font_size_for(height, width))
    ascent, descent = font.getmetrics()
    label_height = ascent + descent + 2 * LABEL_PADDING
    label_width = math.ceil(image_draw.textlength(text, font=font)) + 2 * LABEL_PADDING
    # 위쪽 바깥에 자리가 있으면 박스 위, 없으면 박스 안쪽 위.
    label_top = top - label_height if top >= label_height else top
    label_left = max(0, min(left, width - label_width))
    image_draw.rectangle(
        [label_left, label_top, label_left + label_width - 1, label_top + label_height - 1],
        fill=color)
    image_draw.text((label_left + LABEL_PADDING, label_top + LABEL_PADDING), text,
                    fill=_text_color(color), font=font)


def _pixel_rectangle(box, height, width):
    """정규화 박스를 PIL 사각형 [left, top, right, bottom] (0부터, 양끝 포함) 으로 바꾼다."""
    ymin, xmin, ymax, xmax = np.clip(box, 0.0, 1.0)
    top = min(_round_half_up(ymin * height), height - 1)
    left = min(_round_half_up(xmin * width), width - 1)
    bottom = max(_round_half_up(ymax * height) - 1, top)
    right = max(_round_half_up(xmax * width) - 1, left)
    return [left, top, right, bottom]


def _text_color(background):
    """배경색 위에서 읽기 쉬운 글자색 (검정 또는 흰색)."""
    red, green, blue = background
    luminance = 0.299 * red + 0.587 * green + 0.114 * blue
    return (0, 0, 0) if luminance > DARK_TEXT_LUMINANCE else (255, 255, 255)


@functools.lru_cache(maxsize=16)
def _font(size):
    """Pillow 기본 글꼴 (FreeType 이 있으면 크기 조절 가능한 Aileron)."""
    return ImageFont.load_default(size=size)


def _check_detection_shapes(boxes, scores, class_names, classes):
    """검출 배열들의 모양을 확인하고 float64 numpy 배열로 돌려준다."""
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4], got {list(boxes.shape)}")
    count = boxes.shape[0]
    if scores.shape != (count,) or len(class_names) != count:
        raise ValueError(
            f"scores {list(scores.shape)} and class_names (length {len(class_names)}) "
            f"must match boxes [N={count}, 4]")
    if classes is not None and np.asarray(classes).reshape(-1).shape != (count,):
        raise ValueError(f"classes must be [N={count}], got {list(np.shape(classes))}")
    return boxes, scores


def decode_class_name(class_name):
    """클래스 이름 (str, bytes, numpy bytes_) 을 str 로: bytes 는 UTF-8 로 풀고 (잘못된 바이트는 U+FFFD)."""
    if isinstance(class_name, (bytes, np.bytes_)):
        return bytes(class_name).decode("utf-8", errors="replace")
    return str(class_name)


def _round_half_up(value):
    """0.5 를 위로 올리는 반올림 (파이썬 round 의 은행가 반올림 대신)."""
    return int(math.floor(value + 0.5))
