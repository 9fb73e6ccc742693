"""학습 루프 `train`: 만들기 → 복원 → 스텝 돌리기 (기록, 체크포인트) → 마무리.

용어:
  전역 스텝: 단계를 이어 센 스텝 (`schedule`). 체크포인트 ckpt-k 는 스텝 k 를 마친 뒤의 상태다.
  이어 학습(resume): 같은 model_dir 로 다시 부르면 마지막 체크포인트의 스텝에서 이어간다; 이미 끝난
    학습이면 아무것도 하지 않는다.
  체크포인트 시점: checkpoint_every 의 배수, 각 단계의 끝, 마지막 스텝.
  검증 시점: 검증기가 있으면 eval_every 의 배수 (0 이면 없음) 와 마지막 스텝. 체크포인트를 쓴 뒤 같은 프로세스·
    같은 가중치로 평가하고 (`make_validator`), VOC07 mAP 가 최고면 `best_checkpoint` 에 따로 둔다. 학습은
    평가하는 동안만 멈춘다. 체크포인트와 평가 사이에 죽으면 이어 학습은 그 평가를 다시 하지 않는다.
  루프(loop): 한 `tf.function` 호출로 도는 스텝들 (`train.steps_per_loop` 개, 다음 체크포인트·검증 시점과
    단계 끝에서 자른다). 손실은 기기에서 평균하고 호스트는 루프마다 한 번 읽는다 (진행 막대, TensorBoard, 유한성 검사).
  캔버스 고르기: 루프마다 캔버스 하나를 레코드 수에 비례해 고른다 (seed 와 스텝으로 정해지므로 워커끼리,
    이어 학습에서도 같다). 캔버스마다 데이터셋·반복자·추적이 하나씩이라 모든 배치 모양이 정적이다.
  스케일 지터 (`input.train_short_sides`): 루프마다 캔버스와 함께 짧은 변 s 하나를 고르게 고른다 (같은 seed·스텝의
    난수; Detectron 은 이미지마다 고르지만 모양을 정적으로 두려고 루프마다). 정적 모양은 (캔버스, s) 마다 하나이고
    (`RecordSpec.training_canvas`), s = min_size 면 지터 없는 것과 같은 데이터셋 (레코드의 앵커 라벨) 을 쓴다.
  깨진 레코드: 디코딩할 수 없는 이미지는 파이프라인이 경고 한 줄과 함께 건너뛰고, 루프가 그 수를 센다.
    읽은 레코드의 1 % 를 넘으면 멈춘다. 분모는 적어도 `MIN_RECORDS_JUDGED` (1000): 작은 데이터셋은 에포크 첫머리에
    같은 깨진 레코드를 다시 만나 잠깐 1 % 를 넘을 수 있어서다 (10 개를 넘게 건너뛰기 전에는 멈추지 않는다).
  단계 계획: alternating 의 단계 길이는 `schedule.resolve_stage_steps` 로 정해 run.json 의 train.stage_steps 에
    적는다 (이어 학습이 같은 구간을 쓰고, 단계 길이 규칙이 바뀐 뒤 옛 실행을 이으면 다른 설정으로 거부된다).
    할 일이 있으면 시작할 때 계획을 한 줄 알린다 (`schedule.describe_plan`).
  시작 가중치 (init_from): model_dir 에 체크포인트가 없을 때만 원본 실행의 가중치를 옮기고 (`init_from`) 스텝 0,
    새 옵티마이저로 시작한다; 체크포인트가 있으면 이어 학습이 이긴다. run.json 은 옮기기가 성공한 뒤에 쓰므로
    실패한 옮기기는 model_dir 에 아무것도 남기지 않는다.
  마무리: chief 가 아닌 워커의 임시 디렉터리(model_dir/.worker-K)를 지우고 결과를 돌려준다.
  전역 상태: 라이브러리는 난수 seed, dtype 정책을 정하지 않고 출력하지도 않는다. seed 와 출력 (알림 줄, 진행
    막대) 은 부르는 쪽 (`tools/train`) 이 `log`, `progress` 콜백으로 맡는다.
"""

