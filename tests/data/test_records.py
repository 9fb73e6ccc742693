"""frcnn.data.records 테스트: Example 만들기 → 직렬화 → 파싱 왕복, 앵커 코드 바이트, 캔버스 박스."""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from pipelines import convert
from frcnn.data import records


def _example(num_objects=2):
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], np.float32)[:num_objects]
    return convert.SourceExample(
        image_id="000007", filename="000007.jpg", source_path="Annotations/000007.xml",
        image_bytes=b"\xff\xd8not-really-a-jpeg\xff\xd9", image_format="jpeg", height=300, width=400,
        normalized_boxes=boxes, class_ids=np.array([3, 20], np.int64)[:num_objects],
        class_names=("bird", "tvmonitor")[:num_objects], difficult=np.array([True, False])[:num_objects],
        truncated=np.array([False, True])[:num_objects])


def test_anchor_matches_bytes_are_int16_little_endian():
    encoded = records.encode_anchor_matches([-1, 0, 258, 1])
    assert encoded == b"\xff\xff\x00\x00\x02\x01\x01\x00"
    decoded = records.decode_anchor_matches(tf.constant(encoded), 4)
    assert decoded.dtype == tf.int32 and decoded.numpy().tolist() == [-1, 0, 258, 1]
    with pytest.raises(Exception):
        records.decode_anchor_matches(tf.constant(encoded), 5)


@pytest.mark.parametrize("num_objects", [2, 0])
def test_example_roundtrip(num_objects):
    source = _example(num_objects)
    matches = np.array([-1, 0, 1, 2, 0], np.int32)
    flipped = np.array([0, 2, -1, 1, 0], np.int32)
    serialized = records.build_example(source, matches, flipped, "abc123def456").SerializeToString()
    parsed = {key: value.numpy() for key, value in records.parse_example(tf.constant(serialized)).items()}
    assert parsed["image_bytes"] == source.image_bytes
    assert (parsed["format"], parsed["filename"], parsed["source_id"]) == (b"jpeg", b"000007.jpg", b"000007")
    assert (parsed["height"], parsed["width"]) == (300, 400)
    np.testing.assert_array_equal(parsed["boxes"].reshape(-1, 4), source.normalized_boxes)
    assert parsed["classes"].tolist() == [3, 20][:num_objects]
    assert [name.decode() for name in parsed["class_names"]] == list(source.class_names)
    assert parsed["difficult"].tolist() == [True, False][:num_objects]
    assert parsed["truncated"].tolist() == [False, True][:num_objects]
    assert parsed["anchor_fingerprint"] == b"abc123def456"
    assert records.decode_anchor_matches(parsed["anchor_matches_bytes"], 5).numpy().tolist() == matches.tolist()
    assert records.decode_anchor_matches(parsed["anchor_matches_flipped_bytes"], 5).numpy().tolist() == \
        flipped.tolist()


def test_feature_names_follow_object_detection_api():
    serialized = records.build_example(_example(), [0], [0], "f").SerializeToString()
    names = set(tf.train.Example.FromString(serialized).features.feature)
    assert {"image/encoded", "image/format", "image/filename", "image/source_id", "image/height",
            "image/width", "image/object/bbox/xmin", "image/object/bbox/ymin", "image/object/bbox/xmax",
            "image/object/bbox/ymax", "image/object/class/label", "image/object/class/text",
            "image/object/difficult", "image/object/truncated"} <= names
    # 레코드의 xmin 목록은 [ymin, xmin, ymax, xmax] 박스의 두 번째 열이다.
    feature = tf.train.Example.FromString(serialized).features.feature
    assert list(feature["image/object/bbox/xmin"].float_list.value) == pytest.approx([0.2, 0.0])


def test_canvas_boxes_hand_computed():
    config = config_lib.build_config("cpu_small")  # 짧은 변 128, 긴 변 ≤ 192
    boxes = np.array([[[0.1, 0.25, 0.5, 1.0], [-1, -1, -1, -1]]], np.float32)
    # 300×400 → 배율 min(128/300, 192/400) = 0.42667 → (128, 171)
    gt_boxes, sizes = records.canvas_boxes(boxes, np.array([300]), np.array([400]), config)
    assert sizes.numpy().tolist() == [[128.0, 171.0]]
    np.testing.assert_allclose(gt_boxes.numpy()[0, 0], [12.8, 42.75, 64.0, 171.0], rtol=1e-6)
    assert gt_boxes.numpy()[0, 1].tolist() == [-1, -1, -1, -1]
