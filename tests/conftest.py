"""테스트 공통 설정: 로그를 줄이고 CPU 만 쓴다."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
