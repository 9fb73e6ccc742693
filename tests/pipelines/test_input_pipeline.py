"""pipelines.input_pipeline 테스트: 캔버스별 배치 모양, XML 정답과 같은 캔버스 박스, 뒤집기 일관성, 지문 거부,
디코딩할 수 없는 레코드 건너뛰기, 옛 형식 (밀집 라벨·캔버스 이전) 레코드 거부."""

import json

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from pipelines import input_pipeline
from frcnn.data import record_spec
from frcnn.data import records
from tests.testing import (VOC_IMAGES, convert_voc, damage_image, read_records, record_anchor_matches,
                           rewrite_records, write_voc_dir)

CONFIG = config_lib.build_config("cpu_small")
G = CONFIG.input.max_gt_boxes
# 손으로 고른 캔버스: 40×30 (→128×171) 과 32×32 (→128×128) 은 0 번 128×176, 48×32 (→128×192) 는 2 번 128×192,
# 24×36 (→192×128) 은 3 번 192×128. 1 번 176×128 에는 없다.
CANVAS_OF = {"000001": 0, "000003": 0, "000004": 2, "000002": 3}


def _dataset(pattern, config, *args, **kwargs):
    """`RecordSpec.read` → `build_dataset` (학습 도구처럼 명세를 한 번 읽는다)."""
    return input_pipeline.build_dataset(record_spec.RecordSpec.read(pattern, config), *args, **kwargs)


@pytest.fixture(scope="module")
def record_pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    convert_voc(write_voc_dir(root), root / "records", num_shards=2)
    return str(root / "records" / "trainval-*.tfrecord")


def _elements(pattern, **kwargs):
    """배치를 한 장씩 풀어 source_id → numpy dict 로 모은다."""
    by_id = {}
    for batch in _dataset(pattern, CONFIG, training=False, batch_size=2, **kwargs):
        for index, source_id in enumerate(batch["source_ids"].numpy()):
            by_id[source_id.decode()] = {key: value.numpy()[index] for key, value in batch.items()}
    return by_id


def test_batches_have_static_canvas_shapes(record_pattern):
    canvases = record_spec.canvases(CONFIG)
    count = 0
    for batch in _dataset(record_pattern, CONFIG, training=False, batch_size=2):
        ids = [source_id.decode() for source_id in batch["source_ids"].numpy()]
        canvas = canvases[CANVAS_OF[ids[0]]]
        assert all(canvases[CANVAS_OF[image_id]] == canvas for image_id in ids)  # 한 배치는 한 캔버스
        batch_size = len(ids)
        assert batch["images"].shape == (batch_size,) + canvas + (3,)
        assert batch["images"].dtype == tf.float32
        assert batch["gt_boxes"].shape == (batch_size, G, 4) and batch["gt_classes"].shape == (batch_size, G)
        assert batch["anchor_matches"].shape == (batch_size, record_spec.num_anchors(CONFIG, canvas))
        assert batch["gt_difficult"].dtype == tf.bool
        assert batch["skipped_records"].numpy().tolist() == [0] * batch_size
        assert batch["image_sizes"].shape == (batch_size, 2) and batch["scales"].shape == (batch_size,)
        count += batch_size
    assert count == len(VOC_IMAGES)


@pytest.mark.parametrize("canvas", [0, 2, 3])
def test_one_canvas_has_static_shapes_and_only_its_images(record_pattern, canvas):
    shape = record_spec.canvases(CONFIG)[canvas]
    spec = _dataset(record_pattern, CONFIG, training=True, batch_size=2, canvas=canvas).element_spec
    assert spec["images"].shape == (2,) + shape + (3,)
    assert spec["anchor_matches"].shape == (2, record_spec.num_anchors(CONFIG, shape))
    ids = set()
    dataset = _dataset(record_pattern, CONFIG, training=False, batch_size=2, canvas=canvas)
    for batch in dataset:
        ids.update(source_id.decode() for source_id in batch["source_ids"].numpy())
    assert ids == {image_id for image_id, index in CANVAS_OF.items() if index == canvas}
    with pytest.raises(ValueError, match=r"canvas must be None or a canvas index in \[0, 4\)"):
        _dataset(record_pattern, CONFIG, training=True, canvas=4)


