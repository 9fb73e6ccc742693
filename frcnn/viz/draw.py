"""검출 결과를 이미지 위에 그리는 모듈 (Pillow 사용) 과, 이미지 파일에 대한 검출·그리기.

노트북의 `get_FasterRCNN_output` 은 cv2 로 채워진 사각형 하나만 그렸다. 여기서는 검출마다
클래스별 고정 색의 테두리 사각형과, 그 위에 "이름 점수" 라벨 상자를 그린다 (`draw_detections`).
`detect_images` 는 내보낸 SavedModel 의 `serve_bytes` 시그니처에 이미지 파일의 원본 바이트를 넣고,
그린 이미지 `<stem>_detections.<png|jpg>` 와 모든 검출을 모은 `detections.json` 을 쓴다.
출력은 임시 이름으로 쓴 뒤 모든 이미지가 끝나면 한꺼번에 이름을 바꾸므로, 중간에 실패하면
아무 출력도 남지 않는다. `tools/detect.py` 가 이 함수를 부른다.

용어:
    H, W: 이미지 높이, 너비 (픽셀).
    N: 검출 수 (SavedModel 출력의 고정 길이, 뒤쪽은 패딩일 수 있음).
    박스 형식: 정규화된 [ymin, xmin, ymax, xmax] (0~1, 입력 이미지 기준).
    연속 픽셀 좌표: 정규화 좌표 × (H 또는 W). 픽셀 i 는 구간 [i, i+1) 을 차지하므로,
        연속 박스 [y0, x0, y1, x1] 의 테두리 바깥 끝은 행 round(y0)..round(y1)-1,
        열 round(x0)..round(x1)-1 이다. 테두리는 이 바깥 끝에서 안쪽으로 두께만큼 그린다.
    box_pixels (detections.json): 연속 픽셀 좌표 [ymin, xmin, ymax, xmax]
        = 정규화 좌표 × [H, W, H, W]. VOC 픽셀(1부터, 양끝 포함)로는 xmin+1, ymin+1, xmax, ymax.
"""

import functools
import glob
import io
import json
import math
import os
import sys
import uuid
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

# 서로 잘 구별되는 20색 팔레트 (Sasha Trubetskoy) 에서 회색·흰색 계열을 뺀 것.
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
)
# 라벨 글자와 라벨 상자 가장자리 사이 여백 (픽셀).
LABEL_PADDING = 2
# 이 밝기(ITU-R 601 휘도)보다 밝은 배경에는 검은 글자, 아니면 흰 글자.
DARK_TEXT_LUMINANCE = 150.0


def class_color(class_name):
    """클래스 이름에 결정적으로 대응하는 팔레트 색을 고른다.

    프로세스마다 달라지는 `hash()` 대신 CRC32 를 써서, 실행이 바뀌어도 같은 이름은 같은 색이다.

    Args:
        class_name: 클래스 이름 (str 또는 UTF-8 bytes).

    Returns:
        (r, g, b) 정수 튜플, `PALETTE` 의 한 원소.
    """
    name = decode_class_name(class_name)
    return PALETTE[zlib.crc32(name.encode("utf-8")) % len(PALETTE)]


def line_width_for(height, width):
    """이미지 크기에 비례한 테두리 두께: max(1, round((H + W) / 400)).

    예: 375×500 VOC 이미지 → 2, 750×1000 → 4, 64×64 → 1.

    Args:
        height: 이미지 높이 H (픽셀).
        width: 이미지 너비 W (픽셀).

    Returns:
        테두리 두께 (픽셀, 1 이상의 int).
    """
    return max(1, _round_half_up((height + width) / 400.0))


