"""frcnn.data.classes 테스트: --classes 값 읽기, 자동 규칙, 명시 목록 검사, 이름 → id."""

import numpy as np
import pytest

from frcnn.data import classes
from frcnn.data import voc


def test_auto_classes_voc():
    assert classes.discover_classes(["dog", "person", "tvmonitor"]) == voc.VOC_CLASSES
    assert classes.discover_classes(iter(["dog"])) == voc.VOC_CLASSES
    assert classes.discover_classes([]) == voc.VOC_CLASSES  # 이름이 없으면 (빈 집합 ⊂ VOC) VOC 목록


def test_auto_classes_discovered_sorted():
    assert classes.discover_classes(["zebra", "dog", "apple", "zebra"]) == ("apple", "dog", "zebra")
    assert classes.discover_classes(["zebra", "dog", "zebra"]) == ("dog", "zebra")


def test_explicit_comma_list():
    assert classes.parse_classes_flag(" square , circle,triangle") == ("square", "circle", "triangle")


def test_classes_file(tmp_path):
    classes_path = tmp_path / "classes.txt"
    classes_path.write_text("square\n\n  circle \ntriangle\n")
    assert classes.parse_classes_flag(str(classes_path)) == ("square", "circle", "triangle")


def test_single_class_name():
    assert classes.parse_classes_flag("dog") == ("dog",)


def test_unknown_class_names_name_the_file():
    listed = classes.parse_classes_flag("square,circle")
    np.testing.assert_array_equal(classes.class_ids(["circle", "square"], listed, "/a.xml"), [2, 1])
    with pytest.raises(voc.VocError) as error_info:
        classes.class_ids(["square", "hexagon"], listed, "/data/Annotations/bad1.xml")
    error = error_info.value
    assert error.path == "/data/Annotations/bad1.xml"
    assert error.problem == "unknown class 'hexagon' (known: square, circle)"


def test_missing_classes_file(tmp_path):
    missing = str(tmp_path / "classes.txt")
    with pytest.raises(voc.VocError, match="classes file not found"):
        classes.parse_classes_flag(missing)


@pytest.mark.parametrize("flag, problem", [("a,,b", "empty class name"),
                                           ("a,b,a", "duplicate class names: a")])
def test_bad_class_list(flag, problem):
    with pytest.raises(voc.VocError, match=problem) as error_info:
        classes.parse_classes_flag(flag)
    assert error_info.value.path == flag


def test_empty_classes_file(tmp_path):
    classes_path = tmp_path / "classes.txt"
    classes_path.write_text("\n  \n")
    with pytest.raises(voc.VocError, match="no class names given"):
        classes.parse_classes_flag(str(classes_path))


def test_class_ids():
    ids = classes.class_ids(["cat", "aeroplane", "tvmonitor", "cat"], voc.VOC_CLASSES, "a.xml")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [8, 1, 20, 8])
    assert classes.class_ids((), voc.VOC_CLASSES, "empty.xml").shape == (0,)
    np.testing.assert_array_equal(classes.class_ids(["b", "a"], ("a", "b"), "x"), [2, 1])


def test_class_ids_unknown():
    with pytest.raises(voc.VocError, match=r"a\.xml: unknown class 'zebra'"):
        classes.class_ids(["zebra"], voc.VOC_CLASSES, "a.xml")


def test_from_id_name_pairs_fills_gaps_and_keeps_first_name():
    pairs = [(2, "dog"), (0, ""), (2, "hound"), (4, ""), (1, "cat")]
    names, id_to_name = classes.from_id_name_pairs(pairs)
    assert names == ("cat", "dog", "class_3", "class_4")
    assert id_to_name == {1: "cat", 2: "dog"}
    assert classes.from_id_name_pairs([]) == ((), {})
