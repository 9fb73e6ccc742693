"""단계 구간과 학습률 스케줄 테스트 (기대값은 손으로 계산).

용어: 단계 구간 [start, end) 은 전역 스텝; 학습률 스케줄은 단계 안의 스텝(옵티마이저 반복 수)으로 센다.
"""

import numpy as np
import pytest

from frcnn import config
from frcnn.training import schedule


def test_stage_plan_splits_steps():
    plans = schedule.stage_plan(config.TrainConfig(training_mode="alternating", num_steps=60))
    assert [(p.name, p.start, p.end) for p in plans] == [
        ("rpn", 0, 20), ("detector", 20, 30), ("rpn_finetune", 30, 50), ("detector_finetune", 50, 60)]
    plans = schedule.stage_plan(config.TrainConfig(training_mode="alternating", stage_steps=(1, 2, 3, 4)))
    assert plans[-1].end == 10 and plans[2].start == 3
    assert [p.name for p in schedule.stage_plan(config.TrainConfig(num_steps=5))] == ["joint"]


def test_stage_plan_refuses_an_empty_stage():
    # 3 스텝을 2:1:2:1 로 나누면 round(1.0)=1, round(0.5)=0 → detector 단계가 비어 거부된다.
    with pytest.raises(ValueError, match="needs ≥ 1 step"):
        schedule.stage_plan(config.TrainConfig(training_mode="alternating", num_steps=3))


def test_plan_for_step_at_stage_boundaries():
    plans = schedule.stage_plan(config.TrainConfig(training_mode="alternating", stage_steps=(2, 1, 2, 1)))
    names = [getattr(schedule.plan_for_step(plans, step), "name", None) for step in range(7)]
    assert names == ["rpn", "rpn", "detector", "rpn_finetune", "rpn_finetune", "detector_finetune", None]


def test_warmup_step_decay_values():
    rate = schedule.WarmupStepDecay(0.3, 10, (20,), 0.1)
    np.testing.assert_allclose([float(rate(s)) for s in (0, 5, 10, 19, 20)],
                               [0.1, 0.2, 0.3, 0.3, 0.03], rtol=1e-6)


def test_alternating_stage_decays_at_three_quarters_and_caps_warmup():
    train = config.TrainConfig(training_mode="alternating", learning_rate=0.4, warmup_steps=500,
                               decay_steps=(5,), decay_factor=0.5)
    rate = schedule.stage_learning_rate(train, schedule.StagePlan("rpn", 40, 80))
    # 길이 40: 워밍업 min(500, 10) = 10, 감소는 int(40·0.75) = 30 에서 (joint 의 decay_steps 는 무시).
    assert (rate.warmup_steps, rate.decay_steps) == (10, (30,))
    np.testing.assert_allclose([float(rate(s)) for s in (0, 10, 29, 30)],
                               [0.4 / 3, 0.4, 0.4, 0.2], rtol=1e-6)
    joint = schedule.stage_learning_rate(config.TrainConfig(decay_steps=(7, 9)),
                                         schedule.StagePlan("joint", 0, 100))
    assert joint.decay_steps == (7, 9)