import dataclasses
import glob
import os
import re
import shutil

import numpy as np
import tensorflow as tf

from frcnn.modeling import model as model_lib
from frcnn.training import best_checkpoint
from frcnn.training import distribute
from frcnn.training import init_from as init_from_lib
from frcnn.training import progress as progress_lib
from frcnn.training import run_file
from frcnn.training import schedule
from frcnn.training import trainer as trainer_lib

MIN_RECORDS_JUDGED = 1000  # 깨진 레코드 비율 (1 %) 의 최소 분모


def train(spec, records, model_dir, make_dataset, strategy="auto", progress=None, log=None, eval_records=None,
          make_validator=None, init_from=None, class_map=None):
    """학습한다 (재실행하면 마지막 체크포인트에서 이어간다).

    모델은 활성 Keras dtype 정책으로 만든다: 혼합 정밀도는 부르는 쪽이
    `keras.mixed_precision.set_global_policy(precision.mixed_policy_name())` 로 미리 정한다. 재현하려면
    부르는 쪽이 먼저 `tf.random.set_seed(spec.config.train.seed)` 를 부른다.

    Args:
      spec: `record_spec.RecordSpec` — 설정 (`spec.config`; alternating 의 빈 train.stage_steps 는
        `schedule.resolve_stage_steps` 로 채운다), 클래스 이름 (1..C), 캔버스와 캔버스마다 레코드 수
        (`canvas_counts`; 루프의 캔버스를 이 비율로 고른다).
      records: TFRecord glob (run.json 에 기록).
      model_dir: 출력 디렉터리.
      make_dataset: 함수 (global_batch_size, canvas[, short_side]) → 캔버스 번호 canvas 의 학습 tf.data.Dataset
        (반복, 정적 모양 배치, `input_pipeline.build_dataset(canvas=…, short_side=…)`). short_side 는 스케일 지터가
        min_size 가 아닌 짧은 변을 골랐을 때만 세 번째 인자로 준다.
      strategy: `distribute.make_strategy` 의 이름 또는 이미 만든 전략 (다중 워커 전략은 다른 TF 연산보다
        먼저 만들어야 하므로 바이너리는 시작하자마자 만든다).
      progress: None 또는 루프마다 부를 함수 (step, total, stage, losses, images_per_second)
        (`progress.ProgressLog` 참고; 진행 막대는 부르는 쪽이 그린다).
      log: None 또는 알림 한 줄 (str) 을 받는 함수 (단계 계획, 이어 학습, 할 일 없음, 건너뛴 레코드, 검증 결과).
      eval_records: 검증 레코드 glob (run.json 의 최고 기록에 남긴다); make_validator 와 함께 준다.
      make_validator: None 또는 함수 (model, strategy) → 검증기. 검증기는 `validate(step)` → {"voc07_map": float,
        …, "seconds": float} 로 지금 가중치를 평가한다 (`frcnn.eval.validation.Validator`).
      init_from: None 또는 `init_from.SourceWeights` — 체크포인트가 없을 때 옮길 시작 가중치.
      class_map: 선택, {새 클래스 이름: 원본 클래스 이름} (init_from 과 함께).

    Returns:
      dict: step (마지막 전역 스텝), losses (마지막 손실들; 할 일이 없었으면 빈 dict), checkpoint (경로).

    Raises:
      ValueError: model_dir 에 다른 설정의 실행 기록이 있을 때, canvas_counts 가 캔버스와 맞지 않을 때,
        디코딩할 수 없는 레코드가 1 % 를 넘을 때, init_from 의 모델 구조·변수 모양·class_map 이 맞지 않을 때
        (model_dir 에는 아무것도 쓰지 않는다).
      FloatingPointError: 손실이나 가중치가 유한하지 않을 때 (마지막 정상 체크포인트는 남는다).
      OSError: 체크포인트를 쓸 수 없을 때 (디스크 가득 참 등; 이전 체크포인트는 남아 이어 학습할 수 있다).
    """
    log = log or (lambda message: None)
    spec = dataclasses.replace(spec, config=schedule.resolve_stage_steps(spec.config))
    trainer, restored = _build(spec, records, model_dir, strategy, (init_from, class_map), log)
    start = int(trainer.step.numpy())
    validation = _make_validation(trainer, make_validator, eval_records, log)
    if start >= trainer.total_steps:
        log(f"already trained: {model_dir} is at step {start}/{trainer.total_steps}; nothing to do")
        _validate_final(trainer, validation, start, log)
        return {"step": start, "losses": {}, "checkpoint": restored}
    if restored:
        log(f"resuming from {restored} at step {start}/{trainer.total_steps}")
    batches = CanvasBatches(trainer, make_dataset, spec)
    losses = _run_loops(trainer, batches, start, progress, log, validation)
    return _finish(trainer, losses)


