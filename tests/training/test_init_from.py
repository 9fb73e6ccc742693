"""`init_from` 테스트: 이름이 맞는 클래스 행은 원본과 비트 단위로 같고, 새 클래스 행은 새 초기값 그대로, run.json 의
기록, VOC ↔ COCO 별칭, --class_map, 교대 학습의 두 백본, 오류마다 model_dir 을 남기지 않음, 이어 학습은 다시
옮기지 않음.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import record_spec
from frcnn.training import init_from
from frcnn.training import loop
from frcnn.training import trainer
from tests.testing import make_batches, tiny_config

SOURCE_CLASSES = ["circle", "aeroplane", "ring"]


def _train(cfg, model_dir, classes, batches=None, **options):
    """tiny 모델을 loop.train 으로 학습한다 (make_batches 의 클래스 1, 2 만 쓰인다)."""
    return loop.train(record_spec.RecordSpec.from_config(cfg, classes, [1]), "x", model_dir,
                      lambda batch_size, canvas: make_batches(cfg, batches), **options)


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    """2 스텝 학습한 원본 실행 (가중치가 초기값과 달라진다)."""
    model_dir = str(tmp_path_factory.mktemp("source") / "run")
    tf.random.set_seed(1)
    _train(tiny_config("train.num_steps=2"), model_dir, SOURCE_CLASSES)
    return model_dir


@pytest.fixture(scope="module")
def source(source_dir):
    return init_from.load_source(source_dir)


def _source_model(source_dir):
    return trainer.load_trained_model(source_dir)[0]


def _columns(value, row, per_class):
    return value[..., row * per_class:(row + 1) * per_class]


def test_matched_rows_equal_the_source_and_fresh_rows_keep_the_new_init(source_dir, source):
    tf.random.set_seed(7)
    model = trainer.build_model(tiny_config(), 4)
    head = model.detector_head
    fresh = {name: [variable.numpy() for variable in getattr(head, name).variables]
             for name in ("class_logits", "box_deltas")}
    classes = ("ring", "star", "airplane", "circle")  # airplane ← aeroplane (별칭)
    record = init_from.initialize(model, classes, source)
    assert record["classes_carried"] == {"ring": "ring", "airplane": "aeroplane", "circle": "circle"}
    assert record["classes_fresh"] == ["star"]
    assert record["checkpoint"].endswith("ckpt-2") and record["source"] == source_dir
    trained = _source_model(source_dir).detector_head
    # 새 행 → 원본 행 (0 배경, ring 3, airplane 2, circle 1); star (2) 는 새 초기값.
    expected_rows = {0: 0, 1: 3, 3: 2, 4: 1}
    for name, per_class in (("class_logits", 1), ("box_deltas", 4)):
        for new_variable, source_variable, fresh_value in zip(getattr(head, name).variables,
                                                              getattr(trained, name).variables, fresh[name]):
            value, source_value = new_variable.numpy(), source_variable.numpy()
            for row, source_row in expected_rows.items():
                np.testing.assert_array_equal(_columns(value, row, per_class),
                                              _columns(source_value, source_row, per_class))
            np.testing.assert_array_equal(_columns(value, 2, per_class), _columns(fresh_value, 2, per_class))
            # 커널의 새 초기값은 난수라 원본의 어느 행과도 다르다 (편향은 둘 다 0 일 수 있다).
            assert "bias" in new_variable.path or not any(
                np.array_equal(_columns(value, 2, per_class), _columns(source_value, row, per_class))
                for row in range(4))


def test_every_body_variable_is_copied(source_dir, source):
    model = trainer.build_model(tiny_config(), 2)
    init_from.initialize(model, ("x", "y"), source)
    trained = init_from.variable_keys(_source_model(source_dir))
    predictor = init_from.predictor_keys(model)
    body = {key: variable for key, variable in init_from.variable_keys(model).items() if key not in predictor}
    assert len(body) == len(trained) - len(predictor) and len(body) > 30
    for key, variable in body.items():
        np.testing.assert_array_equal(variable.numpy(), trained[key].numpy(), err_msg=key)


def test_alternating_copies_the_source_backbone_into_both_backbones(source_dir, source):
    model = trainer.build_model(tiny_config("train.training_mode=alternating"), 2)
    init_from.initialize(model, ("ring", "x"), source)
    trained = _source_model(source_dir).backbone
    for backbone in (model.backbone, model.rpn_backbone):
        for variable, source_variable in zip(backbone.variables, trained.variables):
            np.testing.assert_array_equal(variable.numpy(), source_variable.numpy())


def test_alias_table_both_directions_exact_names_and_class_map():
    carried, fresh = init_from.match_classes(("airplane", "tvmonitor", "dog", "potted plant"),
                                             ("aeroplane", "tv", "dog", "pottedplant"))
    assert carried == {"airplane": "aeroplane", "tvmonitor": "tv", "dog": "dog",
                       "potted plant": "pottedplant"}
    assert fresh == []
    # 정확한 이름이 별칭보다, --class_map 이 둘보다 먼저다.
    carried, fresh = init_from.match_classes(("sofa", "car", "bus"), ("sofa", "couch", "truck", "bus"),
                                             init_from.parse_class_map("car:truck, bus : sofa"))
    assert carried == {"sofa": "sofa", "car": "truck", "bus": "sofa"} and fresh == []
    assert init_from.match_classes(("cat",), ("dog",)) == ({}, ["cat"])
    assert init_from.parse_class_map("table:dining table") == {"table": "dining table"}
    with pytest.raises(ValueError, match="not 'mine:theirs'"):
        init_from.parse_class_map("car")


def test_class_map_carries_the_mapped_rows(source_dir, source):
    model = trainer.build_model(tiny_config(), 2)
    record = init_from.initialize(model, ("blob", "ring"), source, {"blob": "circle"})
    assert record["classes_carried"] == {"blob": "circle", "ring": "ring"} and record["classes_fresh"] == []
    trained = _source_model(source_dir).detector_head.class_logits.kernel.numpy()
    np.testing.assert_array_equal(model.detector_head.class_logits.kernel.numpy(), trained[:, [0, 1, 3]])


def test_training_with_init_from_records_it_and_resume_does_not_reinitialize(tmp_path, source, monkeypatch):
    cfg = tiny_config("train.num_steps=4")
    model_dir = str(tmp_path / "run")
    messages, steps = [], []
    with pytest.raises(ValueError, match="has no records"):  # 3 배치 뒤 끊긴다 → ckpt-2 가 남는다
        _train(cfg, model_dir, ["ring", "star"], batches=3, init_from=source, log=messages.append,
               progress=lambda step, *rest: steps.append(step))
    assert messages[0].startswith(f"initialized from {source.checkpoint} (weights only; step 0")
    assert "carried over: ring; fresh: star" in messages[0]
    assert steps[0] == 2  # 스텝 0 에서 시작한다 (원본의 스텝 2 가 아니다)
    with open(os.path.join(model_dir, "run.json")) as handle:
        recorded = json.load(handle)["init_from"]
    assert recorded == {"source": source.source, "checkpoint": source.checkpoint,
                        "classes_carried": {"ring": "ring"}, "classes_fresh": ["star"]}

    def fail(*args, **kwargs):
        raise AssertionError("resume must not copy the source weights again")

    monkeypatch.setattr(init_from, "initialize", fail)
    messages.clear()
    result = _train(cfg, model_dir, ["ring", "star"], init_from=source, log=messages.append)
    assert result["step"] == 4
    assert messages[0].startswith("--init_from ignored:") and "resuming from" in messages[1]
    with open(os.path.join(model_dir, "run.json")) as handle:
        assert json.load(handle)["init_from"] == recorded


def _assert_fails_without_run_dir(tmp_path, cfg, source, match, classes=("ring",), class_map=None):
    model_dir = str(tmp_path / "run")
    with pytest.raises(ValueError, match=match):
        _train(cfg, model_dir, list(classes), init_from=source, class_map=class_map)
    assert not os.path.exists(model_dir)


def test_another_architecture_fails_naming_variables(tmp_path, source):
    cfg = tiny_config("backbone.name=mobilenet_v2,backbone.weights=none,backbone.fc_units=32,"
                      "anchors.stride=16")
    _assert_fails_without_run_dir(tmp_path, cfg, source,
                                  r"another architecture \(backbone.name: source 'small_cnn', this run "
                                  r"'mobilenet_v2'.*missing in the source \[backbone/Conv1/kernel, .*"
                                  r"no counterpart here \[backbone/block1_bn/beta")


def test_missing_variable_fails_naming_it(tmp_path, source):
    weights = {key: value for key, value in source.weights.items() if key != "rpn_head/rpn_conv/bias"}
    _assert_fails_without_run_dir(tmp_path, tiny_config(), dataclasses.replace(source, weights=weights),
                                  r"1 variable\(s\) of this run are missing in the source "
                                  r"\[rpn_head/rpn_conv/bias\], 0 source")


def test_shape_mismatch_fails_naming_it(tmp_path, source):
    _assert_fails_without_run_dir(tmp_path, tiny_config("rpn.conv_channels=8"), source,
                                  r"4 variable\(s\) differ in shape.*rpn_head/rpn_conv/kernel \(source "
                                  r"\[3, 3, 32, 16\], this run \[3, 3, 32, 8\]\)")


def test_unknown_class_in_class_map_fails(tmp_path, source):
    _assert_fails_without_run_dir(tmp_path, tiny_config(), source,
                                  r"--class_map: \['car'\] not among this run's classes \['ring'\]; "
                                  r"\['truck'\] not among the source's classes",
                                  class_map={"car": "truck"})
    _assert_fails_without_run_dir(tmp_path, tiny_config(), source, r"\['truck'\] not among the source",
                                  class_map={"ring": "truck"})


def test_source_paths(tmp_path, source_dir):
    checkpoint = trainer.latest_checkpoint(source_dir)
    assert init_from.resolve_source(source_dir) == (source_dir, None)
    assert init_from.resolve_source(checkpoint) == (source_dir, checkpoint)
    assert init_from.resolve_source(os.path.join(source_dir, "best")) == (source_dir, "best")
    assert init_from.resolve_source(os.path.join(source_dir, "checkpoints", "best")) == (source_dir, "best")
    assert init_from.load_source(checkpoint).checkpoint == checkpoint
    with pytest.raises(ValueError, match="no best checkpoint"):
        init_from.load_source(os.path.join(source_dir, "best"))
    with pytest.raises(ValueError, match="no such checkpoint"):
        init_from.resolve_source(os.path.join(source_dir, "checkpoints", "ckpt-99"))
    with pytest.raises(ValueError, match="not a run directory"):
        init_from.load_source(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with open(os.path.join(source_dir, "run.json")) as handle:
        (empty / "run.json").write_text(handle.read())
    with pytest.raises(ValueError, match=f"{empty} has no checkpoint"):
        init_from.load_source(str(empty))
