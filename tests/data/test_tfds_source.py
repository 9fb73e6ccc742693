"""frcnn.data.tfds_source 테스트: tfds 원소 하나(numpy)를 SourceExample 로 바꾸고, 잘못된 박스·이미지·클래스는
건너뛸 수 있는 SourceError 로 돌려주는지 (tfds 없이). tfds 를 거치는 전체 경로는 tests/tools/test_make_tfrecords."""

import numpy as np

from frcnn.data import sources
from frcnn.data import tfds_source
from frcnn.data import voc
from tests.testing import jpeg_bytes


def _element(bbox, labels=(11,), image=None):
    count = len(labels)
    return {
        tfds_source.TFDS_IMAGE: jpeg_bytes(40, 30, 0) if image is None else image,
        tfds_source.TFDS_FILENAME: b"000001.jpg",
        tfds_source.TFDS_OBJECTS: {"bbox": np.array(bbox, np.float32).reshape(-1, 4),
                                   "label": np.array(labels, np.int64),
                                   "is_difficult": np.ones(count, bool),
                                   "is_truncated": np.zeros(count, bool)}}


def test_element_to_example():
    example = tfds_source._tfds_example(_element([[0.1, 0.2, 0.5, 0.6]]), "train", voc.VOC_CLASSES,
                                        ("cat", "dog"))
    assert isinstance(example, sources.SourceExample)
    assert (example.image_id, example.filename) == ("000001", "000001.jpg")
    assert (example.height, example.width) == (30, 40)
    assert example.source_path == "tfds:voc/2007/train/000001.jpg" and example.image_format == "jpeg"
    assert example.class_names == ("dog",) and example.class_ids.tolist() == [2]
    np.testing.assert_array_equal(example.normalized_boxes, np.array([[0.1, 0.2, 0.5, 0.6]], np.float32))
    assert example.difficult.tolist() == [True] and example.truncated.tolist() == [False]


def test_bad_elements_become_source_errors():
    inverted = tfds_source._tfds_example(_element([[0.5, 0.2, 0.1, 0.6]]), "train", voc.VOC_CLASSES,
                                         voc.VOC_CLASSES)
    assert isinstance(inverted, sources.SourceError) and "inverted or outside [0, 1]" in inverted.problem
    unknown = tfds_source._tfds_example(_element([[0.1, 0.2, 0.5, 0.6]]), "train", voc.VOC_CLASSES, ("cat",))
    assert isinstance(unknown, sources.SourceError)
    assert unknown.problem == "unknown class 'dog' (known: cat)"
    corrupt = tfds_source._tfds_example(_element([], labels=(), image=b"not an image"), "train",
                                        voc.VOC_CLASSES, voc.VOC_CLASSES)
    assert isinstance(corrupt, sources.SourceError) and "corrupt or truncated image" in corrupt.problem
