"""tools/make_tfrecords --source=coco 테스트: 손으로 쓴 COCO JSON (tests/testing.py `COCO_JSON`) → 레코드 → 파싱한 박스·
라벨·crowd 가 JSON 과 정확히 같음, 메타데이터의 범주 ↔ 라벨; 잘못된 입력마다 종료 코드 1, 파일과 이미지·주석 id 를
밝히는 한 줄, 아무것도 남지 않음; --skip_invalid; 빠진 플래그.

도구는 같은 프로세스에서 돌린다 (`flags.FLAGS(argv)` 뒤 `main`).
"""

import json
import os

import numpy as np
import pytest
from absl import app, flags

from tests.testing import COCO_JSON, read_records, write_coco_dir
from tools import make_tfrecords

FLAGS = flags.FLAGS


def run_tool(argv):
    """도구를 같은 프로세스에서 실행하고 종료 코드를 돌려준다."""
    FLAGS.unparse_flags()
    FLAGS(["make_tfrecords", "--noprogress", "--source=coco", "--split=train"] + argv)
    try:
        make_tfrecords.main(["make_tfrecords"])
    except SystemExit as exit_error:
        return exit_error.code
    return 0


def _coco_flags(annotations_path, images_dir, output_dir):
    return [f"--coco_annotations={annotations_path}", f"--coco_images_dir={images_dir}",
            f"--output_dir={output_dir}"]


def _normalized(bbox, width, height):
    """JSON bbox [x, y, w, h] → 기대 정규화 [ymin, xmin, ymax, xmax] (float64 로 나눈 뒤 float32, 1 픽셀 안 자르기)."""
    x, y, box_width, box_height = bbox
    box = np.clip([y, x, y + box_height, x + box_width], 0, [height, width, height, width])
    return (box / np.array([height, width, height, width], np.float64)).astype(np.float32)


def test_records_hold_the_json_boxes_labels_and_crowd_flags_exactly(tmp_path, capsys):
    annotations_path, images_dir = write_coco_dir(tmp_path)
    output_dir = tmp_path / "records"
    assert run_tool(_coco_flags(annotations_path, images_dir, output_dir)) == 0
    assert "4 images, 6 objects (0 difficult, keep; 2 crowd), 0 skipped" in capsys.readouterr().out
    metadata = json.loads((output_dir / "train.json").read_text())
    assert metadata["classes"] == ["dog", "cat", "person"] and metadata["source"] == "coco"
    assert metadata["coco_categories"] == [{"label": 1, "id": 3, "name": "dog"},
                                           {"label": 2, "id": 7, "name": "cat"},
                                           {"label": 3, "id": 12, "name": "person"}]
    assert (metadata["num_images"], metadata["num_objects"], metadata["num_crowd"]) == (4, 6, 2)
    parsed = {int(example["source_id"]): example for example in read_records(str(output_dir / "*.tfrecord"))}
    label_of = {3: 1, 7: 2, 12: 3}
    name_of = {3: b"dog", 7: b"cat", 12: b"person"}
    for image in COCO_JSON["images"]:
        example = parsed[image["id"]]
        annotations = [item for item in COCO_JSON["annotations"] if item["image_id"] == image["id"]]
        assert example["filename"] == image["file_name"].encode()
        assert (example["height"], example["width"]) == (image["height"], image["width"])
        want = np.array([_normalized(item["bbox"], image["width"], image["height"]) for item in annotations],
                        np.float32).reshape(-1, 4)
        np.testing.assert_array_equal(example["boxes"].reshape(-1, 4), want)
        assert example["classes"].tolist() == [label_of[item["category_id"]] for item in annotations]
        assert example["class_names"].tolist() == [name_of[item["category_id"]] for item in annotations]
        assert example["is_crowd"].tolist() == [bool(item["iscrowd"]) for item in annotations]
    assert parsed[12]["boxes"].size == 0  # 물체 없는 이미지도 음성으로 남는다
    with open(os.path.join(images_dir, "c.png"), "rb") as handle:
        assert parsed[12]["image_bytes"] == handle.read() and parsed[12]["format"] == b"png"


def _edit_json(path, edit):
    with open(path) as handle:
        dataset = json.load(handle)
    edit(dataset)
    with open(path, "w") as handle:
        json.dump(dataset, handle)


def _annotation(index, key, value):
    def edit(dataset):
        dataset["annotations"][index][key] = value
    return edit


def _malformed(path):
    with open(path, "w") as handle:
        handle.write('{"images": [}')


