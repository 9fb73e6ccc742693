"""검증하며 학습 (`loop.train` 의 make_validator) 과 최고 체크포인트 테스트: 검증 시점 (eval_every 배수와 마지막
스텝) 과 루프 자르기, best/ 가 mAP 가 가장 높은 스텝의 가중치를 담고 run.json 에 기록됨, 이어 학습이 최고를 이어
감, `load_trained_model(checkpoint="best")`.

검증기는 스텝마다 정해 둔 mAP 를 돌려주는 가짜다 (평가 자체는 tests/eval/test_validation.py 가 본다). 데이터는
tests/testing.py 의 합성 배치.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from frcnn.training import best_checkpoint
from frcnn.data import record_spec
from frcnn.training import loop
from frcnn.training import run_file
from frcnn.training import trainer
from tests.testing import make_batches, tiny_config

EVAL_RECORDS = "val-*.tfrecord"


class ScriptedValidator:
    """스텝 → mAP 표대로 답하고, 부른 스텝, 그때의 모델 가중치 하나, 그때 run.json 의 최고 스텝을 적어 둔다."""

    def __init__(self, values, calls, model_dir):
        self.values, self.calls, self.model_dir = values, calls, model_dir

    def __call__(self, step):
        best = run_file.read_best(self.model_dir)
        self.calls.append((step, self.model.rpn_head.weights[0].numpy().copy(), best and best["step"]))
        return {"voc07_map": self.values[step], "coco_ap": 0.0, "seconds": 0.0}


def _train(cfg, model_dir, values, calls, batches=None, messages=None):
    def make_validator(model, strategy):
        validator = ScriptedValidator(values, calls, model_dir)
        validator.model = model
        return validator

    return loop.train(record_spec.RecordSpec.from_config(cfg, ["a", "b"], [1]), "x", model_dir,
                      lambda batch_size, canvas: make_batches(cfg, batches), progress=None,
                      log=(messages if messages is not None else []).append,
                      eval_records=EVAL_RECORDS, make_validator=make_validator)


def _run_info(model_dir):
    with open(os.path.join(model_dir, "run.json")) as handle:
        return json.load(handle)


def _best_files(model_dir):
    return sorted(name for name in os.listdir(best_checkpoint.best_checkpoint_dir(model_dir))
                  if name.startswith("ckpt-") and name.endswith(".index"))


def _saved_rpn_kernel(path, model):
    """체크포인트 path 에 저장된 rpn_head 첫 변수 (모델 객체 그래프로 찾는다)."""
    restored = trainer.build_model(model.config, model.num_classes)
    tf.train.Checkpoint(model=restored).restore(path).expect_partial()
    return restored.rpn_head.weights[0].numpy()


def test_eval_steps_best_checkpoint_and_resume(tmp_path):
    # checkpoint_every 가 커도 루프는 eval_every (3) 배수에서 잘린다: 검증은 3, 6 과 마지막 7.
    cfg = tiny_config("train.num_steps=7,train.eval_every=3,train.checkpoint_every=100,"
                      "train.steps_per_loop=5")
    model_dir = str(tmp_path / "run")
    calls, messages = [], []
    result = _train(cfg, model_dir, {3: 0.2, 6: 0.5, 7: 0.4}, calls, messages=messages)
    assert result["step"] == 7
    assert [step for step, _, _ in calls] == [3, 6, 7]
    assert messages[-1] == ("validation at step 7: voc07_map=0.4000 coco_ap=0.0000 (0.0 s); "
                            "best 0.5000 at step 6")
    # best/ 는 mAP 가 가장 높았던 스텝 6 의 가중치 하나만 담고, run.json 이 그 스텝과 mAP 를 가리킨다.
    best = _run_info(model_dir)["best"]
    assert best == {"step": 6, "voc07_map": 0.5, "eval_records": EVAL_RECORDS,
                    "checkpoint": os.path.join(best_checkpoint.best_checkpoint_dir(model_dir), "ckpt-6")}
    assert _best_files(model_dir) == ["ckpt-6.index"]
    model, _, _, path = trainer.load_trained_model(model_dir, "best")
    assert path == best["checkpoint"]
    weights_at = {step: weights for step, weights, _ in calls}
    np.testing.assert_array_equal(model.rpn_head.weights[0].numpy(), weights_at[6])
    assert not np.array_equal(weights_at[6], weights_at[7])
    # 롤링 체크포인트 (최신) 는 그대로 마지막 스텝이다.
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("ckpt-7")


def test_resume_keeps_the_best_so_far(tmp_path):
    cfg = tiny_config("train.num_steps=8,train.eval_every=2,train.checkpoint_every=2")
    model_dir = str(tmp_path / "run")
    calls = []
    # 5 배치 뒤 데이터가 끊겨 중단된다: 스텝 2, 4 에서 검증 (4 가 최고), 체크포인트 ckpt-4.
    with pytest.raises(ValueError, match="has no records"):
        _train(cfg, model_dir, {2: 0.3, 4: 0.6}, calls, batches=5)
    assert [step for step, _, _ in calls] == [2, 4] and _run_info(model_dir)["best"]["step"] == 4
    # 이어 학습: run.json 을 다시 써도 최고 기록은 남고, 더 낮은 mAP (6) 는 최고를 바꾸지 않으며 (스텝 8 의 평가
    # 때에도 best 는 4), 더 높은 mAP (8) 는 바꾸고 이전 best 파일을 지운다.
    _train(cfg, model_dir, {6: 0.59, 8: 0.61}, calls)
    assert [(step, best) for step, _, best in calls] == [(2, None), (4, 2), (6, 4), (8, 4)]
    assert _run_info(model_dir)["best"]["step"] == 8 and _run_info(model_dir)["best"]["voc07_map"] == 0.61
    assert _best_files(model_dir) == ["ckpt-8.index"]


def test_best_needs_a_validated_run(tmp_path):
    cfg = tiny_config("train.num_steps=2")
    model_dir = str(tmp_path / "plain")
    loop.train(record_spec.RecordSpec.from_config(cfg, ["a", "b"], [1]), "x", model_dir, lambda batch_size,
               canvas: make_batches(cfg))
    assert "best" not in _run_info(model_dir)
    with pytest.raises(ValueError, match=r"checkpoints/best: no best checkpoint; train with --eval_records"):
        trainer.load_trained_model(model_dir, "best")


def test_a_finished_run_gets_its_final_validation(tmp_path):
    # 마지막 체크포인트 뒤 검증 전에 멈춘 실행처럼: 검증 없이 끝까지 학습한 뒤 검증과 함께 다시 부르면 마지막
    # 가중치를 한 번 평가해 best/ 에 둔다; 한 번 더 부르면 (최고가 마지막 스텝이라) 평가하지 않는다.
    cfg = tiny_config("train.num_steps=4,train.eval_every=2,train.checkpoint_every=2")
    model_dir = str(tmp_path / "run")
    loop.train(record_spec.RecordSpec.from_config(cfg, ["a", "b"], [1]), "x", model_dir, lambda batch_size,
               canvas: make_batches(cfg))
    calls, messages = [], []
    result = _train(cfg, model_dir, {4: 0.3}, calls, messages=messages)
    assert result["step"] == 4 and [step for step, _, _ in calls] == [4]
    assert messages[-1] == "validation at step 4: voc07_map=0.3000 coco_ap=0.0000 (0.0 s); new best"
    assert _run_info(model_dir)["best"]["step"] == 4 and _best_files(model_dir) == ["ckpt-4.index"]
    _train(cfg, model_dir, {4: 0.3}, calls)
    assert len(calls) == 1
