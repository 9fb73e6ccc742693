"""frcnn.data.coco 테스트: 손으로 쓴 COCO JSON (tests/testing.py `COCO_JSON`) 의 박스가 연속 픽셀·정규화 좌표로 정확히
바뀌고, 범주가 id 순서의 라벨 1..C 로 맞춰지고, crowd·빈 이미지·--classes 부분 집합이 지켜지는지; 이미지 하나의
문제는 (파일과 id 를 밝히는) 건너뛸 수 있는 SourceError 로, 파일 전체의 문제는 예외로 알리는지 확인한다.

용어: COCO 박스 [x, y, w, h] → 연속 [y, x, y + h, x + w] → 정규화 / (H, W, H, W).
"""

import copy
import json
import os

import numpy as np
import pytest

from frcnn.data import coco
from frcnn.data import sources
from tests.testing import COCO_JSON, write_coco_dir

# 이미지 id → 기대 (라벨, 이름, 연속 박스 [ymin, xmin, ymax, xmax], crowd, 넓이) — JSON 에서 손으로 옮긴 값.
EXPECTED = {
    10: [(1, "dog", (3, 4, 24.25, 20.5), False, 300.5), (2, "cat", (2.25, 10.5, 30, 38.75), False, 700.0),
         (1, "dog", (0, 0, 15, 20), True, 150.0)],
    11: [(3, "person", (2, 1, 33, 19), False, 500.0)],
    12: [],
    13: [(2, "cat", (0, 0, 32, 48), False, 1400.0), (3, "person", (10, 30, 20, 45), True, 120.0)],
}
SIZES = {10: (30, 40), 11: (36, 24), 12: (32, 32), 13: (32, 48)}  # (H, W)


def _write(tmp_path, edit=None):
    """COCO_JSON 과 이미지를 쓰고, JSON 은 복사본을 edit(dataset) 로 고쳐 다시 쓴다."""
    annotations_path, images_dir = write_coco_dir(tmp_path)
    if edit is not None:
        dataset = copy.deepcopy(COCO_JSON)
        edit(dataset)
        with open(annotations_path, "w") as handle:
            json.dump(dataset, handle)
    return annotations_path, images_dir


def test_read_coco_maps_categories_in_id_order_and_keeps_boxes(tmp_path):
    annotations_path, images_dir = _write(tmp_path)
    dataset = coco.read_coco(annotations_path, images_dir)
    assert dataset.categories == ((3, "dog"), (7, "cat"), (12, "person"))
    assert dataset.class_names == ("dog", "cat", "person") and dataset.orphans == []
    assert [image.image_id for image in dataset.images] == [10, 11, 12, 13]
    for image in dataset.images:
        expected = EXPECTED[image.image_id]
        assert (image.height, image.width) == SIZES[image.image_id]
        assert image.labels.tolist() == [item[0] for item in expected]
        assert image.class_names == tuple(item[1] for item in expected)
        np.testing.assert_array_equal(image.boxes, np.array([item[2] for item in expected]).reshape(-1, 4))
        assert image.is_crowd.tolist() == [item[3] for item in expected]
        assert image.areas.tolist() == [item[4] for item in expected]
    assert dataset.images[1].image_path == os.path.join(images_dir, "sub", "b.jpg")


def test_source_examples_have_exact_normalized_boxes(tmp_path):
    annotations_path, images_dir = _write(tmp_path)
    source = coco.open_coco_source(annotations_path, images_dir, None)
    assert (source.name, source.classes, source.num_examples) == ("coco", ("dog", "cat", "person"), 4)
    assert source.metadata["coco_categories"] == [{"label": 1, "id": 3, "name": "dog"},
                                                  {"label": 2, "id": 7, "name": "cat"},
                                                  {"label": 3, "id": 12, "name": "person"}]
    examples = list(source.items)
    assert [example.image_id for example in examples] == ["10", "11", "12", "13"]
    for example in examples:
        image_id = int(example.image_id)
        height, width = SIZES[image_id]
        boxes = np.array([item[2] for item in EXPECTED[image_id]], np.float64).reshape(-1, 4)
        # 정확히: float64 로 나눈 뒤 float32 로 (레코드의 float_list 값)
        want = (boxes / np.array([height, width, height, width], np.float64)).astype(np.float32)
        np.testing.assert_array_equal(example.normalized_boxes, want)
        np.testing.assert_array_equal(example.continuous_boxes(), boxes)  # 평가기의 GT: JSON 값 그대로
        assert example.areas.tolist() == [item[4] for item in EXPECTED[image_id]]
        assert example.class_ids.tolist() == [item[0] for item in EXPECTED[image_id]]
        assert example.is_crowd.tolist() == [item[3] for item in EXPECTED[image_id]]
        assert not example.difficult.any() and (example.height, example.width) == (height, width)
    assert (examples[1].filename, examples[2].image_format, examples[0].image_format) == \
        ("sub/b.jpg", "png", "jpeg")
    with open(os.path.join(images_dir, "c.png"), "rb") as handle:
        assert examples[2].image_bytes == handle.read()


