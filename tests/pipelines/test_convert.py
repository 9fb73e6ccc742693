"""pipelines.convert 테스트: 손으로 쓴 작은 VOC 디렉터리(`tests.testing.write_voc_dir`)를 변환해 레코드가
XML 정답·원래 JPEG 바이트·단일 이미지 `label_anchors` 와 정확히 같은지, 실패하면 아무것도 남지 않는지 확인한다.
"""

import json
import os

import numpy as np
import pytest

from frcnn import config as config_lib
from frcnn import fileio
from frcnn.data import record_spec
from frcnn.data import records
from frcnn.data import sources
from frcnn.data import voc
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.ops import box_ops
from pipelines import convert
from tests.testing import VOC_IMAGES, convert_voc, read_records, record_anchor_matches, write_voc_dir


DROP = "input.difficult=drop"  # 참조 구현들의 기본 (cpu_small 프리셋은 keep)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    voc_dir = write_voc_dir(root)
    summary = convert_voc(voc_dir, root / "records", overrides=DROP, num_shards=2)
    return voc_dir, root / "records", summary


def test_records_equal_xml_ground_truth(converted):
    voc_dir, output_dir, _ = converted
    examples = read_records(str(output_dir / "trainval-*.tfrecord"))
    assert [example["source_id"].decode() for example in examples] == list(VOC_IMAGES)
    for example, (image_id, (width, height, objects)) in zip(examples, VOC_IMAGES.items()):
        assert (example["width"], example["height"]) == (width, height)
        assert example["filename"] == f"{image_id}.jpg".encode()
        with open(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"), "rb") as handle:
            assert example["image_bytes"] == handle.read()  # 다시 인코딩하지 않은 원래 바이트
        assert example["format"] == b"jpeg"
        ymin, xmin, ymax, xmax = example["boxes"].T.astype(np.float64)
        # 정규화 → VOC 픽셀: xmin = x0·W + 1, ymin = y0·H + 1, xmax = x1·W, ymax = y1·H
        recovered = np.stack([xmin * width + 1, ymin * height + 1, xmax * width, ymax * height], axis=1)
        expected = np.array([[float(value) for value in obj[1]] for obj in objects]).reshape(-1, 4)
        np.testing.assert_allclose(recovered, expected, atol=1e-4)
        integer_rows = [index for index, obj in enumerate(objects) if all("." not in v for v in obj[1])]
        np.testing.assert_array_equal(np.round(recovered[integer_rows]).astype(int),
                                      expected[integer_rows].astype(int))
        assert [name.decode() for name in example["class_names"]] == [obj[0] for obj in objects]
        voc_ids = {"cat": 8, "dog": 12, "person": 15}  # VOC_CLASSES 정렬 순서의 1부터 번호
        assert example["classes"].tolist() == [voc_ids[obj[0]] for obj in objects]
        assert example["difficult"].tolist() == [obj[2] == "1" for obj in objects]
        assert example["truncated"].tolist() == [obj[3] == "1" for obj in objects]


def test_metadata_json(converted):
    _, output_dir, summary = converted
    with open(output_dir / "trainval.json") as handle:
        metadata = json.load(handle)
    config = config_lib.build_config("cpu_small", DROP)
    assert metadata["difficult"] == "drop" and metadata["params_override"] == DROP
    assert metadata["classes"][0] == "aeroplane" and len(metadata["classes"]) == 20
    assert metadata["preset"] == "cpu_small"
    assert metadata["anchor_fingerprint"] == record_spec.anchor_fingerprint(config)
    # 캔버스 128×176, 176×128, 128×192, 192×128 / stride 8, 위치당 4×3 앵커
    assert metadata["canvases"] == [[128, 176], [176, 128], [128, 192], [192, 128]]
    assert metadata["num_anchors"] == [16 * 22 * 12, 22 * 16 * 12, 16 * 24 * 12, 24 * 16 * 12]
    # 40×30 (→128×171) 과 32×32 (→128×128) 은 128×176, 48×32 (→128×192) 는 128×192, 24×36 (→192×128) 은 192×128
    assert metadata["canvas_counts"] == [2, 0, 1, 1]
    assert (metadata["num_images"], metadata["num_objects"], metadata["num_difficult"]) == (4, 6, 1)
    assert metadata["skipped"] == []
    assert sorted(os.listdir(output_dir)) == ["trainval-00000-of-00002.tfrecord",
                                              "trainval-00001-of-00002.tfrecord", "trainval.json"]
    assert summary["num_images"] == 4


def _smallest_canvas(height, width, config):
    """리사이즈된 (h, w) 를 담는 넓이가 가장 작은 캔버스 (파이썬으로 따로 계산한 기대값)."""
    holding = [shape for shape in record_spec.canvases(config) if shape[0] >= height and shape[1] >= width]
    return min(holding, key=lambda shape: shape[0] * shape[1])


def _num_anchors(example, config):
    height, width = int(example["height"]), int(example["width"])
    scale = min(config.input.min_size / min(height, width), config.input.max_size / max(height, width))
    canvas = _smallest_canvas(round(height * scale), round(width * scale), config)
    return record_spec.num_anchors(config, canvas)


def _expected_matches(example, config, flipped):
    """한 이미지씩 전체 앵커로 `label_anchors` 를 직접 부른 기대값 (drop: difficult 물체를 GT 에서 뺀다)."""
    height, width = int(example["height"]), int(example["width"])
    scale = min(config.input.min_size / min(height, width), config.input.max_size / max(height, width))
    resized_height, resized_width = round(height * scale), round(width * scale)
    boxes = example["boxes"].reshape(-1, 4)
    gt_boxes = boxes * np.array([resized_height, resized_width] * 2, np.float32)
    if flipped:
        gt_boxes = box_ops.flip_left_right(gt_boxes, float(resized_width)).numpy()
    padded = np.full((1, max(1, len(boxes)), 4), -1.0, np.float32)
    padded[0, :len(boxes)] = gt_boxes
    assert config.input.difficult == "drop"
    padded[0, :len(boxes)][np.asarray(example["difficult"], bool)] = -1.0
    anchors = anchors_lib.anchors_for_canvas(config, _smallest_canvas(resized_height, resized_width, config))
    sizes = np.array([[resized_height, resized_width]], np.float32)
    return rpn_targets.label_anchors(anchors, padded, sizes, config.rpn).numpy()[0]


@pytest.mark.parametrize("flipped", [False, True])
def test_anchor_matches_equal_single_image_labels(converted, flipped):
    _, output_dir, _ = converted
    config = config_lib.build_config("cpu_small", DROP)
    for example in read_records(str(output_dir / "trainval-*.tfrecord")):
        matches = record_anchor_matches(example, config, flipped)
        assert matches.shape == (_num_anchors(example, config),)
        np.testing.assert_array_equal(matches, _expected_matches(example, config, flipped))
        num_objects = len(example["classes"])
        assert matches.min() >= -1 and matches.max() <= num_objects
        # difficult 가 아닌 각 GT 는 적어도 한 앵커에 매칭되고, difficult 물체는 어디에도 매칭되지 않는다 (drop).
        trained = {index + 1 for index in range(num_objects) if not example["difficult"][index]}
        assert set(np.unique(matches[matches > 0])) == trained


@pytest.mark.parametrize("preset", ["vgg16_paper", "vgg16_seed", "cpu_small"])
def test_sparse_records_decode_to_full_anchor_labels(tmp_path, preset):
    """희소 레코드를 푼 밀집 코드 == 한 이미지씩 전체 앵커로 계산한 `label_anchors` (원본·뒤집기), 프리셋마다.
    경계를 넘는 앵커의 −1 은 레코드에 없고 (무시로 적힌 수 < 밀집 코드의 −1 수) 읽을 때 되살아난다."""
    config = config_lib.build_config(preset, DROP)
    convert_voc(write_voc_dir(tmp_path), tmp_path / "records", preset=preset, overrides=DROP)
    for example in read_records(str(tmp_path / "records" / "trainval-*.tfrecord")):
        for flipped in (False, True):
            matches = record_anchor_matches(example, config, flipped)
            np.testing.assert_array_equal(matches, _expected_matches(example, config, flipped))
            ignore_key = records.anchor_label_keys(flipped)[0]
            assert len(example[ignore_key]) < np.sum(matches == -1)
            assert len(example[records.anchor_label_keys(flipped)[1]]) == np.sum(matches > 0)


def test_labeler_batch_equals_full_anchor_labels():
    """배치·앵커 부분집합 최적화가 전체 앵커의 label_anchors 와 같은지 (무작위 박스, vgg16_seed)."""
    config = config_lib.build_config("vgg16_seed")
    rng = np.random.default_rng(3)
    examples = []
    for index in range(5):
        count = int(rng.integers(0, 4))
        y0, x0 = rng.uniform(0, 0.6, count), rng.uniform(0, 0.6, count)
        boxes = np.stack([y0, x0, y0 + rng.uniform(0.05, 0.4, count), x0 + rng.uniform(0.05, 0.4, count)], 1)
        examples.append(sources.SourceExample(
            image_id=str(index), filename=f"{index}.jpg", source_path="x", image_bytes=b"",
            image_format="jpeg",
            height=300, width=400 + 37 * index, normalized_boxes=boxes.astype(np.float32),
            class_ids=np.ones(count, np.int64), class_names=("dog",) * count,
            difficult=np.zeros(count, bool), truncated=np.zeros(count, bool)))
    matches, flipped, _ = convert.AnchorLabeler(record_spec.RecordSpec.from_config(config))(examples)
    for example, example_matches, example_flipped in zip(examples, matches, flipped):
        parsed = {"height": example.height, "width": example.width, "boxes": example.normalized_boxes,
                  "difficult": example.difficult}
        np.testing.assert_array_equal(example_matches, _expected_matches(parsed, config, False))
        np.testing.assert_array_equal(example_flipped, _expected_matches(parsed, config, True))


def test_too_many_objects_is_an_error(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    config = config_lib.build_config("cpu_small", "input.max_gt_boxes=2")
    options = convert.ConvertOptions(output_dir=str(tmp_path / "out"), split="trainval")
    with pytest.raises(convert.ConversionError, match="--params_override=input.max_gt_boxes=3") as error:
        convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                        record_spec.RecordSpec.from_config(config), options)
    assert error.value.path.endswith("000004.xml")
    assert not (tmp_path / "out").exists()


def test_errors_keep_their_cause(tmp_path):
    """변환 오류는 원인을 잃지 않는다: ConversionError ← SourceError ← VocError ← float() 의 ValueError.
    (도구는 그래도 한 줄만 알린다: tests/tools/test_make_tfrecords.py 의 not_a_number.)"""
    voc_dir = write_voc_dir(tmp_path)
    xml_path = os.path.join(voc_dir, "Annotations", "000002.xml")
    with open(xml_path) as handle:
        text = handle.read()
    with open(xml_path, "w") as handle:
        handle.write(text.replace("<xmax>20</xmax>", "<xmax>twenty</xmax>"))
    options = convert.ConvertOptions(output_dir=str(tmp_path / "out"), split="trainval")
    with pytest.raises(convert.ConversionError, match=r"000002\.xml: .*is not a number: 'twenty'") as error:
        convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                        record_spec.RecordSpec.from_config(config_lib.build_config("cpu_small")), options)
    chain = [error.value.__cause__]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    assert [type(cause) for cause in chain] == [sources.SourceError, voc.VocError, ValueError]
    assert "could not convert string to float: 'twenty'" in str(chain[2])
    with pytest.raises(convert.ConversionError, match=r"missing\.txt: split file not found") as error:
        convert.convert(lambda: sources.open_voc_source(voc_dir, "missing", None),
                        record_spec.RecordSpec.from_config(config_lib.build_config("cpu_small")), options)
    assert isinstance(error.value.__cause__, sources.SourceError)
    assert isinstance(error.value.__cause__.__cause__, voc.VocError)


