"""테스트가 함께 쓰는 도우미 (가져올 수 있는 모듈; 픽스처는 `tests/conftest.py` 에만 둔다).

테스트 파일은 `from tests.testing import …` 로 쓴다 (`conftest` 는 가져오지 않는다; 테스트 파일끼리도).
  - 손으로 쓴 작은 VOC 디렉터리(`write_voc_dir`, `VOC_IMAGES`)와 그 변환(`convert_voc`, `read_records`).
  - 손으로 쓴 작은 COCO JSON 과 이미지(`write_coco_dir`, `COCO_JSON`).
  - 아주 작은 cpu_small 설정(`tiny_config`)과 합성 배치(`make_batches`).
  - 세 시그니처를 가진 작은 검출기 (`TinyDetector`, tests/testing.py 의 픽스처 `saved_model_dir` 가 저장한다): 밝은 픽셀의
    경계 상자 하나를 검출로 내고 점수는 평균 밝기, 클래스 1 "thing", N=3 패딩. 서버·서빙 도구 테스트가 쓴다.
  - `tools/serve` 하위 프로세스: 주소 기다리기 (`wait_for_address`), REST :predict 한 번 (`rest_predict`).
"""

import base64
import glob
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import Image

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import records
from frcnn.data import resize
from frcnn.data import sources
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from pipelines import convert
from pipelines import input_pipeline

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# 이미지 id → (W, H, [(이름, (xmin, ymin, xmax, ymax) 문자열, difficult 또는 None, truncated 또는 None)])
VOC_IMAGES = {
    "000001": (40, 30, [("dog", ("5", "4", "20", "25"), "1", "0"),
                        ("cat", ("10.5", "3.25", "38.75", "30"), None, "1")]),
    "000002": (24, 36, [("person", ("2", "3", "20", "34"), "0", None)]),  # 세로형
    "000003": (32, 32, []),  # 물체 없음
    "000004": (48, 32, [("dog", ("1", "1", "48", "32"), "0", "0"),
                        ("cat", ("30", "10", "45", "20"), "0", "0"),
                        ("person", ("3", "5", "12", "30"), "0", "0")]),
}


def object_xml(name, box, difficult, truncated):
    keys = ("xmin", "ymin", "xmax", "ymax")
    pairs = (("difficult", difficult), ("truncated", truncated))
    flags = "".join(f"<{key}>{value}</{key}>" for key, value in pairs
                    if value is not None)
    coordinates = "".join(f"<{key}>{value}</{key}>" for key, value in zip(keys, box))
    return f"<object><name>{name}</name>{flags}<bndbox>{coordinates}</bndbox></object>"


def annotation_xml(image_id, width, height, objects):
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename>"
            f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            + "".join(object_xml(*obj) for obj in objects) + "</annotation>")


