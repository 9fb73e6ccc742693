"""얇은 absl 바이너리 (플래그 → 설정 → 라이브러리 호출 하나), 그리고 그 곁의 파일 처리와 샘플 데이터 생성기.

모든 도구는 이 패키지를 먼저 가져오므로, TensorFlow 를 가져오기 전의 로그 설정 (`tools._quiet`) 이 여기서 한 번
적용된다 (사용자가 정한 `TF_CPP_MIN_LOG_LEVEL` 과 `--verbosity` 가 이긴다).
"""

from tools import _quiet

_quiet.install()
