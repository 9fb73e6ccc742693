"""tools/train 테스트: 실제 kill -9 세 번 뒤 같은 명령으로 요청한 스텝에서 정확히 끝남, 끝난 학습은 다시 하지 않음,
유한하지 않은 손실에서 스텝을 밝히며 멈추고 유한한 체크포인트를 남김, 체크포인트 쓰기 실패 (파일 크기 제한) 뒤
이전 체크포인트로 이어 학습, 디코딩할 수 없는 레코드 건너뛰기와 1 % 초과 시 멈춤,
다른 프리셋의 레코드 거부, --mixed_precision (CPU 에서 bfloat16) 과 --jit_compile 학습, alternating 의
--num_steps (총 스텝, 2:1:2:1) 와 train.stage_steps (이긴다), TF_CONFIG 두 워커의 MultiWorkerMirroredStrategy 학습,
--init_from (--class_map 으로 클래스 행 옮기기, 이어 학습이 이김, 없는 원본은 아무것도 쓰지 않음).

도구는 모두 subprocess 로 실행한다 (absl 플래그가 한 프로세스에서 겹치지 않게). 레코드는 tests/testing.py 의
손으로 만든 작은 VOC 디렉터리(`write_voc_dir`)로 `tools.make_tfrecords` 가 만든다.

용어: 스텝 = 전역 학습 스텝; 체크포인트 ckpt-k 는 스텝 k 뒤의 상태.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tensorflow as tf

from frcnn.training import events
from frcnn.training import precision
from tests.testing import REPO_ROOT, damage_image, write_voc_dir

pytestmark = pytest.mark.slow  # 모든 테스트가 도구를 subprocess 로 돌린다
OVERRIDES = ("backbone.width=8,backbone.fc_units=32,rpn.conv_channels=16,train.log_every=1,"
             "train.warmup_steps=0,input.min_size=64,input.max_size=64,input.shuffle_buffer=8,"
             "anchors.sizes=(16,32),rpn.pre_nms_top_k=200,rpn.post_nms_top_k=32,roi.num_rois=16")


def _command(tool, *args):
    return [sys.executable, "-m", f"tools.{tool}", *args]


def _run(tool, *args, timeout=300):
    return subprocess.run(_command(tool, *args), cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """작은 설정(OVERRIDES)용 trainval 레코드 glob."""
    root = tmp_path_factory.mktemp("train_tool")
    voc_dir = write_voc_dir(root)
    output_dir = str(root / "records")
    result = _run("make_tfrecords", f"--voc_dir={voc_dir}", f"--output_dir={output_dir}",
                  "--config=cpu_small", f"--params_override={OVERRIDES}", "--noprogress")
    assert result.returncode == 0, result.stderr[-3000:]
    return os.path.join(output_dir, "trainval-*.tfrecord")


def _train_args(records, model_dir, *extra, checkpoint_every=2, extra_overrides=""):
    overrides = f"{OVERRIDES},train.checkpoint_every={checkpoint_every},train.keep_checkpoints=3"
    overrides += f",{extra_overrides}" if extra_overrides else ""
    return [f"--records={records}", f"--model_dir={model_dir}", "--config=cpu_small", "--batch_size=2",
            f"--params_override={overrides}", "--noprogress", *extra]


def _latest_step(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def _kill_at(args, model_dir, min_step, delay):
    """학습을 시작해 체크포인트가 min_step 에 닿은 뒤 delay 초 기다려 kill -9 한다 (끝났으면 그대로 둔다)."""
    process = subprocess.Popen(_command("train", *args), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while _latest_step(model_dir) < min_step and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(delay)
        assert process.poll() is None, ("training ended before it could be killed: "
                                        + process.stderr.read()[-2000:])
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _iterations(model_dir, step):
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", f"ckpt-{step}"))
    return [int(reader.get_tensor(key)) for key in reader.get_variable_to_shape_map()
            if key.startswith("optimizer_joint") and "iterations" in key]


def test_three_kill_9_at_random_moments_then_the_same_command_ends_exactly(records, tmp_path):
    """세 번 kill -9 (체크포인트를 쓰는 중일 수도, 루프 한가운데일 수도) 뒤에도 같은 명령이 요청한 스텝에서 끝나고,
    옵티마이저의 반복 수가 그 스텝과 같다. 루프 (steps_per_loop=3) 는 체크포인트 시점 (5 의 배수) 에서 끊긴다."""
    model_dir = str(tmp_path / "run")
    total = 300
    args = _train_args(records, model_dir, f"--num_steps={total}",
                       checkpoint_every=5, extra_overrides="train.steps_per_loop=3")
    rng = np.random.default_rng(10)
    for kill in range(3):
        before = _latest_step(model_dir)
        _kill_at(args, model_dir, before + 5, float(rng.uniform(0.0, 1.5)))
        saved = _latest_step(model_dir)
        assert saved % 5 == 0 and before < saved < total
        assert _iterations(model_dir, saved) == [saved]
    resumed = _run("train", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(rf"resuming from \S+ckpt-{saved} at step {saved}/{total}", resumed.stdout), \
        resumed.stdout
    assert f"done at step {total}" in resumed.stdout
    assert _latest_step(model_dir) == total
    assert _iterations(model_dir, total) == [total]
    again = _run("train", *args)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert _latest_step(model_dir) == total


def _all_finite(checkpoint):
    reader = tf.train.load_checkpoint(checkpoint)
    dtypes = reader.get_variable_to_dtype_map()
    return all(np.all(np.isfinite(reader.get_tensor(key))) for key in dtypes
               if key.startswith("model/") and dtypes[key].is_floating)


def test_absurd_learning_rate_stops_naming_the_step_and_keeps_a_finite_checkpoint(records, tmp_path):
    model_dir = str(tmp_path / "run")
    # 스텝 4 부터 학습률 × 1e12: 그 뒤 손실이나 가중치가 유한하지 않게 된다.
    result = _run("train", *_train_args(records, model_dir, "--num_steps=40", extra_overrides=(
        "train.decay_steps=(4,),train.decay_factor=1e12,train.learning_rate=0.1,"
        "train.gradient_clip_norm=0.0")))
    assert result.returncode == 1
    match = re.search(r"non-finite (loss at|weights after) step (\d+)", result.stderr)
    assert match, result.stderr[-3000:]
    assert int(match.group(2)) > 4
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    assert latest and f"the last good checkpoint is kept: {latest}" in result.stderr
    assert _latest_step(model_dir) < int(match.group(2)) and _all_finite(latest)


FILE_SIZE_LIMIT_SCRIPT = textwrap.dedent("""
    import resource, runpy, signal, sys
    # 디스크가 가득 찬 것처럼: limit 바이트를 넘는 파일 쓰기는 EFBIG 로 실패한다 (SIGXFSZ 는 무시).
    limit = int(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    sys.argv = ["train"] + sys.argv[2:]
    runpy.run_module("tools.train", run_name="__main__")
""")


def test_failed_checkpoint_write_keeps_the_previous_one_usable(records, tmp_path):
    model_dir = str(tmp_path / "run")
    args = _train_args(records, model_dir, "--num_steps=200")
    _kill_at(args, model_dir, 2, 0.0)  # ckpt-2 를 남기고 멈춘다
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    for name in os.listdir(checkpoint_dir):  # 그 뒤에 쓴 체크포인트는 지운다 (ckpt-2 가 마지막)
        if name.startswith("ckpt-") and not name.startswith("ckpt-2."):
            os.remove(os.path.join(checkpoint_dir, name))
    tf.compat.v1.train.update_checkpoint_state(checkpoint_dir, os.path.join(checkpoint_dir, "ckpt-2"))
    data_size = max(os.path.getsize(os.path.join(checkpoint_dir, name))
                    for name in os.listdir(checkpoint_dir))
    script = tmp_path / "limited.py"
    script.write_text(FILE_SIZE_LIMIT_SCRIPT)
    limited = subprocess.run([sys.executable, str(script), str(data_size // 2), *args], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=300,
                             env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert limited.returncode == 1, limited.stderr[-3000:]
    assert re.search(r"cannot write the checkpoint for step 4 .*the previous checkpoint \S+ckpt-2 is still "
                     r"usable: free space and rerun the same command", limited.stderr), limited.stderr[-3000:]
    assert not [name for name in os.listdir(checkpoint_dir) if name.startswith("ckpt-4")]
    assert _latest_step(model_dir) == 2
    resumed = _run("train", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stdout and "ckpt-2 at step 2/200" in resumed.stdout
    assert _latest_step(model_dir) == 200 and _iterations(model_dir, 200) == [200]


def test_an_undecodable_record_is_skipped_with_one_warning_line(tmp_path):
    """레코드 150 개 중 하나가 깨졌다 (< 1 %): 경고 줄에 source_id, 건너뛴 수를 알리고 끝까지 학습한다."""
    images = {f"{index:06d}": (40, 30, [("dog", ("5", "4", "30", "25"), "0", "0")]) for index in range(150)}
    voc_dir = write_voc_dir(tmp_path, images)
    made = _run("make_tfrecords", f"--voc_dir={voc_dir}", f"--output_dir={tmp_path / 'records'}",
                "--config=cpu_small", f"--params_override={OVERRIDES}", "--noprogress")
    assert made.returncode == 0, made.stderr[-3000:]
    pattern = damage_image(str(tmp_path / "records" / "trainval-*.tfrecord"), str(tmp_path / "damaged"),
                           "000007")
    result = _run("train", *_train_args(pattern, str(tmp_path / "run"), "--num_steps=160",
                                        extra_overrides="input.random_flip=false"))
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "skipping record" in line]
    assert warnings and all(line.endswith("image/source_id '000007': its image cannot be decoded")
                            for line in warnings)
    counted = re.findall(r"skipped (\d+) record\(s\) whose image cannot be decoded; (\d+) of (\d+) read",
                         result.stdout)
    assert counted and int(counted[-1][1]) == len(warnings)
    assert "done at step 160" in result.stdout


def test_more_than_1_percent_undecodable_records_stop_training(records, tmp_path):
    pattern = damage_image(records, str(tmp_path / "damaged"), "000001")  # 4 개 중 하나
    result = _run("train", *_train_args(pattern, str(tmp_path / "run"), "--num_steps=200"))
    assert result.returncode == 1
    assert re.search(r"train: error: \d+ of the \d+ records read could not be decoded \(more than 1 %\)",
                     result.stderr), result.stderr[-3000:]
    assert "WARNING: skipping record with image/source_id '000001'" in result.stderr


def test_records_of_another_preset_are_refused(records, tmp_path):
    result = _run("train", f"--records={records}", f"--model_dir={tmp_path / 'run'}", "--config=cpu_small",
                  "--num_steps=1", "--noprogress")
    assert result.returncode == 1
    assert "were made for preset 'cpu_small' with --params_override" in result.stderr
    assert "rerun make_tfrecords" in result.stderr
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_mixed_precision_and_jit_compile_train_from_records(records, tmp_path):
    model_dir = str(tmp_path / "run")
    result = _run("train", *_train_args(records, model_dir, "--num_steps=3", "--mixed_precision",
                                        "--jit_compile"))
    assert result.returncode == 0, result.stderr[-3000:]
    losses = dict(re.findall(r"(\w+_loss)=([-\d.e+naif]+)", result.stdout))
    assert {"rpn_objectness_loss", "detector_class_loss", "total_loss"} <= set(losses)
    assert all(np.isfinite(float(value)) for value in losses.values())
    # 변수는 float32 로 저장된다 (내보내기·평가는 float32 로 복원).
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "ckpt-3"))
    dtypes = reader.get_variable_to_dtype_map()
    assert {dtypes[key] for key in dtypes if key.startswith("model/")} == {tf.float32}


def _stage_steps(model_dir):
    with open(os.path.join(model_dir, "run.json")) as handle:
        return json.load(handle)["config"]["train"]["stage_steps"]


def test_alternating_num_steps_is_the_total_and_stage_steps_win(records, tmp_path):
    """--num_steps=6 와 alternating: 총 6 스텝을 2:1:2:1 로 (6/6 = 1 → 2, 1, 2, 1), 시작할 때 계획을 찍는다.
    train.stage_steps 를 함께 주면 그것이 이긴다."""
    total = _run("train", *_train_args(records, str(tmp_path / "total"), "--training_mode=alternating",
                                       "--num_steps=6"))
    assert total.returncode == 0, total.stderr[-3000:]
    assert ("stage plan: rpn 2 [0, 2), detector 1 [2, 3), rpn_finetune 2 [3, 5), detector_finetune 1 [5, 6); "
            "6 steps in all") in total.stdout
    assert "done at step 6" in total.stdout and _stage_steps(str(tmp_path / "total")) == [2, 1, 2, 1]
    explicit = _run("train", *_train_args(records, str(tmp_path / "explicit"), "--training_mode=alternating",
                                          "--num_steps=6", extra_overrides="train.stage_steps=(1,1,2,1)"))
    assert explicit.returncode == 0, explicit.stderr[-3000:]
    assert "done at step 5" in explicit.stdout and _stage_steps(str(tmp_path / "explicit")) == [1, 1, 2, 1]


POLICY_SCRIPT = textwrap.dedent("""
    import json, sys
    import keras
    from absl import flags
    from frcnn.training import loop
    from tools import train
    seen = {}

    def fake_train(config, *args):
        seen["policy"] = keras.mixed_precision.global_policy().name
        return {"step": 0, "losses": {}, "checkpoint": None}

    loop.train = fake_train
    flags.FLAGS(["train", *sys.argv[1:]])
    train._train()
    print(json.dumps(seen))
""")


@pytest.mark.parametrize("flag, policy", [("--mixed_precision", None), ("--nomixed_precision", "float32")])
def test_the_binary_sets_the_precision_policy_before_training(records, tmp_path, flag, policy):
    """전역 dtype 정책은 라이브러리가 아니라 바이너리가 학습 전에 정한다 (CPU: bfloat16 명령이 있으면
    mixed_bfloat16, 없으면 float32 — `precision.mixed_policy_name`, 그 규칙은 test_precision 이 본다)."""
    policy = policy or precision.mixed_policy_name()
    script = tmp_path / "policy.py"
    script.write_text(POLICY_SCRIPT)
    result = subprocess.run([sys.executable, str(script), *_train_args(records, str(tmp_path / "run"), flag)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"policy": policy}


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def test_multi_worker_strategy_from_tf_config(records, tmp_path):
    """워커 2개 (localhost, TF_CONFIG) 가 MultiWorkerMirroredStrategy 로 함께 학습하며 검증한다; 체크포인트·검증 기록·
    best/ 는 chief 것만 남는다."""
    model_dir = str(tmp_path / "run")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            _command("train", *_train_args(records, model_dir, "--num_steps=3", "--strategy=auto",
                                           f"--eval_records={records}", "--eval_every=2")),
            cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=300))
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "done at step 3" in stdout
    assert _latest_step(model_dir) == 3
    assert sorted(name for name in os.listdir(model_dir) if not name.startswith("run.json")) == [
        "checkpoints", "eval", "train"]  # 워커 1 의 임시 디렉터리는 지워졌다
    # 두 워커가 같은 가중치로 같은 검증 결과를 내고 같은 최고를 고른다 (스텝 2, 3)
    validations = [re.findall(r"validation at step \d+: [^(]*", stdout) for stdout, _ in outputs]  # 초는 빼고
    assert len(validations[0]) == 2 and validations[0] == validations[1]
    assert os.listdir(os.path.join(model_dir, "checkpoints", "best"))
    # 두 워커가 같은 손실을 보고한다 (복제본 평균)
    totals = [re.search(r"total_loss=([\d.]+)", stdout).group(1) for stdout, _ in outputs]
    assert totals[0] == totals[1]


def test_validation_while_training_keeps_the_best_checkpoint_for_export(records, tmp_path):
    """--eval_every=2 로 5 스텝: 스텝 2, 4, 5 에 eval/ 스칼라; best/ 와 run.json 이 가장 높은 (같으면 먼저) mAP 의
    스텝을 가리키고, --checkpoint=best 로 내보낸 모델을 tools/evaluate 로 재면 그 mAP 가 나온다 (float32)."""
    model_dir = str(tmp_path / "run")
    result = _run("train", *_train_args(records, model_dir, "--num_steps=5", "--eval_every=2",
                                        f"--eval_records={records}", "--nomixed_precision",
                                        extra_overrides="detection.score_threshold=0.0"))
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.findall(r"validation at step (\d+): voc07_map=([\d.]+)", result.stdout)
    scalars = events.read_summaries(os.path.join(model_dir, "eval"), "scalars")
    voc07 = scalars["eval/voc07_map"]
    assert [step for step, _ in voc07] == [2, 4, 5] == [int(step) for step, _ in printed]
    assert [f"{value:.4f}" for _, value in voc07] == [value for _, value in printed]
    assert {"eval/coco_ap", "eval/coco_ap50", "eval/seconds"} <= set(scalars)
    best_step, best_map = max(voc07, key=lambda item: (item[1], -item[0]))
    with open(os.path.join(model_dir, "run.json")) as handle:
        best = json.load(handle)["best"]
    assert (best["step"], best["eval_records"]) == (best_step, records)
    assert best["voc07_map"] == pytest.approx(best_map, rel=1e-6)
    assert best["checkpoint"].endswith(os.path.join("checkpoints", "best", f"ckpt-{best_step}"))
    export_dir = str(tmp_path / "export")
    exported = _run("export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--checkpoint=best")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"from {best['checkpoint']} " in exported.stdout
    report_path = str(tmp_path / "report.json")
    evaluated = _run("evaluate", f"--saved_model={export_dir}", f"--records={records}", "--metrics=voc07",
                     f"--output={report_path}", "--noprogress")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    with open(report_path) as handle:
        assert json.load(handle)["map"]["voc07"] == pytest.approx(best_map, abs=1e-6)
    plotted = _run("plot_validation", f"--model_dir={model_dir}", f"--output={tmp_path / 'curve.png'}")
    assert plotted.returncode == 0, plotted.stderr[-3000:]
    assert (tmp_path / "curve.png").read_bytes().startswith(b"\x89PNG")
    assert [line.split()[0] for line in plotted.stdout.splitlines()[1:4]] == ["2", "4", "5"]


def test_eval_every_needs_eval_records_and_the_same_classes(records, tmp_path):
    result = _run("train", *_train_args(records, str(tmp_path / "run"), "--eval_every=2"))
    assert result.returncode != 0 and "--eval_every needs --eval_records" in result.stderr
    other = tmp_path / "other"
    voc_dir = write_voc_dir(other, {"000009": (32, 32, [("widget", ("2", "2", "20", "20"), "0", "0")])})
    made = _run("make_tfrecords", f"--voc_dir={voc_dir}", f"--output_dir={other / 'records'}",
                "--config=cpu_small", f"--params_override={OVERRIDES}", "--noprogress")
    assert made.returncode == 0, made.stderr[-3000:]
    pattern = str(other / "records" / "trainval-*.tfrecord")
    result = _run("train", *_train_args(records, str(tmp_path / "run"), "--num_steps=1",
                                        f"--eval_records={pattern}"))
    assert result.returncode == 1
    assert re.search(r"train: error: \S+trainval-\*\.tfrecord: validation records have classes \['widget'\], "
                     r"but the training records have \['aeroplane', ", result.stderr), result.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run")


def test_init_from_fine_tunes_from_a_checkpoint_and_resume_wins(records, tmp_path):
    source = str(tmp_path / "source")
    result = _run("train", *_train_args(records, source, "--num_steps=2",
                                        extra_overrides="backbone.norm_epsilon=0.001"))
    assert result.returncode == 0, result.stderr[-3000:]
    model_dir = str(tmp_path / "fine")
    args = _train_args(records, model_dir, "--num_steps=2", f"--init_from={source}/checkpoints/ckpt-2",
                       "--class_map=dog:cat")
    result = _run("train", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"initialized from {source}/checkpoints/ckpt-2 (weights only; step 0" in result.stdout
    assert "dog<-cat" in result.stdout and "fresh: none" in result.stdout
    with open(os.path.join(model_dir, "run.json")) as handle:
        run_info = json.load(handle)
    recorded = run_info["init_from"]
    # 백본은 사전학습 구조로 만들되 아무것도 읽지 않고 (checkpoint), BN eps 는 원본의 것
    assert run_info["config"]["backbone"]["weights"] == "checkpoint"
    assert run_info["config"]["backbone"]["norm_epsilon"] == 0.001
    assert recorded["classes_carried"]["dog"] == "cat" and recorded["classes_carried"]["person"] == "person"
    assert recorded["classes_fresh"] == [] and _latest_step(model_dir) == 2
    again = _run("train", *args)  # 체크포인트가 있으면 이어 학습이 이긴다
    assert again.returncode == 0, again.stderr[-3000:]
    assert "--init_from ignored" in again.stdout and "initialized from" not in again.stdout


def test_init_from_a_missing_source_writes_nothing(records, tmp_path):
    model_dir = str(tmp_path / "fine")
    result = _run("train", *_train_args(records, model_dir, "--num_steps=2",
                                        f"--init_from={tmp_path}/no_such_run"))
    assert result.returncode == 1
    assert f"--init_from {tmp_path}/no_such_run: not a run directory" in result.stderr
    assert not os.path.exists(model_dir)
