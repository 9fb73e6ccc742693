"""스케일 지터 (`input.train_short_sides`, `build_dataset(short_side=…)`) 테스트: 파이프라인이 내는 지터 스케일의
앵커 라벨 (변환기가 미리 계산해 레코드에 담은 것) 이 그 스케일의 GT 로 직접 매긴 라벨과 같음 (한 수준·FPN,
difficult=ignore, COCO crowd, 경계 밖 앵커, 뒤집기), 스케일마다 정적 모양, 지터로 만든 레코드는 지터 없는 레코드에
특징만 더한 것 (지터를 끄면 비트 단위로 같다), 스케일이 없는 레코드는 지터 설정이 거부, 지터로 (한 수준·FPN joint,
FPN 교대) 학습하면 여러 스케일을 돈다, 지터를 꺼도 캔버스 순서가 같다.

용어: s 지터의 짧은 변; 캔버스 k 는 min_size 에서 정해진 번호 (`RecordSpec.training_canvas(k, s)` 가 s 의 모양).
"""

import dataclasses
import glob

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import coco
from frcnn.data import record_spec
from frcnn.modeling import crowd
from frcnn.modeling import difficult
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.training import loop
from pipelines import convert
from pipelines import input_pipeline
from tests.testing import (TINY, TINY_FPN, convert_voc, tiny_config, tiny_fpn_config, write_coco_dir,
                           write_voc_dir)

# 여러 캔버스가 생기도록 긴 변을 늘린 tiny 설정 (한 수준: 64×80·80×64·64×96·96×64, FPN: 64×96·96×64)
MULTI = "input.max_size=96,input.canvas_long_sides=(80,)"
FPN = "input.max_size=96"
JITTER = MULTI + ",input.train_short_sides=(48,64,80)"  # 64 = min_size: 기본 라벨
JITTER_FPN = FPN + ",input.train_short_sides=(32,64,96)"


def _voc_records(root, overrides, preset="cpu_small"):
    convert_voc(write_voc_dir(root), root / "records", preset=preset, overrides=overrides)
    return str(root / "records" / "trainval-*.tfrecord")


def _coco_records(root, config):
    annotations_path, images_dir = write_coco_dir(root)
    options = convert.ConvertOptions(output_dir=str(root / "records"), split="train")
    convert.convert(lambda: coco.open_coco_source(annotations_path, images_dir, None),
                    record_spec.RecordSpec.from_config(config), options)
    return str(root / "records" / "train-*.tfrecord")


CASES = {
    # (설정, 레코드 만들기): VOC 의 difficult 물체 (ignore 규칙), 경계 밖 앵커 무시 (한 수준)
    "single_voc_ignore": (lambda: tiny_config(JITTER + ",input.difficult=ignore"),
                          lambda root: _voc_records(root, TINY + "," + JITTER + ",input.difficult=ignore")),
    # COCO crowd 두 개 (crowd 규칙)
    "single_coco_crowd": (lambda: tiny_config(JITTER), lambda root: _coco_records(root, tiny_config(JITTER))),
    # 피라미드 앵커, 경계를 넘는 앵커도 학습, torchvision 크기 규칙
    "fpn_voc": (lambda: tiny_fpn_config(JITTER_FPN),
                lambda root: _voc_records(root, TINY_FPN + "," + JITTER_FPN, "cpu_small_fpn")),
}


def _by_source(dataset):
    """배치를 한 장씩 풀어 source_id → numpy dict."""
    found = {}
    for batch in dataset:
        for index, source_id in enumerate(batch["source_ids"].numpy()):
            found[source_id.decode()] = {key: value.numpy()[index] for key, value in batch.items()}
    return found


