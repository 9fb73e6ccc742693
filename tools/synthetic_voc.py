"""결정적(deterministic) 합성 PASCAL VOC 형식 데이터셋 생성기.

PASCAL VOC 를 내려받을 수 없는 환경에서도 데모와 테스트가 돌아가도록, 모양(shape)으로
클래스가 정해지는 도형을 질감 있는 배경 위에 그린 VOC2007 형식의 표본 데이터셋을 만든다.
색은 인스턴스마다 크게 달라지므로 클래스를 가르는 것은 오직 모양이다. 같은 seed 는
바이트 단위로 같은 파일을 만든다.

용어:
    H: 이미지 높이(픽셀), W: 이미지 너비(픽셀).
    S: 도형 하나를 그리는 정사각형 패치의 한 변(픽셀).
    마스크: 도형이 그려진 픽셀이 True 인 bool 배열 [H, W].
    VOC 박스: (xmin, ymin, xmax, ymax), 1 부터 세는 포함(inclusive) 정수 픽셀 좌표.
        xmin = 그려진 첫 열 + 1, xmax = 그려진 마지막 열 + 1 (y 도 같다).
    truncated: 도형의 일부가 이미지 경계 밖으로 잘림.
    difficult: 보이는 박스의 긴 변이 DIFFICULT_MAX_SIDE 픽셀보다 작은 아주 작은 물체.

디렉터리 구성 (generate 의 결과):
    OUTPUT/VOC2007/JPEGImages/000001.jpg ...
    OUTPUT/VOC2007/Annotations/000001.xml ...
    OUTPUT/VOC2007/ImageSets/Main/{trainval,train,val,test}.txt
"""

import dataclasses
import sys
from pathlib import Path

import numpy as np
import tqdm
import xmltodict
from PIL import Image, ImageDraw

from frcnn import fileio

# 클래스 이름(정렬됨). 클래스 id 는 1..C 로 이 순서를 따른다.
CLASSES = ("circle", "cross", "ring", "square", "star", "triangle")

JPEG_QUALITY = 90
# 보이는 박스의 긴 변이 이 값보다 작으면 difficult.
DIFFICULT_MAX_SIDE = 10
# 배치할 때 두 물체 박스가 넘지 말아야 할 IoU 와 "교집합 / 작은 박스 넓이".
MAX_PAIR_IOU = 0.3
MAX_PAIR_CONTAINMENT = 0.4
# 위 물체에 가려진 뒤 남아야 하는 자기 픽셀의 최소 비율과 최소 개수.
MIN_VISIBLE_FRACTION = 0.6
MIN_VISIBLE_PIXELS = 8
# 물체 색과 그 아래 배경 평균의 채널 최대 차이 하한(0..255).
MIN_COLOUR_CONTRAST = 80.0
# 도형 안 명암 그라디언트의 최대 상대 진폭과 잡음 한계(채널 차이 하한보다 충분히 작다).
MAX_SHADING = 0.12
MAX_OBJECT_NOISE = 6.0
# 도형을 이 배율로 크게 그린 뒤 줄여서(면적 절반 기준) 가장자리를 매끈하게 만든다.
SUPERSAMPLING = 4
# 물체 크기 분포.
MIN_OBJECT_SIZE = 14
MAX_OBJECT_SIZE = 90
TINY_SIZE_RANGE = (5, 9)
TINY_PROBABILITY = 0.05
TRUNCATION_PROBABILITY = 0.15
EMPTY_IMAGE_PROBABILITY = 0.03
PORTRAIT_PROBABILITY = 0.2
MAX_ROTATION_DEGREES = 20.0
PLACEMENT_ATTEMPTS = 30

# 물체 수 1..5 의 확률(빈 이미지는 EMPTY_IMAGE_PROBABILITY 로 따로 뽑는다).
_OBJECT_COUNT_PROBABILITIES = (0.2, 0.25, 0.25, 0.17, 0.13)
_BACKGROUND_TEXTURES = ("noise", "stripes", "checker", "blobs", "clouds")
_POLYGON_CLASSES = ("cross", "square", "star", "triangle")