def font_size_for(height, width):
    """이미지 크기에 비례한 라벨 글자 크기: max(10, round((H + W) / 60)).

    Args:
        height: 이미지 높이 H (픽셀).
        width: 이미지 너비 W (픽셀).

    Returns:
        글자 크기 (픽셀, 10 이상의 int).
    """
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

    Args:
        image: uint8 [H, W, 3] RGB 이미지.
        boxes: float [N, 4] 정규화 [ymin, xmin, ymax, xmax].
        scores: float [N] 점수.
        class_names: 길이 N 의 클래스 이름 (str 또는 bytes).
        num_detections: 유효한 검출 수 (앞쪽부터). None 이면 N 전체.
        score_threshold: 이 값보다 낮은 점수의 검출은 그리지 않는다.
        classes: 선택. int [N] 클래스 id; 0(패딩) 인 검출은 그리지 않는다.

    Returns:
        uint8 [H, W, 3] 검출이 그려진 이미지.

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
    """클래스 이름을 str 로: bytes 는 UTF-8 로 풀고 (잘못된 바이트는 U+FFFD), str 은 그대로.

    Args:
        class_name: str, bytes 또는 numpy bytes_ (SavedModel 의 string 출력 원소).

    Returns:
        str 클래스 이름.
    """
    if isinstance(class_name, (bytes, np.bytes_)):
        return bytes(class_name).decode("utf-8", errors="replace")
    return str(class_name)


def _round_half_up(value):
    """0.5 를 위로 올리는 반올림 (파이썬 round 의 은행가 반올림 대신)."""
    return int(math.floor(value + 0.5))


# ---- 파일 단위: SavedModel 로 이미지 파일을 검출하고 그린 결과를 쓴다 ----

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
GLOB_CHARACTERS = "*?["
SIGNATURE_NAME = "serve_bytes"
OUTPUT_KEYS = ("detection_boxes", "detection_scores", "detection_classes",
               "detection_class_names", "num_detections")
JSON_NAME = "detections.json"
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG"}
# 요약 줄에 보여줄 최고 점수 검출 수.
SUMMARY_TOP_K = 3


class DetectionInputError(Exception):
    """입력 이미지·SavedModel·출력 디렉터리 문제. 메시지는 파일 이름과 원인을 담은 한 줄."""


def resolve_image_paths(images_spec):
    """이미지 지정 문자열 (도구의 `--images` 값) 을 이미지 파일 경로 목록으로 푼다.

    Args:
        images_spec: 파일, 쉼표로 구분한 목록, 디렉터리, 또는 glob 패턴.

    Returns:
        중복 없는 파일 경로 list (디렉터리와 glob 은 이름순, 목록은 주어진 순서).

    Raises:
        DetectionInputError: 파일이 없거나, 디렉터리에 이미지가 없거나, glob 에 맞는 파일이 없을 때.
    """
    paths = []
    for item in images_spec.split(","):
        item = item.strip()
        if item:
            paths.extend(_resolve_one_item(item))
    if not paths:
        raise DetectionInputError(f"no images matched {images_spec!r}")
    return list(dict.fromkeys(paths))


def _resolve_one_item(item):
    """파일 하나, 디렉터리 하나, 또는 glob 패턴 하나를 파일 경로 목록으로 푼다."""
    if os.path.isdir(item):
        names = sorted(name for name in os.listdir(item)
                       if name.lower().endswith(IMAGE_EXTENSIONS)
                       and os.path.isfile(os.path.join(item, name)))
        if not names:
            raise DetectionInputError(f"{item}: directory has no .jpg/.jpeg/.png images")
        return [os.path.join(item, name) for name in names]
    if any(character in item for character in GLOB_CHARACTERS):
        matches = sorted(path for path in glob.glob(item) if os.path.isfile(path))
        if not matches:
            raise DetectionInputError(f"{item}: glob pattern matched no files")
        return matches
    if not os.path.isfile(item):
        raise DetectionInputError(f"{item}: image file not found")
    return [item]


def output_name(image_path, image_format):
    """입력 경로 `a/b/cat.jpeg` → 출력 이름 `cat_detections.<image_format>`."""
    stem = os.path.splitext(os.path.basename(image_path))[0]
    return f"{stem}_detections.{image_format}"


def _check_unique_outputs(image_paths, image_format):
    """서로 다른 입력이 같은 출력 이름(같은 stem)을 갖지 않는지 확인한다."""
    owners = {}
    for path in image_paths:
        name = output_name(path, image_format)
        if name in owners:
            raise DetectionInputError(
                f"{path} and {owners[name]} would both be written to {name}; rename one of them")
        owners[name] = path


