"""record_spec 테스트: 캔버스 기하, 앵커 지문, `<split>.json` 스키마 (쓰기 → 읽기 왕복), 읽기 오류가 파일을 밝힌다.

용어: 명세 = `RecordSpec`; 캔버스 (Hc, Wc); A 캔버스 하나의 앵커 수.
"""

import dataclasses
import glob
import json
import shutil

import numpy as np
import pytest

from frcnn import config
from frcnn.data import record_spec
from frcnn.data import records
from frcnn.data import resize
from tests.testing import convert_voc, write_voc_dir


def test_fingerprint_changes_with_anchor_settings_only():
    base = config.get_preset("cpu_small")
    assert record_spec.anchor_fingerprint(base) == record_spec.anchor_fingerprint(
        dataclasses.replace(base, train=dataclasses.replace(base.train, num_steps=3)))
    seed = config.get_preset("vgg16_seed")
    assert record_spec.anchor_fingerprint(base) != record_spec.anchor_fingerprint(seed)
    changed = config.apply_overrides(base, "rpn.positive_iou=0.6")
    assert record_spec.anchor_fingerprint(base) != record_spec.anchor_fingerprint(changed)


def test_fingerprint_covers_scale_jitter_only_when_set():
    """지터 레코드는 스케일마다 라벨을 담으므로 목록이 지문에 든다 (순서는 무관); 지터 없는 지문은 그대로."""
    base = config.get_preset("cpu_small")

    def fingerprint(sides):
        jittered = config.apply_overrides(base, f"input.train_short_sides={sides}")
        return record_spec.anchor_fingerprint(jittered)

    assert fingerprint("()") == record_spec.anchor_fingerprint(base)
    assert fingerprint("(96,128,160)") != record_spec.anchor_fingerprint(base)
    assert fingerprint("(96,128,160)") == fingerprint("(160,96,128)") != fingerprint("(96,160)")
    # min_size 128 은 기본 라벨이라 더 담는 스케일이 아니다
    jittered = config.apply_overrides(base, "input.train_short_sides=(160,128,96)")
    assert record_spec.label_short_sides(jittered) == (96, 160)


@pytest.mark.parametrize("preset, overrides, short_sides", [
    # round 규칙, 캔버스 넷, 짧은 변이 min_size 128 의 위·아래
    ("cpu_small", "", (64, 96, 120, 160, 192)),
    # torchvision (내림) 규칙, stride 32 의 FPN 캔버스
    ("cpu_small_fpn", "", (64, 96, 160, 192)),
    # min_size = max_size: 모든 이미지가 긴 변 상한에 걸린다
    ("cpu_small", "input.max_size=128", (64, 96)),
])
def test_scaled_canvases_hold_every_image_at_their_scale(preset, overrides, short_sides):
    """크기 격자의 모든 이미지: min_size 에서 고른 캔버스 k 를 s 로 바꾼 모양이 s 로 리사이즈한 이미지를 담는다.

    긴 변 상한에 걸리는 (가로세로비가 max_size / min_size 보다 큰) 이미지는 s < min_size 여도 그대로일 수 있다.
    기대값은 `resize.resize_scale` 의 실제 크기 (레코드·파이프라인과 같은 함수) 로 직접 잰 것.
    """
    cfg = config.build_config(preset, overrides)
    shapes = np.array(record_spec.canvases(cfg))  # [K, 2]
    heights, widths = (grid.ravel() for grid in np.meshgrid(np.arange(6, 700, 7), np.arange(6, 700, 7)))
    sizes = (cfg.input.max_size, cfg.input.size_rule)
    _, at_min = resize.resize_scale(heights, widths, cfg.input.min_size, *sizes)
    # [N] min_size 에서 담는 가장 작은 캔버스 (`resize.canvas_for_image` 와 같은 규칙)
    index = np.argmax((shapes[None] >= at_min.numpy()[:, None]).all(axis=2), axis=1)
    capped_images = 0
    for short_side in short_sides:
        _, at_side = resize.resize_scale(heights, widths, short_side, *sizes)
        at_side = at_side.numpy()
        scaled = np.array([record_spec.scaled_canvas(cfg, tuple(shape), short_side) for shape in shapes])
        assert (scaled % cfg.anchors.stride == 0).all() and (scaled <= shapes.max()).all()
        assert (at_side <= scaled[index]).all(), short_side
        capped_images += int((at_side.max(axis=1) > short_side * at_min.numpy().max(axis=1)
                              / cfg.input.min_size + 1).sum())
    assert capped_images > 0  # 긴 변 상한 때문에 덜 줄어드는 이미지가 격자에 있다 (헛된 검사가 아니다)


def test_scaled_canvases_shrink_and_grow_with_the_short_side():
    cfg = config.get_preset("resnet50_fpn")  # 800 / 1333, 캔버스 800×1088, 800×1216, 800×1344 (와 세로형)
    spec = record_spec.RecordSpec.from_config(cfg)
    assert [spec.training_canvas(k) for k in range(len(spec.canvas_shapes))] == list(spec.canvas_shapes)
    assert [spec.training_canvas(k, 800) for k in range(len(spec.canvas_shapes))] == list(spec.canvas_shapes)
    # 640: 짧은 변 ⌊801·0.8⌋ = 640, 긴 변 ⌊1089·0.8⌋ = 871 → 896, ⌊1217·0.8⌋ = 973 → 992; 가장 큰 캔버스의
    # 긴 변은 긴 변 상한에 걸린 이미지 때문에 1344 그대로
    assert record_spec.scaled_canvas(cfg, (800, 1088), 640) == (640, 896)
    assert record_spec.scaled_canvas(cfg, (1216, 800), 640) == (992, 640)
    assert record_spec.scaled_canvas(cfg, (800, 1344), 640) == (640, 1344)
    # 1024: ⌊801·1.28⌋ = 1025 → 1056, 긴 변은 max_size 1333 → 1344
    assert record_spec.scaled_canvas(cfg, (800, 1088), 1024) == (1056, 1344)


