"""최고 체크포인트: 검증 VOC07 mAP 가 가장 높았던 가중치를 돌아가며 지워지는 체크포인트와 따로 둔다.

용어:
  최고 체크포인트: `model_dir/checkpoints/best/ckpt-<스텝>` 하나 (모델 가중치와 전역 스텝; 옵티마이저는 없다 —
    내보내기·평가용). 새 평가의 mAP 가 지금까지의 최고보다 **높을 때만** 바꾼다 (같으면 먼저 것을 둔다).
  최고 기록: run.json 의 "best" — {"step", "voc07_map", "checkpoint", "eval_records"} (`run_file`). 체크포인트를
    다 쓴 뒤에 기록한다; 내보내기는 best/ 의 상태 파일 (TF 가 마지막에 쓴다) 을 따르므로, 그 사이에 죽어도
    best/ 에는 온전한 체크포인트가 하나 있다 (기록만 한 평가 늦을 수 있다). 이어 학습은 이 기록에서 최고를
    이어 간다; 검증 레코드가 바뀌었으면 mAP 를 비교할 수 없으므로 처음부터 센다.
  다중 워커: 모든 워커가 같은 가중치·같은 레코드로 평가해 같은 결정을 내리고 저장(집합 연산)에 참여한다;
    파일은 chief 것만 남고 run.json 도 chief 만 쓴다 (`distribute.worker_dir`).
"""

import os

import tensorflow as tf

from frcnn.training import distribute
from frcnn.training import run_file

METRIC = "voc07_map"  # 최고를 고르는 지표 (검증 결과 dict 의 키)


def best_checkpoint_dir(model_dir):
    """chief 의 최고 체크포인트 디렉터리."""
    return os.path.join(model_dir, "checkpoints", "best")


def best_checkpoint_path(model_dir):
    """model_dir 의 최고 체크포인트 경로 (`tools/export --checkpoint=best`).

    Raises:
      ValueError: 최고 체크포인트가 없을 때 (검증하며 학습하지 않은 실행).
    """
    path = tf.train.latest_checkpoint(best_checkpoint_dir(model_dir))
    if not path:
        raise ValueError(f"{best_checkpoint_dir(model_dir)}: no best checkpoint; train with --eval_records "
                         "to keep one")
    return path


class BestCheckpoint:
    """검증 결과를 받아 최고면 저장하고 run.json 에 기록한다.

    Args:
      trainer: `trainer.Trainer` (model, step, strategy, model_dir).
      eval_records: 검증 레코드 glob (기록에 남기고, 이어 학습에서 같은지 본다).
      log: 알림 한 줄 (str) 을 받는 함수.
    """

    def __init__(self, trainer, eval_records, log):
        self._trainer = trainer
        self._eval_records = eval_records
        self._chief = distribute.is_chief(trainer.strategy)
        checkpoint = tf.train.Checkpoint(model=trainer.model, step=trainer.step)
        directory = distribute.worker_dir(trainer.model_dir, trainer.strategy,
                                          os.path.join("checkpoints", "best"))
        self._manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=1)
        self.best = run_file.read_best(trainer.model_dir)
        if self.best is not None and self.best.get("eval_records") != eval_records:
            log(f"validation records changed ({self.best.get('eval_records')} → {eval_records}); the best "
                f"checkpoint of step {self.best['step']} will be replaced by the next evaluation")
            self.best = None

    def update(self, step, metrics):
        """mAP 가 지금까지의 최고보다 높으면 스텝 `step` 의 가중치를 저장하고 기록한다. 반환: 바꿨으면 True.

        Args:
          step: 전역 스텝.
          metrics: 검증 결과 dict (METRIC 키, NaN 이면 GT 가 없어 비교하지 않는다).

        Raises:
          OSError: 체크포인트를 쓸 수 없을 때 (기록은 이전 최고를 그대로 가리킨다).
        """
        value = float(metrics[METRIC])
        if value != value or (self.best is not None and value <= self.best[METRIC]):
            return False
        try:
            path = self._manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as error:
            detail = getattr(error, "message", None) or str(error)
            raise OSError(f"cannot write the best checkpoint for step {step} in {self._manager.directory} "
                          f"({detail.strip()})") from error
        self.best = {"step": int(step), METRIC: value, "checkpoint": path, "eval_records": self._eval_records}
        if self._chief:
            run_file.write_best(self._trainer.model_dir, self.best)
        return True
