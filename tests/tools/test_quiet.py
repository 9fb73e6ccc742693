"""tools/_quiet 테스트: 손으로 쓴 TensorFlow 초기화 전 로그 줄의 걸러내기, 실제 도구 실행의 출력에 알려진 잡음이
없음, 사용자가 정한 TF_CPP_MIN_LOG_LEVEL 과 --verbosity 가 이김, 진행 막대 위에 쓴 줄이 막대를 찢지 않음."""

import os
import subprocess
import sys

import pytest

from tests.testing import REPO_ROOT, write_voc_dir
from tools import _quiet

PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
NO_DRIVER = ("I0000 00:00:1796603400.417536    4729 cudart_stub.cc:31] Could not find cuda drivers on your "
             "machine, GPU will not be used.\n")
CUINIT = ("E0000 00:00:1796603405.154621    4729 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
          "error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
A_WARNING = "W1207 00:33:16.294011 140395860122496 some_op.cc:12] a warning\n"
AN_ERROR = "E1207 00:33:16.294011 140395860122496 some_op.cc:12] a real error\n"
PLAIN = "Traceback (most recent call last):\n"
# 도구의 출력에 나오면 안 되는 잡음
NOISE = ("cuInit", "oneDNN", "This TensorFlow binary is optimized", "absl::InitializeLog", "cudart_stub",
         "Sharding callback duration")


def test_level_two_drops_info_warnings_and_the_driverless_cuinit_but_keeps_errors():
    lines = [PREAMBLE, NO_DRIVER, CUINIT, A_WARNING, AN_ERROR, PLAIN]
    assert _quiet.filter_lines(lines, 2) == [AN_ERROR, PLAIN]
    assert _quiet.filter_lines(lines, 1) == [A_WARNING, AN_ERROR, PLAIN]
    assert _quiet.filter_lines(lines, 3) == [PLAIN]


def test_cuinit_failure_with_a_driver_present_is_a_real_error():
    assert _quiet.filter_lines([PREAMBLE, CUINIT], 2) == [CUINIT]


def test_level_zero_keeps_everything():
    lines = [PREAMBLE, NO_DRIVER, CUINIT, A_WARNING, PLAIN]
    assert _quiet.filter_lines(lines, 0) == lines


def _user_env(**overrides):
    """사용자의 셸처럼: 테스트가 정한 TF_CPP_MIN_LOG_LEVEL·CUDA_VISIBLE_DEVICES 없이, 버퍼링도 기본값으로."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES", "PYTHONUNBUFFERED")}
    env.update(overrides)
    return env


def _python(code, env):
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow
def test_a_tool_run_prints_no_known_noise(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tools.make_tfrecords", f"--voc_dir={voc_dir}",
         f"--output_dir={tmp_path / 'out'}", "--noprogress"],
        cwd=REPO_ROOT, env=_user_env(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "4 images, 6 objects" in result.stdout
    output = result.stdout + result.stderr
    assert [pattern for pattern in NOISE if pattern in output] == [], output


@pytest.mark.slow
def test_user_settings_win():
    code = ("import os, sys; import tools; from tools import _quiet; "
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], any(isinstance(f, _quiet._QuietFinder) "
            "for f in sys.meta_path))")
    assert _python(code, _user_env()).stdout.split() == ["2", "True"]
    assert _python(code, _user_env(TF_CPP_MIN_LOG_LEVEL="0")).stdout.split() == ["0", "False"]
    assert _python(code, _user_env(TF_CPP_MIN_LOG_LEVEL="1")).stdout.split() == ["1", "True"]
    app = ("import tools\nfrom absl import app, logging\n"
           "def main(argv):\n    logging.info('info-line')\n    logging.warning('warning-line')\n"
           "app.run(main)\n")
    quiet = _python(app, _user_env()).stderr
    assert "warning-line" in quiet and "info-line" not in quiet
    verbose = subprocess.run([sys.executable, "-c", app, "--verbosity=0"], cwd=REPO_ROOT, env=_user_env(),
                             capture_output=True, text=True, timeout=120).stderr
    assert "warning-line" in verbose and "info-line" in verbose


@pytest.mark.slow
def test_lines_written_above_a_bar_are_not_torn_when_piped():
    code = ("import sys, time; from tqdm import tqdm; from tools import _quiet\n"
            "for i in tqdm(range(3), file=sys.stderr, desc='bar'):\n"
            "    _quiet.write_above_bar(f'line {i}')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=_user_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    # 한 파이프에 섞여도 각 줄은 온전한 한 줄로 (막대 조각 없이), 막대가 끝나기 (100%) 전에 제 차례에 나온다
    pieces = result.stdout.replace("\r", "\n").split("\n")
    assert [piece for piece in pieces if piece.startswith("line")] == ["line 0", "line 1", "line 2"]
    assert [piece for piece in pieces if "line" in piece and not piece.startswith("line")] == []
    assert result.stdout.index("line 2") < result.stdout.index("100%")
