"""학습기 테스트: 두 CPU 복제본의 MirroredStrategy 가 기본 전략과 같은 손실, 혼합 정밀도 정책 아래의 계산
dtype 과 손실 스케일, float32 가 아닌 정책에서 학습된 모델 읽기 거부, 편향 학습률 2배 (`train.double_bias_lr`).

용어: 복제본(replica) = 전략이 스텝을 나눠 돌리는 장치; 정책(policy) = Keras 전역 dtype 정책. 정책은
프로세스 전역이라 라이브러리가 아니라 테스트(바이너리)가 정하고, 픽스처가 float32 로 되돌린다.
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import record_spec
from frcnn.training import run_file
from frcnn.training import trainer
from tests.testing import REPO_ROOT, make_batches, tiny_config, tiny_fpn_config


@pytest.fixture
def global_policy():
    """`global_policy(name)` 으로 전역 dtype 정책을 정한다; 테스트가 끝나면 float32 로 되돌린다."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def _all_layers(layer):
    for child in getattr(layer, "layers", []):
        yield child
        yield from _all_layers(child)


@pytest.mark.parametrize("make_config", [tiny_config, tiny_fpn_config], ids=["single", "fpn"])
def test_mixed_precision_on_cpu_computes_in_bfloat16(tmp_path, global_policy, make_config):
    global_policy("mixed_bfloat16")  # bfloat16 명령이 없는 CPU 도 (느리지만) 같은 결과를 낸다
    cfg = make_config("train.num_steps=2")
    subject = trainer.Trainer(cfg, 2, str(tmp_path / "run"), tf.distribute.get_strategy())
    assert not subject.loss_scaling  # bfloat16 은 손실 스케일이 필요 없다
    convolutions = [layer for layer in _all_layers(subject.model) if isinstance(layer, keras.layers.Conv2D)]
    assert convolutions and all(layer.compute_dtype == "bfloat16" and layer.kernel.dtype == "float32"
                                for layer in convolutions)
    losses, _, _ = subject.loop_function("joint")(iter(make_batches(cfg, 1)), tf.constant(1))
    assert all(value.dtype == tf.float32 and np.isfinite(value.numpy()) for value in losses.values())
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # 학습기는 정책을 바꾸지 않는다


def test_float16_policy_scales_the_loss(tmp_path, global_policy):
    global_policy("mixed_float16")
    subject = trainer.Trainer(tiny_config("train.num_steps=2"), 2, str(tmp_path / "run"),
                              tf.distribute.get_strategy())
    assert subject.loss_scaling
    assert isinstance(subject.optimizers["joint"], keras.optimizers.LossScaleOptimizer)


def test_load_trained_model_refuses_a_mixed_policy(tmp_path, global_policy):
    run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(tiny_config(), ["a", "b"]), "x")
    global_policy("mixed_bfloat16")
    with pytest.raises(ValueError, match="active Keras dtype policy is 'mixed_bfloat16'"):
        trainer.load_trained_model(str(tmp_path))
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


def test_load_trained_model_restores_weights_and_refuses_partial_checkpoints(tmp_path):
    cfg = tiny_config()
    run_file.write_run_file(str(tmp_path), record_spec.RecordSpec.from_config(cfg, ["a", "b"]), "x")
    model = trainer.build_model(cfg, 2)
    os.makedirs(tmp_path / "checkpoints")
    full = tf.train.Checkpoint(model=model).save(str(tmp_path / "checkpoints" / "full"))
    loaded, _, classes, path = trainer.load_trained_model(str(tmp_path), full)
    assert list(classes) == ["a", "b"] and path == full
    for expected, actual in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(expected.numpy(), actual.numpy())
    # 백본이 빠진 체크포인트 (옛 버전의 키 같은): 무작위 백본으로 조용히 넘어가지 않는다
    partial = tf.train.Checkpoint(model=tf.train.Checkpoint(detector_head=model.detector_head))
    partial_path = partial.save(str(tmp_path / "checkpoints" / "partial"))
    with pytest.raises(ValueError, match="partial-1: checkpoint does not hold every variable"):
        trainer.load_trained_model(str(tmp_path), partial_path)


# 표본 추출이 결정적이도록: 모든 앵커·후보를 쓴다. 모멘텀·감쇠·자르기 없이 한 SGD 스텝의 갱신은 -lr·g.
ONE_PLAIN_STEP = ("train.num_steps=1,rpn.batch_size_per_image=100000,rpn.positive_fraction=1.0,"
                  "roi.num_rois=48,roi.foreground_fraction=1.0,train.momentum=0.0,train.weight_decay=0.0,"
                  "train.gradient_clip_norm=0.0,train.learning_rate=0.5")