@dataclasses.dataclass(frozen=True)
class SyntheticObject:
    """이미지에 그려진 물체 하나의 VOC 주석.

    Attributes:
        name: 클래스 이름(CLASSES 의 원소).
        xmin, ymin, xmax, ymax: 보이는 픽셀의 첫·마지막 열/행 + 1 (VOC 1-based 포함 좌표).
        truncated: 도형 일부가 이미지 경계 밖으로 잘렸는지.
        difficult: 보이는 박스의 긴 변이 DIFFICULT_MAX_SIDE 보다 작은지.
    """

    name: str
    xmin: int
    ymin: int
    xmax: int
    ymax: int
    truncated: bool
    difficult: bool


@dataclasses.dataclass(frozen=True)
class _Placement:
    """배치 단계에서 정해진 물체: 클래스와 캔버스 위 마스크."""

    name: str
    mask: np.ndarray  # bool [H, W]
    truncated: bool


def _unit_polygon(class_name):
    """_POLYGON_CLASSES 의 단위 다각형: 중심이 원점, 반지름 약 1 인 float64 [V, 2] (x, y) 꼭짓점 (y 는 아래쪽이 +)."""
    if class_name == "square":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64)
    if class_name == "triangle":
        # 위를 가리키는 정삼각형에 가까운 모양, 세로 범위 [-0.87, 0.87] 로 가운데 맞춤.
        return np.array([[0, -0.87], [1, 0.87], [-1, 0.87]], np.float64)
    if class_name == "cross":
        arm = 0.34
        return np.array([
            [-arm, -1], [arm, -1], [arm, -arm], [1, -arm], [1, arm], [arm, arm],
            [arm, 1], [-arm, 1], [-arm, arm], [-1, arm], [-1, -arm], [-arm, -arm],
        ], np.float64)
    if class_name == "star":
        # 꼭짓점 5 개 별: 바깥 반지름 1, 안쪽 0.45, 세로 범위를 가운데로 옮긴다.
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        points[:, 1] += (1.0 - np.cos(np.pi / 5)) / 2
        return points
    raise ValueError(f"다각형 클래스가 아님: {class_name!r}")


def make_shape_mask(class_name, size, angle_degrees=0.0, aspect=1.0):
    """도형 하나를 정사각형 패치 가운데에 그린 bool 마스크를 만든다.

    size 는 회전·늘이기 전 도형의 가로·세로 범위(픽셀, > 0), angle_degrees 는 다각형 회전 각(도; 원과 고리는
    무시), aspect 는 가로 배율(세로는 1 / aspect).

    Returns:
        bool [S, S] 마스크, S 는 홀수이고 도형 중심이 패치 중심 (S // 2, S // 2) 이다.

    Raises:
        ValueError: class_name 이 CLASSES 에 없거나 size <= 0 일 때.
    """
    if class_name not in CLASSES:
        raise ValueError(f"알 수 없는 클래스 {class_name!r}; CLASSES = {CLASSES}")
    if size <= 0:
        raise ValueError(f"size 는 양수여야 함: {size}")
    side = 2 * int(np.ceil(size * 0.85)) + 3
    scale = SUPERSAMPLING
    canvas = Image.new("L", (side * scale, side * scale), 0)
    draw = ImageDraw.Draw(canvas)
    center = side * scale / 2.0
    half_x = size * scale / 2.0 * aspect
    half_y = size * scale / 2.0 / aspect
    if class_name in ("circle", "ring"):
        draw.ellipse([center - half_x, center - half_y, center + half_x, center + half_y], fill=255)
        if class_name == "ring":
            inner = 0.55
            draw.ellipse([center - inner * half_x, center - inner * half_y,
                          center + inner * half_x, center + inner * half_y], fill=0)
    else:
        points = _unit_polygon(class_name) * np.array([half_x, half_y])
        theta = np.deg2rad(angle_degrees)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        points = points @ rotation.T + center
        draw.polygon([tuple(point) for point in points], fill=255)
    # 초해상도로 그린 뒤 BOX 축소하면 각 픽셀 값이 덮인 비율이 된다; 절반 이상이면 도형 픽셀.
    coverage = np.asarray(canvas.resize((side, side), Image.Resampling.BOX))
    return coverage >= 128