def test_elements_equal_xml_ground_truth(record_pattern):
    elements = _elements(record_pattern, flip=False)
    assert sorted(elements) == sorted(VOC_IMAGES)
    # 000001: 40×30 → 배율 min(128/30, 192/40) = 4.2667 → (128, 171)
    first = elements["000001"]
    assert first["original_sizes"].tolist() == [30, 40] and first["image_sizes"].tolist() == [128, 171]
    assert first["scales"] == pytest.approx(128 / 30)
    # VOC dog (5, 4, 20, 25) → 연속 [3, 4, 25, 20] → 정규화 × (128, 171)
    np.testing.assert_allclose(first["gt_boxes"][0],
                               [3 / 30 * 128, 4 / 40 * 171, 25 / 30 * 128, 20 / 40 * 171], rtol=1e-5)
    assert first["gt_classes"][:3].tolist() == [12, 8, -1]
    assert first["gt_difficult"][:3].tolist() == [True, False, False]
    assert np.all(first["gt_boxes"][2:] == -1)
    portrait = elements["000002"]  # 24×36 → 배율 min(128/24, 192/36) = 5.333 → (192, 128)
    assert portrait["image_sizes"].tolist() == [192, 128]
    assert np.all(elements["000003"]["gt_classes"] == -1)
    # 이미지 픽셀은 0–255, 패딩은 0.
    image = first["images"]
    assert image.max() <= 255.0 and np.all(image[:, 171:] == 0) and image[:, :171].std() > 10


def test_flip_is_consistent_with_records(record_pattern):
    plain = _elements(record_pattern, flip=False)
    flipped = _elements(record_pattern, flip=True)
    stored = {example["source_id"].decode(): example for example in read_records(record_pattern)}
    for image_id, element in flipped.items():
        height, width = plain[image_id]["image_sizes"].astype(int)
        mirrored = plain[image_id]["images"][:height, width - 1::-1]
        np.testing.assert_array_equal(element["images"][:height, :width], mirrored)
        assert np.all(element["images"][:, width:] == 0)
        boxes = plain[image_id]["gt_boxes"]
        real = boxes[:, 0] >= 0
        expected = np.stack([boxes[:, 0], width - boxes[:, 3], boxes[:, 2], width - boxes[:, 1]], axis=1)
        np.testing.assert_allclose(element["gt_boxes"][real], expected[real], rtol=1e-6)
        assert np.all(element["gt_boxes"][~real] == -1)
        record = stored[image_id]
        np.testing.assert_array_equal(element["anchor_matches"], record_anchor_matches(record, CONFIG, True))
        np.testing.assert_array_equal(plain[image_id]["anchor_matches"],
                                      record_anchor_matches(record, CONFIG))


def test_training_repeats_and_drops_remainder(record_pattern):
    dataset = _dataset(record_pattern, CONFIG, training=True, batch_size=2, seed=1)
    batches = list(dataset.take(6))
    assert len(batches) == 6  # 4 장 (캔버스 셋) 을 반복해 계속 배치를 낸다.
    assert all(batch["images"].shape[0] == 2 for batch in batches)


def test_fingerprint_refusal_names_the_preset(tmp_path):
    convert_voc(write_voc_dir(tmp_path), tmp_path / "records", preset="vgg16_seed")
    pattern = str(tmp_path / "records" / "trainval-*.tfrecord")
    with pytest.raises(ValueError, match=r"made for preset 'vgg16_seed'.*--config=cpu_small"):
        _dataset(pattern, CONFIG, training=True)
    # 같은 프리셋이면 통과하고, 메타데이터의 클래스 이름을 읽을 수 있다.
    seed_config = config_lib.build_config("vgg16_seed")
    batch = next(iter(_dataset(pattern, seed_config, training=False, batch_size=1)))
    assert batch["anchor_matches"].shape == (1, 1764)
    assert record_spec.read_metadata(pattern)["classes"][11] == "dog"


def test_missing_records_raise(tmp_path):
    with pytest.raises(ValueError, match="no TFRecord files"):
        record_spec.read_metadata(str(tmp_path / "none-*.tfrecord"))


def test_difficult_mode_mismatch_says_how_to_train(tmp_path):
    convert_voc(write_voc_dir(tmp_path), tmp_path / "records", overrides="input.difficult=ignore")
    pattern = str(tmp_path / "records" / "trainval-*.tfrecord")
    uses = CONFIG.input.difficult
    with pytest.raises(ValueError, match=rf"made with --difficult=ignore.*input.difficult={uses}.*"
                                         r"--params_override=input.difficult=ignore"):
        _dataset(pattern, CONFIG, training=True)
    matching = config_lib.build_config("cpu_small", "input.difficult=ignore")
    batch = next(iter(_dataset(pattern, matching, training=False, batch_size=1)))
    assert batch["gt_difficult"].dtype == tf.bool


