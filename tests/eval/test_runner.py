"""frcnn.eval.runner 테스트: tmp_path 의 작은 VOC 디렉터리와 TFRecord, 알려진 박스를 돌려주는 검출 함수.

용어: VOC 박스 (xmin, ymin, xmax, ymax) 1-based 포함 픽셀, 정규화 박스 [ymin, xmin, ymax, xmax] ∈ [0, 1].
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from frcnn.data import records, sources, voc
from frcnn.eval import report, runner
from frcnn.export import loader
from tests.testing import write_voc_dir

# 이미지 id → (W, H, [(이름, VOC 박스 (xmin, ymin, xmax, ymax), difficult)])
DATASET = {
    "000001": (100, 80, [("cat", (11, 9, 50, 40), 0), ("dog", (61, 41, 90, 70), 1)]),
    "000002": (60, 120, [("cat", (1, 1, 30, 60), 0), ("bird", (31, 61, 60, 120), 0)]),
    "000003": (50, 50, [("dog", (5, 5, 25, 25), 0)]),
}
# 이미지 id → [(이름, VOC 박스, 점수)]: 모델이 낼 검출.
DETECTIONS = {
    "000001": [("cat", (11, 9, 50, 40), 0.9), ("dog", (61, 41, 90, 70), 0.8), ("cat", (11, 9, 50, 40), 0.3)],
    "000002": [("cat", (1, 1, 30, 60), 0.7), ("bird", (1, 1, 20, 20), 0.6), ("bird", (31, 61, 60, 120), 0.2)],
    "000003": [("dog", (5, 5, 25, 25), 0.5)],
}
# 손 계산:
#   cat: 0.9 TP, 0.7 TP, 0.3 FP (중복), npos 2 → recall [.5, 1, 1], precision [1, 1, 2/3] → AP07 = AP12 = 1.
#   dog: 0.8 은 difficult GT 위 → 무시, 0.5 TP, npos 1 → AP 1.
#   bird: 0.6 FP, 0.2 TP, npos 1 → recall [0, 1], precision [0, .5] → AP07 = AP12 = 0.5.
#   mAP = (1 + 1 + 0.5) / 3 = 5/6. COCO: 모든 TP 의 IoU ≈ 1, FP 는 IoU 0 → AP = AP50 = 5/6.
EXPECTED_MAP = 5 / 6
CLASS_IDS = {"cat": 8, "dog": 12, "bird": 3}  # VOC_CLASSES 순서의 id (모델이 돌려줄 id)


def _voc_to_normalized(box, width, height):
    xmin, ymin, xmax, ymax = box
    return [(ymin - 1) / height, (xmin - 1) / width, ymax / height, xmax / width]


def _write_voc(root):
    """DATASET 을 VOC 디렉터리 (분할 test) 로 쓰고 (경로, 이미지 바이트 → 이미지 id 표) 를 돌려준다."""
    images = {image_id: (width, height, [(name, tuple(str(value) for value in box), str(difficult), None)
                                         for name, box, difficult in objects])
              for image_id, (width, height, objects) in DATASET.items()}
    voc_dir = write_voc_dir(root, images, split="test")
    id_by_bytes = {}
    for image_id in DATASET:
        with open(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"), "rb") as handle:
            id_by_bytes[handle.read()] = image_id
    return voc_dir, id_by_bytes


def _make_detect_fn(id_by_bytes, num_slots=4):
    """이미지 바이트로 이미지를 알아보고 DETECTIONS 를 SavedModel 출력 모양으로 돌려주는 검출 함수."""
    calls = []

    def detect_fn(image_bytes):
        batch = [id_by_bytes[value] for value in image_bytes.numpy()]
        calls.append(len(batch))
        boxes = np.zeros((len(batch), num_slots, 4), np.float32)
        scores = np.zeros((len(batch), num_slots), np.float32)
        classes = np.zeros((len(batch), num_slots), np.int32)
        names = np.full((len(batch), num_slots), b"", dtype=object)
        counts = np.zeros(len(batch), np.int32)
        for row, image_id in enumerate(batch):
            width, height, _ = DATASET[image_id]
            for slot, (name, box, score) in enumerate(DETECTIONS[image_id]):
                boxes[row, slot] = _voc_to_normalized(box, width, height)
                scores[row, slot], classes[row, slot] = score, CLASS_IDS[name]
                names[row, slot] = name.encode()
            counts[row] = len(DETECTIONS[image_id])
        return {"detection_boxes": tf.constant(boxes), "detection_scores": tf.constant(scores),
                "detection_classes": tf.constant(classes), "detection_class_names": tf.constant(names),
                "num_detections": tf.constant(counts)}

    detect_fn.calls = calls
    return detect_fn


@pytest.fixture
def voc_dir(tmp_path):
    return _write_voc(tmp_path)


def test_normalized_to_voc():
    # W=100, H=50: [0.1, 0.2, 0.5, 0.6] → xmin 0.2*100+1 = 21, ymin 0.1*50+1 = 6, xmax 60, ymax 25.
    np.testing.assert_allclose(runner.normalized_to_voc([[0.1, 0.2, 0.5, 0.6]], 50, 100), [[21, 6, 60, 25]],
                               atol=1e-4)


def test_voc_dir_gives_expected_map(voc_dir):
    path, id_by_bytes = voc_dir
    detect_fn = _make_detect_fn(id_by_bytes)
    inputs = runner.collect(sources.open_voc_source(path, "test", None), detect_fn, batch_size=2)
    assert detect_fn.calls == [2, 1]  # 크기가 다른 두 이미지가 한 배치에
    assert inputs.class_names == voc.VOC_CLASSES  # 자동: 모두 VOC 이름
    np.testing.assert_allclose(inputs.detections[0].boxes[0], [11, 9, 50, 40], atol=1e-3)
    voc_results, coco_result = runner.compute_metrics(inputs, report.ALL_METRICS)
    for metric in ("voc07", "voc12"):
        assert voc_results[metric].mean_ap == pytest.approx(EXPECTED_MAP)
        per_class = {inputs.class_names[index]: result.ap
                     for index, result in enumerate(voc_results[metric].per_class) if result.num_gt > 0}
        assert per_class == pytest.approx({"bird": 0.5, "cat": 1.0, "dog": 1.0})
    assert coco_result.stats["AP"] == pytest.approx(EXPECTED_MAP, abs=1e-6)
    assert coco_result.stats["AP50"] == pytest.approx(EXPECTED_MAP, abs=1e-6)


def test_explicit_classes_and_max_images(voc_dir):
    # 이미지 2장만: cat (0.9 TP, 0.7 TP, 0.3 FP) → 1, dog 는 difficult 뿐 → 제외, bird → 0.5. mAP 0.75.
    path, id_by_bytes = voc_dir
    source = sources.open_voc_source(path, "test", "bird,cat,dog")
    inputs = runner.collect(source, _make_detect_fn(id_by_bytes), batch_size=1, max_images=2)
    assert inputs.class_names == ("bird", "cat", "dog")
    voc_results, _ = runner.compute_metrics(inputs, ("voc12",))
    assert voc_results["voc12"].mean_ap == pytest.approx(0.75)
    assert np.isnan(voc_results["voc12"].per_class[2].ap)


def test_explicit_classes_missing_an_annotated_class_names_the_xml(voc_dir):
    path, id_by_bytes = voc_dir
    with pytest.raises(voc.VocError, match=r"000002\.xml: unknown class 'bird'"):
        runner.collect(sources.open_voc_source(path, "test", "cat,dog"), _make_detect_fn(id_by_bytes))


def _od_api_example(image_bytes, width, height, image_id, objects, with_labels=True):
    """다른 도구가 쓴 TF OD API 형식 예제 (앵커 특징 없음, 정규화 박스, 1-based label)."""
    normalized = np.array([_voc_to_normalized(box, width, height) for _, box, _ in objects], np.float32)

    def floats(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    def strings(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

    feature = {
        records.ENCODED: strings([image_bytes]), records.HEIGHT: ints([height]), records.WIDTH: ints([width]),
        records.FILENAME: strings([f"{image_id}.jpg".encode()]),
        records.BOX_YMIN: floats(normalized[:, 0]), records.BOX_XMIN: floats(normalized[:, 1]),
        records.BOX_YMAX: floats(normalized[:, 2]), records.BOX_XMAX: floats(normalized[:, 3]),
        records.CLASS_TEXT: strings([name.encode() for name, _, _ in objects]),
        records.DIFFICULT: ints([difficult for _, _, difficult in objects]),
    }
    if with_labels:
        feature[records.CLASS_LABEL] = ints([CLASS_IDS[name] for name, _, _ in objects])
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_records(voc_path, record_path, with_labels=True):
    """DATASET 을 TF OD API 형식 TFRecord 한 파일로 쓴다."""
    with tf.io.TFRecordWriter(record_path) as writer:
        for image_id, (width, height, objects) in DATASET.items():
            with open(os.path.join(voc_path, "JPEGImages", f"{image_id}.jpg"), "rb") as handle:
                writer.write(_od_api_example(handle.read(), width, height, image_id, objects, with_labels))


def test_records_give_the_same_map(voc_dir, tmp_path):
    path, id_by_bytes = voc_dir
    record_path = str(tmp_path / "test-00000-of-00001.tfrecord")
    _write_records(path, record_path)
    progress_calls = []
    inputs = runner.collect(sources.open_records_source([record_path]), _make_detect_fn(id_by_bytes),
                            batch_size=2, progress=lambda done, total: progress_calls.append((done, total)))
    assert progress_calls == [(0, 3), (2, 3), (3, 3)]
    # 클래스 목록은 (label, text) 쌍에서 id 순서로: 3 bird, 8 cat, 12 dog, 나머지 class_<id>.
    assert (inputs.class_names[2], inputs.class_names[7], inputs.class_names[11]) == ("bird", "cat", "dog")
    assert inputs.class_names[0] == "class_1" and len(inputs.class_names) == 12
    assert [truth.image_id for truth in inputs.ground_truths] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    np.testing.assert_allclose(inputs.ground_truths[1].boxes, [[1, 1, 30, 60], [31, 61, 60, 120]], atol=1e-3)
    voc_results, _ = runner.compute_metrics(inputs, ("voc07",))
    assert voc_results["voc07"].mean_ap == pytest.approx(EXPECTED_MAP)


def test_bad_record_error_names_the_file(voc_dir, tmp_path):
    path, id_by_bytes = voc_dir
    record_path = str(tmp_path / "bad.tfrecord")
    _write_records(path, record_path, with_labels=False)
    with pytest.raises(ValueError, match=r"bad\.tfrecord: 2 boxes but 0 class labels in one example"):
        runner.collect(sources.open_records_source([record_path]), _make_detect_fn(id_by_bytes))


def test_evaluate_writes_json_and_plots(voc_dir, tmp_path):
    path, id_by_bytes = voc_dir
    output_path = str(tmp_path / "out" / "report.json")
    plot_dir = str(tmp_path / "plots")
    progress_calls = []
    evaluation_report = runner.evaluate(
        _make_detect_fn(id_by_bytes), voc_dir=path, output_path=output_path, plot_dir=plot_dir,
        classes_flag="bird,cat,dog", progress=lambda done, total: progress_calls.append((done, total)))
    assert progress_calls == [(0, 3), (3, 3)]  # 기본 배치 8: 한 번에 모두
    with open(output_path) as handle:
        written = json.load(handle)
    assert written == evaluation_report
    assert written["num_images"] == 3 and written["wall_time_s"] > 0
    assert written["source"] == {"voc_dir": path, "split": "test"}
    assert written["map"] == pytest.approx({"voc07": EXPECTED_MAP, "voc12": EXPECTED_MAP})
    assert written["coco"]["AP"] == pytest.approx(EXPECTED_MAP, abs=1e-6)
    rows = {row["name"]: row for row in written["classes"]}
    assert (rows["dog"]["num_gt"], rows["dog"]["num_difficult"], rows["dog"]["num_detections"]) == (1, 1, 2)
    assert rows["bird"]["ap"]["voc07"] == pytest.approx(0.5)
    assert rows["bird"]["ap"]["coco"] == pytest.approx(0.5, abs=1e-6)
    assert sorted(os.listdir(plot_dir)) == ["pr_bird.png", "pr_cat.png", "pr_dog.png"]
    assert written["plots"] == [os.path.join(plot_dir, f"pr_{name}.png") for name in ("bird", "cat", "dog")]
    for name in os.listdir(plot_dir):
        with Image.open(os.path.join(plot_dir, name)) as image:
            image.load()
            assert image.format == "PNG" and image.size[0] > 100
    table = report.format_table(written)
    map_line = next(line for line in table.splitlines() if line.startswith("mAP"))
    assert map_line.split()[1:] == ["4", "0.8333", "0.8333"]


def test_evaluate_records_source_lists_the_paths(voc_dir, tmp_path):
    path, id_by_bytes = voc_dir
    record_paths = [str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")]
    for record_path in record_paths:
        _write_records(path, record_path)
    evaluation_report = runner.evaluate(_make_detect_fn(id_by_bytes), record_paths=record_paths,
                                        metrics=("voc07",), max_images=4)
    assert evaluation_report["source"] == {"records": record_paths}
    assert evaluation_report["num_images"] == 4 and evaluation_report["coco"] is None


@pytest.mark.parametrize("arguments, message", [
    ({}, "exactly one of voc_dir, record_paths or coco_annotations"),
    ({"voc_dir": "x", "record_paths": ["y"]}, "exactly one of voc_dir, record_paths or coco_annotations"),
    ({"voc_dir": "x", "coco_annotations": "y", "coco_images_dir": "z"}, "exactly one of voc_dir"),
    ({"coco_annotations": "y"}, "coco_annotations and coco_images_dir go together"),
    ({"record_paths": []}, "record_paths is empty"),
    ({"voc_dir": "x", "metrics": ("voc07", "map")}, "unknown or empty metrics"),
    ({"voc_dir": "x", "batch_size": 0}, "batch_size must be >= 1"),
    ({"voc_dir": "x", "max_images": 0}, "max_images must be >= 1"),
])
def test_evaluate_rejects_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        runner.evaluate(lambda image_bytes: None, **arguments)


class _BytesEcho(tf.Module):
    """serve_bytes 서명 하나: 배치 크기만큼 num_detections 0 을 돌려준다."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        return {"num_detections": tf.zeros_like(tf.strings.length(image_bytes))}


def test_load_detect_fn_calls_serve_bytes_and_requires_it(tmp_path):
    module = _BytesEcho()
    with_signature, without_signature = str(tmp_path / "with"), str(tmp_path / "without")
    tf.saved_model.save(module, with_signature, signatures={"serve_bytes": module.serve_bytes})
    tf.saved_model.save(module, without_signature, signatures={"serving_default": module.serve_bytes})
    detect_fn = loader.load(with_signature, ("serve_bytes",)).serve_bytes
    outputs = detect_fn(tf.constant([b"a", b"bc"]))
    np.testing.assert_array_equal(outputs["num_detections"], [0, 0])
    with pytest.raises(ValueError, match=r"without: the model has no 'serve_bytes' signature "
                                         r"\(has: serving_default\)"):
        loader.load(without_signature, ("serve_bytes",)).serve_bytes
