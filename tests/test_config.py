"""설정 테스트: 프리셋과 덮어쓰기, 모르는 키는 키와 섹션의 키 목록을 밝히며 실패, dict/JSON 왕복, 지문, 캔버스.

용어: 섹션 = ExperimentConfig 의 dataclass 필드 (train, rpn, ...); 키 = `section.key`.
"""

import dataclasses
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
    ("optim.lr=1", r"unknown key 'optim' \(config has: anchors, backbone, detection, input, name, roi, "),
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


def test_fingerprint_changes_with_anchor_settings_only():
    base = config.get_preset("cpu_small")
    assert config.anchor_fingerprint(base) == config.anchor_fingerprint(
        dataclasses.replace(base, train=dataclasses.replace(base.train, num_steps=3)))
    assert config.anchor_fingerprint(base) != config.anchor_fingerprint(config.get_preset("vgg16_seed"))
    changed = config.apply_overrides(base, "rpn.positive_iou=0.6")
    assert config.anchor_fingerprint(base) != config.anchor_fingerprint(changed)


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
    ({"optimizer": {}}, r"unknown key 'optimizer' \(config has: anchors, backbone, detection, input, name, "),
    ({"rpn": [1, 2]}, "'rpn' must be a mapping, got list"),
    ([], "'config' must be a mapping"),
])
def test_from_dict_refuses_unknown_keys(data, message):
    with pytest.raises(ValueError, match=message):
        config.from_dict(data)


def test_canvas_shapes():
    cfg = config.get_preset("vgg16_paper")
    # 짧은 변 600 → 608; 긴 변 800, 912 와 1000 → 1008; 넓이 오름차순, 같은 넓이는 가로형 먼저
    assert config.canvases(cfg) == ((608, 800), (800, 608), (608, 912), (912, 608), (608, 1008), (1008, 608))
    assert config.largest_canvas(cfg) == (608, 1008)
    assert config.num_anchors(cfg, (608, 800)) == 38 * 50 * 9
    # 노트북의 224×224: 두 방향이 같은 캔버스 하나, 14×14×9 = 1764 앵커
    seed = config.get_preset("vgg16_seed")
    assert config.canvases(seed) == ((224, 224),)
    assert config.num_anchors(seed, (224, 224)) == 1764
    # 크기를 덮어써 쓸 수 없게 된 긴 변은 빠진다 (오류가 아니다)
    small = config.build_config("cpu_small", "input.min_size=64,input.max_size=64")
    assert config.canvases(small) == ((64, 64),)
    with pytest.raises(ValueError, match="canvas_long_sides must be multiples of anchors.stride"):
        config.build_config("vgg16_paper", "input.canvas_long_sides=(801,)")


def test_fingerprint_covers_the_canvas_set():
    base = config.anchor_fingerprint(config.get_preset("vgg16_paper"))
    fewer = config.build_config("vgg16_paper", "input.canvas_long_sides=(800,)")
    assert config.anchor_fingerprint(fewer) != base
    # 쓰이지 않는 긴 변은 캔버스 집합을 바꾸지 않는다
    assert config.anchor_fingerprint(config.build_config("vgg16_paper",
                                                         "input.canvas_long_sides=(800,912,2000)")) == base


def test_without_pretrained_weights_changes_only_the_backbone_weights():
    cfg = config.build_config("cpu_small", "backbone.weights='/tmp/w.weights.h5',train.num_steps=7")
    bare = config.without_pretrained_weights(cfg)
    assert bare.backbone.weights == "none" and cfg.backbone.weights == "/tmp/w.weights.h5"
    expected = config.to_dict(cfg)
    expected["backbone"]["weights"] = "none"
    assert config.to_dict(bare) == expected