def place_mask(shape_mask, center_x, center_y, height, width):
    """패치 마스크 bool [S, S] 를 H×W 캔버스의 (center_x, center_y) (정수 픽셀, 캔버스 밖이어도 된다) 에 놓고 경계
    밖을 잘라낸다. (bool [H, W] 마스크, 도형 픽셀 일부가 잘렸는지) 를 돌려준다."""
    side = shape_mask.shape[0]
    top = int(center_y) - side // 2
    left = int(center_x) - side // 2
    canvas_mask = np.zeros((height, width), bool)
    y0, y1 = max(top, 0), min(top + side, height)
    x0, x1 = max(left, 0), min(left + side, width)
    if y0 < y1 and x0 < x1:
        canvas_mask[y0:y1, x0:x1] = shape_mask[y0 - top:y1 - top, x0 - left:x1 - left]
    truncated = int(canvas_mask.sum()) < int(shape_mask.sum())
    return canvas_mask, truncated


def mask_to_voc_box(mask):
    """마스크 bool [H, W] 의 (하나 이상인) True 픽셀을 감싸는 가장 작은 VOC 박스 (xmin, ymin, xmax, ymax)."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    return int(columns[0]) + 1, int(rows[0]) + 1, int(columns[-1]) + 1, int(rows[-1]) + 1


def _annotate(class_name, visible_mask, truncated):
    """보이는 마스크로부터 SyntheticObject 주석을 만든다."""
    xmin, ymin, xmax, ymax = mask_to_voc_box(visible_mask)
    longer_side = max(xmax - xmin + 1, ymax - ymin + 1)
    return SyntheticObject(class_name, xmin, ymin, xmax, ymax, bool(truncated),
                           longer_side < DIFFICULT_MAX_SIDE)


def _pick_colour(rng, background_mean):
    """마스크 아래 배경 평균색 [3] 과 어떤 채널이 MIN_COLOUR_CONTRAST 이상 다른 무작위 RGB 색 float64 [3]."""
    colour = rng.uniform(0, 255, 3)
    if np.max(np.abs(colour - background_mean)) < MIN_COLOUR_CONTRAST:
        channel = rng.integers(3)
        if background_mean[channel] < 128:
            colour[channel] = background_mean[channel] + rng.uniform(100, 127)
        else:
            colour[channel] = background_mean[channel] - rng.uniform(100, 127)
    return colour


def paint_object(image, mask, rng):
    """마스크 픽셀을 배경과 대비되는 색(약한 명암·잡음 포함)으로 칠한다.

    색의 한 채널이 마스크 아래 배경 평균과 MIN_COLOUR_CONTRAST 이상 다르고 명암·잡음은
    그보다 작으므로, 평평한 배경이면 마스크의 모든 픽셀(그리고 그 픽셀만)이 바뀐다. image (float32 [H, W, 3],
    0..255) 는 제자리에서 수정된다.
    """
    colour = _pick_colour(rng, image[mask].mean(axis=0))
    rows, columns = np.nonzero(mask)
    # 도형 위를 가로지르는 선형 명암: 위치를 [-1, 1] 로 보고 임의 방향으로 기울인다.
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction) + 1e-9
    span = max(np.ptp(rows), np.ptp(columns), 1)
    position = ((rows - rows.mean()) * direction[0]
                + (columns - columns.mean()) * direction[1]) / span
    shading = 1.0 + rng.uniform(0, MAX_SHADING) * np.clip(2 * position, -1, 1)
    noise = np.clip(rng.normal(0, 3, (rows.size, 3)), -MAX_OBJECT_NOISE, MAX_OBJECT_NOISE)
    image[rows, columns] = np.clip(colour * shading[:, None] + noise, 0, 255)


def draw_object(image, class_name, center_x, center_y, size, rng, angle_degrees=0.0, aspect=1.0):
    """image (float32 [H, W, 3], 제자리 수정) 위에 도형 하나를 그리고 SyntheticObject 를 돌려준다 (가림 없는 단일
    물체용; 인자는 make_shape_mask·place_mask 의 것). 도형이 캔버스에 전혀 걸치지 않으면 None."""
    height, width = image.shape[:2]
    mask, truncated = place_mask(make_shape_mask(class_name, size, angle_degrees, aspect),
                                 center_x, center_y, height, width)
    if not mask.any():
        return None
    paint_object(image, mask, rng)
    return _annotate(class_name, mask, truncated)


def _image_size(rng):
    """4:3 근처의 이미지 크기 (height, width) 를 뽑는다; 약 20 % 는 세로 이미지."""
    longer = int(rng.integers(160, 241))
    shorter = int(round(longer * 0.75 * rng.uniform(0.93, 1.07)))
    if rng.random() < PORTRAIT_PROBABILITY:
        return longer, shorter
    return shorter, longer


def _add_texture(rng, image, texture, rows, columns):
    """배경 image(float32 [H, W, 3])에 질감 하나를 제자리에서 더한다."""
    height, width = image.shape[:2]
    if texture == "noise":
        image += rng.normal(0, rng.uniform(4, 14), image.shape).astype(np.float32)
    elif texture == "stripes":
        theta = rng.uniform(0, np.pi)
        phase = (columns * np.cos(theta) + rows * np.sin(theta)) / rng.uniform(6, 30)
        image += np.sin(2 * np.pi * phase)[..., None] * rng.uniform(-30, 30, 3).astype(np.float32)
    elif texture == "checker":
        cell = rng.uniform(8, 30)
        parity = ((rows // cell + columns // cell) % 2) * 2 - 1
        image += parity[..., None] * rng.uniform(-25, 25, 3).astype(np.float32)
    elif texture == "blobs":
        for _ in range(int(rng.integers(2, 7))):
            center_y, center_x = rng.uniform(0, height), rng.uniform(0, width)
            sigma = rng.uniform(10, 50)
            squared_distance = (rows - center_y) ** 2 + (columns - center_x) ** 2
            weight = np.exp(-squared_distance / (2 * sigma ** 2))
            weight = (weight * rng.uniform(0.3, 0.7))[..., None]
            image *= 1 - weight
            image += weight * rng.uniform(0, 255, 3).astype(np.float32)
    elif texture == "clouds":
        # 저해상도 무작위 격자를 부드럽게 키운 구름 무늬.
        coarse = rng.uniform(-1, 1, (int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3))
        coarse_image = Image.fromarray(((coarse + 1) * 127.5).astype(np.uint8))
        smooth = coarse_image.resize((width, height), Image.Resampling.BICUBIC)
        smooth = np.asarray(smooth, np.float32)
        image += (smooth / 127.5 - 1) * rng.uniform(10, 35)
    else:
        raise ValueError(f"알 수 없는 질감 {texture!r}")


def make_background(rng, height, width):
    """단색 또는 그라디언트 위에 질감 0~2 개와 약한 잡음, 가끔 가는 선을 얹은 배경 float32 [H, W, 3] (0..255)."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    start_colour = rng.uniform(0, 255, 3).astype(np.float32)
    image = np.broadcast_to(start_colour, (height, width, 3)).copy()
    if rng.random() < 0.6:
        theta = rng.uniform(0, 2 * np.pi)
        ramp = columns * np.cos(theta) + rows * np.sin(theta)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1.0)
        image += ramp[..., None] * (rng.uniform(0, 255, 3).astype(np.float32) - start_colour)
    num_textures = int(rng.choice(3, p=(0.15, 0.5, 0.35)))
    for texture in rng.choice(_BACKGROUND_TEXTURES, size=num_textures, replace=False):
        _add_texture(rng, image, str(texture), rows, columns)
    image += rng.normal(0, rng.uniform(1, 5), image.shape).astype(np.float32)
    image = np.clip(image, 0, 255)
    if rng.random() < 0.35:
        _draw_distractor_lines(rng, image)
    return image