def _direct_labels(config, shape, batch):
    """기대값: 파이프라인이 s 로 리사이즈한 GT 로 그 스케일 캔버스의 모든 앵커에 직접 매긴 [B, A] 코드
    (`rpn_targets.label_anchors` + difficult·crowd 규칙; 변환기의 배치·쓰는 앵커 추리기·희소 형식·경계 재계산과 무관)."""
    gt_boxes = batch["gt_boxes"]
    targets, ignore_boxes = difficult.training_boxes(gt_boxes, batch["gt_difficult"], config.input.difficult)
    crowd_boxes = None
    if batch["gt_crowd"].numpy().any():
        targets, crowd_boxes = crowd.split_crowd(targets, gt_boxes, batch["gt_crowd"])
    anchors = anchors_lib.anchors_for_canvas(config, shape)
    return rpn_targets.label_anchors(anchors, targets, batch["image_sizes"], config.rpn, ignore_boxes,
                                     crowd_boxes).numpy()


@pytest.mark.parametrize("case", sorted(CASES))
def test_labels_of_each_scale_equal_labels_computed_directly(tmp_path, case):
    make_config, make_records = CASES[case]
    config = make_config()
    spec = record_spec.RecordSpec.read(make_records(tmp_path), config)
    codes = []
    for canvas in (k for k, count in enumerate(spec.canvas_counts) if count):
        for short_side in record_spec.label_short_sides(config):
            shape = spec.training_canvas(canvas, short_side)
            assert shape != spec.canvas_shapes[canvas]
            num_anchors = record_spec.num_anchors(config, shape)
            training = input_pipeline.build_dataset(spec, training=True, batch_size=2, canvas=canvas,
                                                    short_side=short_side)
            assert training.element_spec["images"].shape == (2,) + shape + (3,)
            assert training.element_spec["anchor_matches"].shape == (2, num_anchors)
            for flip in (False, True):
                for batch in input_pipeline.build_dataset(spec, training=False, batch_size=4, flip=flip,
                                                          canvas=canvas, short_side=short_side):
                    sizes = batch["image_sizes"].numpy()
                    # 짧은 변 = s (긴 변 상한에 걸리면 더 짧다), 캔버스 안
                    assert ((sizes.min(axis=1) == short_side)
                            | (sizes.max(axis=1) >= config.input.max_size - 1)).all()
                    assert (sizes <= shape).all()
                    found = batch["anchor_matches"].numpy()
                    np.testing.assert_array_equal(found, _direct_labels(config, shape, batch),
                                                  err_msg=f"canvas {canvas} s={short_side} flip={flip}")
                    codes.append(found.ravel())
    codes = np.concatenate(codes)
    # 비교가 헛되지 않다: 양성·음성·무시가 모두 있다
    assert (codes > 0).any() and (codes == 0).any() and (codes == -1).any()


def _examples(pattern):
    """레코드 glob → source_id → {특징 이름: 값 목록}."""
    found = {}
    for path in sorted(glob.glob(pattern)):
        for serialized in tf.data.TFRecordDataset(path):
            features = tf.train.Example.FromString(serialized.numpy()).features.feature
            values = {name: list(getattr(feature, feature.WhichOneof("kind")).value)
                      for name, feature in features.items()}
            found[values["image/source_id"][0]] = values
    return found


