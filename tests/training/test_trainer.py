import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import anchors
from frcnn import config
from frcnn.modeling import rpn_targets
from frcnn.training import trainer as training
from tests.conftest import make_batches, tiny_config

def test_stage_plan_splits_steps():
    plans = training.stage_plan(config.TrainConfig(training_mode="alternating", num_steps=60))
    assert [(p.name, p.start, p.end) for p in plans] == [
        ("rpn", 0, 20), ("detector", 20, 30), ("rpn_finetune", 30, 50), ("detector_finetune", 50, 60)]
    plans = training.stage_plan(config.TrainConfig(training_mode="alternating", stage_steps=(1, 2, 3, 4)))
    assert plans[-1].end == 10 and plans[2].start == 3
    assert [p.name for p in training.stage_plan(config.TrainConfig(num_steps=5))] == ["joint"]


def test_warmup_step_decay_values():
    schedule = training.WarmupStepDecay(0.3, 10, (20,), 0.1)
    np.testing.assert_allclose([float(schedule(s)) for s in (0, 5, 10, 19, 20)],
                               [0.1, 0.2, 0.3, 0.3, 0.03], rtol=1e-6)


def test_resume_after_interruption_and_finished_run(tmp_path):
    cfg = tiny_config("train.num_steps=6")
    model_dir = str(tmp_path / "run")
    # 3 배치 뒤 데이터가 끊겨 중단된다 → 스텝 2 의 체크포인트가 남는다.
    with pytest.raises((tf.errors.OutOfRangeError, StopIteration)):
        training.train(cfg, "x", model_dir, lambda b: make_batches(cfg, 3), ["a", "b"], progress=False)
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-2")
    result = training.train(cfg, "x", model_dir, lambda b: make_batches(cfg), ["a", "b"], progress=False)
    assert result["step"] == 6 and result["checkpoint"].endswith("ckpt-6")
    again = training.train(cfg, "x", model_dir, lambda b: make_batches(cfg), ["a", "b"], progress=False)
    assert again["step"] == 6 and again["losses"] == {}
    with open(os.path.join(model_dir, "run.json")) as handle:
        assert json.load(handle)["classes"] == ["a", "b"]
    with pytest.raises(ValueError, match="different config"):
        training.train(tiny_config("train.num_steps=7,train.learning_rate=0.5"), "x", model_dir,
                       lambda b: make_batches(cfg), ["a", "b"], progress=False)


def test_alternating_runs_all_four_stages(tmp_path):
    cfg = tiny_config("train.training_mode='alternating',train.stage_steps=(2,2,2,2)")
    result = training.train(cfg, "x", str(tmp_path / "alt"), lambda b: make_batches(cfg), ["a", "b"],
                            progress=False)
    assert result["step"] == 8
    # 마지막 단계(detector_finetune)는 검출기 손실만
    assert set(result["losses"]) == {"detector_class_loss", "detector_box_loss", "weight_decay", "total_loss"}
    model, _, classes, _ = training.load_trained_model(str(tmp_path / "alt"))
    assert model.rpn_backbone is not None and classes == ("a", "b")


def test_non_finite_loss_stops_with_the_step(tmp_path):
    cfg = tiny_config("train.num_steps=4,train.learning_rate=1e30,train.gradient_clip_norm=0.0")
    with pytest.raises(FloatingPointError, match="non-finite loss at step"):
        training.train(cfg, "x", str(tmp_path / "nan"), lambda b: make_batches(cfg), ["a", "b"], progress=False)


MIRRORED_SCRIPT = textwrap.dedent("""
    import sys, json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from tests.conftest import tiny_config, make_batches
    from frcnn.training import trainer as training
    # 표본 추출이 결정적이도록: 모든 앵커·후보를 쓴다 (순서는 손실 합에 영향 없음); BN 은 복제본별 통계라 반 배치씩 비교.
    cfg = tiny_config("train.num_steps=1,rpn.batch_size_per_image=100000,rpn.positive_fraction=1.0,"
                      "roi.num_rois=48,roi.foreground_fraction=1.0,train.weight_decay=0.0")
    batch = next(iter(make_batches(cfg)))
    results = {}
    for name in ("default", "mirrored"):
        strategy = training.make_strategy(name)
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            trainer = training.Trainer(cfg, 2, sys.argv[2] + name, strategy)
        if name == "default":
            halves = [{k: v[i:i + 1] for k, v in batch.items()} for i in (0, 1)]
            losses = [trainer.model.compute_losses(h, "joint")["total_loss"].numpy() for h in halves]
            results["halves"] = float(sum(losses) / 2)
        dataset = strategy.experimental_distribute_dataset(make_batches(cfg, 1))
        results[name] = float(trainer.step_function("joint")(next(iter(dataset)))["total_loss"])
        results[name + "_replicas"] = strategy.num_replicas_in_sync
    print(json.dumps(results))
""")


def test_mirrored_strategy_on_two_cpus_matches_default(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    output = subprocess.run([sys.executable, str(script), root, str(tmp_path) + "/"], capture_output=True,
                            text=True, timeout=300, cwd=root)
    assert output.returncode == 0, output.stderr[-3000:]
    results = json.loads(output.stdout.strip().splitlines()[-1])
    assert results["mirrored_replicas"] == 2 and results["default_replicas"] == 1
    # 같은 초기 가중치 (seed 0): 복제본 2개의 평균 손실 = 기본 전략에서 반 배치씩 잰 손실의 평균
    np.testing.assert_allclose(results["mirrored"], results["halves"], rtol=1e-4)