def test_classes_selects_a_subset_in_the_given_order(tmp_path):
    annotations_path, images_dir = _write(tmp_path)
    source = coco.open_coco_source(annotations_path, images_dir, "person,cat")
    assert source.classes == ("person", "cat")
    examples = {example.image_id: example for example in source.items}
    # dog 주석 (1, 3) 은 빠지고 이미지 10 에는 cat 만 남는다.
    assert examples["10"].class_ids.tolist() == [2] and examples["10"].class_names == ("cat",)
    assert examples["13"].class_ids.tolist() == [2, 1]
    with pytest.raises(sources.SourceError, match=r"instances\.json: --classes names 'horse' are not"):
        coco.open_coco_source(annotations_path, images_dir, "person,horse")


def _set(path, value):
    """dataset 의 경로 (키·번호 tuple) 에 값을 넣는 edit 함수."""
    def edit(dataset):
        target = dataset
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return edit


# 이미지 하나의 문제: (edit, 문제의 일부). 모두 instances.json 을 경로로 한다.
PER_IMAGE = {
    "unknown_category": (_set(("annotations", 3, "category_id"), 99),
                         "annotation id 4 (image id 11): unknown category id 99"),
    "zero_width": (_set(("annotations", 0, "bbox"), [4, 3, 0, 21]),
                   "annotation id 1 (image id 10): box [x=4, y=3, w=0, h=21] has w <= 0 or h <= 0"),
    "negative_height": (_set(("annotations", 3, "bbox"), [1, 2, 18, -1]), "has w <= 0 or h <= 0"),
    "outside": (_set(("annotations", 1, "bbox"), [10.5, 2.25, 31, 27.75]),
                "annotation id 2 (image id 10): box [x=10.5, y=2.25, w=31, h=27.75] lies outside the 40x30 "
                "image by more than one pixel"),
    "bad_bbox": (_set(("annotations", 0, "bbox"), [1, 2, 3]), "'bbox' must be four finite numbers"),
    "bad_iscrowd": (_set(("annotations", 0, "iscrowd"), 2), "'iscrowd' must be 0 or 1"),
    "bad_width": (_set(("images", 2, "width"), 0), "image id 12: 'width' must be a positive integer"),
}


@pytest.mark.parametrize("case", sorted(PER_IMAGE))
def test_a_bad_annotation_is_a_skippable_item_naming_the_file_and_ids(tmp_path, case):
    edit, problem = PER_IMAGE[case]
    annotations_path, images_dir = _write(tmp_path, edit)
    items = list(coco.open_coco_source(annotations_path, images_dir, None).items)
    errors = [item for item in items if isinstance(item, sources.SourceError)]
    assert len(errors) == 1 and len(items) == 4
    assert errors[0].path == annotations_path and problem in errors[0].problem


def test_image_file_problems_name_the_image_and_its_id(tmp_path):
    def shrink(dataset):
        dataset["images"][3]["width"] = 47
        dataset["annotations"][4]["bbox"] = [0, 0, 40, 30]
    annotations_path, images_dir = _write(tmp_path, shrink)
    os.remove(os.path.join(images_dir, "sub", "b.jpg"))
    items = list(coco.open_coco_source(annotations_path, images_dir, None).items)
    missing, mismatch = items[1], items[3]
    assert missing.path == os.path.join(images_dir, "sub", "b.jpg")
    assert missing.problem == f"image file not found (image id 11 in {annotations_path})"
    assert mismatch.path == os.path.join(images_dir, "d.jpg")
    assert mismatch.problem == (f"decoded image size 48x32 (WxH) differs from the size 47x32 of image id 13 "
                                f"in {annotations_path}")


def test_an_annotation_of_an_unknown_image_comes_first_as_its_own_item(tmp_path):
    annotations_path, images_dir = _write(tmp_path, _set(("annotations", 5, "image_id"), 77))
    source = coco.open_coco_source(annotations_path, images_dir, None)
    items = list(source.items)
    assert source.num_examples == 5 and len(items) == 5
    assert str(items[0]) == f"{annotations_path}: annotation id 6: unknown image id 77"
    assert items[4].class_ids.tolist() == [2]  # 이미지 13 에는 crowd 가 없다


@pytest.mark.parametrize("text, problem", [
    ('{"images": [', "malformed JSON"),
    ("[1, 2]", "its top level is not an object"),
    (json.dumps({"images": [], "categories": []}), "no 'annotations' list"),
    (json.dumps({"images": [{"file_name": "a.jpg"}], "annotations": [], "categories": []}),
     "lacks the key 'id'"),
    (json.dumps({**COCO_JSON, "categories": COCO_JSON["categories"] + [{"id": 3, "name": "dog2"}]}),
     "duplicate category ids: 3"),
    (json.dumps({**COCO_JSON, "images": COCO_JSON["images"] + [COCO_JSON["images"][0]]}),
     "duplicate image ids: 10"),
])
def test_whole_file_problems_raise(tmp_path, text, problem):
    annotations_path = tmp_path / "instances.json"
    annotations_path.write_text(text)
    with pytest.raises(sources.SourceError, match=problem) as raised:
        coco.read_coco(str(annotations_path), str(tmp_path))
    assert raised.value.path == str(annotations_path)
    with pytest.raises(sources.SourceError, match="COCO annotation file not found"):
        coco.read_coco(str(tmp_path / "missing.json"), str(tmp_path))