def test_default_shard_count_and_overwrite(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    convert_voc(voc_dir, tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == ["trainval-00000-of-00001.tfrecord", "trainval.json"]
    with pytest.raises(convert.ConversionError, match="already exist"):
        convert_voc(voc_dir, tmp_path / "out")
    convert_voc(voc_dir, tmp_path / "out", num_shards=3, overwrite=True)
    assert sorted(os.listdir(tmp_path / "out")) == [
        f"trainval-0000{index}-of-00003.tfrecord" for index in range(3)] + ["trainval.json"]


def test_overwrite_with_fewer_shards_removes_stale_shards(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    convert_voc(voc_dir, tmp_path / "out", num_shards=3)
    summary = convert_voc(voc_dir, tmp_path / "out", num_shards=2, overwrite=True)
    expected = [f"trainval-0000{index}-of-00002.tfrecord" for index in range(2)] + ["trainval.json"]
    assert sorted(os.listdir(tmp_path / "out")) == expected
    assert sorted(os.path.basename(path) for path in summary["files"]) == expected
    assert len(read_records(str(tmp_path / "out" / "trainval-*.tfrecord"))) == len(VOC_IMAGES)


def test_failed_commit_keeps_old_outputs(tmp_path, monkeypatch):
    voc_dir = write_voc_dir(tmp_path)
    convert_voc(voc_dir, tmp_path / "out", num_shards=3)
    before = {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")}

    def failing_commit(staged):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.StagedFiles, "commit", failing_commit)
    with pytest.raises(OSError, match="disk full"):
        convert_voc(voc_dir, tmp_path / "out", num_shards=2, overwrite=True)
    after = {name: (tmp_path / "out" / name).read_bytes() for name in os.listdir(tmp_path / "out")}
    assert after == before  # 옛 샤드 3개와 json 이 그대로, 임시 파일도 남지 않는다


def test_progress_callback_counts_every_source_item(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    with open(os.path.join(voc_dir, "Annotations", "000004.xml"), "w") as handle:
        handle.write("<annotation>")  # 건너뛸 항목
    calls = []
    summary = convert_voc(voc_dir, tmp_path / "out", skip_invalid=True,
                          progress=lambda done, total: calls.append((done, total)))
    total = len(VOC_IMAGES)
    assert calls == [(done, total) for done in range(total + 1)]
    assert summary["num_images"] == total - 1


def _matches_by_image(output_dir):
    config = config_lib.build_config("cpu_small")
    return {example["source_id"]: (example, record_anchor_matches(example, config))
            for example in read_records(str(output_dir / "trainval-*.tfrecord"))}


@pytest.mark.parametrize("mode", ["ignore", "keep"])
def test_difficult_modes(converted, tmp_path, mode):
    """drop (기본) 에 견줘: keep 은 difficult 물체에도 앵커를 매칭하고, ignore 는 drop 의 음성 일부만 무시로 바꾼다.
    어느 모드든 레코드는 모든 물체를 difficult 표시와 함께 담는다."""
    _, drop_dir, _ = converted
    convert_voc(write_voc_dir(tmp_path), tmp_path / "records", overrides=f"input.difficult={mode}")
    with open(tmp_path / "records" / "trainval.json") as handle:
        metadata = json.load(handle)
    assert metadata["difficult"] == mode and metadata["num_difficult"] == 1
    assert metadata["params_override"] == f"input.difficult={mode}"
    dropped = _matches_by_image(drop_dir)
    saw_difficult = False
    for source_id, (example, matches) in _matches_by_image(tmp_path / "records").items():
        drop_example, drop_matches = dropped[source_id]
        assert example["difficult"].tolist() == drop_example["difficult"].tolist()
        difficult_codes = {index + 1 for index, flag in enumerate(example["difficult"]) if flag}
        saw_difficult |= bool(difficult_codes)
        if mode == "keep":
            assert difficult_codes <= set(np.unique(matches))
            continue
        changed = matches != drop_matches
        assert np.all(drop_matches[changed] == 0) and np.all(matches[changed] == -1)
        assert changed.any() == bool(difficult_codes)
    assert saw_difficult
