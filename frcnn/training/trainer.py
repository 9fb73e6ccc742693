"""학습기: 모델, 단계별 옵티마이저, 전역 스텝, 체크포인트, 그래프 모드 분산 학습 스텝.

용어:
  단계(stage): `schedule.stage_plan` 의 구간 하나. 단계마다 자기 SGD 옵티마이저를 가진다 (논문 구현의
    단계별 solver). 전역 스텝 하나가 단계를 이어 세므로 재실행하면 그 단계의 그 스텝에서 이어간다.
  전역 배치: 모든 복제본(replica)을 합친 배치. 손실은 복제본 수로 나눠 합쳐진 기울기가 전역 평균이 되게 한다.
  가중치 감쇠: 커널에 0.5·wd·‖w‖² (Caffe 의 weight_decay 와 같은 기울기 wd·w). 기울기는 테이프를 거치지 않고
    커널 기울기에 wd·w 를 바로 더한다 (`weight_decay_gradients`: 같은 값, fc6/fc7 의 1억 개 넘는 가중치에 대한
    제곱합 역전파 패스를 아낀다); 손실 값은 보고용으로만 계산한다.
  편향 학습률 2배 (`train.double_bias_lr`): Conv2D·Dense 의 편향(변수 이름 'bias') 기울기를 2배로 한다.
    모멘텀 SGD 에서 이것은 그 변수들의 학습률 2배와 정확히 같다 (py-faster-rcnn 의 편향 lr_mult: 2).
    편향에는 감쇠가 없다 (감쇠는 커널만: Caffe 의 decay_mult: 0 과 같다). BatchNorm 의 beta·gamma 는 Caffe 의
    편향(합성곱·완전연결 층의 두 번째 blob)이 아니므로 기본 학습률 그대로 둔다: Caffe VGG16 에는 BN 이 없고,
    py-faster-rcnn 의 ResNet 은 BN 을 고정(lr_mult: 0)하므로 따를 배율이 없다.
  체크포인트: model, step, optimizer_<단계> 를 담는다. 복원은 늘 chief 의 model_dir/checkpoints 에서 한다.

모델은 활성 Keras dtype 정책으로 만든다 (혼합 정밀도는 바이너리가 정한다, `precision` 참고).
"""

import os

import keras
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.modeling import builder
from frcnn.modeling import model as model_lib
from frcnn.training import best_checkpoint
from frcnn.training import distribute
from frcnn.training import precision
from frcnn.training import run_file
from frcnn.training import schedule


def latest_checkpoint(model_dir):
    """model_dir/checkpoints 의 가장 최근 체크포인트 경로 또는 None (이어 학습과 내보내기가 쓴다)."""
    return tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))


def build_model(config, num_classes):
    """설정의 학습 모드에 맞는 모델을 만들고 변수를 만든다 (교대 학습이면 RPN 백본을 따로 둔다)."""
    alternating = config.train.training_mode == "alternating"
    model = builder.build_model(config, num_classes, separate_rpn_backbone=alternating)
    model.build_all(record_spec.largest_canvas(config))
    return model


def weight_decay_loss(variables, weight_decay):
    """커널 변수의 0.5·wd·Σ‖w‖² (스칼라 float32)."""
    kernels = [v for v in variables if _is_kernel(v)]
    if not kernels or weight_decay <= 0:
        return tf.constant(0.0)
    return 0.5 * weight_decay * tf.add_n([tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in kernels])


def _is_kernel(variable):
    return "kernel" in variable.name


def weight_decay_gradients(gradients, variables, weight_decay, scale=1.0):
    """커널 기울기에 scale·wd·w 를 더한 목록 (= scale·0.5·wd·Σ‖w‖² 의 기울기를 더한 것; 나머지는 그대로).

    Args:
      gradients: 변수마다 기울기 (None 이면 그대로).
      variables: 변수들.
      weight_decay: wd.
      scale: 손실에 곱한 배율 (복제본 수로 나눔, 손실 스케일).
    """
    if weight_decay <= 0:
        return list(gradients)
    return [gradient + tf.cast(scale * weight_decay, gradient.dtype) * tf.cast(variable, gradient.dtype)
            if gradient is not None and _is_kernel(variable) else gradient
            for gradient, variable in zip(gradients, variables)]


def is_bias(variable):
    """Conv2D·Dense 의 편향 변수인가 (Keras 3 변수 이름 'bias'; BatchNorm 의 beta·gamma 는 아니다)."""
    return variable.path.split("/")[-1] == "bias"


def double_bias_gradients(gradients, variables):
    """편향 변수의 기울기만 2배로 한 목록 (나머지는 그대로). 변수 목록으로 정해지므로 그래프는 정적이다."""
    return [tf.math.scalar_mul(2.0, gradient) if is_bias(variable) else gradient
            for gradient, variable in zip(gradients, variables)]