def test_fingerprint_covers_the_anchor_label_format(monkeypatch):
    """라벨 형식을 바꾸면 (밀집 → 희소처럼) 지문이 바뀌어 옛 레코드가 거부된다."""
    base = config.get_preset("cpu_small")
    current = record_spec.anchor_fingerprint(base)
    monkeypatch.setattr(records, "ANCHOR_LABEL_FORMAT", "dense-int16")
    assert record_spec.anchor_fingerprint(base) != current


def test_canvas_shapes():
    cfg = config.get_preset("vgg16_paper")
    # 짧은 변 600 → 608; 긴 변 800, 912 와 1000 → 1008; 넓이 오름차순, 같은 넓이는 가로형 먼저
    assert record_spec.canvases(cfg) == ((608, 800), (800, 608), (608, 912), (912, 608), (608, 1008),
                                         (1008, 608))
    assert record_spec.largest_canvas(cfg) == (608, 1008)
    assert record_spec.num_anchors(cfg, (608, 800)) == 38 * 50 * 9
    # 노트북의 224×224: 두 방향이 같은 캔버스 하나, 14×14×9 = 1764 앵커
    seed = config.get_preset("vgg16_seed")
    assert record_spec.canvases(seed) == ((224, 224),)
    assert record_spec.num_anchors(seed, (224, 224)) == 1764
    # 크기를 덮어써 쓸 수 없게 된 긴 변은 빠진다 (오류가 아니다)
    small = config.build_config("cpu_small", "input.min_size=64,input.max_size=64")
    assert record_spec.canvases(small) == ((64, 64),)


def test_fingerprint_covers_the_canvas_set():
    base = record_spec.anchor_fingerprint(config.get_preset("vgg16_paper"))
    fewer = config.build_config("vgg16_paper", "input.canvas_long_sides=(800,)")
    assert record_spec.anchor_fingerprint(fewer) != base
    # 쓰이지 않는 긴 변은 캔버스 집합을 바꾸지 않는다
    unused = config.build_config("vgg16_paper", "input.canvas_long_sides=(800,912,2000)")
    assert record_spec.anchor_fingerprint(unused) == base


def test_without_pretrained_weights_changes_only_the_backbone_weights():
    cfg = config.build_config("cpu_small", "backbone.weights='/tmp/w.weights.h5',train.num_steps=7")
    bare = config.without_pretrained_weights(cfg)
    # 파일은 읽지 않되 사전학습 구조로 (checkpoint); none 은 그대로
    assert bare.backbone.weights == "checkpoint" and cfg.backbone.weights == "/tmp/w.weights.h5"
    assert config.without_pretrained_weights(bare) == bare
    expected = config.to_dict(cfg)
    expected["backbone"]["weights"] = "checkpoint"
    assert config.to_dict(bare) == expected


def test_spec_from_config_holds_the_canvas_geometry_once():
    cfg = config.get_preset("vgg16_paper")
    spec = record_spec.RecordSpec.from_config(cfg, ["cat"], [3, 0, 1, 0, 0, 0])
    assert spec.canvas_shapes == record_spec.canvases(cfg)
    assert spec.canvas(0) == ((608, 800), 38 * 50 * 9)
    assert spec.fingerprint == record_spec.anchor_fingerprint(cfg)
    assert (spec.min_size, spec.max_size, spec.classes, spec.files) == (600, 1000, ("cat",), ())
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.fingerprint = "x"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("spec")
    summary = convert_voc(write_voc_dir(root), root / "records", num_shards=2)
    return str(root / "records" / "trainval-*.tfrecord"), summary


def test_written_metadata_reads_back_into_the_same_spec(written):
    pattern, summary = written
    cfg = config.build_config("cpu_small")
    spec = record_spec.RecordSpec.read(pattern, cfg)
    assert spec == dataclasses.replace(record_spec.RecordSpec.from_config(cfg), files=spec.files,
                                       classes=tuple(summary["classes"]),
                                       canvas_counts=tuple(summary["canvas_counts"]))
    assert len(spec.files) == 2 and sum(spec.canvas_counts) == summary["num_images"] == 4
    assert spec.metadata["num_anchors"] == list(spec.anchor_counts)
    assert spec.metadata["canvases"] == [list(shape) for shape in spec.canvas_shapes]


def test_reading_with_another_preset_names_the_preset_that_made_them(written):
    pattern, _ = written
    message = r"were made for preset 'cpu_small'.*rerun make_tfrecords with --config=vgg16_seed"
    with pytest.raises(ValueError, match=message):
        record_spec.RecordSpec.read(pattern, config.build_config("vgg16_seed"))


def test_a_broken_metadata_file_is_named(written, tmp_path):
    pattern, _ = written
    for path in glob.glob(pattern):
        shutil.copy(path, tmp_path)
    (tmp_path / "trainval.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"trainval\.json: cannot read the records' metadata"):
        record_spec.RecordSpec.read(str(tmp_path / "trainval-*.tfrecord"), config.build_config("cpu_small"))
    (tmp_path / "trainval.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"trainval\.json: the records' metadata is not a JSON object"):
        record_spec.read_metadata(str(tmp_path / "trainval-*.tfrecord"))
    with pytest.raises(ValueError, match="no TFRecord files match"):
        record_spec.RecordSpec.read(str(tmp_path / "none-*.tfrecord"), config.build_config("cpu_small"))