def test_jitter_records_only_add_the_scale_labels_and_jitter_off_is_unchanged(tmp_path):
    """지터로 만든 레코드 = 지터 없는 레코드 + `…/s{s}/…` 특징 (지문만 다르다); min_size 데이터셋은 비트 단위로 같다."""
    voc = write_voc_dir(tmp_path)
    convert_voc(voc, tmp_path / "plain", overrides=TINY + "," + MULTI)
    convert_voc(voc, tmp_path / "jitter", overrides=TINY + "," + JITTER)
    plain, jittered = (_examples(str(tmp_path / name / "trainval-*.tfrecord"))
                       for name in ("plain", "jitter"))
    assert sorted(plain) == sorted(jittered) and plain
    for source_id, features in plain.items():
        extra = {name: value for name, value in jittered[source_id].items() if name not in features}
        assert sorted({name.split("/")[2] for name in extra}) == ["s48", "s80"]  # min_size 64 는 기본 라벨
        assert len(extra) == 2 * 2 * 3  # 두 스케일 × 원본·뒤집기 × 세 목록
        for name, value in features.items():
            if name != "image/anchor_fingerprint":
                assert jittered[source_id][name] == value, name
    specs = [record_spec.RecordSpec.read(str(tmp_path / name / "trainval-*.tfrecord"), tiny_config(overrides))
             for name, overrides in (("plain", MULTI), ("jitter", JITTER))]
    for canvas in (k for k, count in enumerate(specs[0].canvas_counts) if count):
        for short_side in (None, 64):  # 64 = min_size: 레코드의 기본 라벨
            kwargs = dict(training=False, batch_size=4, flip=True, canvas=canvas)
            expected = _by_source(input_pipeline.build_dataset(specs[0], **kwargs))
            found = _by_source(input_pipeline.build_dataset(specs[1], short_side=short_side, **kwargs))
            assert sorted(found) == sorted(expected)
            for source_id, arrays in expected.items():
                for key, value in arrays.items():
                    np.testing.assert_array_equal(found[source_id][key], value, err_msg=f"{source_id} {key}")


def test_records_without_the_scales_are_refused_with_the_regenerate_message(tmp_path):
    voc = write_voc_dir(tmp_path)
    convert_voc(voc, tmp_path / "plain", overrides=TINY + "," + MULTI)
    convert_voc(voc, tmp_path / "jitter", overrides=TINY + "," + JITTER)
    plain, jittered = (str(tmp_path / name / "trainval-*.tfrecord") for name in ("plain", "jitter"))
    with pytest.raises(ValueError, match=(
            r"hold anchor labels for input.min_size only, but training uses "
            r"input.train_short_sides=\(48,64,80\), whose labels make_tfrecords precomputes for each short "
            r"side: regenerate them with make_tfrecords --config=cpu_small "
            r"--params_override=input.train_short_sides=\(48,64,80\) --overwrite")):
        record_spec.RecordSpec.read(plain, tiny_config(JITTER))
    with pytest.raises(ValueError, match=r"hold anchor labels for the short sides \(48,64,80\), but training "
                                         r"uses input.train_short_sides=\(48,96\)"):
        record_spec.RecordSpec.read(jittered, tiny_config(MULTI + ",input.train_short_sides=(48,96)"))
    with pytest.raises(ValueError, match=r"were made with input.train_short_sides=\(48,64,80\) .*; train "
                                         r"with --params_override=input.train_short_sides=\(48,64,80\) or "
                                         r"regenerate"):
        record_spec.RecordSpec.read(jittered, tiny_config(MULTI))
    # 순서만 다른 목록은 같은 레코드
    record_spec.RecordSpec.read(jittered, tiny_config(MULTI + ",input.train_short_sides=(80,48,64)"))


@pytest.fixture(scope="module")
def jitter_records(tmp_path_factory):
    """(설정, 명세) — 캔버스 여럿인 tiny 한 수준 설정 (difficult=keep) 의 VOC 레코드, 지터 48·64·80."""
    root = tmp_path_factory.mktemp("jitter")
    config = tiny_config(JITTER)
    return config, record_spec.RecordSpec.read(_voc_records(root, TINY + "," + JITTER), config)


def test_short_side_arguments_are_checked(jitter_records):
    _, spec = jitter_records
    with pytest.raises(ValueError, match="needs a canvas index"):
        input_pipeline.build_dataset(spec, training=True, short_side=48)
    with pytest.raises(ValueError, match=r"short_side must be one of input.train_short_sides=\(48, 64, 80\) "
                                         r"\(the records hold anchor labels for those only\), got 96"):
        input_pipeline.build_dataset(spec, training=True, canvas=0, short_side=96)


