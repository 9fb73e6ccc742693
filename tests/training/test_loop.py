"""학습 루프 `loop.train` 테스트: 중단 뒤 이어 학습, 끝난 학습은 하지 않음, 다른 설정 거부, 교대 학습 네 단계,
유한하지 않은 손실에서 스텝을 밝히며 멈춤.

용어: 스텝 = 전역 학습 스텝; 체크포인트 ckpt-k 는 스텝 k 뒤의 상태. 데이터는 tests/testing.py 의 합성 배치.
"""

import json
import os
import re

import pytest
import tensorflow as tf

from frcnn.training import loop
from frcnn.data import record_spec
from frcnn.training import trainer
from tests.testing import make_batches, tiny_config, tiny_fpn_config


def _train(cfg, model_dir, batches=None, **callbacks):
    return loop.train(record_spec.RecordSpec.from_config(cfg, ["a", "b"], [1]), "x", model_dir,
                      lambda batch_size, canvas: make_batches(cfg, batches), **callbacks)


def test_resume_after_interruption_and_finished_run(tmp_path):
    cfg = tiny_config("train.num_steps=6")
    model_dir = str(tmp_path / "run")
    # 3 배치 뒤 데이터가 끊겨 중단된다 → 스텝 2 의 체크포인트가 남는다.
    with pytest.raises(ValueError, match=r"canvas 0 \(64×64\) has no records"):
        _train(cfg, model_dir, batches=3)
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-2")
    messages, steps = [], []
    result = _train(cfg, model_dir, log=messages.append,
                    progress=lambda step, total, stage, losses, rate: steps.append((step, total, stage)))
    assert result["step"] == 6 and result["checkpoint"].endswith("ckpt-6")
    # 라이브러리는 출력하지 않고 콜백에 알린다: 이어 학습과 단계 계획 한 줄씩, 루프마다 진행 (루프는 체크포인트
    # 시점인 2 의 배수에서 끊긴다).
    assert len(messages) == 2 and re.fullmatch(r"resuming from \S+ckpt-2 at step 2/6", messages[0])
    assert messages[1] == "stage plan: joint 6 [0, 6); 6 steps in all"
    assert steps == [(4, 6, "joint"), (6, 6, "joint")]
    again = _train(cfg, model_dir, log=messages.append)
    assert again["step"] == 6 and again["losses"] == {}
    assert len(messages) == 3 and messages[2].endswith("is at step 6/6; nothing to do")
    with open(os.path.join(model_dir, "run.json")) as handle:
        assert json.load(handle)["classes"] == ["a", "b"]
    with pytest.raises(ValueError, match="different config"):
        _train(tiny_config("train.num_steps=7,train.learning_rate=0.5"), model_dir)


@pytest.mark.parametrize("make_config", [tiny_config, tiny_fpn_config], ids=["single", "fpn"])
def test_alternating_runs_all_four_stages(tmp_path, make_config):
    cfg = make_config("train.training_mode='alternating',train.stage_steps=(2,2,2,2),"
                      "train.checkpoint_every=100")
    model_dir = str(tmp_path / "alt")
    result = _train(cfg, model_dir)
    assert result["step"] == 8
    # 마지막 단계(detector_finetune)는 검출기 손실만
    assert set(result["losses"]) == {"detector_class_loss", "detector_box_loss", "weight_decay", "total_loss"}
    # checkpoint_every 가 커도 각 단계의 끝에서 저장한다 (keep_checkpoints=3: 마지막 세 단계 끝).
    saved = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints")).all_model_checkpoint_paths
    assert [path.rsplit("-", 1)[1] for path in saved] == ["4", "6", "8"]
    model, _, classes, _ = trainer.load_trained_model(model_dir)
    assert model.rpn_backbone is not None and classes == ("a", "b")


def _optimizer_iterations(checkpoint):
    """체크포인트의 단계별 옵티마이저 반복 수 {단계: int}."""
    reader = tf.train.load_checkpoint(checkpoint)
    return {key.split("/")[0][len("optimizer_"):]: int(reader.get_tensor(key))
            for key in reader.get_variable_to_shape_map()
            if key.startswith("optimizer_") and key.endswith("iterations/.ATTRIBUTES/VARIABLE_VALUE")}


def test_default_alternating_plan_resumes_in_the_middle_of_a_stage(tmp_path):
    # stage_steps 없이 num_steps=4: 논문 비율 4·8/7 = 4.57 → 5, 4·4/7 = 2.29 → 2 → [0,5) [5,7) [7,12) [12,14).
    cfg = tiny_config("train.training_mode='alternating',train.num_steps=4")
    model_dir = str(tmp_path / "alt")
    # 9 배치 뒤 데이터가 끊긴다: 루프는 체크포인트 시점 (2 의 배수) 과 단계 끝에서 끊기므로 0–2, 2–4, 4–5, 5–6,
    # 6–7, 7–8 을 마치고 8–10 에서 멈춘다 → rpn_finetune [7, 12) 한가운데인 ckpt-8.
    with pytest.raises(ValueError, match="has no records"):
        _train(cfg, model_dir, batches=9)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    assert latest.endswith("ckpt-8")
    assert _optimizer_iterations(latest) == {"rpn": 5, "detector": 2, "rpn_finetune": 1,
                                             "detector_finetune": 0}
    with open(os.path.join(model_dir, "run.json")) as handle:
        assert json.load(handle)["config"]["train"]["stage_steps"] == [5, 2, 5, 2]
    messages, steps = [], []
    result = _train(cfg, model_dir, log=messages.append,
                    progress=lambda step, total, stage, losses, rate: steps.append((step, stage)))
    assert messages == [f"resuming from {latest} at step 8/14",
                        "stage plan: rpn 5 [0, 5), detector 2 [5, 7), rpn_finetune 5 [7, 12), "
                        "detector_finetune 2 [12, 14); 14 steps in all"]
    assert steps == [(10, "rpn_finetune"), (12, "rpn_finetune"), (14, "detector_finetune")]
    assert result["step"] == 14
    # 이어 학습한 단계는 제 길이만큼만 돌았다 (단계 안의 학습률 위치가 맞다).
    assert _optimizer_iterations(result["checkpoint"]) == {"rpn": 5, "detector": 2, "rpn_finetune": 5,
                                                           "detector_finetune": 2}


def test_non_finite_loss_stops_with_the_step(tmp_path):
    cfg = tiny_config("train.num_steps=4,train.learning_rate=1e30,train.gradient_clip_norm=0.0")
    with pytest.raises(FloatingPointError, match=r"non-finite loss at step \d \(joint\)"):
        _train(cfg, str(tmp_path / "nan"))