def _draw_distractor_lines(rng, image):
    """클래스가 아닌 가는 선 1~3 개를 배경에 그린다(image float32 [H, W, 3] 제자리 수정)."""
    height, width = image.shape[:2]
    canvas = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 4))):
        points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height))) for _ in range(2)]
        colour = tuple(int(value) for value in rng.integers(0, 256, 3))
        draw.line(points, fill=colour, width=int(rng.integers(1, 3)))
    image[...] = np.asarray(canvas, np.float32)


def _sample_object_size(rng, height, width):
    """물체 크기(픽셀): 대부분 로그 균등 14..90(이미지에 맞게 제한), 가끔 5..9 의 아주 작은 것."""
    if rng.random() < TINY_PROBABILITY:
        return float(rng.integers(TINY_SIZE_RANGE[0], TINY_SIZE_RANGE[1] + 1)), True
    largest = min(MAX_OBJECT_SIZE, 0.55 * min(height, width))
    return float(np.exp(rng.uniform(np.log(MIN_OBJECT_SIZE), np.log(largest)))), False


def _sample_center(rng, shape_mask, height, width):
    """도형 패치 bool [S, S] 의 정수 중심 (x, y): 보통은 도형 전체가 H×W 이미지 안, TRUNCATION_PROBABILITY 로 한
    경계에 걸치게."""
    # 패치 중심에서 도형 픽셀 양 끝까지의 거리(왼/위는 음수).
    first_x, first_y, last_x, last_y = (value - 1 - shape_mask.shape[0] // 2
                                        for value in mask_to_voc_box(shape_mask))
    center_x = int(rng.integers(-first_x, max(width - last_x, -first_x + 1)))
    center_y = int(rng.integers(-first_y, max(height - last_y, -first_y + 1)))
    if rng.random() < TRUNCATION_PROBABILITY:
        # 한 경계 쪽 축으로 도형 범위의 40~85 % 만 보이게 한다.
        visible = rng.uniform(0.4, 0.85)
        side = int(rng.integers(4))
        if side == 0:
            center_x = int(round(-first_x - (1 - visible) * (last_x - first_x + 1)))
        elif side == 1:
            center_x = int(round(width - 1 - last_x + (1 - visible) * (last_x - first_x + 1)))
        elif side == 2:
            center_y = int(round(-first_y - (1 - visible) * (last_y - first_y + 1)))
        else:
            center_y = int(round(height - 1 - last_y + (1 - visible) * (last_y - first_y + 1)))
    return center_x, center_y