def _build(spec, records, model_dir, strategy, init, log):
    """설정을 확인하고 (다른 설정이면 거부) 전략과 학습기를 만들어 복원하거나 시작 가중치를 옮긴 뒤 run.json 을
    쓴다 (그 전에 실패하면 model_dir 에 아무것도 쓰지 않는다). 반환: (학습기, 복원한 체크포인트 경로 또는 None).

    Args:
      init: (init_from, class_map) — `train` 의 두 인자.
    """
    run_file.check_run_file(model_dir, run_file.make_run_info(spec, records))
    if not isinstance(strategy, tf.distribute.Strategy):
        strategy = distribute.make_strategy(strategy)
    trainer = trainer_lib.Trainer(spec.config, len(spec.classes), model_dir, strategy)
    restored = trainer.restore()
    initialized = _initialize(trainer, spec.classes, restored, *init, log)
    run_file.write_run_file(model_dir, spec, records, initialized)
    return trainer, restored


def _initialize(trainer, classes, restored, source, class_map, log):
    """체크포인트가 없으면 원본 가중치를 옮기고 알린다. 반환: run.json 의 "init_from" 기록 또는 None."""
    if source is None:
        return None
    if restored:
        log(f"--init_from ignored: {trainer.model_dir} already has a checkpoint; resuming from it")
        return None
    record = init_from_lib.initialize(trainer.model, classes, source, class_map)
    carried = ", ".join(f"{mine}<-{theirs}" if mine != theirs else mine
                        for mine, theirs in record["classes_carried"].items()) or "none"
    log(f"initialized from {record['checkpoint']} (weights only; step 0, fresh optimizer); class rows "
        f"carried over: {carried}; fresh: {', '.join(record['classes_fresh']) or 'none'}")
    return record


def _make_validation(trainer, make_validator, eval_records, log):
    """None (검증 없음) 또는 (검증기, `best_checkpoint.BestCheckpoint`)."""
    if make_validator is None:
        return None
    return (make_validator(trainer.model, trainer.strategy),
            best_checkpoint.BestCheckpoint(trainer, eval_records, log))


