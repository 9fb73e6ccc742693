"""frcnn.data.voc 테스트: 손으로 쓴 작은 XML/JPEG 로 파싱, 검사, 좌표 변환을 확인한다."""

import io
import os

import numpy as np
import pytest
from PIL import Image, ImageFile

from frcnn.data import voc


def _object_xml(name="dog", box=("48", "240", "195", "371"), difficult="0", truncated=None):
    """<object> 하나의 XML 문자열. 인자가 None 이면 그 요소를 뺀다."""
    parts = ["<object>"]
    if name is not None:
        parts.append(f"<name>{name}</name>")
    if truncated is not None:
        parts.append(f"<truncated>{truncated}</truncated>")
    if difficult is not None:
        parts.append(f"<difficult>{difficult}</difficult>")
    if box is not None:
        keys = ("xmin", "ymin", "xmax", "ymax")
        coordinates = "".join(f"<{key}>{value}</{key}>" for key, value in zip(keys, box) if value is not None)
        parts.append(f"<bndbox>{coordinates}</bndbox>")
    parts.append("</object>")
    return "".join(parts)


def _annotation_xml(objects=(), width="500", height="375", filename="{id}.jpg", size=True):
    size_xml = (f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
                if size else "")
    filename_xml = f"<filename>{filename}</filename>" if filename else ""
    return (f"<annotation><folder>VOC2007</folder>{filename_xml}{size_xml}"
            f"<segmented>0</segmented>{''.join(objects)}</annotation>")


def _write_xml(voc_dir, image_id, text):
    annotations_dir = voc_dir / "Annotations"
    annotations_dir.mkdir(parents=True, exist_ok=True)
    path = annotations_dir / f"{image_id}.xml"
    path.write_text(text.replace("{id}", image_id))
    return str(path)


def _write_jpeg(voc_dir, filename, width, height, seed=0):
    images_dir = voc_dir / "JPEGImages"
    images_dir.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    path = images_dir / filename
    path.write_bytes(buffer.getvalue())
    return path


# ---------------------------------------------------------------- read_annotation: 정상 입력


def test_one_object(tmp_path):
    _write_xml(tmp_path, "000005", _annotation_xml([_object_xml("dog", ("48", "240", "195", "371"))]))
    annotation = voc.read_annotation(str(tmp_path), "000005")
    assert annotation.image_id == "000005"
    assert annotation.xml_path == str(tmp_path / "Annotations" / "000005.xml")
    assert annotation.image_path == str(tmp_path / "JPEGImages" / "000005.jpg")
    assert (annotation.width, annotation.height) == (500, 375)
    assert annotation.class_names == ("dog",)
    # VOC (48, 240, 195, 371) -> [ymin-1, xmin-1, ymax, xmax]
    np.testing.assert_array_equal(annotation.boxes, np.array([[239, 47, 371, 195]], np.float32))
    assert annotation.boxes.dtype == np.float32
    np.testing.assert_array_equal(annotation.difficult, [False])
    np.testing.assert_array_equal(annotation.truncated, [False])


def test_many_objects_keep_order_and_flags(tmp_path):
    objects = [
        _object_xml("person", ("1", "2", "30", "40"), difficult="1", truncated="0"),
        _object_xml("car", ("10", "20", "100", "200"), difficult="0", truncated="1"),
        _object_xml("person", ("5", "6", "7", "8"), difficult="0", truncated="0"),
    ]
    _write_xml(tmp_path, "a", _annotation_xml(objects))
    annotation = voc.read_annotation(str(tmp_path), "a")
    assert annotation.class_names == ("person", "car", "person")
    expected = np.array([[1, 0, 40, 30], [19, 9, 200, 100], [5, 4, 8, 7]], np.float32)
    np.testing.assert_array_equal(annotation.boxes, expected)
    np.testing.assert_array_equal(annotation.difficult, [True, False, False])
    np.testing.assert_array_equal(annotation.truncated, [False, True, False])


