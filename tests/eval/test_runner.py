"""frcnn.eval.runner / report / tools.evaluate 테스트: tmp_path 의 작은 VOC 디렉터리와 TFRecord,
알려진 박스를 돌려주는 검출 함수, 테스트 안에서 만든 작은 SavedModel."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from frcnn.data import voc
from frcnn.eval import report, runner

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def _jpeg_bytes(width, height, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write_voc(voc_dir):
    """DATASET 을 VOC 디렉터리로 쓰고 이미지 바이트 → 이미지 id 표를 돌려준다."""
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    id_by_bytes = {}
    for seed, (image_id, (width, height, objects)) in enumerate(DATASET.items()):
        image_bytes = _jpeg_bytes(width, height, seed)
        id_by_bytes[image_bytes] = image_id
        with open(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"), "wb") as handle:
            handle.write(image_bytes)
        object_xml = "".join(
            f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{box[0]}</xmin>"
            f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
            for name, box, difficult in objects)
        with open(os.path.join(voc_dir, "Annotations", f"{image_id}.xml"), "w") as handle:
            handle.write(f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
                         f"<height>{height}</height><depth>3</depth></size>{object_xml}</annotation>")
    with open(os.path.join(voc_dir, "ImageSets", "Main", "test.txt"), "w") as handle:
        handle.write("\n".join(DATASET) + "\n")
    return id_by_bytes


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
    path = str(tmp_path / "VOC2007")
    id_by_bytes = _write_voc(path)
    return path, id_by_bytes


def test_normalized_to_voc():
    # W=100, H=50: [0.1, 0.2, 0.5, 0.6] → xmin 0.2*100+1 = 21, ymin 0.1*50+1 = 6, xmax 60, ymax 25.
    np.testing.assert_allclose(runner.normalized_to_voc([[0.1, 0.2, 0.5, 0.6]], 50, 100), [[21, 6, 60, 25]],
                               atol=1e-4)


def test_voc_dir_gives_expected_map(voc_dir):
    path, id_by_bytes = voc_dir
    detect_fn = _make_detect_fn(id_by_bytes)
    inputs = runner.collect_from_voc(path, "test", detect_fn, batch_size=2, show_progress=False)
    assert detect_fn.calls == [2, 1]  # 크기가 다른 두 이미지가 한 배치에
    assert inputs.class_names == voc.VOC_CLASSES  # 자동: 모두 VOC 이름
    np.testing.assert_allclose(inputs.detections[0].boxes[0], [11, 9, 50, 40], atol=1e-3)
    voc_results, coco_result = runner.compute_metrics(inputs, report.ALL_METRICS)
    for metric in ("voc07", "voc12"):
        assert voc_results[metric].mean_ap == pytest.approx(EXPECTED_MAP)
        per_class = {inputs.class_names[index]: result.ap for index, result in enumerate(voc_results[metric].per_class)
                     if result.num_gt > 0}
        assert per_class == pytest.approx({"bird": 0.5, "cat": 1.0, "dog": 1.0})
    assert coco_result.stats["AP"] == pytest.approx(EXPECTED_MAP, abs=1e-6)
    assert coco_result.stats["AP50"] == pytest.approx(EXPECTED_MAP, abs=1e-6)


def test_explicit_classes_and_max_images(voc_dir):
    # 이미지 2장만: cat (0.9 TP, 0.7 TP, 0.3 FP) → 1, dog 는 difficult 뿐 → 제외, bird → 0.5. mAP 0.75.
    path, id_by_bytes = voc_dir
    inputs = runner.collect_from_voc(path, "test", _make_detect_fn(id_by_bytes), batch_size=1,
                                     max_images=2, classes="bird,cat,dog", show_progress=False)
    assert inputs.class_names == ("bird", "cat", "dog")
    voc_results, _ = runner.compute_metrics(inputs, ("voc12",))
    assert voc_results["voc12"].mean_ap == pytest.approx(0.75)
    assert np.isnan(voc_results["voc12"].per_class[2].ap)


def _write_records(voc_path, record_path):
    """같은 데이터를 TF OD API 형식 TFRecord 로 쓴다 (정규화 박스, 1-based label)."""
    with tf.io.TFRecordWriter(record_path) as writer:
        for image_id, (width, height, objects) in DATASET.items():
            with open(os.path.join(voc_path, "JPEGImages", f"{image_id}.jpg"), "rb") as handle:
                image_bytes = handle.read()
            normalized = np.array([_voc_to_normalized(box, width, height) for _, box, _ in objects], np.float32)

            def floats(values):
                return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))

            def ints(values):
                return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

            def strings(values):
                return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))

            feature = {
                "image/encoded": strings([image_bytes]), "image/height": ints([height]),
                "image/width": ints([width]), "image/filename": strings([f"{image_id}.jpg".encode()]),
                "image/object/bbox/ymin": floats(normalized[:, 0]), "image/object/bbox/xmin": floats(normalized[:, 1]),
                "image/object/bbox/ymax": floats(normalized[:, 2]), "image/object/bbox/xmax": floats(normalized[:, 3]),
                "image/object/class/label": ints([CLASS_IDS[name] for name, _, _ in objects]),
                "image/object/class/text": strings([name.encode() for name, _, _ in objects]),
                "image/object/difficult": ints([difficult for _, _, difficult in objects]),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def test_records_give_the_same_map(voc_dir, tmp_path):
    path, id_by_bytes = voc_dir
    record_path = str(tmp_path / "test-00000-of-00001.tfrecord")
    _write_records(path, record_path)
    inputs = runner.collect_from_records([record_path], _make_detect_fn(id_by_bytes), batch_size=3,
                                         show_progress=False)
    # 클래스 목록은 (label, text) 쌍에서 id 순서로: 3 bird, 8 cat, 12 dog, 나머지 class_<id>.
    assert (inputs.class_names[2], inputs.class_names[7], inputs.class_names[11]) == ("bird", "cat", "dog")
    assert inputs.class_names[0] == "class_1" and len(inputs.class_names) == 12
    np.testing.assert_allclose(inputs.ground_truths[1].boxes, [[1, 1, 30, 60], [31, 61, 60, 120]], atol=1e-3)
    voc_results, _ = runner.compute_metrics(inputs, ("voc07",))
    assert voc_results["voc07"].mean_ap == pytest.approx(EXPECTED_MAP)


def test_evaluate_writes_json_and_plots(voc_dir, tmp_path):
    path, id_by_bytes = voc_dir
    output_path = str(tmp_path / "out" / "report.json")
    plot_dir = str(tmp_path / "plots")
    evaluation_report = runner.evaluate(
        _make_detect_fn(id_by_bytes), voc_dir=path, output_path=output_path, plot_dir=plot_dir,
        classes="bird,cat,dog", show_progress=False)
    with open(output_path) as handle:
        written = json.load(handle)
    assert written == evaluation_report
    assert written["num_images"] == 3 and written["wall_time_s"] > 0
    assert written["map"] == pytest.approx({"voc07": EXPECTED_MAP, "voc12": EXPECTED_MAP})
    assert written["coco"]["AP"] == pytest.approx(EXPECTED_MAP, abs=1e-6)
    rows = {row["name"]: row for row in written["classes"]}
    assert (rows["dog"]["num_gt"], rows["dog"]["num_difficult"], rows["dog"]["num_detections"]) == (1, 1, 2)
    assert rows["bird"]["ap"]["voc07"] == pytest.approx(0.5)
    assert rows["bird"]["ap"]["coco"] == pytest.approx(0.5, abs=1e-6)
    assert sorted(os.listdir(plot_dir)) == ["pr_bird.png", "pr_cat.png", "pr_dog.png"]
    for name in os.listdir(plot_dir):
        with Image.open(os.path.join(plot_dir, name)) as image:
            image.load()
            assert image.format == "PNG" and image.size[0] > 100
    table = report.format_table(written)
    assert "bird" in table and "0.5000" in table and "COCO AP50" in table
    map_line = next(line for line in table.splitlines() if line.startswith("mAP"))
    assert map_line.split()[1:] == ["4", "0.8333", "0.8333"]


def test_table_marks_missing_values_and_json_rejects_nan(tmp_path):
    evaluation_report = {"classes": [{"name": "cat", "num_gt": 0, "ap": {"voc07": None}}],
                         "map": {"voc07": None}, "coco": None, "num_images": 1, "wall_time_s": 0.5}
    table = report.format_table(evaluation_report)
    assert table.splitlines()[2].split() == ["cat", "0", "-", "-"]
    with pytest.raises(ValueError):
        report.write_json_report({"value": float("nan")}, str(tmp_path / "bad.json"))
    assert os.listdir(tmp_path) == []  # 반쯤 쓴 파일이 남지 않는다


class _FixedDetector(tf.Module):
    """모든 이미지에 같은 정규화 검출을 돌려주는 SavedModel (serve_bytes 서명)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        batch = tf.shape(image_bytes)[0]

        def tile(value):
            value = tf.constant(value)
            return tf.tile(value[tf.newaxis], tf.concat([[batch], tf.ones([tf.rank(value)], tf.int32)], 0))

        return {
            "detection_boxes": tile(np.array([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9], [0.0, 0.0, 0.3, 0.3],
                                              [0, 0, 0, 0]], np.float32)),
            "detection_scores": tile(np.array([0.9, 0.7, 0.6, 0.0], np.float32)),
            "detection_classes": tile(np.array([8, 12, 12, 0], np.int32)),
            "detection_class_names": tile(np.array([b"cat", b"dog", b"dog", b""])),
            "num_detections": tf.fill([batch], tf.constant(3, tf.int32)),
        }