# 이름: (JSON·이미지를 망가뜨리는 함수 (JSON 경로, 이미지 디렉터리), 오류 줄의 파일, 문제 설명의 일부)
BAD_INPUTS = {
    "malformed_json": (lambda path, images: _malformed(path), "instances.json", "malformed JSON"),
    "missing_image": (lambda path, images: os.remove(os.path.join(images, "sub", "b.jpg")),
                      "images/sub/b.jpg", "image file not found (image id 11 in"),
    "unknown_image_id": (lambda path, images: _edit_json(path, _annotation(2, "image_id", 99)),
                         "instances.json", "annotation id 3: unknown image id 99"),
    "unknown_category_id": (lambda path, images: _edit_json(path, _annotation(5, "category_id", 5)),
                            "instances.json", "annotation id 6 (image id 13): unknown category id 5"),
    "zero_width": (lambda path, images: _edit_json(path, _annotation(0, "bbox", [4, 3, 0, 5])),
                   "instances.json", "annotation id 1 (image id 10): box [x=4, y=3, w=0, h=5] has w <= 0"),
    "negative_height": (lambda path, images: _edit_json(path, _annotation(3, "bbox", [1, 2, 3, -4])),
                        "instances.json",
                        "annotation id 4 (image id 11): box [x=1, y=2, w=3, h=-4] has w <= 0 or h <= 0"),
    "box_outside": (lambda path, images: _edit_json(path, _annotation(3, "bbox", [1, 2, 18, 35.5])),
                    "instances.json", "annotation id 4 (image id 11): box [x=1, y=2, w=18, h=35.5] lies "
                                      "outside the 24x36 image by more than one pixel"),
    "size_mismatch": (lambda path, images: _edit_json(path, lambda d: d["images"][2].update(height=31)),
                      "images/c.png", "decoded image size 32x32 (WxH) differs from the size 32x31 of image "
                                      "id 12 in"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_cleanly_naming_the_file_and_id(tmp_path, capsys, case):
    break_input, bad_file, problem = BAD_INPUTS[case]
    annotations_path, images_dir = write_coco_dir(tmp_path)
    break_input(annotations_path, images_dir)
    output_dir = tmp_path / "out"
    assert run_tool(_coco_flags(annotations_path, images_dir, output_dir)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("make_tfrecords: error: ") and bad_file in lines[0] and problem in lines[0], \
        lines[0]
    assert not output_dir.exists() or os.listdir(output_dir) == []


def test_skip_invalid_skips_and_records_bad_images_and_annotations(tmp_path, capsys):
    annotations_path, images_dir = write_coco_dir(tmp_path)

    def damage(dataset):
        dataset["annotations"][0]["bbox"] = [4, 3, -1, 5]   # 이미지 10 전체를 건너뛴다
        dataset["annotations"][5]["image_id"] = 99           # 주석 하나만 건너뛴다 (이미지 13 은 남는다)
    _edit_json(annotations_path, damage)
    os.remove(os.path.join(images_dir, "c.png"))
    output_dir = tmp_path / "out"
    assert run_tool(_coco_flags(annotations_path, images_dir, output_dir) + ["--skip_invalid"]) == 0
    metadata = json.loads((output_dir / "train.json").read_text())
    reasons = [item["reason"] for item in metadata["skipped"]]
    assert len(reasons) == 3 and metadata["num_images"] == 2
    assert reasons[0] == "annotation id 6: unknown image id 99"
    assert reasons[1].startswith("annotation id 1 (image id 10): box")
    assert reasons[2].startswith("image file not found (image id 12")
    kept = [example["source_id"] for example in read_records(str(output_dir / "*.tfrecord"))]
    assert kept == [b"11", b"13"]


def test_classes_subset_and_missing_flags(tmp_path, capsys):
    annotations_path, images_dir = write_coco_dir(tmp_path)
    output_dir = tmp_path / "out"
    assert run_tool(_coco_flags(annotations_path, images_dir, output_dir) + ["--classes=person"]) == 0
    metadata = json.loads((output_dir / "train.json").read_text())
    assert metadata["classes"] == ["person"] and metadata["num_objects"] == 2 and metadata["num_images"] == 4
    assert metadata["coco_categories"] == [{"label": 1, "id": 12, "name": "person"}]
    FLAGS.unparse_flags()
    FLAGS(["make_tfrecords", "--source=coco", f"--coco_annotations={annotations_path}",
           f"--output_dir={tmp_path / 'other'}"])
    with pytest.raises(app.UsageError, match="--coco_images_dir are required"):
        make_tfrecords.main(["make_tfrecords"])