def _boxes_conflict(box, other):
    """두 VOC 박스의 IoU 또는 포함 비율이 허용치를 넘는지."""
    inter_w = min(box[2], other[2]) - max(box[0], other[0]) + 1
    inter_h = min(box[3], other[3]) - max(box[1], other[1]) + 1
    if inter_w <= 0 or inter_h <= 0:
        return False
    intersection = inter_w * inter_h
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
    other_area = (other[2] - other[0] + 1) * (other[3] - other[1] + 1)
    iou = intersection / (area + other_area - intersection)
    return iou >= MAX_PAIR_IOU or intersection / min(area, other_area) >= MAX_PAIR_CONTAINMENT


def _layout_objects(rng, height, width):
    """겹침 제한을 지키며 물체들을 배치한 _Placement 목록 (그리는 순서 = 목록 순서, 뒤가 위)."""
    if rng.random() < EMPTY_IMAGE_PROBABILITY:
        return []
    num_objects = 1 + int(rng.choice(len(_OBJECT_COUNT_PROBABILITIES),
                                     p=_OBJECT_COUNT_PROBABILITIES))
    placements, boxes = [], []
    for _ in range(num_objects):
        for _ in range(PLACEMENT_ATTEMPTS):
            class_name = CLASSES[int(rng.integers(len(CLASSES)))]
            size, tiny = _sample_object_size(rng, height, width)
            polygon = class_name in _POLYGON_CLASSES and not tiny
            angle = rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES) if polygon else 0.0
            aspect = 1.0 if tiny else rng.uniform(0.87, 1.15)
            shape_mask = make_shape_mask(class_name, size, angle, aspect)
            center_x, center_y = _sample_center(rng, shape_mask, height, width)
            mask, truncated = place_mask(shape_mask, center_x, center_y, height, width)
            if mask.sum() < MIN_VISIBLE_PIXELS:
                continue
            box = mask_to_voc_box(mask)
            if any(_boxes_conflict(box, other) for other in boxes):
                continue
            placements.append(_Placement(class_name, mask, truncated))
            boxes.append(box)
            break
    return placements


