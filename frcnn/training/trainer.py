"""학습 루프: 단계별 그래프 모드 `tf.function` 학습 스텝, tf.distribute 전략, 체크포인트, TensorBoard, 진행 막대.

용어:
  단계(stage): `model.STAGES`. joint 는 한 단계, alternating 은 rpn → detector → rpn_finetune →
    detector_finetune 네 단계. 전역 스텝 하나가 단계를 이어 세므로 재실행하면 그 단계의 그 스텝에서 이어간다.
  전역 배치: 모든 복제본(replica)을 합친 배치. 손실은 복제본 수로 나눠 합쳐진 기울기가 전역 평균이 되게 한다.
  가중치 감쇠: 커널에 0.5·wd·‖w‖² (Caffe 의 weight_decay 와 같은 기울기 wd·w).
"""

import dataclasses
import json
import math
import os
import shutil
import time

import keras
import tensorflow as tf
from tqdm import tqdm

from frcnn import config as config_lib
from frcnn.modeling import model as model_lib

ALTERNATING_STAGES = ("rpn", "detector", "rpn_finetune", "detector_finetune")
RUN_FILE = "run.json"


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


def stage_plan(train_config):
    """학습 모드와 스텝 수로 단계 구간을 만든다.

    alternating 에서 stage_steps 가 없으면 num_steps 를 논문 비율(RPN 80k·검출기 40k 의 두 번 반복)에
    맞춰 2:1:2:1 로 나눈다.
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


def make_strategy(name):
    """분산 전략. auto: TF_CONFIG 가 있으면 다중 워커, GPU 가 있으면 Mirrored, 아니면 기본 전략.

    Raises:
      ValueError: 모르는 이름.
    """
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi_worker"
        elif tf.config.list_physical_devices("GPU"):
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    raise ValueError(f"unknown strategy '{name}' (expected auto, default, mirrored, multi_worker, one_device)")


def worker_role(strategy):
    """(chief 인가, 작업 번호). 다중 워커(TF_CONFIG)에서 chief 는 'chief' 작업이나, 없으면 worker 0 이다."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type is None:
        return True, 0
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return chief, task_id


def worker_dir(model_dir, strategy, name):
    """이 워커가 쓸 디렉터리: chief 는 model_dir/name, 다른 워커는 model_dir/.worker-K/name.

    다중 워커에서는 모든 워커가 저장(집합 연산)에 참여해야 하지만 파일은 chief 것만 남긴다
    (TF 다중 워커 안내와 같다). 모든 워커는 chief 의 체크포인트에서 복원한다.
    """
    chief, task_id = worker_role(strategy)
    return os.path.join(model_dir, name) if chief else os.path.join(model_dir, f".worker-{task_id}", name)


def set_mixed_precision(enabled):
    """혼합 정밀도: GPU 면 mixed_float16, CPU 면 mixed_bfloat16. 반환: float16 여부 (손실 스케일 필요)."""
    if not enabled:
        keras.mixed_precision.set_global_policy("float32")
        return False
    on_gpu = bool(tf.config.list_physical_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_float16" if on_gpu else "mixed_bfloat16")
    return on_gpu


def weight_decay_loss(variables, weight_decay):
    """커널 변수의 0.5·wd·Σ‖w‖²."""
    kernels = [v for v in variables if "kernel" in v.name]
    if not kernels or weight_decay <= 0:
        return tf.constant(0.0)
    return 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in kernels])


