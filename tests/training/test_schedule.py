"""단계 구간과 학습률 스케줄 테스트 (기대값은 손으로 계산).

용어: 단계 구간 [start, end) 은 전역 스텝; 학습률 스케줄은 단계 안의 스텝(옵티마이저 반복 수)으로 센다.
"""

import numpy as np
import pytest

from frcnn import config
from frcnn.training import schedule


def test_stage_plan_from_explicit_stage_steps_and_joint():
    plans = schedule.stage_plan(config.TrainConfig(training_mode="alternating", stage_steps=(1, 2, 3, 4)))
    assert [(p.name, p.start, p.end) for p in plans] == [
        ("rpn", 0, 1), ("detector", 1, 3), ("rpn_finetune", 3, 6), ("detector_finetune", 6, 10)]
    assert [(p.name, p.end) for p in schedule.stage_plan(config.TrainConfig(num_steps=5))] == [("joint", 5)]


@pytest.mark.parametrize("preset, steps", [
    # 논문 비율 8/7, 4/7 을 손으로: 70000·8/7 = 80000, 70000·4/7 = 40000 (정확히);
    # 1500·8/7 = 1714.29 → 1714, 1500·4/7 = 857.14 → 857;
    # 20000·8/7 = 22857.14 → 22857, 20000·4/7 = 11428.57 → 11429.
    ("vgg16_paper", (80000, 40000, 80000, 40000)),
    ("cpu_small", (1714, 857, 1714, 857)),
    ("vgg16_seed", (22857, 11429, 22857, 11429)),
])
def test_default_alternating_plan_follows_the_paper_ratios_per_preset(preset, steps):
    cfg = config.build_config(preset, "train.training_mode=alternating")
    plans = schedule.stage_plan(cfg.train)
    assert tuple(plan.length for plan in plans) == steps
    ends = [sum(steps[:index + 1]) for index in range(4)]
    assert [(plan.start, plan.end) for plan in plans] == list(zip([0] + ends[:3], ends))
    # run.json 에 남길 해석된 설정: stage_steps 를 채운다 (나머지는 그대로).
    resolved = schedule.resolve_stage_steps(cfg)
    assert resolved.train.stage_steps == steps and resolved.train.num_steps == cfg.train.num_steps
    assert schedule.stage_plan(resolved.train) == plans


def test_paper_ratios_round_to_the_nearest_step():
    # 7 → 8, 4 (정확); 1 → 8/7 = 1.14 → 1, 4/7 = 0.57 → 1; 10 → 11.43 → 11, 5.71 → 6.
    assert schedule.paper_stage_steps(7) == (8, 4, 8, 4)
    assert schedule.paper_stage_steps(1) == (1, 1, 1, 1)
    assert schedule.paper_stage_steps(10) == (11, 6, 11, 6)


def test_explicit_total_is_split_two_one_two_one_and_stage_steps_win():
    cfg = config.build_config("cpu_small", "train.training_mode=alternating,train.num_steps=4500")
    # tools/train --num_steps=4500: 총 스텝 → 4500/6 = 750 → 1500, 750, 1500, 750
    assert schedule.resolve_stage_steps(cfg, 4500).train.stage_steps == (1500, 750, 1500, 750)
    # 60 → 20, 10, 20, 10; 나누어떨어지지 않으면 마지막 단계가 나머지: 7 → round(2.33)=2, round(1.17)=1, 2, 7−5=2
    assert schedule.split_total(60) == (20, 10, 20, 10) and schedule.split_total(7) == (2, 1, 2, 2)
    explicit = config.apply_overrides(cfg, "train.stage_steps=(5,6,7,8)")
    assert schedule.resolve_stage_steps(explicit, 4500).train.stage_steps == (5, 6, 7, 8)
    assert schedule.resolve_stage_steps(explicit).train.stage_steps == (5, 6, 7, 8)
    joint = config.build_config("cpu_small")
    assert schedule.resolve_stage_steps(joint, 4500) is joint


def test_describe_plan_lists_every_stage():
    plans = schedule.stage_plan(config.TrainConfig(training_mode="alternating", stage_steps=(4, 2, 4, 2)))
    assert schedule.describe_plan(plans) == ("stage plan: rpn 4 [0, 4), detector 2 [4, 6), rpn_finetune 4 "
                                             "[6, 10), detector_finetune 2 [10, 12); 12 steps in all")


def test_stage_plan_refuses_an_empty_stage():
    # 3 스텝을 2:1:2:1 로 나누면 round(1.0)=1, round(0.5)=0 → detector 단계가 비어 거부된다.
    assert schedule.split_total(3) == (1, 0, 1, 1)
    with pytest.raises(ValueError, match="needs ≥ 1 step"):
        schedule.stage_plan(config.TrainConfig(training_mode="alternating",
                                               stage_steps=schedule.split_total(3)))


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