def _visible_placements(placements):
    """위 물체에 많이 가려지는 물체를 버리고, 남은 물체와 각자의 보이는 마스크를 돌려준다.

    위(목록 끝)에서 아래로 훑으며, 자기 픽셀의 MIN_VISIBLE_FRACTION 미만만 보이는 물체는
    그리지 않는다(그러므로 아래 물체를 가리지도 않는다).

    Returns:
        (placement, visible_mask bool [H, W]) 목록, 원래 그리는 순서.
    """
    if not placements:
        return []
    occupied = np.zeros_like(placements[0].mask)
    kept = []
    for placement in reversed(placements):
        visible = placement.mask & ~occupied
        visible_pixels = int(visible.sum())
        needed_pixels = max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * placement.mask.sum())
        if visible_pixels < needed_pixels:
            continue
        occupied |= placement.mask
        kept.append((placement, visible))
    return kept[::-1]


def render_image(rng):
    """합성 이미지 한 장: (uint8 [H, W, 3] RGB, SyntheticObject 목록 (그리는 순서)). 같은 rng 상태면 같은 결과."""
    height, width = _image_size(rng)
    image = make_background(rng, height, width)
    objects = []
    for placement, visible in _visible_placements(_layout_objects(rng, height, width)):
        paint_object(image, placement.mask, rng)
        objects.append(_annotate(placement.name, visible, placement.truncated))
    return np.round(image).astype(np.uint8), objects


def annotation_dict(image_id, height, width, objects):
    """VOC XML 과 같은 구조의 {"annotation": {...}} dict (xmltodict.unparse 용, 값은 모두 문자열)."""
    annotation = {
        "folder": "VOC2007",
        "filename": f"{image_id}.jpg",
        "source": {"database": "frcnn synthetic VOC", "annotation": "tools.synthetic_voc",
                   "image": "synthetic"},
        "size": {"width": str(width), "height": str(height), "depth": "3"},
        "segmented": "0",
    }
    if objects:
        annotation["object"] = [{
            "name": item.name,
            "pose": "Unspecified",
            "truncated": str(int(item.truncated)),
            "difficult": str(int(item.difficult)),
            "bndbox": {"xmin": str(item.xmin), "ymin": str(item.ymin),
                       "xmax": str(item.xmax), "ymax": str(item.ymax)},
        } for item in objects]
    return {"annotation": annotation}


