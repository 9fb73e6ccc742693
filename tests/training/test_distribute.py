"""분산 전략 이름과 워커 역할·디렉터리 테스트 (TF_CONFIG 대신 클러스터 리졸버를 직접 준다).

용어: chief 는 'chief' 작업이나, 없으면 worker 0; 다른 워커는 model_dir/.worker-K 에 쓴다.
"""

import os
import types

import pytest
import tensorflow as tf

from frcnn.training import distribute


def _strategy(cluster, task_type, task_id):
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
    return types.SimpleNamespace(cluster_resolver=resolver)


def test_worker_roles_and_directories():
    workers = {"worker": ["a:1", "b:2"]}
    assert distribute.worker_role(_strategy(workers, "worker", 0)) == (True, 0)
    assert distribute.worker_dir("m", _strategy(workers, "worker", 1), "train") == os.path.join(
        "m", ".worker-1", "train")
    with_chief = {"chief": ["c:0"], "worker": ["a:1"]}
    assert distribute.worker_role(_strategy(with_chief, "worker", 0)) == (False, 0)
    assert distribute.worker_role(_strategy(with_chief, "chief", 0)) == (True, 0)
    default = tf.distribute.get_strategy()
    assert distribute.worker_dir("m", default, "checkpoints") == os.path.join("m", "checkpoints")


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'tpu'.*one_device"):
        distribute.make_strategy("tpu")