class Trainer:
    """모델·단계별 옵티마이저·체크포인트를 묶어 학습 스텝을 돌린다."""

    def __init__(self, config, num_classes, model_dir, strategy, jit_compile=False,
                 mixed_precision=False):
        self.config = config
        self.model_dir = model_dir
        self.strategy = strategy
        self.jit_compile = jit_compile
        self.plans = stage_plan(config.train)
        self.loss_scaling = set_mixed_precision(mixed_precision)
        alternating = config.train.training_mode == "alternating"
        with strategy.scope():
            self.model = model_lib.FasterRCNN(config, num_classes, separate_rpn_backbone=alternating)
            self.model.build_all(config_lib.canvas_shape(config, landscape=True))
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.optimizers = {plan.name: self._make_optimizer(plan) for plan in self.plans}
        self.checkpoint = tf.train.Checkpoint(model=self.model, step=self.step, **{
            f"optimizer_{name}": optimizer for name, optimizer in self.optimizers.items()})
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")  # chief 의 것 (복원은 늘 여기서)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, worker_dir(model_dir, strategy, "checkpoints"),
            max_to_keep=config.train.keep_checkpoints, step_counter=self.step)
        self._step_functions = {}

    def _make_optimizer(self, plan):
        """단계마다 새 SGD (논문 구현의 단계별 solver 와 같다). 학습률은 단계 안의 스텝으로 센다."""
        train = self.config.train
        length = plan.end - plan.start
        # 교대 학습에서는 각 단계의 3/4 지점에서 감소 (논문 60k/80k, 30k/40k); joint 는 설정 그대로.
        decay = train.decay_steps if plan.name == "joint" else (int(length * 0.75),)
        schedule = WarmupStepDecay(train.learning_rate, min(train.warmup_steps, length // 4),
                                   decay, train.decay_factor)
        optimizer = keras.optimizers.SGD(learning_rate=schedule, momentum=train.momentum)
        if self.loss_scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(self.model.stage_variables(plan.name))
        return optimizer

    def restore(self):
        """가장 최근 체크포인트를 복원한다. 반환: 복원한 경로 또는 None."""
        path = tf.train.latest_checkpoint(self.checkpoint_dir)
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def plan_for_step(self, step):
        for plan in self.plans:
            if plan.start <= step < plan.end:
                return plan
        return None

    def learning_rate(self, plan):
        optimizer = self.optimizers[plan.name]
        return float(optimizer.learning_rate) if not callable(optimizer.learning_rate) else float(
            optimizer.learning_rate(optimizer.iterations))

    def step_function(self, stage):
        """단계의 분산 학습 스텝 (`tf.function`, 그래프 모드). 단계마다 한 번 만든다."""
        if stage in self._step_functions:
            return self._step_functions[stage]
        model, optimizer = self.model, self.optimizers[stage]
        variables = model.stage_variables(stage)
        train = self.config.train
        replicas = self.strategy.num_replicas_in_sync

        @tf.function(jit_compile=self.jit_compile)
        def replica_step(batch):
            with tf.GradientTape() as tape:
                losses = model.compute_losses(batch, stage)
                decay = weight_decay_loss(variables, train.weight_decay)
                total = losses["total_loss"] + decay
                scaled = total / replicas
                if self.loss_scaling:
                    scaled = optimizer.scale_loss(scaled)
            gradients = tape.gradient(scaled, variables)
            if train.gradient_clip_norm > 0:
                gradients, _ = tf.clip_by_global_norm(gradients, train.gradient_clip_norm * (
                    1.0 if not self.loss_scaling else optimizer.dynamic_scale))
            optimizer.apply_gradients(zip(gradients, variables))
            losses = dict(losses, weight_decay=decay, total_loss=total)
            return losses

        @tf.function
        def distributed_step(batch):
            per_replica = self.strategy.run(replica_step, args=(batch,))
            return {name: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                    for name, value in per_replica.items()}

        self._step_functions[stage] = distributed_step
        return distributed_step


def _check_run_file(model_dir, run_info):
    """같은 model_dir 에 다른 설정으로 이어 학습하지 않도록 한다."""
    path = os.path.join(model_dir, RUN_FILE)
    if not os.path.exists(path):
        return
    with open(path) as handle:
        saved = json.load(handle)
    if saved.get("config") != run_info["config"] or saved.get("classes") != run_info["classes"]:
        differing = sorted(
            f"{section}.{key}" for section, values in run_info["config"].items() if isinstance(values, dict)
            for key, value in values.items()
            if saved.get("config", {}).get(section, {}).get(key) != value)
        raise ValueError(f"{path}: model_dir holds a run with a different config "
                         f"({', '.join(differing) or 'classes'} differ); use a new --model_dir")


def write_run_file(model_dir, config, classes, records):
    """해석된 설정과 클래스 이름을 model_dir/run.json 에 쓴다 (export 가 읽는다)."""
    os.makedirs(model_dir, exist_ok=True)
    run_info = {"config": config_lib.to_dict(config), "classes": list(classes), "records": records,
                "anchor_fingerprint": config_lib.anchor_fingerprint(config)}
    run_info = json.loads(json.dumps(run_info))  # 튜플 → 리스트 (비교 일관성)
    _check_run_file(model_dir, run_info)
    temporary = os.path.join(model_dir, f"{RUN_FILE}.tmp-{os.getpid()}")  # 워커마다 따로 (다중 워커)
    with open(temporary, "w") as handle:
        json.dump(run_info, handle, indent=2)
    os.replace(temporary, os.path.join(model_dir, RUN_FILE))


def read_run_file(model_dir):
    """(config, classes) 를 읽는다.

    Raises:
      ValueError: run.json 이 없거나 깨졌을 때.
    """
    path = os.path.join(model_dir, RUN_FILE)
    if not os.path.exists(path):
        raise ValueError(f"{path}: not found — is --model_dir a tools/train output directory?")
    try:
        with open(path) as handle:
            run_info = json.load(handle)
        return config_lib.from_dict(run_info["config"]), tuple(run_info["classes"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: unreadable run file: {error}") from None


def _format_losses(losses):
    short = {"rpn_objectness_loss": "rpn_cls", "rpn_box_loss": "rpn_box", "detector_class_loss": "det_cls",
             "detector_box_loss": "det_box", "total_loss": "total"}
    return {short[name]: f"{value:.3f}" for name, value in losses.items() if name in short}


def train(config, records, model_dir, make_dataset, classes, strategy_name="auto", jit_compile=False,
          mixed_precision=False, progress=True):
    """학습한다 (재실행하면 마지막 체크포인트에서 이어간다).

    Args:
      config: `ExperimentConfig`.
      records: TFRecord glob (run.json 에 기록).
      model_dir: 출력 디렉터리.
      make_dataset: 함수 (global_batch_size) → 학습 tf.data.Dataset (반복, 배치).
      classes: 클래스 이름들 (1..C).
      strategy_name: `make_strategy` 의 이름 또는 이미 만든 전략 (다중 워커 전략은 다른 TF 연산보다 먼저
        만들어야 하므로 바이너리는 시작하자마자 만든다).
      jit_compile: XLA 로 학습 스텝 컴파일.
      mixed_precision: 혼합 정밀도.
      progress: 진행 막대 표시.

    Returns:
      dict: 마지막 스텝, 마지막 손실들, 체크포인트 경로.

    Raises:
      FloatingPointError: 손실이 유한하지 않을 때 (마지막 정상 체크포인트는 남는다).
    """
    tf.random.set_seed(config.train.seed)
    write_run_file(model_dir, config, classes, records)
    strategy = strategy_name if isinstance(strategy_name, tf.distribute.Strategy) else make_strategy(strategy_name)
    trainer = Trainer(config, len(classes), model_dir, strategy, jit_compile, mixed_precision)
    restored = trainer.restore()
    total_steps = trainer.plans[-1].end
    start = int(trainer.step.numpy())
    if start >= total_steps:
        print(f"already trained: {model_dir} is at step {start}/{total_steps}; nothing to do")
        return {"step": start, "losses": {}, "checkpoint": restored}
    if restored:
        print(f"resuming from {restored} at step {start}/{total_steps}")
    dataset = make_dataset(config.train.batch_size).map(
        lambda batch: {key: batch[key] for key in model_lib.FasterRCNN.TRAINING_KEYS})
    dataset = strategy.experimental_distribute_dataset(dataset)
    iterator = iter(dataset)
    writer = tf.summary.create_file_writer(worker_dir(model_dir, strategy, "train"))
    bar = tqdm(total=total_steps, initial=start, disable=not progress, unit="step", dynamic_ncols=True)
    losses, images_per_second, last_time = {}, 0.0, time.perf_counter()
    step = start
    while step < total_steps:
        plan = trainer.plan_for_step(step)
        step_function = trainer.step_function(plan.name)
        values = {name: float(value) for name, value in step_function(next(iterator)).items()}
        if not all(math.isfinite(value) for value in values.values()):
            bar.close()
            raise FloatingPointError(
                f"non-finite loss at step {step + 1} ({plan.name}): {values}; the last good checkpoint "
                f"is kept: {trainer.manager.latest_checkpoint}")
        step += 1
        trainer.step.assign(step)
        now = time.perf_counter()
        rate = config.train.batch_size / max(now - last_time, 1e-9)
        images_per_second = rate if images_per_second == 0 else 0.9 * images_per_second + 0.1 * rate
        last_time = now
        losses = values
        bar.set_postfix(stage=plan.name, img_s=f"{images_per_second:.1f}", **_format_losses(values))
        bar.update(1)
        if step % config.train.log_every == 0 or step == total_steps:
            with writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(f"losses/{name}", value)
                tf.summary.scalar("learning_rate", trainer.learning_rate(plan))
                tf.summary.scalar("images_per_second", images_per_second)
        if step % config.train.checkpoint_every == 0 or step == total_steps or step == plan.end:
            trainer.manager.save(checkpoint_number=step)
    bar.close()
    writer.flush()
    if not worker_role(strategy)[0]:  # chief 가 아닌 워커의 임시 체크포인트·로그는 지운다
        shutil.rmtree(os.path.dirname(trainer.manager.directory), ignore_errors=True)
    return {"step": step, "losses": losses, "checkpoint": tf.train.latest_checkpoint(trainer.checkpoint_dir)}


def load_trained_model(model_dir, checkpoint=None):
    """model_dir 의 설정으로 모델을 만들고 체크포인트를 복원한다 (export 와 평가용).

    Returns:
      (model, config, classes, checkpoint_path).

    Raises:
      ValueError: 체크포인트가 없을 때.
    """
    config, classes = read_run_file(model_dir)
    keras.mixed_precision.set_global_policy("float32")
    alternating = config.train.training_mode == "alternating"
    model = model_lib.FasterRCNN(config, len(classes), separate_rpn_backbone=alternating)
    model.build_all(config_lib.canvas_shape(config, landscape=True))
    path = checkpoint or tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if not path:
        raise ValueError(f"{model_dir}: no checkpoint found (train first, or pass --checkpoint)")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model, config, classes, path
