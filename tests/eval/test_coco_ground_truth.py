"""COCO JSON 을 정답으로 한 평가 테스트 (`runner.evaluate(coco_annotations=…)`, `tools/evaluate --coco_annotations`):
고정 검출에 대해 COCO 지표가 같은 JSON 과 같은 검출로 pycocotools 를 직접 돌린 값과 같고, VOC 지표는 crowd 물체를
difficult 처럼 무시하며 (손 계산), 같은 JSON 으로 만든 레코드의 평가도 같은 값을 내는지 확인한다.

용어: 검출 박스는 이미지 픽셀 [ymin, xmin, ymax, xmax] 로 적고, 검출 함수가 정규화해 돌려준다.
"""

import contextlib
import copy
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import coco
from frcnn.eval import coco_ap
from frcnn.eval import runner
from pipelines import convert
from tests.testing import COCO_JSON, REPO_ROOT, write_coco_dir

LABEL_TO_CATEGORY = {1: 3, 2: 7, 3: 12}
NAMES = {1: b"dog", 2: b"cat", 3: b"person"}
# (H, W) → [(픽셀 박스, 점수, 라벨)]. 이미지 크기가 모두 달라 크기로 이미지를 안다.
DETECTIONS = {
    (30, 40): [((3.5, 4, 24, 20), 0.9, 1), ((1, 1, 10, 12), 0.8, 1), ((2, 11, 29, 38), 0.7, 2),
               ((5, 5, 15, 15), 0.6, 3)],
    (36, 24): [((3, 1, 32, 18), 0.85, 3), ((0, 0, 10, 10), 0.3, 1)],
    (32, 32): [((4, 4, 20, 20), 0.5, 2)],
    (32, 48): [((1, 2, 30, 46), 0.95, 2), ((11, 31, 19, 44), 0.65, 3), ((12, 30, 20, 45), 0.4, 3)],
}
MAX_DETECTIONS = 4


def _dataset():
    """COCO_JSON 에서 1 픽셀 안으로 벗어난 박스 (id 5) 를 이미지 안으로 옮긴 것 (자르기 없이 같은 박스)."""
    dataset = copy.deepcopy(COCO_JSON)
    dataset["annotations"][4]["bbox"] = [0, 0, 48, 32]
    return dataset


def _tables():
    """DETECTIONS 를 이미지 크기 순서의 표로: sizes [4, 2], 그리고 출력 키마다 [4, N, …] 배열."""
    sizes = sorted(DETECTIONS)
    tables = {"detection_boxes": [], "detection_scores": [], "detection_classes": [],
              "detection_class_names": [], "num_detections": []}
    for height, width in sizes:
        items = DETECTIONS[(height, width)]
        pad = MAX_DETECTIONS - len(items)
        scale = [height, width, height, width]
        boxes = [np.divide(box, scale) for box, _, _ in items]
        tables["detection_boxes"].append(boxes + [[0, 0, 0, 0]] * pad)
        tables["detection_scores"].append([score for _, score, _ in items] + [0] * pad)
        tables["detection_classes"].append([label for _, _, label in items] + [0] * pad)
        tables["detection_class_names"].append([NAMES[label] for _, _, label in items] + [b""] * pad)
        tables["num_detections"].append(len(items))
    dtypes = {"detection_boxes": np.float32, "detection_scores": np.float32, "detection_classes": np.int32,
              "detection_class_names": object, "num_detections": np.int32}
    return np.array(sizes, np.int32), {key: np.array(value, dtypes[key]) for key, value in tables.items()}


class _FixedDetector(tf.Module):
    """고정 검출 SavedModel: 디코딩한 이미지의 크기로 DETECTIONS 의 줄을 골라 정규화 검출을 돌려준다 (N = 4)."""

    def __init__(self):
        super().__init__()
        sizes, tables = _tables()
        self._sizes = tf.constant(sizes)
        self._tables = {key: tf.constant(value) for key, value in tables.items()}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        def row(encoded):
            shape = tf.shape(tf.io.decode_image(encoded, channels=3, expand_animations=False))[:2]
            return tf.argmax(tf.cast(tf.reduce_all(self._sizes == shape, axis=1), tf.int32))

        rows = tf.map_fn(row, image_bytes, fn_output_signature=tf.int64)
        return {key: tf.gather(table, rows) for key, table in self._tables.items()}