def _one_step_updates(tmp_path, double_bias_lr, batch):
    """seed 0 의 학습기로 한 스텝: (변수 경로 목록, 갱신 목록, 스텝 전 손실의 기울기 목록)."""
    cfg = tiny_config(f"{ONE_PLAIN_STEP},train.double_bias_lr={double_bias_lr}")
    tf.keras.utils.set_random_seed(0)
    subject = trainer.Trainer(cfg, 2, str(tmp_path / f"run_{double_bias_lr}"),
                              tf.distribute.get_strategy())
    variables = subject.model.stage_variables("joint")
    before = [variable.numpy() for variable in variables]
    with tf.GradientTape() as tape:
        loss = subject.model.compute_losses(batch, "joint")["total_loss"]
    gradients = [gradient.numpy() for gradient in tape.gradient(loss, variables)]
    subject.loop_function("joint")(iter(tf.data.Dataset.from_tensors(batch)), tf.constant(1))
    updates = [variable.numpy() - start for variable, start in zip(variables, before)]
    return [variable.path for variable in variables], updates, gradients


def test_double_bias_lr_doubles_the_step_of_conv_and_dense_biases_only(tmp_path):
    batch = next(iter(make_batches(tiny_config(ONE_PLAIN_STEP), 1)))
    paths, plain, gradients = _one_step_updates(tmp_path, False, batch)
    doubled_paths, doubled, _ = _one_step_updates(tmp_path, True, batch)
    assert doubled_paths == paths
    # 손으로 센 Conv2D·Dense 편향: RPN 3개, fc6·fc7, 검출 헤드 2개 (cpu_small 백본은 편향 없는 합성곱 + BN)
    biases = [path for path in paths if path.endswith("/bias")]
    assert len(biases) == 7 and any(path.endswith("/beta") for path in paths)
    for path, gradient, once, twice in zip(paths, gradients, plain, doubled):
        np.testing.assert_allclose(once, -0.5 * gradient, rtol=1e-4, atol=1e-7, err_msg=path)
        factor = 2.0 if path in biases else 1.0  # BN 의 beta·gamma, 커널은 그대로
        np.testing.assert_allclose(twice, factor * once, rtol=1e-4, atol=1e-7, err_msg=path)
    assert all(np.abs(update).max() > 0 for path, update in zip(paths, plain) if path in biases)


