"""frcnn.data.records 테스트: 샤드·메타데이터 파일 이름, Example 만들기 → 직렬화 → 파싱 왕복 (그래프 안·numpy), 이미지만 담은 예제,
다른 도구가 만든 레코드 읽기, 희소 앵커 라벨."""

import glob

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import records
from frcnn.data import sources


def _example(num_objects=2):
    boxes = np.array([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]], np.float32)[:num_objects]
    return sources.SourceExample(
        image_id="000007", filename="000007.jpg", source_path="Annotations/000007.xml",
        image_bytes=b"\xff\xd8not-really-a-jpeg\xff\xd9", image_format="jpeg", height=300, width=400,
        normalized_boxes=boxes, class_ids=np.array([3, 20], np.int64)[:num_objects],
        class_names=("bird", "tvmonitor")[:num_objects], difficult=np.array([True, False])[:num_objects],
        truncated=np.array([False, True])[:num_objects])


def _decode(parts, boundary):
    return records.decode_anchor_matches([tf.constant(part, tf.int64) for part in parts],
                                         tf.constant(boundary, tf.bool)).numpy()


def test_sparse_anchor_labels_hand_checked():
    """손으로 푼 예: 앵커 10개, 경계 밖 1·8·9, 무시 0·4, 양성 3 (코드 2)·6 (코드 130), 나머지 음성."""
    matches = [-1, -1, 0, 2, -1, 0, 130, 0, -1, -1]
    boundary = [False, True, False, False, False, False, False, False, True, True]
    ignore_deltas, positive_deltas, positive_codes = records.encode_anchor_matches(matches, boundary)
    assert ignore_deltas.tolist() == [0, 4]  # 번호 0, 4
    assert positive_deltas.tolist() == [3, 3]  # 번호 3, 6
    assert positive_codes.tolist() == [2, 130]
    decoded = _decode((ignore_deltas, positive_deltas, positive_codes), boundary)
    assert decoded.dtype == np.int32 and decoded.tolist() == matches
    # 경계 마스크가 없으면 모든 무시 앵커를 적는다
    assert records.encode_anchor_matches(matches)[0].tolist() == [0, 1, 3, 4, 1]  # 번호 0, 1, 4, 8, 9
    with pytest.raises(ValueError, match="crossing the image boundary has a match code other than -1"):
        records.encode_anchor_matches([0, 1], [True, False])


def test_sparse_anchor_labels_varint_bytes():
    """Int64List 는 packed varint: 128 미만의 차분·코드는 한 바이트, 128 이상은 두 바이트."""
    narrow = tf.train.Int64List(value=[0, 4, 127]).SerializeToString()
    assert narrow == bytes([0x0A, 3, 0, 4, 127])  # 필드 1 (packed) 태그, 길이 3, 값 세 바이트
    assert len(tf.train.Int64List(value=[0, 4, 128]).SerializeToString()) == len(narrow) + 1


def test_sparse_anchor_labels_roundtrip_random():
    rng = np.random.default_rng(0)
    for _ in range(5):
        matches = rng.choice([-1, 0, 0, 0, 1, 2, 300], size=2000).astype(np.int32)
        boundary = rng.random(2000) < 0.4
        matches[boundary] = -1
        decoded = _decode(records.encode_anchor_matches(matches, boundary), boundary)
        np.testing.assert_array_equal(decoded, matches)
    with pytest.raises(Exception):  # 캔버스 밖 번호
        _decode(([12], [], []), [False] * 10)


@pytest.mark.parametrize("num_objects", [2, 0])
def test_example_roundtrip(num_objects):
    source = _example(num_objects)
    matches = np.array([-1, 0, 1, 2, -1], np.int32)
    flipped = np.array([0, 2, -1, 1, -1], np.int32)
    serialized = records.build_example(source, matches, flipped, "abc123def456",
                                       [False, False, False, False, True]).SerializeToString()
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
    boundary = [False, False, False, False, True]
    for key_flipped, expected in ((False, matches), (True, flipped)):
        parts = [parsed[key] for key in records.anchor_label_keys(key_flipped)]
        assert all(part.dtype == np.int64 for part in parts)
        assert _decode(parts, boundary).tolist() == expected.tolist()


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


