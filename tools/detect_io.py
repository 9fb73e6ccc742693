"""`tools/detect` 의 파일 작업: 이미지 경로 풀기, SavedModel 실행, 그린 이미지와 detections.json 쓰기.

`detect_images` 가 이미지 파일마다 원본 바이트를 SavedModel 의 `serve_bytes` 시그니처에 넣고,
`frcnn.viz.draw.draw_detections` 로 그린 `<stem>_detections.<png|jpg>` 와 모든 검출을 모은
`detections.json` 을 `frcnn.fileio.staged_files` 로 쓴다: 모든 이미지가 끝난 뒤에만 한꺼번에 제 이름이
되므로, 중간에 실패하면 아무 출력도 남지 않는다. 문제는 `DetectionInputError("<파일>: <문제>")` 로 알린다.

용어:
    H, W: 이미지 높이, 너비 (픽셀).
    N: SavedModel 이 돌려주는 검출 수 (고정 길이, 뒤쪽은 패딩일 수 있음).
    K: 그리고 보고하는 검출 수 (점수 문턱값 이상, 패딩 아님).
    박스 형식: 정규화된 [ymin, xmin, ymax, xmax] (0~1, 입력 이미지 기준).
    box_pixels (detections.json): 연속 픽셀 좌표 [ymin, xmin, ymax, xmax]
        = 정규화 좌표 × [H, W, H, W]. VOC 픽셀(1부터, 양끝 포함)로는 xmin+1, ymin+1, xmax, ymax.
    stem: 입력 파일 이름에서 확장자를 뺀 것 (`a/b/cat.jpeg` → `cat`).
"""

import glob
import io
import os
import sys

import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from frcnn import fileio
from frcnn.data import image_header
from frcnn.export import loader
from frcnn.export import signature
from frcnn.viz import draw
from tools import _quiet

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
GLOB_CHARACTERS = "*?["
JSON_NAME = "detections.json"
PIL_FORMATS = {"png": "PNG", "jpg": "JPEG"}
# 요약 줄에 보여줄 최고 점수 검출 수.
SUMMARY_TOP_K = 3


class DetectionInputError(Exception):
    """입력 이미지·SavedModel·출력 디렉터리 문제. 메시지는 파일 이름과 원인을 담은 한 줄."""