def test_no_object(tmp_path):
    _write_xml(tmp_path, "empty", _annotation_xml([]))
    annotation = voc.read_annotation(str(tmp_path), "empty")
    assert annotation.boxes.shape == (0, 4)
    assert annotation.boxes.dtype == np.float32
    assert annotation.class_names == ()
    assert annotation.difficult.shape == (0,) and annotation.difficult.dtype == bool
    assert annotation.truncated.shape == (0,) and annotation.truncated.dtype == bool


def test_missing_difficult_and_truncated_are_false(tmp_path):
    _write_xml(tmp_path, "a", _annotation_xml([_object_xml(difficult=None, truncated=None)]))
    annotation = voc.read_annotation(str(tmp_path), "a")
    np.testing.assert_array_equal(annotation.difficult, [False])
    np.testing.assert_array_equal(annotation.truncated, [False])


def test_float_coordinates_and_whitespace(tmp_path):
    text = ("<annotation>\n  <filename> pic.jpeg </filename>\n"
            "  <size>\n <width> 100 </width>\n <height>\t80 </height>\n </size>\n"
            "  <object>\n <name>\n  cat \n </name>\n <difficult> 1 </difficult>\n"
            "   <bndbox><xmin> 48.5 </xmin><ymin>10.25</ymin><xmax>60.5</xmax><ymax> 70 </ymax></bndbox>\n"
            "  </object>\n</annotation>\n")
    _write_xml(tmp_path, "a", text)
    annotation = voc.read_annotation(str(tmp_path), "a")
    assert annotation.class_names == ("cat",)
    assert annotation.image_path == str(tmp_path / "JPEGImages" / "pic.jpeg")
    assert (annotation.width, annotation.height) == (100, 80)
    np.testing.assert_allclose(annotation.boxes, [[9.25, 47.5, 70.0, 60.5]])
    np.testing.assert_array_equal(annotation.difficult, [True])


def test_missing_filename_defaults_to_image_id_jpg(tmp_path):
    _write_xml(tmp_path, "000123", _annotation_xml([_object_xml()], filename=None))
    annotation = voc.read_annotation(str(tmp_path), "000123")
    assert annotation.image_path == os.path.join(str(tmp_path), "JPEGImages", "000123.jpg")


def test_boxes_within_one_pixel_are_clipped(tmp_path):
    # 이미지 100x80: xmin 0 -> 1, ymin 0.5 -> 1, xmax 101 -> 100, ymax 80.5 -> 80
    _write_xml(tmp_path, "a", _annotation_xml(
        [_object_xml(box=("0", "0.5", "101", "80.5"))], width="100", height="80"))
    annotation = voc.read_annotation(str(tmp_path), "a")
    np.testing.assert_array_equal(annotation.boxes, [[0, 0, 80, 100]])


def test_annotation_arrays_are_read_only(tmp_path):
    _write_xml(tmp_path, "a", _annotation_xml([_object_xml()]))
    annotation = voc.read_annotation(str(tmp_path), "a")
    with pytest.raises(ValueError):
        annotation.boxes[0, 0] = 5.0


# ---------------------------------------------------------------- read_annotation: 오류


def _assert_voc_error(voc_dir, image_id, expected_problem):
    with pytest.raises(voc.VocError) as error_info:
        voc.read_annotation(str(voc_dir), image_id)
    error = error_info.value
    assert error.path == str(voc_dir / "Annotations" / f"{image_id}.xml")
    assert f"{image_id}.xml" in str(error)
    assert expected_problem in error.problem
    assert str(error) == f"{error.path}: {error.problem}"
    return error


def test_missing_xml_file(tmp_path):
    _assert_voc_error(tmp_path, "nope", "not found")


