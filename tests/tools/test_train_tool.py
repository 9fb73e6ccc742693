"""tools/train 테스트: 실제 kill -9 뒤 같은 명령으로 저장된 스텝에서 이어 학습, 끝난 학습은 다시 하지 않음,
다른 프리셋의 레코드 거부, --mixed_precision (CPU 에서 bfloat16) 과 --jit_compile 학습, TF_CONFIG 두 워커의
MultiWorkerMirroredStrategy 학습.

도구는 모두 subprocess 로 실행한다 (absl 플래그가 한 프로세스에서 겹치지 않게). 레코드는 conftest 의
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

from tests.conftest import REPO_ROOT, write_voc_dir

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


def _train_args(records, model_dir, *extra):
    return [f"--records={records}", f"--model_dir={model_dir}", "--config=cpu_small", "--batch_size=2",
            f"--params_override={OVERRIDES},train.checkpoint_every=2,train.keep_checkpoints=3",
            "--noprogress", *extra]


def _latest_step(model_dir):
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def test_kill_9_then_the_same_command_resumes_at_the_saved_step(records, tmp_path):
    model_dir = str(tmp_path / "run")
    args = _train_args(records, model_dir, "--num_steps=400")
    process = subprocess.Popen(_command("train", *args), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while _latest_step(model_dir) < 4 and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, ("training ended before it could be killed: "
                                        + process.stderr.read()[-2000:])
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    saved = _latest_step(model_dir)
    assert 4 <= saved < 400
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", f"ckpt-{saved}"))
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == saved

    resumed = _run("train", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    match = re.search(r"resuming from (\S+) at step (\d+)/400", resumed.stdout)
    assert match, resumed.stdout
    assert match.group(1).endswith(f"ckpt-{saved}") and int(match.group(2)) == saved
    assert "done at step 400" in resumed.stdout
    assert _latest_step(model_dir) == 400
    # 옵티마이저 상태(모멘텀)와 단계별 반복 수도 체크포인트에 있어 이어 간다: 반복 수 = 학습한 전체 스텝.
    reader = tf.train.load_checkpoint(os.path.join(model_dir, "checkpoints", "ckpt-400"))
    iterations = [reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
                  if key.startswith("optimizer_joint") and "iterations" in key]
    assert iterations == [400]

    again = _run("train", *args)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert _latest_step(model_dir) == 400


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


@pytest.mark.parametrize("flag, policy", [("--mixed_precision", "mixed_bfloat16"),
                                          ("--nomixed_precision", "float32")])
def test_the_binary_sets_the_precision_policy_before_training(records, tmp_path, flag, policy):
    """전역 dtype 정책은 라이브러리가 아니라 바이너리가 학습 전에 정한다 (CPU: mixed_bfloat16)."""
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
    """워커 2개 (localhost, TF_CONFIG) 가 MultiWorkerMirroredStrategy 로 함께 학습; 체크포인트는 chief 것만 남는다."""
    model_dir = str(tmp_path / "run")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    processes = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster,
                                                             "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            _command("train", *_train_args(records, model_dir, "--num_steps=3", "--strategy=auto")),
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
        "checkpoints", "train"]  # 워커 1 의 임시 디렉터리는 지워졌다
    # 두 워커가 같은 손실을 보고한다 (복제본 평균)
    totals = [re.search(r"total_loss=([\d.]+)", stdout).group(1) for stdout, _ in outputs]
    assert totals[0] == totals[1]