def jpeg_bytes(width, height, seed):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_voc_dir(root, images=None, split="trainval"):
    """손으로 정한 XML 과 PIL JPEG 로 VOC 디렉터리를 만들고 경로를 돌려준다."""
    images = VOC_IMAGES if images is None else images
    voc_dir = os.path.join(str(root), "VOC2007")
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    for seed, (image_id, (width, height, objects)) in enumerate(images.items()):
        with open(os.path.join(voc_dir, "Annotations", f"{image_id}.xml"), "w") as handle:
            handle.write(annotation_xml(image_id, width, height, objects))
        with open(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"), "wb") as handle:
            handle.write(jpeg_bytes(width, height, seed))
    with open(os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt"), "w") as handle:
        handle.write("\n".join(images) + "\n")
    return voc_dir


# 손으로 쓴 COCO instances: 범주 id 가 연속이 아니고 순서도 섞였다 (라벨: dog 3 → 1, cat 7 → 2, person 12 → 3),
# crowd 두 개, 물체 없는 PNG 이미지 하나, 1 픽셀 안으로 벗어나 잘리는 박스 하나 (id 5 → [0, 0, 48, 32]).
COCO_JSON = {
    "images": [
        {"id": 10, "file_name": "a.jpg", "width": 40, "height": 30},
        {"id": 11, "file_name": "sub/b.jpg", "width": 24, "height": 36},
        {"id": 12, "file_name": "c.png", "width": 32, "height": 32},
        {"id": 13, "file_name": "d.jpg", "width": 48, "height": 32},
    ],
    "annotations": [
        {"id": 1, "image_id": 10, "category_id": 3, "bbox": [4, 3, 16.5, 21.25], "area": 300.5, "iscrowd": 0},
        {"id": 2, "image_id": 10, "category_id": 7, "bbox": [10.5, 2.25, 28.25, 27.75], "area": 700.0,
         "iscrowd": 0},
        {"id": 3, "image_id": 10, "category_id": 3, "bbox": [0, 0, 20, 15], "area": 150.0, "iscrowd": 1},
        {"id": 4, "image_id": 11, "category_id": 12, "bbox": [1, 2, 18, 31], "area": 500.0, "iscrowd": 0},
        {"id": 5, "image_id": 13, "category_id": 7, "bbox": [-0.5, 0, 48.8, 32.5], "area": 1400.0,
         "iscrowd": 0},
        {"id": 6, "image_id": 13, "category_id": 12, "bbox": [30, 10, 15, 10], "area": 120.0, "iscrowd": 1},
    ],
    "categories": [{"id": 12, "name": "person"}, {"id": 3, "name": "dog"}, {"id": 7, "name": "cat"}],
}


def write_coco_dir(root, dataset=None):
    """COCO_JSON (또는 dataset) 과 그 이미지 (JPEG, .png 는 PNG) 를 쓰고 (JSON 경로, 이미지 디렉터리) 를 돌려준다."""
    dataset = COCO_JSON if dataset is None else dataset
    images_dir = os.path.join(str(root), "images")
    for seed, image in enumerate(dataset["images"]):
        path = os.path.join(images_dir, image["file_name"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if path.endswith(".png"):
            shape = (image["height"], image["width"], 3)
            pixels = np.random.default_rng(seed).integers(0, 256, shape, np.uint8)
            Image.fromarray(pixels).save(path, format="PNG")
        else:
            with open(path, "wb") as handle:
                handle.write(jpeg_bytes(image["width"], image["height"], seed))
    annotations_path = os.path.join(str(root), "instances.json")
    with open(annotations_path, "w") as handle:
        json.dump(dataset, handle)
    return annotations_path, images_dir


def read_records(pattern):
    """샤드의 모든 레코드를 parse_example 결과(numpy) 목록으로, source_id 로 정렬해 읽는다."""
    parsed = []
    for path in sorted(glob.glob(pattern)):
        for serialized in tf.data.TFRecordDataset(path):
            example = records.parse_example(serialized)
            parsed.append({key: value.numpy() for key, value in example.items()})
    return sorted(parsed, key=lambda example: example["source_id"])


def record_anchor_matches(example, config, flipped=False):
    """`read_records` 의 레코드 하나 → 학습 파이프라인과 같은 [A] 밀집 앵커 매칭 코드 (numpy).

    캔버스·리사이즈 크기는 레코드의 height/width 로 (`resize.canvas_for_image`, `resize.canvas_boxes`),
    밀집 코드는 `input_pipeline.dense_anchor_matches` 로 푼다.
    """
    spec = record_spec.RecordSpec.from_config(config)
    height, width = int(example["height"]), int(example["width"])
    canvas = int(resize.canvas_for_image(height, width, spec))
    _, image_size = resize.canvas_boxes(tf.zeros([1, 4]), height, width, spec.min_size, spec.max_size)
    table = input_pipeline.anchor_table(spec, canvas)
    return input_pipeline.dense_anchor_matches(example, spec, table, canvas, image_size,
                                               tf.constant(flipped)).numpy()


def rewrite_records(record_pattern, output_dir, edit):
    """레코드를 output_dir 로 복사하며 예제마다 `edit(feature)` (tf.train.Example 의 feature 맵) 로 고친다."""
    os.makedirs(output_dir)
    for path in sorted(glob.glob(record_pattern)):
        with tf.io.TFRecordWriter(os.path.join(output_dir, os.path.basename(path))) as writer:
            for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
                example = tf.train.Example.FromString(serialized)
                edit(example.features.feature)
                writer.write(example.SerializeToString())
    return os.path.join(output_dir, os.path.basename(record_pattern))


def damage_image(record_pattern, output_dir, image_id):
    """레코드와 `<split>.json` 을 output_dir 로 복사하며 image_id 의 JPEG 바이트만 망가뜨린다. 새 glob 을 돌려준다."""
    def edit(feature):
        if feature[records.SOURCE_ID].bytes_list.value[0].decode() == image_id:
            feature[records.ENCODED].bytes_list.value[0] = b"\xff\xd8 not a jpeg"

    rewrite_records(record_pattern, output_dir, edit)
    directory = os.path.dirname(record_pattern)
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as source:
                text = source.read()
            with open(os.path.join(output_dir, name), "w") as target:
                target.write(text)
    return os.path.join(output_dir, os.path.basename(record_pattern))


def convert_voc(voc_dir, output_dir, preset="cpu_small", overrides="", **options):
    config = config_lib.build_config(preset, overrides)
    convert_options = convert.ConvertOptions(output_dir=str(output_dir), split="trainval",
                                             params_override=overrides, **options)
    return convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                           record_spec.RecordSpec.from_config(config),
                           convert_options)


TINY = ("backbone.width=8,backbone.fc_units=32,rpn.conv_channels=16,train.batch_size=2,"
        "train.checkpoint_every=2,train.log_every=1,train.warmup_steps=0,input.min_size=64,"
        "input.max_size=64,input.canvas_long_sides=(),anchors.sizes=(16,32),rpn.pre_nms_top_k=200,"
        "rpn.post_nms_top_k=32,roi.num_rois=16")


def tiny_config(extra=""):
    return config_lib.build_config("cpu_small", TINY + ("," + extra if extra else ""))


# cpu_small_fpn 을 같은 64×64 캔버스로 (P2–P6 = 16² … 1²; torchvision 크기 규칙)
TINY_FPN = TINY.replace("anchors.sizes=(16,32)", "anchors.sizes=(8,16,32,64,128)") + (
    ",fpn.channels=16,rpn.pre_nms_top_k=100,rpn.test_pre_nms_top_k=100,rpn.test_post_nms_top_k=32,"
    "input.size_rule=torchvision")


def tiny_fpn_config(extra=""):
    return config_lib.build_config("cpu_small_fpn", TINY_FPN + ("," + extra if extra else ""))


def make_batches(cfg, count=None):
    """밝은 사각형 두 개가 있는 작은 배치 (tiny_config 의 유일한 캔버스 64×64; 앵커 코드는 label_anchors)."""
    images = np.full([2, 64, 64, 3], 40.0, np.float32)
    images[:, 10:30, 8:36] = 230.0
    images[:, 40:60, 30:50] = [200.0, 30.0, 30.0]
    gt_boxes = np.full([2, cfg.input.max_gt_boxes, 4], -1.0, np.float32)
    gt_boxes[:, 0] = [10, 8, 30, 36]
    gt_boxes[:, 1] = [40, 30, 60, 50]
    gt_classes = np.full([2, cfg.input.max_gt_boxes], -1, np.int32)
    gt_classes[:, :2] = [1, 2]
    sizes = np.full([2, 2], 64.0, np.float32)
    matches = rpn_targets.label_anchors(anchors_lib.anchors_for_canvas(cfg, (64, 64)), tf.constant(gt_boxes),
                                        tf.constant(sizes), cfg.rpn)
    batch = {"images": images, "image_sizes": sizes, "scales": np.ones([2], np.float32),
             "gt_boxes": gt_boxes, "gt_classes": gt_classes, "gt_difficult": np.zeros_like(gt_classes, bool),
             "gt_crowd": np.zeros_like(gt_classes, bool),
             "anchor_matches": matches.numpy(), "skipped_records": np.zeros([2], np.int32)}
    dataset = tf.data.Dataset.from_tensors(batch)
    return dataset.repeat(count) if count else dataset.repeat()


# ---- 작은 검출기 SavedModel (서빙 테스트) ----

NUM_DETECTIONS = 3


def detect_one(image):
    """uint8 [H, W, 3] 이미지 하나 → 검출 dict (밝은 픽셀의 경계 상자 하나, N=3 패딩)."""
    # [H, W] 0..1 밝기
    brightness = tf.reduce_mean(tf.cast(image, tf.float32), axis=-1) / 255.0
    bright = brightness > 0.5
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows, columns = tf.reduce_any(bright, axis=1), tf.reduce_any(bright, axis=0)
    ymin = tf.argmax(tf.cast(rows, tf.int32), output_type=tf.int32)
    ymax = height - tf.argmax(tf.cast(rows[::-1], tf.int32), output_type=tf.int32)
    xmin = tf.argmax(tf.cast(columns, tf.int32), output_type=tf.int32)
    xmax = width - tf.argmax(tf.cast(columns[::-1], tf.int32), output_type=tf.int32)
    found = tf.reduce_any(bright)
    scale = tf.cast(tf.stack([height, width, height, width]), tf.float32)
    box = tf.cast(tf.stack([ymin, xmin, ymax, xmax]), tf.float32) / scale
    pad = NUM_DETECTIONS - 1
    return {
        "detection_boxes": tf.pad(tf.where(found, box, tf.zeros([4]))[tf.newaxis], [[0, pad], [0, 0]]),
        "detection_scores": tf.pad(tf.where(found, tf.reduce_mean(brightness), 0.0)[tf.newaxis], [[0, pad]]),
        "detection_classes": tf.pad(tf.cast(found, tf.int32)[tf.newaxis], [[0, pad]]),
        "detection_class_names": tf.concat(
            [tf.where(found, tf.constant("thing"), tf.constant(""))[tf.newaxis], tf.fill([pad], "")], axis=0),
        "num_detections": tf.cast(found, tf.int32),
    }


OUTPUT_SIGNATURE = {
    "detection_boxes": tf.TensorSpec([NUM_DETECTIONS, 4], tf.float32),
    "detection_scores": tf.TensorSpec([NUM_DETECTIONS], tf.float32),
    "detection_classes": tf.TensorSpec([NUM_DETECTIONS], tf.int32),
    "detection_class_names": tf.TensorSpec([NUM_DETECTIONS], tf.string),
    "num_detections": tf.TensorSpec([], tf.int32),
}


def decode(image_bytes):
    return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


class TinyDetector(tf.Module):
    """내보낸 모델과 같은 세 시그니처 (serving_default, serve_bytes, serve_examples) 를 가진 작은 검출기."""

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_images(self, images):
        return tf.map_fn(detect_one, images, fn_output_signature=OUTPUT_SIGNATURE)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        return tf.map_fn(lambda data: detect_one(decode(data)), image_bytes,
                         fn_output_signature=OUTPUT_SIGNATURE)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        return self.serve_bytes(records.parse_image_bytes(examples))


def wait_for_address(process, timeout):
    """서버 로그에서 주소를 찾을 때까지 stderr 를 읽는다. (주소 또는 None, 읽은 줄들)."""
    log_lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        log_lines.append(line)
        found = re.search(r"at http://127\.0\.0\.1:(\d+)/v1/models/", line)
        if found:
            return ("127.0.0.1", int(found.group(1))), log_lines
    return None, log_lines


def rest_predict(export_dir, image_path, model_name="frcnn", timeout=180):
    """`tools/serve --saved_model=export_dir` 를 띄워 이미지 파일 하나로 REST `serve_bytes` :predict 를 한 번
    부르고 (200 이어야 한다) 예측 dict (`predictions[0]`) 를 돌려준다. 서버는 SIGTERM 으로 멈춘다."""
    command = [sys.executable, "-m", "tools.serve", "--port=0", f"--model_name={model_name}",
               f"--saved_model={export_dir}"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        address, log_lines = wait_for_address(process, timeout)
        assert address is not None, "".join(log_lines)
        with open(image_path, "rb") as handle:
            body = json.dumps({"signature_name": "serve_bytes",
                               "instances": [{"b64": base64.b64encode(handle.read()).decode()}]})
        connection = http.client.HTTPConnection(*address, timeout=timeout)
        connection.request("POST", f"/v1/models/{model_name}:predict", body,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200, response.read()[:2000]
        prediction = json.loads(response.read())["predictions"][0]
        connection.close()
        return prediction
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
