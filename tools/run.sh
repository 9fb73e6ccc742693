#!/usr/bin/env bash
# frcnn 의 두 명령: `bash tools/run.sh demo` (전체 파이프라인 데모), `bash tools/run.sh test` (테스트);
# CI 는 그 앞에 `bash tools/run.sh lint` (flake8, 가져오기 방향) 를 부른다.
# 저장소의 .venv 가상환경을 만들거나 다시 쓰고, 필요한 패키지를 설치한 뒤 실행한다. 로그 수준의 기본값은
# tools/_quiet.py 한 곳에서 정한다 (python -m tools.X 도 같다).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv
STAMP=$VENV/.frcnn-installed
# 설치할 추가 묶음. CI 는 .ci/run 에서 FRCNN_EXTRAS=test,deploy,torch 로 torchvision 일치 시험까지 설치한다
# (~4.5 GB); 사용자의 `bash tools/run.sh test` 는 torch 없이 그 시험들을 건너뛴다.
EXTRAS=${FRCNN_EXTRAS:-test,deploy}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[run] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# setup.cfg 나 추가 묶음이 바뀌었을 때만 다시 설치한다 (도장 파일이 설치한 묶음을 적어 둔다).
if [ ! -f "$STAMP" ] || [ setup.cfg -nt "$STAMP" ] || [ "$(cat "$STAMP")" != "$EXTRAS" ]; then
  echo "[run] installing frcnn[$EXTRAS] and its dependencies (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
  echo "$EXTRAS" > "$STAMP"
fi
command=${1:-}
shift || true
case "$command" in
  demo) exec "$VENV/bin/python" -m tools.demo "$@" ;;
  test) exec "$VENV/bin/python" -m pytest -q -n 2 --dist loadfile "$@" ;;
  lint)
    # flake8 (setup.cfg 의 설정) 과 가져오기 방향 계약 (setup.cfg 의 [importlinter]).
    "$VENV/bin/python" -m flake8 frcnn pipelines tools tests benchmarks
    exec "$VENV/bin/lint-imports" --no-cache ;;
  *) echo "usage: bash tools/run.sh demo|test|lint [extra flags]" >&2; exit 2 ;;
esac
