"""도구의 첫 실행을 조용하게: TensorFlow 가 로그 설정을 읽기 전에 찍는 잡음을 걸러낸다.

`tools/__init__.py` 가 `install()` 을 부르므로 `python -m tools.X`, 콘솔 스크립트, `tools/run.sh` 모두
TensorFlow 를 가져오기 전에 이 설정을 거친다. 사용자가 이미 정한 값이 늘 이긴다:

- `TF_CPP_MIN_LOG_LEVEL`: 사용자가 정하지 않았으면 2 (C++ 의 INFO·WARNING 숨김, ERROR 는 보임).
- TensorFlow 2.21 은 absl C++ 로그가 초기화되기 전에 (즉 `TF_CPP_MIN_LOG_LEVEL` 을 읽기 전에) 몇 줄을 stderr 에
  바로 쓴다: "WARNING: All log messages before absl::InitializeLog() …", `cudart_stub.cc` 의
  "Could not find cuda drivers …" (INFO), 그리고 GPU 드라이버가 없는 기계에서 `cuda_platform.cc` 의
  "failed call to cuInit …" (ERROR). 그래서 `import tensorflow` 와 첫 장치 목록 작성 동안만 stderr (fd 2) 를
  임시 파일로 돌리고, 끝난 뒤 그 줄들에 `TF_CPP_MIN_LOG_LEVEL` 을 그대로 적용해 남는 줄만 stderr 로 되돌린다.
  cuInit 실패 줄은 같은 구간에 "Could not find cuda drivers" 가 있었을 때 (드라이버가 없어 GPU 를 쓸 수 없는
  기계)만 지운다 — 드라이버가 있는데 실패한 진짜 오류는 그대로 보인다. 사용자가 수준을 0 으로 정했으면 아무것도
  거르지 않는다.
- absl 파이썬 로그: `app.run` 은 `--verbosity` 를 주지 않으면 INFO 로 올려 체크포인트 저장기 ("Sharding
  callback duration") 같은 INFO 줄이 진행 막대를 찢는다. 기본값을 WARNING (-1) 으로 두고, 명령줄의
  `--verbosity` / `-v` 는 그대로 이긴다.

진행 막대 (tqdm, stderr) 가 있는 동안 stdout 에 쓰는 줄은 `write_above_bar` 로 쓴다.
"""

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

from absl import flags

_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
_DEFAULT_LEVEL = "2"
# absl C++ 로그 한 줄의 머리: 심각도 글자 + MMDD + 시각 (초기화 전에는 초 자리에 epoch 초) + 스레드 + 파일:줄]
_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] ")
_SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL 0..3 이 숨기기 시작하는 순서
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = "failed call to cuInit"


def min_log_level():
    """적용되는 `TF_CPP_MIN_LOG_LEVEL` (0..3; 읽을 수 없는 값은 TensorFlow 처럼 0)."""
    try:
        return min(max(int(os.environ.get(_LEVEL_VARIABLE, "0")), 0), 3)
    except ValueError:
        return 0


def filter_lines(lines, level):
    """TensorFlow 가 로그 설정 전에 쓴 줄들에서, 수준 `level` 이 숨겼을 줄과 알려진 잡음을 뺀 나머지.

    level 0 이면 아무것도 빼지 않는다. cuInit 실패 (ERROR) 는 드라이버가 없다는 줄이 함께 있을 때만 뺀다.
    """
    if level <= 0:
        return list(lines)
    no_driver = any(_NO_DRIVER in line for line in lines)
    kept = []
    for line in lines:
        match = _LOG_LINE.match(line)
        if line.rstrip("\n") == _ABSL_PREAMBLE:
            continue
        if match and _SEVERITIES.index(match.group(1)) < level:
            continue
        if match and no_driver and _CUINIT_FAILED in line:
            continue
        kept.append(line)
    return kept


class _FilteredStderr:
    """with 구간 동안 fd 2 를 임시 파일로 돌리고, 끝나면 `filter_lines` 가 남긴 줄만 원래 stderr 로 쓴다."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._capture = tempfile.TemporaryFile(mode="w+b")
        os.dup2(self._capture.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._capture.seek(0)
        text = self._capture.read().decode("utf-8", errors="replace")
        self._capture.close()
        kept = filter_lines(text.splitlines(keepends=True), min_log_level())
        if kept:
            os.write(2, "".join(kept).encode("utf-8"))
        return False


class _QuietLoader(importlib.abc.Loader):
    """`tensorflow` 패키지의 원래 로더를 감싸, 가져오기와 첫 장치 목록을 `_FilteredStderr` 안에서 돌린다."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self._loader  # 가져온 뒤에는 원래 로더만 보인다
        with _FilteredStderr():
            self._loader.exec_module(module)
            module.config.list_physical_devices()  # cuInit 은 여기서 (드라이버가 없으면 여기서 실패를 쓴다)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """처음 `import tensorflow` 될 때 한 번만 끼어드는 찾개 (TensorFlow 를 쓰지 않는 도구는 비용이 없다)."""

    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


def _quiet_absl_python():
    """absl 파이썬 로그의 기본 수준을 WARNING 으로 (명령줄의 --verbosity / -v 가 파싱 때 덮어쓴다)."""
    from absl import logging  # noqa: F401  (--verbosity 플래그를 정의한다)
    verbosity = flags.FLAGS["verbosity"]
    if verbosity.using_default_value and not flags.FLAGS.is_parsed():
        flags.FLAGS.verbosity = -1  # 기본값이 아님으로 표시되어 app.run 이 INFO 로 올리지 않는다


def write_above_bar(line):
    """진행 막대 (stderr) 를 지운 채로 한 줄을 stdout 에 쓰고 바로 비운 뒤 막대를 다시 그린다.

    stdout 이 파이프·파일이면 블록 버퍼라서, `tqdm.write` 만으로는 줄이 막대를 다시 그린 뒤에야 나가 막대
    한가운데에 끼어든다 (`… | tee log` 에서 막대가 찢어진다).
    """
    from tqdm import tqdm
    with tqdm.external_write_mode(file=sys.stdout):
        print(line, file=sys.stdout, flush=True)


def install():
    """환경 변수 기본값, `import tensorflow` 의 잡음 거르기, absl 로그 수준을 한 번에 설정한다."""
    os.environ.setdefault(_LEVEL_VARIABLE, _DEFAULT_LEVEL)
    if "tensorflow" not in sys.modules and min_log_level() > 0 and not any(
            isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())
    _quiet_absl_python()