def test_undecodable_image_is_skipped_with_a_warning_naming_it(record_pattern, tmp_path, capfd):
    pattern = damage_image(record_pattern, str(tmp_path / "damaged"), "000003")
    elements = _elements(pattern, flip=False)
    assert sorted(elements) == ["000001", "000002", "000004"]
    # 같은 캔버스 0 에서 000003 뒤에 오는 이미지가 (레코드 순서에 따라) 건너뛴 수 1 을 가진다
    assert sum(int(element["skipped_records"]) for element in elements.values()) <= 1
    dataset = _dataset(pattern, CONFIG, training=True, batch_size=2, canvas=0, seed=0)
    skipped = sum(int(batch["skipped_records"].numpy().sum()) for batch in dataset.take(8))
    # 000003 은 캔버스 0 레코드 둘 중 하나: 16 장을 채우며 ≈ 16 번 건너뛴다. 학습 모드의 병렬 map 은 순서를 지키지
    # 않아 건너뛴 수를 든 원소가 몇 자리 늦게 나올 수 있으므로 (부하에 따라) 넉넉히 적어도 세 번만 요구한다
    assert skipped >= 3
    warnings = [line for line in capfd.readouterr().err.splitlines() if "skipping record" in line]
    assert warnings and all(line.endswith("WARNING: skipping record with image/source_id '000003': its image "
                                          "cannot be decoded") for line in warnings)


def test_records_from_before_the_canvas_set_say_to_regenerate(record_pattern, tmp_path):
    pattern = damage_image(record_pattern, str(tmp_path / "old"), "none")
    metadata_path = str(tmp_path / "old" / "trainval.json")
    with open(metadata_path) as handle:
        metadata = json.load(handle)
    metadata.pop("canvases")
    metadata["anchor_fingerprint"] = "0123456789ab"
    with open(metadata_path, "w") as handle:
        json.dump(metadata, handle)
    with pytest.raises(ValueError, match=r"older frcnn with one canvas per orientation.*regenerate them with "
                                         r"make_tfrecords --config=cpu_small --overwrite"):
        _dataset(pattern, CONFIG, training=True)


def _dense_copy(record_pattern, output_dir):
    """레코드를 옛 형식 (희소 라벨 대신 int16 밀집 `image/anchor_matches` 바이트, 옛 지문) 으로 복사한다."""
    def edit(feature):
        for name in [name for name in feature if name.startswith("image/anchor_matches")]:
            del feature[name]
        dense = np.zeros(1000, "<i2").tobytes()
        feature["image/anchor_matches"].bytes_list.value.append(dense)
        feature["image/anchor_matches_flipped"].bytes_list.value.append(dense)
        feature[records.ANCHOR_FINGERPRINT].bytes_list.value[0] = b"0123456789ab"

    return rewrite_records(record_pattern, output_dir, edit)


def test_dense_records_from_before_sparse_labels_say_to_regenerate(record_pattern, tmp_path):
    pattern = _dense_copy(record_pattern, str(tmp_path / "dense"))
    with open(record_pattern.replace("trainval-*.tfrecord", "trainval.json")) as handle:
        metadata = json.load(handle)
    assert metadata["anchor_labels"] == records.ANCHOR_LABEL_FORMAT
    metadata.pop("anchor_labels")  # 옛 변환기는 이 키를 쓰지 않았다
    metadata["anchor_fingerprint"] = "0123456789ab"
    with open(tmp_path / "dense" / "trainval.json", "w") as handle:
        json.dump(metadata, handle)
    with pytest.raises(ValueError, match=r"older frcnn with dense anchor labels.*regenerate them with "
                                         r"make_tfrecords --config=cpu_small --overwrite"):
        _dataset(pattern, CONFIG, training=True)
    # json 은 새것인데 레코드가 옛것이면 첫 레코드의 지문이 거부한다
    metadata.update(anchor_labels=records.ANCHOR_LABEL_FORMAT,
                    anchor_fingerprint=record_spec.anchor_fingerprint(CONFIG))
    with open(tmp_path / "dense" / "trainval.json", "w") as handle:
        json.dump(metadata, handle)
    with pytest.raises(ValueError, match=r"anchor fingerprint 0123456789ab.*--config=cpu_small"):
        _dataset(pattern, CONFIG, training=True)


def test_a_canvas_whose_every_image_is_undecodable_stops_instead_of_hanging(record_pattern, tmp_path):
    once = damage_image(record_pattern, str(tmp_path / "one"), "000001")
    both = damage_image(once, str(tmp_path / "both"), "000003")  # 캔버스 0 의 두 레코드 모두
    dataset = _dataset(both, CONFIG, training=True, batch_size=2, canvas=0)
    message = r"every record of canvas 0 \(128×176\) in \S+ has an undecodable image"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        next(iter(dataset))
    # 다른 캔버스는 그대로 읽힌다
    assert next(iter(_dataset(both, CONFIG, training=True, batch_size=2, canvas=2)))