class CanvasBatches:
    """(캔버스, 짧은 변) 별 분산 배치 반복자 (처음 고를 때 만든다) 와 루프마다의 고르기.

    Args:
      trainer: `trainer.Trainer`.
      make_dataset: 함수 (global_batch_size, canvas[, short_side]) → tf.data.Dataset (`train` 설명).
      spec: `RecordSpec` (캔버스 모양, 캔버스마다 레코드 수: 길이 = 캔버스 수, 합 > 0).

    Raises:
      ValueError: canvas_counts 의 길이가 캔버스 수와 다르거나, 음수이거나, 합이 0 일 때.
    """

    KEYS = model_lib.FasterRCNN.TRAINING_KEYS + ("skipped_records",)

    def __init__(self, trainer, make_dataset, spec):
        shapes = spec.canvas_shapes
        counts = np.asarray(spec.canvas_counts, np.float64)
        if counts.shape != (len(shapes),) or np.any(counts < 0) or counts.sum() <= 0:
            raise ValueError(f"canvas_counts {list(spec.canvas_counts)} do not match the preset's "
                             f"{len(shapes)} canvases {list(shapes)} (or hold no records); "
                             "remake the records")
        self.spec = spec
        self._trainer = trainer
        self._make_dataset = make_dataset
        self._probabilities = counts / counts.sum()
        self._iterators = {}

    def choose(self, step):
        """스텝 `step` 에서 시작하는 루프의 (캔버스 번호, 짧은 변) (seed 와 스텝으로 정해진다).

        짧은 변은 지터가 꺼졌거나 min_size 를 골랐으면 None (레코드의 라벨을 쓰는 데이터셋). 캔버스를 먼저 뽑으므로
        지터가 꺼진 실행의 캔버스 순서는 지터가 생기기 전과 같다.
        """
        generator = np.random.default_rng([self._trainer.config.train.seed, step])
        canvas = int(generator.choice(len(self._probabilities), p=self._probabilities))
        sides = self._trainer.config.input.train_short_sides
        if not sides:
            return canvas, None
        side = int(sides[generator.integers(len(sides))])
        return canvas, (None if side == self.spec.min_size else side)

    def shape(self, canvas, short_side):
        """(캔버스, 짧은 변) 의 정적 배치 모양 (Hc, Wc)."""
        return self.spec.training_canvas(canvas, short_side)

    def iterator(self, canvas, short_side=None):
        """(캔버스 번호, 짧은 변) 의 분산 반복자 (학습에 쓰는 키와 'skipped_records' 만)."""
        key = (canvas, short_side)
        if key not in self._iterators:
            batch_size = self._trainer.config.train.batch_size
            dataset = (self._make_dataset(batch_size, canvas) if short_side is None
                       else self._make_dataset(batch_size, canvas, short_side))
            dataset = dataset.map(lambda batch: {key: batch[key] for key in self.KEYS})
            # 워커끼리는 원소로 나눈다: 파일로 나누면 레코드가 적은 캔버스가 어떤 워커에는 없을 수 있다.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            dataset = dataset.with_options(options)
            self._iterators[key] = iter(self._trainer.strategy.experimental_distribute_dataset(dataset))
        return self._iterators[key]


