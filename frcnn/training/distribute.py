"""분산 학습: tf.distribute 전략 고르기와 워커별 출력 디렉터리.

용어:
  복제본(replica): 전략이 학습 스텝을 나눠 돌리는 장치 하나. 전역 배치는 복제본들에 나뉜다.
  워커(worker): 다중 워커 학습(TF_CONFIG)의 프로세스 하나. chief 는 'chief' 작업이나, 없으면 worker 0.
  워커 디렉터리: chief 는 model_dir/NAME, 다른 워커는 model_dir/.worker-K/NAME (학습이 끝나면 지운다).
"""

import os

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "one_device")


def _resolve_auto():
    """auto: TF_CONFIG 가 있으면 다중 워커, GPU 가 있으면 Mirrored, 아니면 기본 전략."""
    if os.environ.get("TF_CONFIG"):
        return "multi_worker"
    if tf.config.list_physical_devices("GPU"):
        return "mirrored"
    return "default"


def make_strategy(name):
    """이름으로 분산 전략을 만든다.

    다중 워커 전략은 집합 연산 설정 때문에 다른 TF 연산보다 먼저 만들어야 한다.

    Args:
      name: `STRATEGIES` 중 하나.

    Returns:
      `tf.distribute.Strategy`.

    Raises:
      ValueError: 모르는 이름.
    """
    if name == "auto":
        name = _resolve_auto()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "one_device":
        device = "/gpu:0" if tf.config.list_physical_devices("GPU") else "/cpu:0"
        return tf.distribute.OneDeviceStrategy(device)
    raise ValueError(f"unknown strategy '{name}' (expected {', '.join(STRATEGIES)})")


def worker_role(strategy):
    """(chief 인가, 작업 번호). 다중 워커(TF_CONFIG)에서 chief 는 'chief' 작업이나, 없으면 worker 0 이다."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type is None:
        return True, 0
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in cluster)
    return chief, task_id


def is_chief(strategy):
    return worker_role(strategy)[0]


def worker_dir(model_dir, strategy, name):
    """이 워커가 쓸 디렉터리: chief 는 model_dir/name, 다른 워커는 model_dir/.worker-K/name.

    다중 워커에서는 모든 워커가 저장(집합 연산)에 참여해야 하지만 파일은 chief 것만 남긴다
    (TF 다중 워커 안내와 같다). 모든 워커는 chief 의 체크포인트에서 복원한다.
    """
    chief, task_id = worker_role(strategy)
    return os.path.join(model_dir, name) if chief else os.path.join(model_dir, f".worker-{task_id}", name)