def load_serve_bytes(saved_model_dir):
    """SavedModel 을 읽고 `serve_bytes` 시그니처 함수를 돌려준다.

    Raises:
        DetectionInputError: 디렉터리가 없거나, SavedModel 이 아니거나, 시그니처가 없을 때.
    """
    if not os.path.isdir(saved_model_dir):
        raise DetectionInputError(f"{saved_model_dir}: SavedModel directory not found")
    try:
        model = tf.saved_model.load(saved_model_dir)
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise DetectionInputError(
            f"{saved_model_dir}: cannot load SavedModel: {_first_line(error)}") from error
    if SIGNATURE_NAME not in model.signatures:
        available = ", ".join(sorted(model.signatures)) or "none"
        raise DetectionInputError(f"{saved_model_dir}: SavedModel has no '{SIGNATURE_NAME}' "
                                  f"signature (has: {available})")
    return model.signatures[SIGNATURE_NAME]


def read_image(image_path):
    """이미지 파일의 원본 바이트와 디코딩한 RGB 배열을 읽는다.

    Returns:
        (bytes, uint8 [H, W, 3]) 튜플.

    Raises:
        DetectionInputError: 읽을 수 없거나 JPEG/PNG 가 아니거나 깨진 파일일 때.
    """
    try:
        with open(image_path, "rb") as image_file:
            image_bytes = image_file.read()
        with Image.open(io.BytesIO(image_bytes)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise DetectionInputError(f"{image_path}: unsupported image format "
                                          f"{image.format} (expected JPEG or PNG)")
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DetectionInputError(f"{image_path}: cannot read image: {error}") from error
    return image_bytes, pixels


def run_detector(serve_bytes, image_bytes, image_path):
    """이미지 한 장의 바이트로 `serve_bytes` 를 돌려 배치 차원을 뺀 numpy 출력을 돌려준다.

    Returns:
        dict: detection_boxes float32 [N, 4], detection_scores float32 [N],
        detection_classes int32 [N], detection_class_names bytes [N], num_detections int.

    Raises:
        DetectionInputError: 모델이 이미지를 처리하지 못했거나 출력 키가 빠졌을 때.
    """
    try:
        outputs = serve_bytes(image_bytes=tf.constant([image_bytes]))
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise DetectionInputError(
            f"{image_path}: the model could not process it: {_first_line(error)}") from error
    missing = [key for key in OUTPUT_KEYS if key not in outputs]
    if missing:
        raise DetectionInputError(f"{SIGNATURE_NAME} outputs lack {', '.join(missing)}")
    return {key: outputs[key].numpy()[0] for key in OUTPUT_KEYS}


def detection_record(image_path, image_shape, detections, indices, image_format):
    """detections.json 의 이미지 한 장 항목을 만든다 (`indices` 의 검출만, 점수 높은 순)."""
    height, width = image_shape
    scale = np.array([height, width, height, width], dtype=np.float64)
    scores = detections["detection_scores"]
    indices = indices[np.argsort(-scores[indices], kind="stable")]
    records = []
    for index in indices:
        box = detections["detection_boxes"][index].astype(np.float64)
        records.append({
            "class_id": int(detections["detection_classes"][index]),
            "class_name": decode_class_name(detections["detection_class_names"][index]),
            "score": round(float(scores[index]), 6),
            "box_normalized": [round(value, 6) for value in box.tolist()],
            "box_pixels": [round(value, 2) for value in (box * scale).tolist()],
        })
    return {"image": image_path, "output": output_name(image_path, image_format),
            "height": height, "width": width, "num_detections": len(records),
            "detections": records}


def summary_line(record):
    """한 이미지의 요약 한 줄: 파일, 검출 수, 점수 높은 클래스들."""
    top = ", ".join(f"{item['class_name']} {item['score']:.2f}"
                    for item in record["detections"][:SUMMARY_TOP_K])
    count = record["num_detections"]
    return f"{record['image']}: {count} detection{'' if count == 1 else 's'}" + (
        f" ({top})" if top else "")


def _write_temporary(output_dir, final_name, write):
    """`write(path)` 로 숨김 임시 파일을 쓰고 (임시 경로, 최종 경로) 를 돌려준다.

    `tempfile.mkstemp` 는 권한을 0600 으로 만들기 때문에 쓰지 않는다: 임시 파일은 보통 파일처럼
    umask 를 따르고, 이름을 바꾼 뒤에도 그 권한이 남는다.

    Raises:
        DetectionInputError: 임시 파일을 쓰지 못했을 때 (쓰다 만 임시 파일은 지운다).
    """
    final_path = os.path.join(output_dir, final_name)
    temporary_path = os.path.join(output_dir, f".{final_name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary_path)
    except BaseException as error:
        if os.path.exists(temporary_path):
            os.remove(temporary_path)
        if isinstance(error, OSError):
            raise DetectionInputError(f"{final_path}: cannot write: {error}") from error
        raise
    return temporary_path, final_path


def _save_image(pixels, path, image_format):
    """uint8 [H, W, 3] 이미지를 `image_format` (png 또는 jpg, 품질 95) 으로 저장한다."""
    options = {"quality": 95} if image_format == "jpg" else {}
    Image.fromarray(pixels).save(path, format=PIL_FORMATS[image_format], **options)


def _save_json(report, path):
    """보고서 dict 를 UTF-8 JSON 으로 저장한다."""
    with open(path, "w", encoding="utf-8") as json_file:
        json.dump(report, json_file, ensure_ascii=False, indent=2)


def detect_one(serve_bytes, image_path, score_threshold, image_format, output_dir):
    """이미지 한 장: 읽기 → 검출 → 그리기 → 임시 파일 쓰기. (json 항목, (임시, 최종) 경로) 반환."""
    image_bytes, pixels = read_image(image_path)
    detections = run_detector(serve_bytes, image_bytes, image_path)
    detection_arrays = {
        "boxes": detections["detection_boxes"],
        "scores": detections["detection_scores"],
        "class_names": detections["detection_class_names"],
        "num_detections": int(detections["num_detections"]),
        "score_threshold": score_threshold,
        "classes": detections["detection_classes"],
    }
    indices = select_detections(**detection_arrays)
    drawn = draw_detections(pixels, **detection_arrays)
    record = detection_record(image_path, pixels.shape[:2], detections, indices, image_format)
    paths = _write_temporary(output_dir, record["output"],
                             lambda path: _save_image(drawn, path, image_format))
    return record, paths


def detect_images(saved_model_dir, image_paths, output_dir, score_threshold, image_format):
    """이미지들에 검출을 돌려 그린 이미지와 detections.json 을 `output_dir` 에 쓴다.

    모든 파일을 임시 이름으로 쓰고, 전부 성공한 뒤에만 최종 이름으로 바꾼다. 실패하면 임시
    파일을 지우고 예외를 그대로 올린다.

    Args:
        saved_model_dir: `serve_bytes` 시그니처가 있는 SavedModel 디렉터리.
        image_paths: JPEG/PNG 파일 경로 list.
        output_dir: 출력 디렉터리 (없으면 만든다).
        score_threshold: 이보다 낮은 점수의 검출은 버린다.
        image_format: "png" 또는 "jpg".

    Returns:
        detections.json 에 쓴 dict.

    Raises:
        DetectionInputError: 입력 이미지, 모델, 출력 디렉터리 문제.
    """
    _check_unique_outputs(image_paths, image_format)
    serve_bytes = load_serve_bytes(saved_model_dir)
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise DetectionInputError(
            f"{output_dir}: cannot create output directory: {error}") from error
    report = {"saved_model": saved_model_dir, "score_threshold": score_threshold, "images": []}
    pending = []
    try:
        for image_path in tqdm(image_paths, desc="detect", unit="image", file=sys.stderr):
            record, paths = detect_one(serve_bytes, image_path, score_threshold,
                                       image_format, output_dir)
            pending.append(paths)
            report["images"].append(record)
            tqdm.write(summary_line(record), file=sys.stdout)
        pending.append(_write_temporary(output_dir, JSON_NAME,
                                        lambda path: _save_json(report, path)))
    except BaseException:
        for temporary_path, _ in pending:
            os.remove(temporary_path)
        raise
    for temporary_path, final_path in pending:
        os.replace(temporary_path, final_path)
    return report


def _first_line(error):
    """예외 메시지의 첫 줄 (TensorFlow 오류는 여러 줄의 그래프 추적을 붙인다)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
