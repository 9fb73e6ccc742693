"""실행 기록 run.json 테스트: 지금 코드가 쓴 기록의 왕복, 다른 설정 거부, 모르는 키와 깨진 파일.

용어: 실행 기록 = model_dir/run.json {"config", "classes", "records", "anchor_fingerprint"}.
"""

import json
import os

import pytest

from frcnn import config
from frcnn.data import record_spec
from frcnn.training import run_file


def _edit_run_file(model_dir, edit):
    path = os.path.join(model_dir, "run.json")
    with open(path) as handle:
        run_info = json.load(handle)
    edit(run_info)
    with open(path, "w") as handle:
        json.dump(run_info, handle)


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_a_run_file_written_now_reads_back(tmp_path, preset):
    # 프리셋과 다른 앵커 크기 (피라미드 프리셋은 수준마다 하나: 다섯 개)
    sizes = "(8,16,32,64,128)" if config.get_preset(preset).fpn.variant else "(8,16)"
    cfg = config.build_config(preset, f"train.training_mode=alternating,anchors.sizes={sizes}")
    run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(cfg, ["cat", "개"]),
                            "records/*.tfrecord")
    assert run_file.read_run_file(str(tmp_path)) == (cfg, ("cat", "개"))
    assert sorted(os.listdir(tmp_path)) == ["run.json"]  # 임시 파일이 남지 않는다
    with open(tmp_path / "run.json", encoding="utf-8") as handle:
        saved = json.load(handle)
    assert saved["anchor_fingerprint"] == record_spec.anchor_fingerprint(cfg)
    assert saved["records"] == "records/*.tfrecord"


def test_same_run_is_accepted_and_a_different_one_refused_naming_keys(tmp_path):
    cfg = config.build_config("cpu_small")
    run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(cfg, ["a"]), "x")
    run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(cfg, ["a"]), "x")
    other = config.apply_overrides(cfg, "train.learning_rate=0.5,roi.num_rois=32")
    with pytest.raises(ValueError, match=r"different config \(roi.num_rois, train.learning_rate differ\)"):
        run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(other, ["a"]), "x")
    with pytest.raises(ValueError, match=r"\(classes differ\)"):
        run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(cfg, ["a", "b"]), "x")


def test_unknown_key_in_run_file_fails_naming_it(tmp_path):
    run_file.write_run_file(str(tmp_path),
                            record_spec.RecordSpec.from_config(config.build_config("cpu_small"), ["a"]), "x")
    _edit_run_file(str(tmp_path), lambda run_info: run_info["config"]["train"].update(foo=1))
    with pytest.raises(ValueError, match=r"run.json: unknown key 'train.foo' \(train has: batch_size, "):
        run_file.read_run_file(str(tmp_path))
    _edit_run_file(str(tmp_path), lambda run_info: run_info["config"].update(optimizer={}))
    with pytest.raises(ValueError, match=r"run.json: unknown key 'optimizer' \(config has: anchors, "):
        run_file.read_run_file(str(tmp_path))


def test_missing_or_broken_run_file(tmp_path):
    with pytest.raises(ValueError, match="run.json: not found"):
        run_file.read_run_file(str(tmp_path))
    (tmp_path / "run.json").write_text('{"config": {}')
    with pytest.raises(ValueError, match="run.json: unreadable run file"):
        run_file.read_run_file(str(tmp_path))
    (tmp_path / "run.json").write_text('{"config": {}}')
    with pytest.raises(ValueError, match="run.json: unreadable run file: 'classes'"):
        run_file.read_run_file(str(tmp_path))


def test_jit_and_steps_per_loop_may_change_on_resume_but_not_precision(tmp_path):
    """XLA·루프 길이는 체크포인트와 호환되는 실행 방식이라 이어 학습에서 바꿔도 된다 (run.json 은 마지막 값).
    혼합 정밀도는 아니다 (GPU 에서 LossScaleOptimizer 가 체크포인트 모양을 바꾼다)."""
    model_dir = str(tmp_path)
    run_file.write_run_file(model_dir, record_spec.RecordSpec.from_config(config.build_config("cpu_small"),
                            ["a"]), "r")
    changed = config.build_config("cpu_small", "train.jit_compile=true,train.steps_per_loop=3")
    run_file.write_run_file(model_dir, record_spec.RecordSpec.from_config(changed, ["a"]), "r")
    saved, _ = run_file.read_run_file(model_dir)
    assert saved.train.jit_compile and saved.train.steps_per_loop == 3
    precision = not changed.train.mixed_precision
    with pytest.raises(ValueError, match=r"\(train.mixed_precision differ\)"):
        other = config.apply_overrides(changed, f"train.mixed_precision={precision}")
        run_file.write_run_file(model_dir, record_spec.RecordSpec.from_config(other, ["a"]), "r")


def test_resume_may_change_eval_every_and_keeps_the_best_record(tmp_path):
    """검증 주기는 실행 방식이다; 이어 학습이 run.json 을 다시 써도 최고 기록 ("best") 은 남는다."""
    model_dir = str(tmp_path)
    run_file.write_run_file(model_dir, record_spec.RecordSpec.from_config(config.build_config("cpu_small"),
                            ["a"]), "r")
    assert run_file.read_best(model_dir) is None
    best = {"step": 4, "voc07_map": 0.5, "checkpoint": "c/best/ckpt-4", "eval_records": "v-*"}
    run_file.write_best(model_dir, best)
    run_file.write_run_file(model_dir, record_spec.RecordSpec.from_config(config.build_config("cpu_small",
                            "train.eval_every=7"), ["a"]), "r")
    saved, _ = run_file.read_run_file(model_dir)
    assert saved.train.eval_every == 7 and run_file.read_best(model_dir) == best
    with pytest.raises(ValueError, match=r"run.json: not found"):
        run_file.write_best(str(tmp_path / "missing"), best)
