"""두 함수를 같은 프로세스에서 번갈아 재고 중앙값의 비율을 목표와 비교한다 (VGG16 벤치마크 둘이 같이 쓴다),
그리고 `run_tool`: tools 의 도구 하나를 하위 프로세스로 돌려 벽시계·CPU 초를 잰다 (학습 벤치마크들이 같이 쓴다).

용어: 후보(candidate) 는 잴 대상 (학습 스텝, 내보낸 모델), 기준(baseline) 은 VGG16 합성곱만.
"""

import resource
import statistics
import subprocess
import sys
import time

import tensorflow as tf


def run_tool(name, *args):
    """`python -m tools.<name> args…` 를 돌린다. 반환: (벽시계 초, CPU 초). 실패하면 stderr 끝을 보이며 멈춘다."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", f"tools.{name}", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"tools.{name} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(function, *args, **kwargs):
    """한 번 호출하고 결과를 호스트로 가져오기까지의 (초, 결과)."""
    start = time.perf_counter()
    result = tf.nest.map_structure(lambda value: value.numpy(), function(*args, **kwargs))
    return time.perf_counter() - start, result


def compare(candidate, baseline, num_runs, target_ratio):
    """워밍업 한 번 뒤 번갈아 num_runs 번 재고 중앙값·비율을 출력한다.

    Args:
      candidate: (이름, 인자 없는 함수).
      baseline: (이름, 인자 없는 함수).
      num_runs: 잴 횟수.
      target_ratio: 비율(후보 / 기준) 목표 상한.

    Returns:
      (후보 중앙값 초, 기준 중앙값 초, 비율).
    """
    (candidate_name, candidate_fn), (baseline_name, baseline_fn) = candidate, baseline
    warm_candidate, warm_baseline = timed(candidate_fn)[0], timed(baseline_fn)[0]
    print(f"warm-up (incl. tracing): {candidate_name} {warm_candidate:.2f} s, "
          f"{baseline_name} {warm_baseline:.2f} s")
    candidate_times, baseline_times = [], []
    for run in range(num_runs):
        candidate_times.append(timed(candidate_fn)[0])
        baseline_times.append(timed(baseline_fn)[0])
        ratio = candidate_times[-1] / baseline_times[-1]
        print(f"run {run + 1}: {candidate_name} {candidate_times[-1]:.3f} s, "
              f"{baseline_name} {baseline_times[-1]:.3f} s, ratio {ratio:.3f}")
    candidate_median = statistics.median(candidate_times)
    baseline_median = statistics.median(baseline_times)
    ratio = candidate_median / baseline_median
    print(f"{candidate_name} (median of {num_runs}): {candidate_median:.3f} s")
    print(f"{baseline_name} (median of {num_runs}): {baseline_median:.3f} s")
    print(f"ratio: {ratio:.3f} (target ≤ {target_ratio}) -> {'PASS' if ratio <= target_ratio else 'MISS'}")
    return candidate_median, baseline_median, ratio