MIRRORED_SCRIPT = textwrap.dedent("""
    import sys, json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from tests.testing import tiny_config, tiny_fpn_config, make_batches
    from frcnn.training import distribute
    from frcnn.training import trainer
    # 표본 추출이 결정적이도록: 모든 앵커·후보를 쓴다 (순서는 손실 합에 영향 없음); BN 은 복제본별 통계라 반 배치씩 비교.
    make_config = tiny_fpn_config if sys.argv[3] == "fpn" else tiny_config
    cfg = make_config("train.num_steps=1,rpn.batch_size_per_image=100000,rpn.positive_fraction=1.0,"
                      "roi.num_rois=48,roi.foreground_fraction=1.0,train.weight_decay=0.0")
    batch = next(iter(make_batches(cfg)))
    results = {}
    for name in ("default", "mirrored"):
        strategy = distribute.make_strategy(name)
        with strategy.scope():
            tf.keras.utils.set_random_seed(0)
            subject = trainer.Trainer(cfg, 2, sys.argv[2] + name, strategy)
        if name == "default":
            halves = [{k: v[i:i + 1] for k, v in batch.items()} for i in (0, 1)]
            losses = [subject.model.compute_losses(h, "joint")["total_loss"].numpy() for h in halves]
            results["halves"] = float(sum(losses) / 2)
        dataset = strategy.experimental_distribute_dataset(make_batches(cfg, 1))
        losses, _, _ = subject.loop_function("joint")(iter(dataset), tf.constant(1))
        results[name] = float(losses["total_loss"])
        results[name + "_replicas"] = strategy.num_replicas_in_sync
    print(json.dumps(results))
""")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["single", "fpn"])
def test_mirrored_strategy_on_two_cpus_matches_default(tmp_path, kind):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    output = subprocess.run([sys.executable, str(script), REPO_ROOT, str(tmp_path) + os.sep, kind],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert output.returncode == 0, output.stderr[-3000:]
    results = json.loads(output.stdout.strip().splitlines()[-1])
    assert results["mirrored_replicas"] == 2 and results["default_replicas"] == 1
    # 같은 초기 가중치 (seed 0): 복제본 2개의 평균 손실 = 기본 전략에서 반 배치씩 잰 손실의 평균
    np.testing.assert_allclose(results["mirrored"], results["halves"], rtol=1e-4)


# 표본 추출이 결정적이고 (모든 앵커·후보) 가중치가 바뀌지 않는 (학습률 0) 설정: 루프 평균을 스텝별 손실과 견준다.
FROZEN = ("train.num_steps=3,train.learning_rate=0.0,rpn.batch_size_per_image=100000,"
          "rpn.positive_fraction=1.0,roi.num_rois=48,roi.foreground_fraction=1.0")


def _three_batches(cfg):
    """밝기를 달리한 세 배치 (손실이 서로 다르다)."""
    base = next(iter(make_batches(cfg, 1)))
    return [dict(base, images=base["images"] * factor) for factor in (1.0, 0.6, 0.3)]


def test_loop_averages_the_losses_of_its_steps_on_device(tmp_path):
    cfg = tiny_config(FROZEN)
    subject = trainer.Trainer(cfg, 2, str(tmp_path / "run"), tf.distribute.get_strategy())
    batches = _three_batches(cfg)
    expected = [subject.model.compute_losses(batch, "joint") for batch in batches]
    dataset = tf.data.Dataset.from_tensor_slices({key: tf.stack([batch[key] for batch in batches])
                                                  for key in batches[0]})
    losses, skipped, first_non_finite = subject.loop_function("joint")(iter(dataset), tf.constant(3))
    for name in ("rpn_objectness_loss", "rpn_box_loss", "detector_class_loss", "detector_box_loss"):
        mean = np.mean([float(step[name]) for step in expected])
        assert float(losses[name]) == pytest.approx(mean, rel=1e-4), name
    assert int(skipped) == 0 and int(first_non_finite) == -1
    assert int(subject.optimizers["joint"].iterations.numpy()) == 3


def test_loop_reports_the_first_non_finite_step_and_skipped_records(tmp_path):
    cfg = tiny_config(FROZEN)
    subject = trainer.Trainer(cfg, 2, str(tmp_path / "run"), tf.distribute.get_strategy())
    batches = _three_batches(cfg)
    # NaN 상자 타깃 → 상자 손실 NaN (NaN 이미지는 그래프 모드 CPU ReLU 가 0 으로 바꿔 손실이 유한할 수 있다)
    nan_boxes = np.where(batches[1]["gt_boxes"] >= 0, np.nan, -1.0).astype(np.float32)
    batches[1] = dict(batches[1], gt_boxes=nan_boxes)
    batches[2] = dict(batches[2], skipped_records=np.array([2, 1], np.int32))
    dataset = tf.data.Dataset.from_tensor_slices({key: tf.stack([batch[key] for batch in batches])
                                                  for key in batches[0]})
    losses, skipped, first_non_finite = subject.loop_function("joint")(iter(dataset), tf.constant(3))
    assert int(first_non_finite) == 1 and not np.isfinite(float(losses["total_loss"]))
    assert int(skipped) == 3


def test_weight_decay_gradients_equal_the_gradient_of_the_decay_loss():
    """테이프 밖에서 더하는 wd·w 가 0.5·wd·Σ‖w‖² 의 기울기와 같다 (커널만; 편향·BN 은 그대로)."""
    kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="kernel")
    bias = tf.Variable(np.ones(3, np.float32), name="bias")
    variables = [kernel, bias]
    with tf.GradientTape() as tape:
        loss = 0.25 * trainer.weight_decay_loss(variables, 0.1) + tf.reduce_sum(kernel) + tf.reduce_sum(bias)
    expected = tape.gradient(loss, variables)
    ones = [tf.ones_like(kernel), tf.ones_like(bias)]
    added = trainer.weight_decay_gradients(ones, variables, 0.1, scale=0.25)
    np.testing.assert_allclose(added[0], 1.0 + 0.25 * 0.1 * kernel.numpy(), rtol=1e-6)
    np.testing.assert_allclose(added[0], expected[0], rtol=1e-6)
    np.testing.assert_allclose(added[1], expected[1])
    assert trainer.weight_decay_gradients(ones, variables, 0.0)[0] is ones[0]
