"""학습 루프 `train`: 만들기 → 복원 → 스텝 돌리기 (기록, 체크포인트) → 마무리.

용어:
  전역 스텝: 단계를 이어 센 스텝 (`schedule`). 체크포인트 ckpt-k 는 스텝 k 를 마친 뒤의 상태다.
  이어 학습(resume): 같은 model_dir 로 다시 부르면 마지막 체크포인트의 스텝에서 이어간다; 이미 끝난
    학습이면 아무것도 하지 않는다.
  체크포인트 시점: checkpoint_every 의 배수, 각 단계의 끝, 마지막 스텝.
  마무리: chief 가 아닌 워커의 임시 디렉터리(model_dir/.worker-K)를 지우고 결과를 돌려준다.
  전역 상태: 라이브러리는 난수 seed, dtype 정책을 정하지 않고 출력하지도 않는다. seed 와 출력 (알림 줄, 진행
    막대) 은 부르는 쪽 (`tools/train`) 이 `log`, `progress` 콜백으로 맡는다.
"""

import math
import os
import shutil

import tensorflow as tf

from frcnn.modeling import model as model_lib
from frcnn.training import distribute
from frcnn.training import progress as progress_lib
from frcnn.training import run_file
from frcnn.training import trainer as trainer_lib


def train(config, records, model_dir, make_dataset, classes, strategy="auto", jit_compile=False,
          progress=None, log=None):
    """학습한다 (재실행하면 마지막 체크포인트에서 이어간다).

    모델은 활성 Keras dtype 정책으로 만든다: 혼합 정밀도는 부르는 쪽이
    `keras.mixed_precision.set_global_policy(precision.mixed_policy_name())` 로 미리 정한다. 재현하려면
    부르는 쪽이 먼저 `tf.random.set_seed(config.train.seed)` 를 부른다.

    Args:
      config: `ExperimentConfig`.
      records: TFRecord glob (run.json 에 기록).
      model_dir: 출력 디렉터리.
      make_dataset: 함수 (global_batch_size) → 학습 tf.data.Dataset (반복, 배치).
      classes: 클래스 이름들 (1..C).
      strategy: `distribute.make_strategy` 의 이름 또는 이미 만든 전략 (다중 워커 전략은 다른 TF 연산보다
        먼저 만들어야 하므로 바이너리는 시작하자마자 만든다).
      jit_compile: XLA 로 학습 스텝 컴파일.
      progress: None 또는 매 스텝 뒤 부를 함수 (step, total, stage, losses, images_per_second)
        (`progress.ProgressLog` 참고; 진행 막대는 부르는 쪽이 그린다).
      log: None 또는 알림 한 줄 (str) 을 받는 함수 (이어 학습, 할 일 없음).

    Returns:
      dict: step (마지막 전역 스텝), losses (마지막 손실들; 할 일이 없었으면 빈 dict), checkpoint (경로).

    Raises:
      ValueError: model_dir 에 다른 설정의 실행 기록이 있을 때.
      FloatingPointError: 손실이 유한하지 않을 때 (마지막 정상 체크포인트는 남는다).
    """
    log = log or (lambda message: None)
    trainer = _build(config, records, model_dir, classes, strategy, jit_compile)
    restored = trainer.restore()
    start = int(trainer.step.numpy())
    if start >= trainer.total_steps:
        log(f"already trained: {model_dir} is at step {start}/{trainer.total_steps}; nothing to do")
        return {"step": start, "losses": {}, "checkpoint": restored}
    if restored:
        log(f"resuming from {restored} at step {start}/{trainer.total_steps}")
    losses = _run_steps(trainer, _batches(trainer, make_dataset), start, progress)
    return _finish(trainer, losses)


def _build(config, records, model_dir, classes, strategy, jit_compile):
    """run.json 을 쓰고 (다른 설정이면 거부) 전략과 학습기를 만든다."""
    run_file.write_run_file(model_dir, config, classes, records)
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = distribute.make_strategy(strategy)
    return trainer_lib.Trainer(config, len(classes), model_dir, strategy, jit_compile)


def _batches(trainer, make_dataset):
    """학습에 쓰는 키만 남긴 분산 배치의 반복자."""
    keys = model_lib.FasterRCNN.TRAINING_KEYS
    dataset = make_dataset(trainer.config.train.batch_size)
    dataset = dataset.map(lambda batch: {key: batch[key] for key in keys})
    return iter(trainer.strategy.experimental_distribute_dataset(dataset))


def _run_steps(trainer, batches, start, progress):
    """start 부터 마지막 스텝까지 학습하고 마지막 손실을 돌려준다."""
    train_config = trainer.config.train
    log_dir = distribute.worker_dir(trainer.model_dir, trainer.strategy, "train")
    losses = {}
    with progress_lib.ProgressLog(log_dir, trainer.total_steps, train_config.batch_size,
                                  train_config.log_every, progress) as log:
        for step in range(start + 1, trainer.total_steps + 1):
            plan = trainer.plan_for_step(step - 1)
            losses = _train_step(trainer, plan, next(batches), step)
            trainer.step.assign(step)
            log.log(step, plan.name, losses, lambda: trainer.learning_rate(plan.name))
            _checkpoint(trainer, step, plan)
    return losses


def _train_step(trainer, plan, batch, step):
    """전역 스텝 `step` (1부터) 하나를 돌리고 {이름: float} 손실을 돌려준다.

    Raises:
      FloatingPointError: 손실이 유한하지 않을 때 (스텝과 단계, 마지막 정상 체크포인트를 밝힌다).
    """
    losses = {name: float(value) for name, value in trainer.step_function(plan.name)(batch).items()}
    if not all(math.isfinite(value) for value in losses.values()):
        raise FloatingPointError(
            f"non-finite loss at step {step} ({plan.name}): {losses}; the last good checkpoint "
            f"is kept: {trainer.manager.latest_checkpoint}")
    return losses


def _checkpoint(trainer, step, plan):
    """체크포인트 시점이면 저장한다: checkpoint_every 의 배수, 단계의 끝, 마지막 스텝."""
    if step % trainer.config.train.checkpoint_every == 0 or step in (plan.end, trainer.total_steps):
        trainer.save(step)


def _finish(trainer, losses):
    """chief 가 아닌 워커의 임시 체크포인트·로그를 지우고 결과를 돌려준다."""
    if not distribute.is_chief(trainer.strategy):
        shutil.rmtree(os.path.dirname(trainer.manager.directory), ignore_errors=True)
    return {"step": int(trainer.step.numpy()), "losses": losses,
            "checkpoint": tf.train.latest_checkpoint(trainer.checkpoint_dir)}
