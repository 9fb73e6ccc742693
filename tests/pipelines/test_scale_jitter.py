"""스케일 지터 (`input.train_short_sides`, `build_dataset(short_side=…)`) 테스트: tf.data 에서 계산한 앵커 라벨이
s = min_size 에서 레코드의 라벨과 비트 단위로 같음 (한 수준·FPN, difficult=ignore, COCO crowd, 경계 밖 앵커, 뒤집기),
스케일마다 정적 모양, 지터로 (한 수준·FPN, joint) 학습하면 여러 스케일을 돈다, 지터를 꺼도 캔버스 순서가 같다.

용어: s 지터의 짧은 변; 캔버스 k 는 min_size 에서 정해진 번호 (`RecordSpec.training_canvas(k, s)` 가 s 의 모양).
"""

import dataclasses

import numpy as np
import pytest

from frcnn.data import coco
from frcnn.data import record_spec
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.training import loop
from pipelines import convert
from pipelines import input_pipeline
from tests.testing import (TINY, TINY_FPN, convert_voc, tiny_config, tiny_fpn_config, write_coco_dir,
                           write_voc_dir)

# 여러 캔버스가 생기도록 긴 변을 늘린 tiny 설정 (한 수준: 64×80·80×64·64×96·96×64, FPN: 64×96·96×64)
MULTI = "input.max_size=96,input.canvas_long_sides=(80,)"
SINGLE = MULTI + ",input.difficult=ignore"
FPN = "input.max_size=96"


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
    "single_voc_ignore": (lambda: tiny_config(SINGLE), lambda root: _voc_records(root, TINY + "," + SINGLE)),
    # COCO crowd 두 개 (crowd 규칙)
    "single_coco_crowd": (tiny_config, lambda root: _coco_records(root, tiny_config())),
    # 피라미드 앵커, 경계를 넘는 앵커도 학습, torchvision 크기 규칙
    "fpn_voc": (lambda: tiny_fpn_config(FPN),
                lambda root: _voc_records(root, TINY_FPN + "," + FPN, "cpu_small_fpn")),
}


def _by_source(dataset):
    """배치를 한 장씩 풀어 source_id → numpy dict."""
    found = {}
    for batch in dataset:
        for index, source_id in enumerate(batch["source_ids"].numpy()):
            found[source_id.decode()] = {key: value.numpy()[index] for key, value in batch.items()}
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_labels_computed_at_min_size_equal_the_records_bit_for_bit(tmp_path, case):
    make_config, make_records = CASES[case]
    config = make_config()
    spec = record_spec.RecordSpec.read(make_records(tmp_path), config)
    codes = []
    for canvas in (k for k, count in enumerate(spec.canvas_counts) if count):
        for flip in (False, True):
            kwargs = dict(training=False, batch_size=2, flip=flip, canvas=canvas)
            from_records = _by_source(input_pipeline.build_dataset(spec, **kwargs))
            computed = _by_source(input_pipeline.build_dataset(spec, short_side=config.input.min_size,
                                                               **kwargs))
            assert sorted(computed) == sorted(from_records) and from_records
            for source_id, expected in from_records.items():
                for key, value in expected.items():
                    np.testing.assert_array_equal(computed[source_id][key], value,
                                                  err_msg=f"{source_id} {key}")
                codes.append(expected["anchor_matches"])
    codes = np.concatenate(codes)
    # 비교가 헛되지 않다: 양성·음성·무시가 모두 있다
    assert (codes > 0).any() and (codes == 0).any() and (codes == -1).any()


JITTER = MULTI + ",input.train_short_sides=(48,64,80)"


@pytest.fixture(scope="module")
def jitter_records(tmp_path_factory):
    """(설정, 명세) — 캔버스 여럿인 tiny 한 수준 설정 (difficult=keep) 의 VOC 레코드, 지터 48·64·80."""
    root = tmp_path_factory.mktemp("jitter")
    config = tiny_config(JITTER)
    return config, record_spec.RecordSpec.read(_voc_records(root, TINY + "," + JITTER), config)