def test_truncated_xml(tmp_path):
    full = _annotation_xml([_object_xml()])
    _write_xml(tmp_path, "cut", full[: len(full) // 2])
    _assert_voc_error(tmp_path, "cut", "XML parse error")


def test_not_xml(tmp_path):
    _write_xml(tmp_path, "junk", "this is not xml at all")
    _assert_voc_error(tmp_path, "junk", "XML parse error")


def test_wrong_root(tmp_path):
    _write_xml(tmp_path, "root", "<image><size><width>5</width><height>5</height></size></image>")
    _assert_voc_error(tmp_path, "root", "expected <annotation>")


@pytest.mark.parametrize("width, height, problem", [
    ("0", "375", "<size>/<width> must be a positive integer"),
    ("500", "-3", "<size>/<height> must be a positive integer"),
    ("abc", "375", "<size>/<width> is not a number"),
    ("", "375", "missing <size>/<width>"),
])
def test_bad_size(tmp_path, width, height, problem):
    _write_xml(tmp_path, "size", _annotation_xml([_object_xml()], width=width, height=height))
    _assert_voc_error(tmp_path, "size", problem)


def test_missing_size(tmp_path):
    _write_xml(tmp_path, "nosize", _annotation_xml([_object_xml()], size=False))
    _assert_voc_error(tmp_path, "nosize", "missing <size>")


def test_object_without_name(tmp_path):
    _write_xml(tmp_path, "noname", _annotation_xml([_object_xml(), _object_xml(name=None)]))
    _assert_voc_error(tmp_path, "noname", "<object> #2 has no <name>")


def test_object_without_bndbox(tmp_path):
    _write_xml(tmp_path, "nobox", _annotation_xml([_object_xml(name="cow", box=None)]))
    _assert_voc_error(tmp_path, "nobox", "has no <bndbox>")


def test_missing_coordinate(tmp_path):
    _write_xml(tmp_path, "nocoord", _annotation_xml([_object_xml(box=("1", "2", None, "40"))]))
    _assert_voc_error(tmp_path, "nocoord", "missing <object> #1 ('dog') <bndbox>/<xmax>")


def test_non_numeric_coordinate(tmp_path):
    _write_xml(tmp_path, "nan", _annotation_xml([_object_xml(box=("1", "two", "30", "40"))]))
    _assert_voc_error(tmp_path, "nan", "<bndbox>/<ymin> is not a number: 'two'")


@pytest.mark.parametrize("box", [("30", "2", "30", "40"), ("31", "2", "30", "40"), ("1", "40", "30", "39")])
def test_inverted_or_empty_box(tmp_path, box):
    _write_xml(tmp_path, "inv", _annotation_xml([_object_xml(box=box)]))
    _assert_voc_error(tmp_path, "inv", "empty or inverted box")


@pytest.mark.parametrize("box", [
    ("-0.5", "2", "30", "40"),   # xmin < 0
    ("1", "-1", "30", "40"),     # ymin < 0
    ("1", "2", "101.5", "40"),   # xmax > W + 1
    ("1", "2", "30", "82"),      # ymax > H + 1
])
def test_box_outside_image(tmp_path, box):
    _write_xml(tmp_path, "out", _annotation_xml([_object_xml(box=box)], width="100", height="80"))
    _assert_voc_error(tmp_path, "out", "outside the 100x80 image")


def test_bad_difficult_flag(tmp_path):
    _write_xml(tmp_path, "flag", _annotation_xml([_object_xml(difficult="yes")]))
    _assert_voc_error(tmp_path, "flag", "<difficult> is not a number")


# ---------------------------------------------------------------- read_image_checked


def _annotation_with_image(tmp_path, width=60, height=40):
    _write_xml(tmp_path, "im", _annotation_xml([_object_xml(box=("1", "1", "10", "10"))],
                                               width=str(width), height=str(height)))
    return voc.read_annotation(str(tmp_path), "im")


def test_read_image_returns_original_bytes(tmp_path):
    annotation = _annotation_with_image(tmp_path)
    path = _write_jpeg(tmp_path, "im.jpg", width=60, height=40)
    assert voc.read_image_checked(annotation) == path.read_bytes()


def test_missing_image(tmp_path):
    annotation = _annotation_with_image(tmp_path)
    with pytest.raises(voc.VocError) as error_info:
        voc.read_image_checked(annotation)
    assert error_info.value.path == annotation.image_path
    assert "im.jpg: image file not found" in str(error_info.value)


@pytest.mark.parametrize("keep_fraction", [0.1, 0.5, 0.99])
def test_truncated_jpeg(tmp_path, keep_fraction):
    annotation = _annotation_with_image(tmp_path)
    path = _write_jpeg(tmp_path, "im.jpg", width=60, height=40)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(voc.VocError, match=r"im\.jpg: corrupt or truncated image"):
        voc.read_image_checked(annotation)


def test_truncated_jpeg_rejected_even_if_pil_tolerates_truncation(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    annotation = _annotation_with_image(tmp_path)
    path = _write_jpeg(tmp_path, "im.jpg", width=60, height=40)
    path.write_bytes(path.read_bytes()[:-300])
    with pytest.raises(voc.VocError, match="corrupt or truncated image"):
        voc.read_image_checked(annotation)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # 호출자의 설정은 그대로 돌려놓는다


def test_garbage_image(tmp_path):
    annotation = _annotation_with_image(tmp_path)
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "JPEGImages" / "im.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(voc.VocError, match=r"im\.jpg: corrupt or truncated image"):
        voc.read_image_checked(annotation)


def test_image_size_mismatch(tmp_path):
    annotation = _annotation_with_image(tmp_path, width=60, height=40)
    _write_jpeg(tmp_path, "im.jpg", width=40, height=60)
    with pytest.raises(voc.VocError) as error_info:
        voc.read_image_checked(annotation)
    message = str(error_info.value)
    assert "im.jpg" in message
    assert "40x60" in message and "60x40" in message


# ---------------------------------------------------------------- read_split_ids


def test_read_split_ids(tmp_path):
    split_dir = tmp_path / "ImageSets" / "Main"
    split_dir.mkdir(parents=True)
    (split_dir / "trainval.txt").write_text("000005\n\n  000007  \n000009\n\n")
    assert voc.read_split_ids(str(tmp_path), "trainval") == ["000005", "000007", "000009"]


def test_missing_split_file(tmp_path):
    with pytest.raises(voc.VocError) as error_info:
        voc.read_split_ids(str(tmp_path), "test")
    assert error_info.value.path == str(tmp_path / "ImageSets" / "Main" / "test.txt")
    assert "test.txt: split file not found" in str(error_info.value)


def test_split_line_with_two_words(tmp_path):
    split_dir = tmp_path / "ImageSets" / "Main"
    split_dir.mkdir(parents=True)
    (split_dir / "train.txt").write_text("000005\n000007 -1\n")
    with pytest.raises(voc.VocError, match=r"train\.txt: line 2: expected one image id"):
        voc.read_split_ids(str(tmp_path), "train")


# ---------------------------------------------------------------- boxes_to_voc / voc_to_boxes


def test_box_conversion_golden():
    voc_boxes = np.array([[48, 240, 195, 371], [1, 1, 1.5, 2]], np.float32)
    continuous = voc.voc_to_boxes(voc_boxes)
    np.testing.assert_array_equal(continuous, [[239, 47, 371, 195], [0, 0, 2, 1.5]])
    np.testing.assert_array_equal(voc.boxes_to_voc(continuous), voc_boxes)


def test_box_conversion_roundtrip_random():
    rng = np.random.default_rng(3)
    continuous = rng.uniform(0, 500, size=(50, 4)).astype(np.float32)
    np.testing.assert_allclose(voc.voc_to_boxes(voc.boxes_to_voc(continuous)), continuous, atol=1e-4)
    voc_boxes = rng.uniform(1, 500, size=(50, 4)).astype(np.float32)
    np.testing.assert_allclose(voc.boxes_to_voc(voc.voc_to_boxes(voc_boxes)), voc_boxes, atol=1e-4)
    assert voc.boxes_to_voc(np.zeros((0, 4))).shape == (0, 4)
