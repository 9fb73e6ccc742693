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


@pytest.mark.parametrize("has_bfloat16, policy", [(True, "mixed_bfloat16"), (False, "float32")])
def test_mixed_policy_on_cpu_follows_its_bfloat16_instructions(monkeypatch, has_bfloat16, policy):
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: has_bfloat16)
    assert precision.mixed_policy_name() == policy  # 테스트는 GPU 를 숨긴다 (conftest)


@pytest.mark.parametrize("flags, expected", [("fpu sse avx2 avx512f avx512_bf16 amx_tile", True),
                                             ("fpu avx2 amx_bf16", True), ("fpu sse avx2 fma", False)])
def test_cpu_has_bfloat16_reads_the_cpuinfo_flags(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                       f"flags\t\t: {flags}\n")
    assert precision.cpu_has_bfloat16(str(cpuinfo)) is expected
    assert precision.cpu_has_bfloat16(str(tmp_path / "missing")) is False
