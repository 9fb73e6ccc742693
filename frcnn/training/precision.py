"""혼합 정밀도: 어떤 Keras dtype 정책을 쓸지, 그 정책에 손실 스케일이 필요한지.

용어:
  dtype 정책(policy): Keras 층이 계산(compute)과 변수(variable)에 쓰는 dtype. 혼합 정책은 float16 이나
    bfloat16 으로 계산하고 변수는 float32 로 둔다 (체크포인트도 float32).
  손실 스케일(loss scaling): float16 기울기가 0 으로 사라지지 않도록 손실을 키웠다가 기울기를 되돌린다.
    bfloat16 은 float32 와 지수 범위가 같아 필요 없다.

전역 정책은 프로세스 전체의 상태라 라이브러리는 바꾸지 않는다: 바이너리(`tools/train.py`)가
`keras.mixed_precision.set_global_policy(mixed_policy_name())` 로 정하고, 라이브러리는 활성 정책을 읽기만 한다.
"""

import re

import keras
import tensorflow as tf

# bfloat16 행렬 곱을 명령으로 가진 x86 CPU 의 /proc/cpuinfo 플래그 (없으면 TF 가 bfloat16 을 흉내 내 float32 보다
# 훨씬 느리다: AVX2 만 있는 2코어 VM 에서 cpu_small 학습이 3.5 대 18.3 images/s, benchmarks/RESULTS.md 14 절).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """이 CPU 가 bfloat16 명령 (`BFLOAT16_CPU_FLAGS`) 을 가졌는가. 읽을 수 없으면 (Linux 가 아님 등) False."""
    try:
        with open(cpuinfo_path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return False
    flags = set(" ".join(re.findall(r"^flags\s*:(.*)$", text, re.MULTILINE)).split())
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def mixed_policy_name():
    """이 기계의 혼합 정밀도 정책 이름: GPU 면 mixed_float16, bfloat16 명령이 있는 CPU 면 mixed_bfloat16, 아니면
    float32 (흉내 낸 bfloat16 은 더 느리기만 하다)."""
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


def needs_loss_scaling():
    """활성 전역 정책이 float16 으로 계산하는가 (그러면 옵티마이저에 손실 스케일을 건다)."""
    return keras.mixed_precision.global_policy().compute_dtype == "float16"


def active_policy_name():
    """활성 전역 정책의 이름 (예: float32, mixed_bfloat16)."""
    return keras.mixed_precision.global_policy().name
