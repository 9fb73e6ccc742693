import dataclasses

import pytest

from frcnn import config


def test_presets_and_overrides():
    cfg = config.build_config("cpu_small", "train.num_steps=7,anchors.sizes=(8,16),rpn.allow_cross_boundary=true")
    assert cfg.train.num_steps == 7
    assert cfg.anchors.sizes == (8.0, 16.0)
    assert cfg.rpn.allow_cross_boundary is True
    assert cfg.name == "cpu_small"


@pytest.mark.parametrize("override, message", [
    ("train.nope=1", "unknown key 'nope'"),
    ("train=1", "is a section"),
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


def test_dict_roundtrip():
    for name in config.PRESETS:
        cfg = config.get_preset(name)
        assert config.from_dict(config.to_dict(cfg)) == cfg


def test_canvas_shapes():
    cfg = config.get_preset("vgg16_paper")
    assert config.canvas_shape(cfg, True) == (608, 1008)
    assert config.canvas_shape(cfg, False) == (1008, 608)
    assert config.canvas_shape(config.get_preset("vgg16_seed"), True) == (224, 224)