def _write_fixed_dataset(voc_path):
    """SavedModel 테스트용 VOC: 100x100 과 200x100 이미지 2장.

    고정 검출을 각 이미지의 VOC 픽셀로 바꾸면: cat (0.1..0.5) → 이미지 1 (11,11,50,50), 이미지 2 (21,11,100,50);
    dog 0.7 (0.6..0.9) → GT 없음 (FP); dog 0.6 (0..0.3) → 이미지 1 (1,1,30,30), 이미지 2 (1,1,60,30).
    """
    fixed = {"000001": (100, 100, [("cat", (11, 11, 50, 50), 0), ("dog", (1, 1, 30, 30), 0)]),
             "000002": (200, 100, [("cat", (21, 11, 100, 50), 0), ("dog", (1, 1, 60, 30), 0),
                                   ("bird", (100, 60, 150, 90), 0)])}
    original = dict(DATASET)
    DATASET.clear()
    DATASET.update(fixed)
    try:
        _write_voc(voc_path)
    finally:
        DATASET.clear()
        DATASET.update(original)


def _run_tool(*args):
    return subprocess.run([sys.executable, "-m", "tools.evaluate", "--noprogress", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_evaluate_tool_with_saved_model(tmp_path):
    # 손 계산: cat 2 TP → 1. dog: 0.7 FP, 0.7 FP, 0.6 TP, 0.6 TP → recall [0, 0, .5, 1],
    # precision [0, 0, 1/3, 1/2] → 11점·전 점 모두 0.5. bird: 검출 없음 → 0. mAP = 1.5 / 3 = 0.5.
    # COCO: IoU ≈ 1 인 TP 와 IoU 0 인 FP → AP = 0.5.
    voc_path = str(tmp_path / "VOC2007")
    _write_fixed_dataset(voc_path)
    saved_model = str(tmp_path / "saved_model")
    module = _FixedDetector()
    tf.saved_model.save(module, saved_model, signatures={"serve_bytes": module.serve_bytes})
    output_path = str(tmp_path / "report.json")
    result = _run_tool(f"--saved_model={saved_model}", f"--voc_dir={voc_path}", f"--output={output_path}",
                       "--batch_size=2")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0] + (" " + line.split()[1] if line.startswith("COCO") else ""): line.split()
             for line in result.stdout.splitlines() if line.strip() and not line.startswith("-")}
    assert lines["cat"][1:] == ["2", "1.0000", "1.0000"]
    assert lines["dog"][1:] == ["2", "0.5000", "0.5000"]
    assert lines["bird"][1:] == ["1", "0.0000", "0.0000"]
    assert lines["person"][1:] == ["0", "-", "-"]
    assert lines["mAP"][1:] == ["5", "0.5000", "0.5000"]
    assert lines["COCO AP"][2:] == ["0.5000"]
    with open(output_path) as handle:
        written = json.load(handle)
    assert written["map"] == pytest.approx({"voc07": 0.5, "voc12": 0.5})
    assert written["num_images"] == 2 and written["source"]["saved_model"] == saved_model

    # 잘못된 입력: 없는 분할 → 파일 이름을 담은 한 줄 오류, 0 이 아닌 종료 코드, 보고서 없음.
    missing_output = str(tmp_path / "missing.json")
    result = _run_tool(f"--saved_model={saved_model}", f"--voc_dir={voc_path}", "--split=val",
                       f"--output={missing_output}")
    assert result.returncode != 0
    assert "val.txt" in result.stderr and "not found" in result.stderr
    assert not os.path.exists(missing_output)
