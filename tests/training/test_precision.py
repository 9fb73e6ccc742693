"""frcnn.training.precision 테스트: 손실 스케일은 float16 계산에만, 라이브러리는 전역 정책을 읽기만 한다."""

import keras
import pytest

from frcnn.training import precision


@pytest.fixture
def global_policy():
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy, scaling", [
    ("float32", False), ("mixed_bfloat16", False), ("mixed_float16", True)])
def test_loss_scaling_only_for_float16(global_policy, policy, scaling):
    global_policy(policy)
    assert precision.needs_loss_scaling() is scaling
    assert precision.active_policy_name() == policy
    assert keras.mixed_precision.global_policy().name == policy  # 읽기만 하고 바꾸지 않는다


def test_mixed_policy_on_cpu_is_bfloat16():
    assert precision.mixed_policy_name() == "mixed_bfloat16"  # 테스트는 GPU 를 숨긴다 (conftest)