def resolve_image_paths(images_spec):
    """`--images` 값 (파일, 쉼표 목록, 디렉터리, glob 패턴) 을 중복 없는 파일 경로 list 로 푼다 (디렉터리와 glob 은
    이름순, 목록은 주어진 순서).

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


def check_unique_outputs(image_paths, image_format):
    """서로 다른 입력이 같은 출력 이름 (같은 stem) 을 가지면 DetectionInputError."""
    owners = {}
    for path in image_paths:
        name = output_name(path, image_format)
        if name in owners:
            raise DetectionInputError(
                f"{path} and {owners[name]} would both be written to {name}; rename one of them")
        owners[name] = path


def load_serve_bytes(saved_model_dir, num_threads=None):
    """`frcnn.export.loader.load` 가 읽은 모델의 `serve_bytes` (JPEG/PNG 바이트 B 개 → numpy 출력 dict).
    loader 의 오류 (없는 모델·시그니처, 런타임 없음) 는 DetectionInputError 로."""
    try:
        return loader.load(saved_model_dir, (signature.SERVE_BYTES,), num_threads).serve_bytes
    except (ValueError, ImportError) as error:
        raise DetectionInputError(str(error)) from error


def _check_budget(image_path, image_bytes):
    """디코딩 전에 머리의 픽셀이 PIL 의 한도 (`Image.MAX_IMAGE_PIXELS` = --max_image_pixels) 이하인지."""
    if Image.MAX_IMAGE_PIXELS is None:
        return
    try:
        image_header.check_pixels(image_bytes, Image.MAX_IMAGE_PIXELS)
    except image_header.PixelBudgetError as error:
        raise DetectionInputError(f"{image_path}: {error}") from error
    except image_header.ImageHeaderError as error:
        raise DetectionInputError(f"{image_path}: cannot read image: {error}") from error


def read_image(image_path):
    """이미지 파일의 (원본 bytes, 디코딩한 RGB uint8 [H, W, 3]). 읽을 수 없거나 JPEG/PNG 가 아니거나 깨진 파일,
    픽셀 예산을 넘는 파일은 DetectionInputError."""
    try:
        with open(image_path, "rb") as image_file:
            image_bytes = image_file.read()
        _check_budget(image_path, image_bytes)
        with Image.open(io.BytesIO(image_bytes)) as image:
            if image.format not in ("JPEG", "PNG"):
                raise DetectionInputError(f"{image_path}: unsupported image format "
                                          f"{image.format} (expected JPEG or PNG)")
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DetectionInputError(f"{image_path}: cannot read image: {error}") from error
    return image_bytes, pixels


def run_detector(serve_bytes, image_bytes, image_path):
    """이미지 한 장의 바이트로 `serve_bytes` 를 돌려 배치 차원을 뺀 출력 dict (signature.OUTPUT_NAMES: 박스 [N, 4],
    점수·클래스·이름 [N], 검출 수) 를 돌려준다. 모델이 처리하지 못했거나 출력이 빠지면 DetectionInputError."""
    try:
        outputs = serve_bytes([image_bytes])
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise DetectionInputError(
            f"{image_path}: the model could not process it: {loader.first_error_line(error)}") from error
    missing = [key for key in signature.OUTPUT_NAMES if key not in outputs]
    if missing:
        raise DetectionInputError(f"{signature.SERVE_BYTES} outputs lack {', '.join(missing)}")
    return {key: outputs[key][0] for key in signature.OUTPUT_NAMES}


def detection_record(image_path, image_shape, detections, indices, image_format):
    """detections.json 의 이미지 한 장 항목을 만든다 (`indices` 의 검출만, 점수 높은 순).

    detections 는 `run_detector` 의 dict, indices 는 int [K] (`draw.select_detections`), image_shape 는 (H, W).
    항목 키: image, output, height, width, num_detections (= K), detections (K 개 dict).
    """
    height, width = image_shape
    scale = np.array([height, width, height, width], dtype=np.float64)
    scores = detections[signature.SCORES]
    indices = indices[np.argsort(-scores[indices], kind="stable")]
    records = []
    for index in indices:
        box = detections[signature.BOXES][index].astype(np.float64)
        records.append({
            "class_id": int(detections[signature.CLASSES][index]),
            "class_name": draw.decode_class_name(detections[signature.CLASS_NAMES][index]),
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


def detect_one(serve_bytes, image_path, score_threshold, image_format):
    """이미지 한 장: 읽기 → 검출 → 그리기. (detections.json 항목 dict, 그린 uint8 [H, W, 3]) 을 돌려준다."""
    image_bytes, pixels = read_image(image_path)
    detections = run_detector(serve_bytes, image_bytes, image_path)
    detection_arrays = {
        "boxes": detections[signature.BOXES],
        "scores": detections[signature.SCORES],
        "class_names": detections[signature.CLASS_NAMES],
        "num_detections": int(detections[signature.NUM_DETECTIONS]),
        "score_threshold": score_threshold,
        "classes": detections[signature.CLASSES],
    }
    indices = draw.select_detections(**detection_arrays)
    drawn = draw.draw_detections(pixels, **detection_arrays)
    record = detection_record(image_path, pixels.shape[:2], detections, indices, image_format)
    return record, drawn


def detect_images(saved_model_dir, image_paths, output_dir, score_threshold, image_format,
                  num_threads=None):
    """이미지들에 검출을 돌려 그린 이미지와 detections.json 을 `output_dir` 에 쓴다.

    모든 파일을 스테이징에 쓰고, 전부 성공한 뒤에만 최종 이름으로 옮긴다 (`fileio.staged_files`).
    실패하면 스테이징을 지우고 예외 (DetectionInputError: 이미지, 모델, 출력 디렉터리 문제) 를 그대로 올린다.

    Args:
        saved_model_dir: SavedModel 디렉터리 또는 model.tflite / model.onnx.
        score_threshold: 이보다 낮은 점수의 검출은 버린다. image_format: "png" 또는 "jpg".
        num_threads: .tflite / .onnx 런타임의 스레드 수 (None 이면 쓸 수 있는 코어 수; SavedModel 에는 쓰지 않는다).

    Returns:
        detections.json 에 쓴 dict.
    """
    check_unique_outputs(image_paths, image_format)
    serve_bytes = load_serve_bytes(saved_model_dir, num_threads)
    _make_output_dir(output_dir)
    report = {"saved_model": saved_model_dir, "score_threshold": score_threshold, "images": []}
    try:
        with fileio.staged_files(output_dir) as staged:
            for image_path in tqdm(image_paths, desc="detect", unit="image", file=sys.stderr):
                record, drawn = detect_one(serve_bytes, image_path, score_threshold, image_format)
                _write_staged(staged, record["output"], _save_image, drawn, image_format)
                report["images"].append(record)
                _quiet.write_above_bar(summary_line(record))
            _write_staged(staged, JSON_NAME, lambda data, path: fileio.dump_json(path, data), report)
    except OSError as error:
        raise DetectionInputError(f"{output_dir}: cannot write: {error}") from error
    return report


def _make_output_dir(output_dir):
    """출력 디렉터리를 만든다 (이미 있으면 그대로)."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise DetectionInputError(
            f"{output_dir}: cannot create output directory: {error}") from error


def _write_staged(staged, name, write, *args):
    """`write(*args, path)` 로 스테이징의 `name` 파일을 쓴다; 실패는 최종 경로를 담아 알린다."""
    try:
        write(*args, staged.path(name))
    except OSError as error:
        raise DetectionInputError(
            f"{os.path.join(staged.directory, name)}: cannot write: {error}") from error


def _save_image(pixels, image_format, path):
    """uint8 [H, W, 3] 이미지를 `image_format` (png 또는 jpg, 품질 95) 으로 저장한다."""
    options = {"quality": 95} if image_format == "jpg" else {}
    Image.fromarray(pixels).save(path, format=PIL_FORMATS[image_format], **options)