class Trainer:
    """모델·단계별 옵티마이저·체크포인트를 묶어 학습 스텝을 돌린다.

    Args:
      config: `ExperimentConfig`.
      num_classes: 클래스 수 C (배경 제외).
      model_dir: 출력 디렉터리 (체크포인트는 `model_dir/checkpoints`).
      strategy: `tf.distribute.Strategy`.
    """

    def __init__(self, config, num_classes, model_dir, strategy):
        if config.detection.class_slots:
            raise ValueError("detection.class_slots is set: an imported detector (tools/import_weights) is "
                             "for "
                             "inference; fine-tune it into a new run with tools/train --init_from")
        self.config = config
        self.model_dir = model_dir
        self.strategy = strategy
        self.jit_compile = config.train.jit_compile
        self.plans = schedule.stage_plan(config.train)
        self.loss_scaling = precision.needs_loss_scaling()
        with strategy.scope():
            self.model = build_model(config, num_classes)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.optimizers = {plan.name: self._make_optimizer(plan) for plan in self.plans}
        self.checkpoint = tf.train.Checkpoint(model=self.model, step=self.step, **{
            f"optimizer_{name}": optimizer for name, optimizer in self.optimizers.items()})
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")  # chief 의 것 (복원은 늘 여기서)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.worker_dir(model_dir, strategy, "checkpoints"),
            max_to_keep=config.train.keep_checkpoints, step_counter=self.step)
        self._loop_functions = {}
        self._finite_check = None

    @property
    def total_steps(self):
        return self.plans[-1].end

    def _make_optimizer(self, plan):
        """단계마다 새 SGD (논문 구현의 단계별 solver 와 같다). 학습률은 단계 안의 스텝으로 센다."""
        learning_rate = schedule.stage_learning_rate(self.config.train, plan)
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=self.config.train.momentum)
        if self.loss_scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(self.model.stage_variables(plan.name))
        return optimizer

    def restore(self):
        """가장 최근 체크포인트를 복원한다. 반환: 복원한 경로 또는 None."""
        path = latest_checkpoint(self.model_dir)
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step):
        """전역 스텝 `step` 의 체크포인트 `ckpt-<step>` 을 쓴다 (다중 워커에서는 모든 워커가 부른다)."""
        return self.manager.save(checkpoint_number=step)

    def plan_for_step(self, step):
        return schedule.plan_for_step(self.plans, step)

    def learning_rate(self, stage):
        """단계 옵티마이저의 현재 학습률 (Python float)."""
        rate = self.optimizers[stage].learning_rate
        return float(rate(self.optimizers[stage].iterations)) if callable(rate) else float(rate)

    def loop_function(self, stage):
        """단계의 분산 학습 루프 (`tf.function`, 그래프 모드). 단계마다 한 번 만든다 (캔버스마다 추적 하나).

        반환한 함수 `train_loop(iterator, num_steps)` 는 분산 반복자에서 배치 num_steps (int32 텐서, ≥ 1) 개를
        꺼내 스텝을 돌리고, 호스트와 한 번만 주고받는다 (Orbit 의 steps_per_loop):
          losses: {이름: float32 스칼라} 루프 스텝들의 복제본 평균 손실의 평균 (기기에서 더한다),
          skipped: float32 스칼라, 배치를 채우며 건너뛴 디코딩 불가 레코드 수 (모든 복제본의 합),
          first_non_finite: int32 스칼라, 손실이 처음 유한하지 않았던 루프 안 스텝 번호 (0부터; 없으면 −1).
        """
        if stage not in self._loop_functions:
            replica_step = self._replica_step(stage)
            strategy = self.strategy
            keys = model_lib.FasterRCNN.TRAINING_KEYS

            def one_step(batch):
                per_replica = strategy.run(replica_step, args=({key: batch[key] for key in keys},))
                losses = {name: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
                          for name, value in per_replica.items()}
                # float32 로 센다: 다중 워커 GPU 집합 연산은 int32 합을 지원하지 않는다.
                skipped = strategy.run(lambda counts: tf.reduce_sum(tf.cast(counts, tf.float32)),
                                       args=(batch["skipped_records"],))
                return losses, strategy.reduce(tf.distribute.ReduceOp.SUM, skipped, axis=None)

            def all_finite(losses):
                return tf.reduce_all([tf.math.is_finite(value) for value in losses.values()])

            @tf.function
            def train_loop(iterator, num_steps):
                totals, skipped = one_step(next(iterator))  # 첫 스텝: 합의 구조를 정한다
                first_non_finite = tf.where(all_finite(totals), -1, 0)
                for index in tf.range(1, num_steps):
                    losses, count = one_step(next(iterator))
                    totals = {name: totals[name] + losses[name] for name in totals}
                    skipped += count
                    newly = tf.logical_and(first_non_finite < 0, tf.logical_not(all_finite(losses)))
                    first_non_finite = tf.where(newly, index, first_non_finite)
                count = tf.cast(num_steps, tf.float32)
                return {name: total / count for name, total in totals.items()}, skipped, first_non_finite

            self._loop_functions[stage] = train_loop
        return self._loop_functions[stage]

    def variables_finite(self):
        """모델의 모든 변수가 유한한가 (Python bool; 체크포인트를 쓰기 전에 확인한다)."""
        if self._finite_check is None:
            variables = self.model.variables

            @tf.function
            def check():
                return tf.reduce_all([tf.reduce_all(tf.math.is_finite(variable)) for variable in variables
                                      if tf.as_dtype(variable.dtype).is_floating])

            self._finite_check = check
        return bool(self._finite_check())

    def _replica_step(self, stage):
        """복제본 하나의 순전파·역전파·갱신 (`tf.function`, `train.jit_compile` 이면 XLA)."""
        model, optimizer, train = self.model, self.optimizers[stage], self.config.train
        variables = model.stage_variables(stage)
        replicas = self.strategy.num_replicas_in_sync
        loss_scaling = self.loss_scaling

        @tf.function(jit_compile=self.jit_compile)
        def replica_step(batch):
            with tf.GradientTape() as tape:
                losses = model.compute_losses(batch, stage)
                scaled = losses["total_loss"] / replicas
                if loss_scaling:
                    scaled = optimizer.scale_loss(scaled)
            # 감쇠 wd·w 는 테이프 밖에서 같은 배율로 더한다 (자르기 전: 감쇠도 기울기 노름에 든다).
            scale = (optimizer.dynamic_scale if loss_scaling else 1.0) / replicas
            gradients = weight_decay_gradients(tape.gradient(scaled, variables), variables,
                                               train.weight_decay, scale)
            decay = weight_decay_loss(variables, train.weight_decay)
            total = losses["total_loss"] + decay
            if train.gradient_clip_norm > 0:
                # 스케일된 기울기라면 한도도 같은 배율로 키운다.
                clip_norm = train.gradient_clip_norm * (optimizer.dynamic_scale if loss_scaling else 1.0)
                gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
            if train.double_bias_lr:
                # 자른 뒤에 곱한다 (Caffe 도 기울기를 자른 뒤 층별 lr_mult 를 곱한다). 손실 스케일과는 무관하다.
                gradients = double_bias_gradients(gradients, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return dict(losses, weight_decay=decay, total_loss=total)

        return replica_step


def load_trained_model(model_dir, checkpoint=None):
    """model_dir 의 run.json 설정으로 float32 모델을 만들고 체크포인트를 복원한다 (export 와 평가용).

    Args:
      model_dir: `tools/train` 의 출력 디렉터리.
      checkpoint: 체크포인트 경로; None 이면 model_dir/checkpoints 의 최신, "best" 면 검증 mAP 가 가장 높았던
        것 (`best_checkpoint`, model_dir/checkpoints/best).

    Returns:
      (model, config, classes, checkpoint_path).

    Raises:
      ValueError: run.json 이 없거나 잘못됐을 때, 체크포인트가 없을 때, 또는 활성 Keras dtype 정책이
        float32 가 아닐 때 (전역 정책은 바꾸지 않는다: 부르는 쪽이 정한다).
    """
    config, classes = run_file.read_run_file(model_dir)
    policy = precision.active_policy_name()
    if policy != "float32":
        raise ValueError(f"{model_dir}: load_trained_model builds a float32 model, but the active Keras "
                         f"dtype policy is '{policy}'; set it to 'float32' first")
    if checkpoint == "best":
        checkpoint = best_checkpoint.best_checkpoint_path(model_dir)
    path = checkpoint or latest_checkpoint(model_dir)
    if not path:
        raise ValueError(f"{model_dir}: no checkpoint found (train first, or pass --checkpoint)")
    # 체크포인트가 모든 가중치를 복원하므로 사전학습 가중치(내려받기, 파일)는 다시 읽지 않는다.
    model = build_model(config_lib.without_pretrained_weights(config), len(classes))
    status = tf.train.Checkpoint(model=model).restore(path).expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        unmatched = str(error).split(", likely")[0]
        raise ValueError(f"{path}: checkpoint does not hold every variable of this model (written by an "
                         f"older version of frcnn, or another architecture): {unmatched}") from error
    return model, config, classes, path
