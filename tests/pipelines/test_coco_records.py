"""COCO 소스 레코드 테스트: 입력 파이프라인의 `gt_crowd`, 레코드에 미리 계산한 앵커 라벨의 crowd 규칙 (numpy IoA 로
독립 확인, 원본과 뒤집기 둘 다), is_crowd 특징이 없는 옛 (VOC) 레코드는 모두 False, 그리고 COCO 레코드로 몇 스텝
학습한 모델을 내보내 COCO JSON 을 정답으로 평가하기.

데이터: tests/testing.py 의 `COCO_JSON` (crowd 두 개: 이미지 10 의 dog [0, 0, 20, 15], 이미지 13 의 person) 을 tiny 설정
(캔버스 64×64 하나) 으로 변환한 레코드.
용어: 박스 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀, 앵커 코드 −1 무시 / 0 음성 / k ≥ 1 GT k−1 의 양성.
"""

import glob
import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import record_spec
from frcnn.data import coco
from frcnn.data import records
from frcnn.eval import runner
from frcnn.export import loader
from frcnn.export import saved_model
from frcnn.ops import anchors as anchors_lib
from frcnn.training import loop
from frcnn.training import trainer
from pipelines import convert
from pipelines import input_pipeline
from tests.testing import TINY, convert_voc, tiny_config, write_coco_dir, write_voc_dir


def _dataset(pattern, config, *args, **kwargs):
    """`RecordSpec.read` → `build_dataset` (학습 도구처럼 명세를 한 번 읽는다)."""
    return input_pipeline.build_dataset(record_spec.RecordSpec.read(pattern, config), *args, **kwargs)


def _numpy_ioa(anchors, boxes):
    """[A, 4] × [G, 4] → [A, G] 교집합 / 앵커 넓이 (독립 numpy 참조)."""
    top = np.maximum(anchors[:, None, 0], boxes[None, :, 0])
    left = np.maximum(anchors[:, None, 1], boxes[None, :, 1])
    bottom = np.minimum(anchors[:, None, 2], boxes[None, :, 2])
    right = np.minimum(anchors[:, None, 3], boxes[None, :, 3])
    intersection = np.maximum(bottom - top, 0) * np.maximum(right - left, 0)
    area = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    return intersection / area[:, None]


@pytest.fixture(scope="module")
def coco_records(tmp_path_factory):
    """(레코드 glob, COCO JSON 경로, 이미지 디렉터리) — tiny 설정의 COCO 레코드."""
    root = tmp_path_factory.mktemp("coco_records")
    annotations_path, images_dir = write_coco_dir(root)
    options = convert.ConvertOptions(output_dir=str(root / "records"), split="train")
    convert.convert(lambda: coco.open_coco_source(annotations_path, images_dir, None),
                    record_spec.RecordSpec.from_config(tiny_config()), options)
    return str(root / "records" / "train-*.tfrecord"), annotations_path, images_dir


@pytest.mark.parametrize("flip", [False, True])
def test_crowd_flags_and_anchor_labels_follow_the_crowd_rule(coco_records, flip):
    pattern, _, _ = coco_records
    cfg = tiny_config()
    batch = next(iter(_dataset(pattern, cfg, False, batch_size=4, flip=flip, canvas=0)))
    crowd_by_image = {source_id.decode(): crowd[:3].tolist()
                      for source_id, crowd in zip(batch["source_ids"].numpy(), batch["gt_crowd"].numpy())}
    assert crowd_by_image == {"10": [False, False, True], "11": [False] * 3, "12": [False] * 3,
                              "13": [False, True, False]}
    anchors = anchors_lib.anchors_for_canvas(cfg, (64, 64)).numpy()
    affected = 0
    for gt_boxes, is_crowd, codes in zip(batch["gt_boxes"].numpy(), batch["gt_crowd"].numpy(),
                                         batch["anchor_matches"].numpy()):
        positives = codes[codes > 0] - 1
        assert not is_crowd[positives].any()  # crowd 물체는 양성이 되지 않는다
        if is_crowd.any():
            inside_crowd = (_numpy_ioa(anchors, gt_boxes[is_crowd]) > 0.7).any(axis=1)
            assert not (codes[inside_crowd] == 0).any()  # crowd 안의 앵커는 음성이 아니다
            affected += int((codes[inside_crowd] == -1).sum())
    assert affected > 0


def test_records_without_the_crowd_feature_read_as_not_crowd(tmp_path):
    """is_crowd 가 없는 레코드 (이 기능 전의 VOC 레코드) — 특징을 지운 사본으로 확인한다."""
    voc_dir = write_voc_dir(tmp_path / "voc")
    summary = convert_voc(voc_dir, tmp_path / "records", overrides=TINY)
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    for path in summary["files"]:
        target = str(old_dir / os.path.basename(path))
        if path.endswith(".json"):
            shutil.copy(path, target)
            continue
        with tf.io.TFRecordWriter(target) as writer:
            for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
                example = tf.train.Example.FromString(serialized)
                del example.features.feature[records.IS_CROWD]
                writer.write(example.SerializeToString())
    parsed = records.parse_example(tf.constant(example.SerializeToString()))
    assert parsed["is_crowd"].numpy().tolist() == [False] * len(parsed["classes"].numpy()) != []
    old_pattern = str(old_dir / "trainval-*.tfrecord")
    batch = next(iter(_dataset(old_pattern, tiny_config(), False, batch_size=4, canvas=0)))
    assert batch["gt_crowd"].shape == batch["gt_classes"].shape and not batch["gt_crowd"].numpy().any()


@pytest.mark.slow  # 학습 4 스텝 + 내보내기 + 평가 (CPU 로 약 25 초)
def test_coco_records_train_and_the_model_evaluates_on_the_coco_json(coco_records, tmp_path):
    pattern, annotations_path, images_dir = coco_records
    cfg = tiny_config("train.num_steps=4,detection.score_threshold=0.0")
    spec = record_spec.RecordSpec.read(pattern, cfg)
    model_dir = str(tmp_path / "run")
    tf.random.set_seed(0)

    def make_dataset(batch_size, canvas):
        return input_pipeline.build_dataset(spec, True, batch_size, canvas=canvas)

    result = loop.train(spec, pattern, model_dir, make_dataset)
    assert result["step"] == 4 and all(math.isfinite(value) for value in result["losses"].values())
    model, _, classes, _ = trainer.load_trained_model(model_dir)
    assert classes == ("dog", "cat", "person")
    export_dir = str(tmp_path / "export")
    saved_model.export_saved_model(model, cfg, classes, export_dir)
    detect_fn = loader.load(export_dir, ("serve_bytes",)).serve_bytes
    report = runner.evaluate(detect_fn, coco_annotations=annotations_path, coco_images_dir=images_dir)
    assert report["num_images"] == 4 and [item["name"] for item in report["classes"]] == list(classes)
    assert report["coco"]["AP"] is not None and 0 <= report["coco"]["AP"] <= 1
    assert [item["num_gt"] for item in report["classes"]] == [1, 2, 1]
    with open(os.path.join(model_dir, "run.json")) as handle:
        assert json.load(handle)["classes"] == list(classes)
    assert glob.glob(os.path.join(model_dir, "checkpoints", "ckpt-4*"))