def _split_ids(num_trainval, num_test, seed):
    """이미지 id 를 trainval/test 로, trainval 을 다시 train/val 반반으로 나눈다 (분할 이름 → 정렬된 id 목록)."""
    rng = np.random.default_rng([seed, 0])
    all_ids = [f"{index:06d}" for index in range(1, num_trainval + num_test + 1)]
    order = rng.permutation(len(all_ids))
    trainval = sorted(all_ids[i] for i in order[:num_trainval])
    test = sorted(all_ids[i] for i in order[num_trainval:])
    train_order = rng.permutation(num_trainval)
    train = sorted(trainval[i] for i in train_order[:num_trainval // 2])
    val = sorted(trainval[i] for i in train_order[num_trainval // 2:])
    return {"trainval": trainval, "train": train, "val": val, "test": test}


def _write_image(voc_dir, image_id, seed):
    """id 하나의 JPEG 과 XML 을 voc_dir 에 쓴다. 이미지마다 (seed, id) 로 난수를 시작한다."""
    rng = np.random.default_rng([seed, 1, int(image_id)])
    image, objects = render_image(rng)
    Image.fromarray(image).save(voc_dir / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY)
    xml_text = xmltodict.unparse(annotation_dict(image_id, image.shape[0], image.shape[1], objects),
                                 pretty=True)
    (voc_dir / "Annotations" / f"{image_id}.xml").write_text(xml_text + "\n", encoding="utf-8")


def _check_counts(num_trainval, num_test, seed):
    """생성 인자를 검사한다."""
    if num_trainval < 2:
        raise ValueError(f"num_trainval 은 2 이상이어야 함(train/val 분할): {num_trainval}")
    if num_test < 1:
        raise ValueError(f"num_test 는 1 이상이어야 함: {num_test}")
    if seed < 0:
        raise ValueError(f"seed 는 0 이상이어야 함: {seed}")


def generate(output_dir, num_trainval=400, num_test=200, seed=0, progress=True, overwrite=False):
    """OUTPUT/VOC2007 에 합성 VOC 데이터셋을 만든다.

    임시 디렉터리에 모두 쓴 뒤 이름을 바꾸므로 (`fileio.atomic_directory`) 실패하면 아무것도 남지 않는다.

    Args:
        output_dir: 출력 루트 디렉터리(없으면 만든다). 만들어진 OUTPUT/VOC2007 의 Path 를 돌려준다.
        num_trainval, num_test: trainval (>= 2, 반씩 train/val), test (>= 1) 이미지 수.
        seed: 난수 seed(>= 0). 같은 seed 면 바이트 단위로 같은 파일.
        progress: stderr 에 진행 막대를 보일지. overwrite: 비어 있지 않은 VOC2007 이 이미 있으면 바꿔 쓸지.

    Raises:
        ValueError: 인자가 범위를 벗어날 때.
        FileExistsError: 비어 있지 않은 VOC2007 이 이미 있고 overwrite 가 False 일 때.
    """
    _check_counts(num_trainval, num_test, seed)
    output_dir = Path(output_dir)
    voc_dir = output_dir / "VOC2007"
    if voc_dir.exists() and not overwrite and (not voc_dir.is_dir() or any(voc_dir.iterdir())):
        raise FileExistsError(f"{voc_dir} 가 이미 있고 비어 있지 않음; "
                              "바꿔 쓰려면 overwrite=True (--overwrite) 로 실행하라")
    with fileio.atomic_directory(voc_dir) as staging_dir:
        _write_dataset(Path(staging_dir), _split_ids(num_trainval, num_test, seed), seed, progress)
    return voc_dir


def _write_dataset(voc_dir, splits, seed, progress):
    """voc_dir 아래에 이미지, 주석, ImageSets/Main 분할 파일을 쓴다."""
    for name in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc_dir / name).mkdir(parents=True)
    all_ids = sorted(splits["trainval"] + splits["test"])
    for image_id in tqdm.tqdm(all_ids, desc="synthetic VOC", unit="image", file=sys.stderr,
                              disable=not progress):
        _write_image(voc_dir, image_id, seed)
    for split, ids in splits.items():
        (voc_dir / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{image_id}\n" for image_id in ids), encoding="utf-8")