def _next_multiple(step, every):
    """step 보다 큰 every 의 가장 작은 배수 (every 가 0 이면 무한대)."""
    return (step // every + 1) * every if every else float("inf")


def _loop_end(trainer, step, plan):
    """스텝 `step` 다음 루프가 끝나는 스텝: steps_per_loop 뒤, 다음 체크포인트·검증 시점, 단계의 끝 중 가장 이른 것."""
    train_config = trainer.config.train
    return min(step + train_config.steps_per_loop, _next_multiple(step, train_config.checkpoint_every),
               _next_multiple(step, train_config.eval_every), plan.end, trainer.total_steps)


def _run_loops(trainer, batches, start, progress, log, validation):
    """start 부터 마지막 스텝까지 루프를 돌리고 마지막 루프의 평균 손실을 돌려준다."""
    train_config = trainer.config.train
    log_dir = distribute.worker_dir(trainer.model_dir, trainer.strategy, "train")
    losses, step, skipped, traced = {}, start, 0, set()
    log(schedule.describe_plan(trainer.plans))  # 스텝을 돌리기 시작할 때 (이어 학습 알림 다음)
    with progress_lib.ProgressLog(log_dir, trainer.total_steps, train_config.batch_size,
                                  train_config.log_every, progress, start) as progress_log:
        while step < trainer.total_steps:
            plan = trainer.plan_for_step(step)
            end = _loop_end(trainer, step, plan)
            canvas, short_side = batches.choose(step)
            # 이 루프는 추적 (XLA 면 컴파일) 을 치른다
            first_use = (plan.name, canvas, short_side) not in traced
            traced.add((plan.name, canvas, short_side))
            outputs = _run_loop(trainer, plan, batches, (canvas, short_side), end - step)
            losses, count, first_non_finite = _read_outputs(outputs)
            _check_finite(trainer, plan, step, losses, first_non_finite)
            skipped = _count_skipped(skipped, count, (end - start) * train_config.batch_size, log)
            step = end
            trainer.step.assign(step)
            progress_log.log(step, plan.name, losses, lambda: trainer.learning_rate(plan.name),
                             skipped_records=skipped, warm_up=first_use)
            _checkpoint(trainer, step, plan)
            if _validate(trainer, validation, step, log):
                progress_log.restart_clock()
    return losses


def _run_loop(trainer, plan, batches, key, num_steps):
    """(캔버스, 짧은 변) 하나의 루프를 돌린다. 레코드를 읽지 못하면 (캔버스에 레코드가 없음, 모두 깨짐) ValueError.

    Raises:
      ValueError: 반복자가 끝났거나 (이 glob 에 그 캔버스의 레코드가 없다) 파이프라인의 검사가 실패했을 때.
    """
    loop_function = trainer.loop_function(plan.name)
    try:
        return loop_function(batches.iterator(*key), tf.constant(num_steps))
    except tf.errors.OutOfRangeError as error:
        shape = batches.shape(*key)
        raise ValueError(f"canvas {key[0]} ({shape[0]}×{shape[1]}) has no records in this worker's part of "
                         "the training records, but <split>.json counts some; use the whole split's shards "
                         "or remake the records") from error
    except tf.errors.InvalidArgumentError as error:
        # 파이프라인의 검사 (모두 깨진 캔버스, 다른 지문) 는 "assertion failed: [메시지]" 로 온다
        found = re.search(r"assertion failed: \[([^\]]*(undecodable|fingerprint)[^\]]*)\]", error.message)
        if not found:
            raise
        raise ValueError(f"reading the training records failed: {found.group(1)}") from error


def _read_outputs(outputs):
    """루프 함수의 결과를 호스트로 한 번에 읽는다: ({이름: float}, 건너뛴 수, 첫 비유한 스텝 −1/0..)."""
    losses, skipped, first_non_finite = outputs
    return {name: float(value) for name, value in losses.items()}, int(round(float(skipped))), \
        int(first_non_finite)


def _check_finite(trainer, plan, step, losses, first_non_finite):
    """손실이 유한하지 않았으면 그 스텝을 밝히며 멈춘다 (이 루프의 가중치는 저장하지 않는다).

    Raises:
      FloatingPointError: 스텝, 단계, 마지막 정상 체크포인트를 밝힌다.
    """
    if first_non_finite >= 0:
        raise FloatingPointError(
            f"non-finite loss at step {step + 1 + first_non_finite} ({plan.name}); losses averaged over "
            f"steps {step + 1}–{_loop_end(trainer, step, plan)}: {losses}; the last good checkpoint is kept: "
            f"{trainer.manager.latest_checkpoint}")


def _count_skipped(skipped, count, images, log):
    """건너뛴 레코드 수를 더하고, 새로 건너뛰었으면 알리고, 1 % 를 넘으면 멈춘다.

    Args:
      skipped: 지금까지 건너뛴 수.
      count: 이 루프에서 건너뛴 수.
      images: 이 프로세스에서 학습에 쓴 이미지 수 (전역 배치 × 스텝).
      log: 알림 함수.

    Raises:
      ValueError: 읽은 레코드 (쓴 이미지 + 건너뛴 것, 적어도 MIN_RECORDS_JUDGED 로 센다) 의 1 % 보다 많을 때.
    """
    if count == 0:
        return skipped
    skipped += count
    seen = images + skipped
    log(f"skipped {count} record(s) whose image cannot be decoded; {skipped} of {seen} read so far")
    if skipped * 100 > max(seen, MIN_RECORDS_JUDGED):
        raise ValueError(f"{skipped} of the {seen} records read could not be decoded (more than 1 %); "
                         "the records are damaged: remake them with make_tfrecords")
    return skipped


def _checkpoint(trainer, step, plan):
    """체크포인트 시점이면 저장한다: checkpoint_every 의 배수, 단계의 끝, 마지막 스텝.

    Raises:
      FloatingPointError: 가중치가 유한하지 않을 때 (쓰지 않는다).
      OSError: 쓰기에 실패했을 때 (디스크 가득 참 등). 쓰다 만 파일은 지우고, 이전 체크포인트를 밝힌다.
    """
    if not (step % trainer.config.train.checkpoint_every == 0 or step in (plan.end, trainer.total_steps)):
        return
    if not trainer.variables_finite():
        raise FloatingPointError(
            f"non-finite weights after step {step} ({plan.name}); not saving them; the last good "
            f"checkpoint is kept: {trainer.manager.latest_checkpoint}")
    previous = trainer.manager.latest_checkpoint
    try:
        trainer.save(step)
    except (tf.errors.OpError, OSError) as error:
        if tf.train.latest_checkpoint(trainer.manager.directory) != previous:
            raise  # 새 체크포인트는 써졌고 (상태 파일이 가리킨다) 오래된 것을 지우다 실패했다: 그대로 알린다
        _remove_partial_checkpoint(trainer.manager.directory, step)
        detail = getattr(error, "message", None) or str(error)
        raise OSError(
            f"cannot write the checkpoint for step {step} in {trainer.manager.directory} ({detail.strip()}); "
            f"the previous checkpoint {previous or '(none)'} is still usable: free space and rerun the same "
            "command to resume from it") from error


def _validate_final(trainer, validation, step, log):
    """다 학습한 실행을 검증과 함께 다시 부르면, 최고 기록이 마지막 스텝이 아닐 때 마지막 가중치를 한 번 평가한다.

    마지막 체크포인트와 그 검증 사이에 멈춘 실행도 마지막 평가와 최고 체크포인트 판단을 받는다 (이미 평가했다면
    같은 가중치라 최고가 바뀌지 않는다).
    """
    if validation is None:
        return
    best = validation[1].best
    if best is None or best["step"] != step:
        log(f"evaluating the final weights of step {step} (the run may have stopped before its last "
            "validation)")
        _validate(trainer, validation, step, log)


def _validate(trainer, validation, step, log):
    """검증 시점이면 (eval_every 의 배수, 마지막 스텝) 평가하고, 최고면 따로 저장하고, 결과를 한 줄 알린다.

    Args:
      validation: None 또는 (검증기, `best_checkpoint.BestCheckpoint`).

    Returns:
      평가했으면 True.
    """
    every = trainer.config.train.eval_every
    if validation is None or not ((every and step % every == 0) or step == trainer.total_steps):
        return False
    validate, best = validation
    metrics = validate(step)
    improved = best.update(step, metrics)
    values = " ".join(f"{name}={value:.4f}" for name, value in metrics.items() if name != "seconds")
    best_note = "new best" if improved else (f"best {best.best[best_checkpoint.METRIC]:.4f} at step "
                                             f"{best.best['step']}" if best.best else "no best yet")
    log(f"validation at step {step}: {values} ({metrics.get('seconds', 0.0):.1f} s); {best_note}")
    return True


def _remove_partial_checkpoint(directory, step):
    """쓰다 만 ckpt-<step> 파일·임시 디렉터리를 지운다 (`checkpoint` 상태 파일은 이전 것을 가리킨다)."""
    for path in glob.glob(os.path.join(directory, f"ckpt-{step}.*")) + glob.glob(
            os.path.join(directory, f"ckpt-{step}_temp*")):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.remove(path)
            except OSError:
                pass


def _finish(trainer, losses):
    """chief 가 아닌 워커의 임시 체크포인트·로그를 지우고 결과를 돌려준다."""
    if not distribute.is_chief(trainer.strategy):
        shutil.rmtree(os.path.dirname(trainer.manager.directory), ignore_errors=True)
    return {"step": int(trainer.step.numpy()), "losses": losses,
            "checkpoint": tf.train.latest_checkpoint(trainer.checkpoint_dir)}