@pytest.fixture(scope="module")
def jitter_fpn_records(tmp_path_factory):
    """(설정, 명세) — tiny cpu_small_fpn (캔버스 64×96·96×64, torchvision 규칙) 의 VOC 레코드, 지터 32·64·96."""
    root = tmp_path_factory.mktemp("jitter_fpn")
    config = tiny_fpn_config(JITTER_FPN)
    pattern = _voc_records(root, TINY_FPN + "," + JITTER_FPN, "cpu_small_fpn")
    return config, record_spec.RecordSpec.read(pattern, config)


@pytest.mark.parametrize("family, mode", [("single", "joint"), ("fpn", "joint"), ("fpn", "alternating")])
def test_training_with_jitter_visits_several_scales(request, tmp_path, family, mode):
    records = request.getfixturevalue("jitter_records" if family == "single" else "jitter_fpn_records")
    make_config = tiny_config if family == "single" else tiny_fpn_config
    jitter = JITTER if family == "single" else JITTER_FPN
    # 교대 학습: 네 단계 × 2 스텝 = 루프 넷 (단계마다 추적이 따로, 반복자는 (캔버스, 짧은 변) 마다 하나를 함께 쓴다)
    schedule = ("train.training_mode=joint,train.num_steps=6" if mode == "joint" else
                "train.training_mode=alternating,train.stage_steps=(2,2,2,2)")
    config = make_config(jitter + "," + schedule + ",train.steps_per_loop=2,train.checkpoint_every=100")
    total = 6 if mode == "joint" else 8
    spec = dataclasses.replace(records[1], config=config)
    made, shapes = [], []

    def make_dataset(batch_size, canvas, short_side=None):
        made.append((canvas, short_side))
        dataset = input_pipeline.build_dataset(spec, training=True, batch_size=batch_size, canvas=canvas,
                                               short_side=short_side, seed=0)
        shapes.append(tuple(dataset.element_spec["images"].shape))
        return dataset

    result = loop.train(spec, "x", str(tmp_path / "run"), make_dataset)
    assert result["step"] == total and np.isfinite(result["losses"]["total_loss"])
    # 루프마다 고른 (캔버스, 짧은 변) 의 데이터셋을 (처음 한 번씩) 만들었고, 짧은 변이 여럿이다
    batches = loop.CanvasBatches(_FakeTrainer(config), make_dataset, spec)
    chosen = [batches.choose(step) for step in range(0, total, 2)]
    assert made == list(dict.fromkeys(chosen))
    assert len({short_side for _, short_side in made}) > 1
    # 각 데이터셋의 정적 배치 모양은 그 (캔버스, 짧은 변) 의 캔버스
    assert shapes == [(2,) + spec.training_canvas(canvas, side) + (3,) for canvas, side in made]


class _FakeTrainer:
    """`CanvasBatches.choose` 가 읽는 설정만 가진 학습기."""

    def __init__(self, config):
        self.config = config


def test_choose_is_seeded_and_draws_every_scale_uniformly(jitter_records):
    config, spec = jitter_records
    batches = loop.CanvasBatches(_FakeTrainer(config), None, spec)
    draws = [batches.choose(step) for step in range(600)]
    assert draws == [batches.choose(step) for step in range(600)]  # 스텝으로 정해진다 (이어 학습·워커끼리 같다)
    sides = [side for _, side in draws]
    counts = {side: sides.count(side) for side in (48, None, 80)}  # 64 = min_size 는 None (레코드 라벨)
    assert set(sides) == {48, None, 80} and min(counts.values()) > 150
    # 캔버스는 지터가 없을 때와 같은 난수로 먼저 뽑는다: 지터를 꺼도 캔버스 순서가 같다
    plain = loop.CanvasBatches(_FakeTrainer(tiny_config("input.max_size=96,input.canvas_long_sides=(80,)")),
                               None, spec)
    assert [plain.choose(step) for step in range(600)] == [(canvas, None) for canvas, _ in draws]
