"""학습 일정: 단계별 전역 스텝 구간과 단계 안의 학습률 스케줄.

용어:
  단계(stage): `model.STAGES` 중 학습에 쓰는 것. joint 는 한 단계, alternating 은 rpn → detector →
    rpn_finetune → detector_finetune 네 단계 (논문의 4단계 교대 학습).
  전역 스텝(global step): 단계를 이어 센 스텝. 단계 구간은 [start, end) 이고 다음 단계는 end 에서 시작한다.
  워밍업(warmup): 첫 스텝들에서 학습률을 기본값의 1/3 에서 기본값까지 선형으로 올린다.
  감소(decay): 정한 스텝들을 지날 때마다 학습률에 decay_factor 를 곱한다 (계단식).
  단계 길이 (alternating, 정하는 순서):
    1. `train.stage_steps` 가 있으면 그대로.
    2. 총 스텝 (`tools/train --num_steps`) 을 주면 2:1:2:1 로 나눈다 (`split_total`).
    3. 아니면 논문 비율: joint 예산 `train.num_steps` 의 8/7, 4/7, 8/7, 4/7 (`paper_stage_steps`).
       논문·py-faster-rcnn `faster_rcnn_alt_opt` 의 VGG16 80k/40k/80k/40k 대 end2end 70k 의 비율이다
       (vgg16_paper 의 70 000 → 정확히 80 000/40 000/80 000/40 000). 나누어떨어지지 않으면 단계마다 가장 가까운
       정수로 반올림한다: cpu_small 1500 → 1714/857/1714/857, vgg16_seed 20000 → 22857/11429/….
    joint 는 한 단계, 길이 `train.num_steps`.
"""

import dataclasses
import fractions

import keras
import tensorflow as tf

ALTERNATING_STAGES = ("rpn", "detector", "rpn_finetune", "detector_finetune")
# 논문의 단계 길이 : joint 예산 (80k, 40k, 80k, 40k : 70k).
PAPER_STAGE_RATIOS = tuple(fractions.Fraction(count, 7) for count in (8, 4, 8, 4))


class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """선형 워밍업(기본 학습률의 1/3 에서 시작) 뒤 계단식 감소 (논문: 0.001 → 0.0001)."""

    def __init__(self, base_rate, warmup_steps, decay_steps, decay_factor):
        self.base_rate = base_rate
        self.warmup_steps = warmup_steps
        self.decay_steps = tuple(decay_steps)
        self.decay_factor = decay_factor

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        rate = tf.constant(self.base_rate, tf.float32)
        for boundary in self.decay_steps:
            rate = tf.where(step >= boundary, rate * self.decay_factor, rate)
        if self.warmup_steps > 0:
            warmup = tf.minimum(step / self.warmup_steps, 1.0)
            rate = rate * (1.0 / 3.0 + 2.0 / 3.0 * warmup)
        return rate

    def get_config(self):
        return {"base_rate": self.base_rate, "warmup_steps": self.warmup_steps,
                "decay_steps": self.decay_steps, "decay_factor": self.decay_factor}


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """한 단계: 이름과 전역 스텝 구간 [start, end)."""

    name: str
    start: int
    end: int

    @property
    def length(self):
        return self.end - self.start


def paper_stage_steps(joint_steps):
    """joint 예산 joint_steps 에 논문 비율 (8/7, 4/7, 8/7, 4/7) 을 곱해 가장 가까운 정수로 한 네 단계 길이.

    분수로 곱해 부동소수 오차가 없고, 정수 n 의 8n/7·4n/7 은 x.5 가 될 수 없어 (16n = 14m + 7 은 짝수 = 홀수)
    반올림 방향이 늘 하나다.
    """
    return tuple(round(ratio * joint_steps) for ratio in PAPER_STAGE_RATIOS)


def split_total(total):
    """총 스텝 total 을 2:1:2:1 로 나눈 네 단계 길이 (합 = total; 마지막 단계가 나머지를 받는다)."""
    unit = total / 6.0
    steps = [round(2 * unit), round(unit), round(2 * unit)]
    return tuple(steps + [total - sum(steps)])


def stage_steps(train_config):
    """alternating 네 단계의 길이: `train.stage_steps`, 없으면 `paper_stage_steps(train.num_steps)`."""
    explicit = tuple(int(count) for count in train_config.stage_steps)
    return explicit or paper_stage_steps(train_config.num_steps)


def resolve_stage_steps(config, total_steps=None):
    """alternating 설정의 `train.stage_steps` 를 채운 설정 (run.json 에 실제 단계 길이가 남게).

    Args:
      config: `ExperimentConfig`.
      total_steps: None 또는 총 스텝 (`tools/train --num_steps`): stage_steps 가 없을 때 2:1:2:1 로 나눈다.

    Returns:
      joint 이거나 stage_steps 가 이미 있으면 config 그대로, 아니면 stage_steps 를 채운 복사본.
    """
    train = config.train
    if train.training_mode != "alternating" or train.stage_steps:
        return config
    steps = split_total(total_steps) if total_steps is not None else paper_stage_steps(train.num_steps)
    return dataclasses.replace(config, train=dataclasses.replace(train, stage_steps=steps))


def stage_plan(train_config):
    """학습 모드와 스텝 수로 단계 구간을 만든다 (단계 길이는 모듈 설명의 순서대로).

    Args:
      train_config: `TrainConfig`.

    Returns:
      list of `StagePlan`, 전역 스텝 순서.

    Raises:
      ValueError: 스텝이 없는 교대 학습 단계가 있을 때.
    """
    if train_config.training_mode == "joint":
        return [StagePlan("joint", 0, train_config.num_steps)]
    steps = stage_steps(train_config)
    if min(steps) <= 0:
        raise ValueError(f"every alternating stage needs ≥ 1 step, got {list(steps)}")
    plans, start = [], 0
    for name, count in zip(ALTERNATING_STAGES, steps):
        plans.append(StagePlan(name, start, start + count))
        start += count
    return plans


def describe_plan(plans):
    """학습 시작에 알릴 단계 계획 한 줄: 단계마다 이름, 스텝 수, 전역 스텝 구간 [start, end)."""
    stages = ", ".join(f"{plan.name} {plan.length} [{plan.start}, {plan.end})" for plan in plans)
    return f"stage plan: {stages}; {plans[-1].end} steps in all"


def plan_for_step(plans, step):
    """전역 스텝 `step` 이 속한 단계 (없으면 None)."""
    for plan in plans:
        if plan.start <= step < plan.end:
            return plan
    return None


def stage_learning_rate(train_config, plan):
    """단계 안의 스텝으로 세는 학습률 스케줄.

    교대 학습에서는 각 단계의 3/4 지점에서 감소한다 (논문 60k/80k, 30k/40k); joint 는 설정 그대로.
    워밍업은 단계 길이의 1/4 을 넘지 않는다.
    """
    decay = train_config.decay_steps if plan.name == "joint" else (int(plan.length * 0.75),)
    return WarmupStepDecay(train_config.learning_rate, min(train_config.warmup_steps, plan.length // 4),
                           decay, train_config.decay_factor)