def _feature(values):
    """손으로 만드는 tf.train.Feature (bytes / int / float 목록)."""
    if values and isinstance(values[0], bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if values and isinstance(values[0], int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _serialized(features):
    return tf.train.Example(features=tf.train.Features(
        feature={key: _feature(values) for key, values in features.items()})).SerializeToString()


@pytest.mark.parametrize("num_objects", [2, 0])
def test_read_example_numpy_equals_graph_parse(num_objects):
    source = _example(num_objects)
    serialized = records.build_example(source, [0, 1], [1, 0], "f").SerializeToString()
    graph = {key: value.numpy() for key, value in records.parse_example(tf.constant(serialized)).items()}
    plain = records.read_example_numpy(serialized)
    assert plain["image_bytes"] == graph["image_bytes"] == source.image_bytes
    assert (plain["format"], plain["filename"], plain["source_id"]) == ("jpeg", "000007.jpg", "000007")
    assert (plain["height"], plain["width"]) == (300, 400)
    assert plain["boxes"].shape == (num_objects, 4) and plain["boxes"].dtype == np.float32
    np.testing.assert_array_equal(plain["boxes"], graph["boxes"].reshape(-1, 4))
    np.testing.assert_array_equal(plain["boxes"], source.normalized_boxes)
    assert plain["classes"].dtype == np.int64 and plain["classes"].tolist() == [3, 20][:num_objects]
    assert plain["class_names"] == list(source.class_names)
    assert plain["difficult"].tolist() == [True, False][:num_objects]
    assert plain["truncated"].tolist() == [False, True][:num_objects]


def test_read_example_numpy_tolerates_other_tools_records():
    """앵커 특징·이름·difficult 가 없는 (다른 도구가 만든) 레코드: 빈 값으로 채운다."""
    serialized = _serialized({
        records.ENCODED: [b"png-bytes"], records.HEIGHT: [10], records.WIDTH: [20],
        records.BOX_YMIN: [0.1], records.BOX_XMIN: [0.2], records.BOX_YMAX: [0.3], records.BOX_XMAX: [0.4],
        records.CLASS_LABEL: [5], records.CLASS_TEXT: [b"a", b"b"]})  # 이름 수가 박스 수와 다르다
    plain = records.read_example_numpy(serialized)
    assert (plain["image_bytes"], plain["height"], plain["width"]) == (b"png-bytes", 10, 20)
    np.testing.assert_allclose(plain["boxes"], [[0.1, 0.2, 0.3, 0.4]], rtol=1e-6)
    assert plain["classes"].tolist() == [5] and plain["class_names"] == [""]
    assert plain["difficult"].tolist() == [False] and plain["truncated"].tolist() == [False]
    assert (plain["source_id"], plain["filename"], plain["format"]) == ("", "", "")


@pytest.mark.parametrize("features, problem", [
    ({records.HEIGHT: [10], records.WIDTH: [20]}, "without image/encoded"),
    ({records.ENCODED: [b"x"], records.HEIGHT: [10], records.WIDTH: [20], records.BOX_YMIN: [0.1],
      records.BOX_XMIN: [0.1], records.BOX_YMAX: [0.2], records.BOX_XMAX: [0.2]},
     "1 boxes but 0 class labels"),
    ({records.ENCODED: [b"x"], records.HEIGHT: [10], records.WIDTH: [20], records.BOX_YMIN: [0.1],
      records.CLASS_LABEL: [1]}, "box coordinate lists differ in length"),
])
def test_read_example_numpy_rejects_incomplete_examples(features, problem):
    with pytest.raises(ValueError, match=problem):
        records.read_example_numpy(_serialized(features))


def test_image_example_holds_only_the_image():
    serialized = records.image_example(b"\x89PNG-bytes", "png", 32, 48).SerializeToString()
    assert set(tf.train.Example.FromString(serialized).features.feature) == {
        records.ENCODED, records.FORMAT, records.HEIGHT, records.WIDTH}
    plain = records.read_example_numpy(serialized)
    assert (plain["image_bytes"], plain["format"], plain["height"], plain["width"]) == \
        (b"\x89PNG-bytes", "png", 32, 48)
    assert plain["boxes"].shape == (0, 4) and plain["class_names"] == []
    features = records.image_example(b"x", b"jpeg", 1, 1).features.feature
    assert features[records.FORMAT].bytes_list.value == [b"jpeg"]


def test_parse_image_bytes_and_size_in_graph():
    first = records.image_example(b"first", "png", 3, 4).SerializeToString()
    second = records.build_example(_example(), [0], [0], "f").SerializeToString()
    image_bytes = tf.function(records.parse_image_bytes)(tf.constant([first, second]))
    assert image_bytes.numpy().tolist() == [b"first", _example().image_bytes]
    height, width = records.parse_image_size(tf.constant(second))
    assert (int(height), int(width)) == (300, 400)


def test_shard_names_glob_and_metadata_path(tmp_path):
    directory = tmp_path / "out[1]"  # glob 특수 문자는 이스케이프된다
    directory.mkdir()
    names = [records.shard_name("train*", index, 12) for index in (0, 11)]
    assert names == ["train*-00000-of-00012.tfrecord", "train*-00011-of-00012.tfrecord"]
    for name in names + ["trainval-00000-of-00001.tfrecord", "train*.json"]:
        (directory / name).write_bytes(b"")
    found = sorted(glob.glob(records.shard_glob(str(directory), "train*")))
    assert found == [str(directory / name) for name in names]
    assert records.SHARD_NAME_PATTERN.match(names[1]).group("split") == "train*"
    assert records.SHARD_NAME_PATTERN.match("train-0-of-1.tfrecord") is None
    assert records.metadata_path(str(directory), "train*") == str(directory / "train*.json")
