"""frcnn.data.sources 테스트: VOC 디렉터리 소스가 XML 정답을 정규화 박스·클래스 id 로 내고, 파일 하나의 문제는
건너뛸 수 있는 SourceError 로, 분할·--classes 자체의 문제는 예외로 알리는지 확인한다."""

import os

import numpy as np
import pytest

import tensorflow as tf

from frcnn.data import records
from frcnn.data import sources
from frcnn.data import voc
from tests.testing import VOC_IMAGES, write_voc_dir


def _items(source):
    return list(source.items)


def test_voc_source_yields_normalized_examples(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    source = sources.open_voc_source(voc_dir, "trainval", None)
    assert (source.name, source.classes, source.num_examples) == ("voc", voc.VOC_CLASSES, 4)
    examples = _items(source)
    assert [example.image_id for example in examples] == list(VOC_IMAGES)
    first = examples[0]
    assert (first.height, first.width, first.filename, first.image_format) == (30, 40, "000001.jpg", "jpeg")
    with open(os.path.join(voc_dir, "JPEGImages", "000001.jpg"), "rb") as handle:
        assert first.image_bytes == handle.read()
    # VOC dog (5, 4, 20, 25) → 연속 [3, 4, 25, 20] → / (30, 40, 30, 40)
    np.testing.assert_allclose(first.normalized_boxes[0], [3 / 30, 4 / 40, 25 / 30, 20 / 40], rtol=1e-6)
    np.testing.assert_array_equal(first.continuous_boxes()[0], [3, 4, 25, 20])  # XML 값 그대로 (평가기의 GT)
    assert first.areas is None and first.is_crowd is None
    assert first.class_ids.tolist() == [12, 8] and first.class_names == ("dog", "cat")
    assert first.difficult.tolist() == [True, False] and first.truncated.tolist() == [False, True]
    assert examples[2].normalized_boxes.shape == (0, 4)


def test_explicit_classes_unknown_name_is_a_per_file_item(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    items = _items(sources.open_voc_source(voc_dir, "trainval", "dog,cat"))
    errors = [item for item in items if isinstance(item, sources.SourceError)]
    assert [os.path.basename(error.path) for error in errors] == ["000002.xml", "000004.xml"]
    assert errors[0].problem == "unknown class 'person' (known: dog, cat)"
    assert items[0].class_ids.tolist() == [1, 2]


def test_bad_xml_is_a_per_file_item_and_auto_classes_ignore_it(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    with open(os.path.join(voc_dir, "Annotations", "000002.xml"), "w") as handle:
        handle.write("<annotation>")
    source = sources.open_voc_source(voc_dir, "trainval", None)
    items = _items(source)
    assert isinstance(items[1], sources.SourceError) and "XML parse error" in str(items[1])
    assert source.classes == voc.VOC_CLASSES


def test_split_and_classes_flag_problems_raise(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    with pytest.raises(sources.SourceError, match=r"missing\.txt: split file not found"):
        sources.open_voc_source(voc_dir, "missing", None)
    with pytest.raises(sources.SourceError, match="duplicate class names: dog"):
        sources.open_voc_source(voc_dir, "trainval", "dog,dog")
    with open(os.path.join(voc_dir, "ImageSets", "Main", "empty.txt"), "w") as handle:
        handle.write("\n")
    with pytest.raises(sources.SourceError, match="the split lists no image ids"):
        sources.open_voc_source(voc_dir, "empty", None)


def test_records_source_reads_the_converted_examples_back(tmp_path):
    """VOC 소스로 쓴 레코드를 레코드 소스로 읽으면 같은 값 (박스는 float32 정규화 × 크기), 나쁜 예제는 파일 이름으로."""
    voc_examples = _items(sources.open_voc_source(write_voc_dir(tmp_path), "trainval", None))
    good, bad = str(tmp_path / "good.tfrecord"), str(tmp_path / "bad.tfrecord")
    with tf.io.TFRecordWriter(good) as writer:
        for example in voc_examples:
            writer.write(records.build_example(example, [0], [0], "fingerprint").SerializeToString())
    with tf.io.TFRecordWriter(bad) as writer:
        writer.write(tf.train.Example().SerializeToString())
    source = sources.open_records_source([good, bad], "dog,cat,person")
    assert (source.name, source.classes, source.num_examples) == ("records", ("dog", "cat", "person"), 5)
    items = _items(source)
    for read, written in zip(items, voc_examples):
        assert (read.image_id, read.image_bytes, read.class_names) == (written.image_id, written.image_bytes,
                                                                       written.class_names)
        assert read.class_ids.tolist() == written.class_ids.tolist()  # 레코드의 라벨 그대로
        np.testing.assert_allclose(read.continuous_boxes(), written.continuous_boxes(), atol=1e-5)
        assert read.difficult.tolist() == written.difficult.tolist() and not read.is_crowd.any()
    assert isinstance(items[4], sources.SourceError) and items[4].path == bad
    assert items[4].problem.startswith("example without image/encoded")


def test_parallel_map_keeps_order():
    assert list(sources.parallel_map(lambda value: value * value, range(50))) == [v * v for v in range(50)]
