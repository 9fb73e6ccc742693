"""설정 테스트: 프리셋과 덮어쓰기, 모르는 키는 키와 섹션의 키 목록을 밝히며 실패, dict/JSON 왕복, (캔버스·지문은 tests/data/test_record_spec.py).

용어: 섹션 = ExperimentConfig 의 dataclass 필드 (train, rpn, ...); 키 = `section.key`.
"""

import json

import pytest

from frcnn import config


def test_presets_and_overrides():
    cfg = config.build_config("cpu_small",
                              "train.num_steps=7,anchors.sizes=(8,16),rpn.allow_cross_boundary=true")
    assert cfg.train.num_steps == 7
    assert cfg.anchors.sizes == (8.0, 16.0)
    assert cfg.rpn.allow_cross_boundary is True
    assert cfg.name == "cpu_small"


@pytest.mark.parametrize("override, message", [
    ("train.nope=1", r"'train.nope=1': unknown key 'train.nope' \(train has: batch_size, checkpoint_every, "),
    ("optim.lr=1", r"unknown key 'optim' \(config has: anchors, backbone, detection, fpn, input, name, "),
    ("train=1", "'train' is a section"),
    ("name.x=1", "'name' has no sub-keys"),
    ("train.num_steps=abc", "cannot parse"),
    ("train.num_steps=1.5", "expected int"),
    ("roi.op=nearest", "roi.op"),
    ("num_steps", "not key=value"),
])
def test_bad_overrides(override, message):
    with pytest.raises(ValueError, match=message):
        config.build_config("cpu_small", override)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'x'"):
        config.get_preset("x")


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_dict_and_json_roundtrip(preset):
    cfg = config.apply_overrides(config.get_preset(preset), "train.stage_steps=(1,2,3,4)")
    assert config.from_dict(config.to_dict(cfg)) == cfg
    # run.json 처럼 JSON 을 거치면 튜플이 리스트가 된다: 다시 튜플로 읽는다.
    assert config.from_dict(json.loads(json.dumps(config.to_dict(cfg)))) == cfg


def test_from_dict_fills_missing_keys_with_defaults():
    cfg = config.from_dict({"name": "partial", "train": {"num_steps": 5}})
    assert cfg.train == config.TrainConfig(num_steps=5) and cfg.rpn == config.RpnConfig()


@pytest.mark.parametrize("data, message", [
    ({"train": {"foo": 1}}, r"unknown key 'train.foo' \(train has: batch_size, checkpoint_every, "),
    ({"optimizer": {}}, r"unknown key 'optimizer' \(config has: anchors, backbone, detection, fpn, "),
    ({"rpn": [1, 2]}, "'rpn' must be a mapping, got list"),
    ([], "'config' must be a mapping"),
])
def test_from_dict_refuses_unknown_keys(data, message):
    with pytest.raises(ValueError, match=message):
        config.from_dict(data)


def test_canvas_long_sides_must_be_multiples_of_the_stride():
    with pytest.raises(ValueError, match="canvas_long_sides must be multiples of anchors.stride"):
        config.build_config("vgg16_paper", "input.canvas_long_sides=(801,)")


def test_scale_jitter_is_off_by_default_and_parses_one_or_several_sides():
    assert all(config.get_preset(name).input.train_short_sides == () for name in config.PRESETS)
    assert config.build_config("cpu_small", "input.train_short_sides=160").input.train_short_sides == (160,)
    jittered = config.build_config("cpu_small", "input.train_short_sides=(96,128,160)")
    assert jittered.input.train_short_sides == (96, 128, 160)


@pytest.mark.parametrize("sides", ["(0,128)", "(-32,)", "(193,)", "(128,128)", "(128.5,)", "(True,)"])
def test_bad_train_short_sides_are_refused(sides):
    message = (r"invalid config 'cpu_small': input.train_short_sides must be distinct integers in "
               r"\(0, input.max_size=192\], got ")
    with pytest.raises(ValueError, match=message):
        config.build_config("cpu_small", f"input.train_short_sides={sides}")