def _pycocotools_stats(annotations_path):
    """같은 검출을 COCO 결과 형식 ([x, y, w, h] 픽셀, 범주 id) 으로 pycocotools 에 직접 넣은 stats[:6]."""
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO(annotations_path)
        results = []
        for image in ground_truth.dataset["images"]:
            for (ymin, xmin, ymax, xmax), score, label in DETECTIONS[(image["height"], image["width"])]:
                results.append({"image_id": image["id"], "category_id": LABEL_TO_CATEGORY[label],
                                "bbox": [xmin, ymin, xmax - xmin, ymax - ymin], "score": score})
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = zip(coco_ap.COCO_STAT_NAMES, evaluation.stats)
    return {name: (None if value < 0 else value) for name, value in stats}


def _assert_same_stats(found, want):
    assert found.keys() == want.keys()
    for name, value in want.items():
        assert (found[name] is None) == (value is None), name
        if value is not None:
            assert found[name] == pytest.approx(value, abs=1e-9), name


@pytest.fixture
def coco_dir(tmp_path):
    return write_coco_dir(tmp_path, _dataset())


@pytest.fixture(scope="module")
def detect():
    module = _FixedDetector()

    def detect_fn(image_bytes):
        return module.serve_bytes(image_bytes)  # 모듈을 잡아 두어 tf.function 의 self 가 살아 있게

    return detect_fn


def test_coco_metrics_agree_with_pycocotools_on_the_same_json(coco_dir, detect):
    annotations_path, images_dir = coco_dir
    report = runner.evaluate(detect, coco_annotations=annotations_path, coco_images_dir=images_dir,
                             batch_size=3)
    want = _pycocotools_stats(annotations_path)
    assert want["AP"] > 0.3 and want["APm"] is not None  # 쓸모 있는 비교: crowd·넓이 범위가 결과에 낀다
    _assert_same_stats(report["coco"], want)
    assert report["num_images"] == 4 and report["source"]["coco_annotations"] == annotations_path


def test_voc_metrics_ignore_crowd_objects_like_difficult(coco_dir, detect):
    annotations_path, images_dir = coco_dir
    report = runner.evaluate(detect, coco_annotations=annotations_path, coco_images_dir=images_dir)
    classes = {item["name"]: item for item in report["classes"]}
    assert [item["name"] for item in report["classes"]] == ["dog", "cat", "person"]
    counts = [(classes[name]["num_gt"], classes[name]["num_difficult"]) for name in ("dog", "cat", "person")]
    assert counts == [(1, 1), (2, 0), (1, 1)]
    # person (손 계산): 0.85 TP, 0.65 와 0.4 는 crowd person 과 VOC IoU 0.69·0.8 → 무시, 0.6 FP →
    # 누적 recall [1, 1, 1, 1], precision [1, 1, .5, .5] → AP 1.
    assert classes["person"]["ap"]["voc07"] == pytest.approx(1.0)
    assert classes["person"]["ap"]["voc12"] == pytest.approx(1.0)


def test_records_made_from_the_json_give_the_same_coco_metrics(coco_dir, detect, tmp_path):
    annotations_path, images_dir = coco_dir
    options = convert.ConvertOptions(output_dir=str(tmp_path / "records"), split="val")
    spec = record_spec.RecordSpec.from_config(config_lib.build_config("cpu_small"))
    open_source = lambda: coco.open_coco_source(annotations_path, images_dir, None)  # noqa: E731
    summary = convert.convert(open_source, spec, options)
    report = runner.evaluate(detect, record_paths=summary["files"][:-1])
    _assert_same_stats(report["coco"], _pycocotools_stats(annotations_path))
    assert [item["num_difficult"] for item in report["classes"]] == [1, 0, 1]


def test_bad_coco_ground_truth_names_the_file_and_id(coco_dir, detect):
    annotations_path, images_dir = coco_dir
    os.remove(os.path.join(images_dir, "d.jpg"))
    with pytest.raises(ValueError, match=r"d\.jpg: image file not found \(image id 13 in .*instances\.json"):
        runner.evaluate(detect, coco_annotations=annotations_path, coco_images_dir=images_dir)


@pytest.mark.slow
def test_evaluate_tool_takes_coco_annotations(coco_dir, tmp_path):
    annotations_path, images_dir = coco_dir
    saved_model = str(tmp_path / "saved_model")
    module = _FixedDetector()
    tf.saved_model.save(module, saved_model, signatures={"serve_bytes": module.serve_bytes})
    output = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.evaluate", "--noprogress", f"--saved_model={saved_model}",
         f"--coco_annotations={annotations_path}", f"--coco_images_dir={images_dir}", f"--output={output}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_same_stats(json.loads(output.read_text())["coco"], _pycocotools_stats(annotations_path))
