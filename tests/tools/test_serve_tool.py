"""tools/serve.py 테스트: 하위 프로세스로 서버를 띄워 요청하고 SIGTERM 으로 멈춘다 (127.0.0.1 만).

용어: SavedModel 은 conftest.py 의 작은 검출기.
"""

import http.client
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.testing import wait_for_address

MODEL_NAME = "tiny"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _serve_command(*args):
    return [sys.executable, "-m", "tools.serve", "--port=0", f"--model_name={MODEL_NAME}", "--warmup=false",
            *args]


@pytest.mark.slow
def test_serve_tool_exits_zero_on_sigterm(saved_model_dir):
    process = subprocess.Popen(_serve_command(f"--saved_model={saved_model_dir}"), cwd=REPO_ROOT,
                               stderr=subprocess.PIPE, text=True)
    try:
        address, log_lines = wait_for_address(process, timeout=40)
        assert address is not None, "".join(log_lines)
        connection = http.client.HTTPConnection(*address, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGTERM)
        remaining_log = process.communicate(timeout=30)[1]
        assert process.returncode == 0, remaining_log
        assert re.search(r"GET /healthz 200 [0-9.]+ms", remaining_log), remaining_log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_serve_tool_rejects_a_directory_without_saved_model(tmp_path):
    result = subprocess.run(_serve_command(f"--saved_model={tmp_path}"), cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 1
    assert f"--saved_model: {tmp_path}: not a SavedModel directory (no saved_model.pb)" in result.stderr


def test_serve_tool_rejects_negative_thread_and_concurrency_flags(tmp_path):
    for flag in ("tensorflow_intra_op_parallelism", "tensorflow_inter_op_parallelism",
                 "max_concurrent_predictions"):
        result = subprocess.run(_serve_command(f"--saved_model={tmp_path}", f"--{flag}=-1"), cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert f"--{flag}=-1: must be >= 0" in result.stderr


@pytest.mark.slow
def test_serve_tool_rejects_a_non_positive_pixel_budget(tmp_path):
    for flag in ("max_image_pixels", "max_images_per_request"):
        result = subprocess.run(_serve_command(f"--saved_model={tmp_path}", f"--{flag}=0"), cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        assert f"--{flag}=0: must be positive" in result.stderr


@pytest.mark.parametrize("labels, message", [
    ("stable", "'stable' is not LABEL=N"),
    ("stable=one", "'stable=one' is not LABEL=N"),
    ("stable=²", "'stable=²' is not LABEL=N"),
    ("stable=1,stable=2", "label 'stable' given twice"),
])
def test_serve_tool_rejects_malformed_version_labels(tmp_path, labels, message):
    result = subprocess.run(_serve_command(f"--saved_model={tmp_path}", f"--version_labels={labels}"),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"--version_labels: {message}" in result.stderr
