"""학습 일정: 단계별 전역 스텝 구간과 단계 안의 학습률 스케줄.

용어:
  단계(stage): `model.STAGES` 중 학습에 쓰는 것. joint 는 한 단계, alternating 은 rpn → detector →
    rpn_finetune → detector_finetune 네 단계 (논문의 4단계 교대 학습).
  전역 스텝(global step): 단계를 이어 센 스텝. 단계 구간은 [start, end) 이고 다음 단계는 end 에서 시작한다.
  워밍업(warmup): 첫 스텝들에서 학습률을 기본값의 1/3 에서 기본값까지 선형으로 올린다.
  감소(decay): 정한 스텝들을 지날 때마다 학습률에 decay_factor 를 곱한다 (계단식).
"""

import dataclasses

import keras
import tensorflow as tf

ALTERNATING_STAGES = ("rpn", "detector", "rpn_finetune", "detector_finetune")


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


def stage_plan(train_config):
    """학습 모드와 스텝 수로 단계 구간을 만든다.

    alternating 에서 stage_steps 가 없으면 num_steps 를 논문 비율(RPN 80k·검출기 40k 의 두 번 반복)에
    맞춰 2:1:2:1 로 나눈다.

    Args:
      train_config: `TrainConfig`.

    Returns:
      list of `StagePlan`, 전역 스텝 순서.

    Raises:
      ValueError: 스텝이 없는 교대 학습 단계가 있을 때.
    """
    if train_config.training_mode == "joint":
        return [StagePlan("joint", 0, train_config.num_steps)]
    steps = train_config.stage_steps
    if not steps:
        total = train_config.num_steps
        unit = total / 6.0
        steps = [round(2 * unit), round(unit), round(2 * unit)]
        steps.append(total - sum(steps))
    if min(steps) <= 0:
        raise ValueError(f"every alternating stage needs ≥ 1 step, got {list(steps)}")
    plans, start = [], 0
    for name, count in zip(ALTERNATING_STAGES, steps):
        plans.append(StagePlan(name, start, start + int(count)))
        start += int(count)
    return plans


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