@pytest.mark.parametrize("short_side", [48, 80])
def test_each_scale_has_static_shapes_and_labels_of_its_own_boxes(jitter_records, short_side):
    config, spec = jitter_records
    positives = 0
    for canvas in (k for k, count in enumerate(spec.canvas_counts) if count):
        shape = spec.training_canvas(canvas, short_side)
        num_anchors = record_spec.num_anchors(config, shape)
        training = input_pipeline.build_dataset(spec, training=True, batch_size=2, canvas=canvas,
                                                short_side=short_side)
        assert training.element_spec["images"].shape == (2,) + shape + (3,)
        assert training.element_spec["anchor_matches"].shape == (2, num_anchors)
        batch = next(iter(input_pipeline.build_dataset(spec, training=False, batch_size=4, flip=True,
                                                       canvas=canvas, short_side=short_side)))
        sizes = batch["image_sizes"].numpy()
        # 짧은 변 = s (긴 변 상한 96 에 걸리면 더 짧다), 캔버스 안
        assert ((sizes.min(axis=1) == short_side) | (sizes.max(axis=1) == config.input.max_size)).all()
        assert (sizes <= shape).all()
        # 라벨은 그 스케일의 뒤집힌 GT 박스로 매긴 것 (difficult=keep, crowd 없음: label_anchors 그대로)
        expected = rpn_targets.label_anchors(anchors_lib.anchors_for_canvas(config, shape), batch["gt_boxes"],
                                             batch["image_sizes"], config.rpn)
        np.testing.assert_array_equal(batch["anchor_matches"].numpy(), expected.numpy())
        positives += int((expected.numpy() > 0).sum())
        for boxes, (height, width) in zip(batch["gt_boxes"].numpy(), sizes):
            real = boxes[boxes[:, 0] >= 0]
            assert (real[:, 2] <= height + 1e-3).all() and (real[:, 3] <= width + 1e-3).all()
    assert positives > 0


def test_short_side_arguments_are_checked(jitter_records):
    _, spec = jitter_records
    with pytest.raises(ValueError, match="needs a canvas index"):
        input_pipeline.build_dataset(spec, training=True, short_side=48)
    with pytest.raises(ValueError, match=r"short_side must be an int in \(0, input.max_size=96\]"):
        input_pipeline.build_dataset(spec, training=True, canvas=0, short_side=200)


JITTER_FPN = FPN + ",input.train_short_sides=(32,64,96)"


@pytest.fixture(scope="module")
def jitter_fpn_records(tmp_path_factory):
    """(설정, 명세) — tiny cpu_small_fpn (캔버스 64×96·96×64, torchvision 규칙) 의 VOC 레코드, 지터 32·64·96."""
    root = tmp_path_factory.mktemp("jitter_fpn")
    config = tiny_fpn_config(JITTER_FPN)
    pattern = _voc_records(root, TINY_FPN + "," + JITTER_FPN, "cpu_small_fpn")
    return config, record_spec.RecordSpec.read(pattern, config)


@pytest.mark.parametrize("family", ["single", "fpn"])
def test_joint_training_with_jitter_visits_several_scales(request, tmp_path, family):
    records = request.getfixturevalue("jitter_records" if family == "single" else "jitter_fpn_records")
    make_config = tiny_config if family == "single" else tiny_fpn_config
    jitter = JITTER if family == "single" else JITTER_FPN
    config = make_config(jitter + ",train.training_mode=joint,train.num_steps=6,train.steps_per_loop=2,"
                         "train.checkpoint_every=100")
    spec = dataclasses.replace(records[1], config=config)
    made, shapes = [], []

    def make_dataset(batch_size, canvas, short_side=None):
        made.append((canvas, short_side))
        dataset = input_pipeline.build_dataset(spec, training=True, batch_size=batch_size, canvas=canvas,
                                               short_side=short_side, seed=0)
        shapes.append(tuple(dataset.element_spec["images"].shape))
        return dataset

    result = loop.train(spec, "x", str(tmp_path / "run"), make_dataset)
    assert result["step"] == 6 and np.isfinite(result["losses"]["total_loss"])
    # 루프마다 고른 (캔버스, 짧은 변) 의 데이터셋을 (처음 한 번씩) 만들었고, 짧은 변이 여럿이다
    batches = loop.CanvasBatches(_FakeTrainer(config), make_dataset, spec)
    chosen = [batches.choose(step) for step in range(0, 6, 2)]
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
