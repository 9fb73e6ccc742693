"""frcnn.eval.validation 테스트: 학습 중 검증기의 검출과 지표가 같은 가중치를 SavedModel 로 내보내 `serve_bytes`·
`runner.evaluate` 로 잰 값과 같고, TensorBoard 이벤트 파일에 그 스텝의 `eval/` 스칼라와 검출을 그린 이미지를 쓴다.

데이터: tests/testing.py 의 작은 VOC 디렉터리를 tiny 설정으로 변환한 레코드. 모델은 학습하지 않은 tiny 모델 (점수 문턱 0
이라 이미지마다 검출이 꽉 찬다; mAP 는 거의 늘 0 이라 검출 자체를 비교한다).
"""

import glob
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.data import records
from frcnn.eval import runner
from frcnn.eval import validation
from frcnn.export import loader
from frcnn.export import saved_model
from frcnn.training import events
from frcnn.training import trainer
from frcnn.viz import draw
from tests.testing import TINY, convert_voc, tiny_config, write_voc_dir

OVERRIDES = "detection.score_threshold=0.0"


@pytest.fixture(scope="module")
def record_data(tmp_path_factory):
    """(레코드 경로 목록, 클래스 이름) — tiny 설정의 trainval 레코드."""
    root = tmp_path_factory.mktemp("validation")
    voc_dir = write_voc_dir(root / "voc")
    output_dir = root / "records"
    convert_voc(voc_dir, output_dir, overrides=f"{TINY},{OVERRIDES}")
    with open(output_dir / "trainval.json") as handle:
        classes = tuple(json.load(handle)["classes"])
    return sorted(glob.glob(str(output_dir / "trainval-*.tfrecord"))), classes


def test_validator_matches_the_exported_model_and_writes_summaries(record_data, tmp_path):
    paths, classes = record_data
    cfg = tiny_config(OVERRIDES)
    keras.utils.set_random_seed(1)
    model = trainer.build_model(cfg, len(classes))
    log_dir = str(tmp_path / "eval")
    validator = validation.Validator(model, cfg, classes, paths, log_dir, draw.draw_detections, num_images=2)
    metrics = validator(7)
    assert set(metrics) == {"voc07_map", "coco_ap", "coco_ap50", "seconds"}
    # 독립 기준: 같은 가중치를 내보낸 SavedModel 을 tools/evaluate 의 함수로 평가한다.
    export_dir = str(tmp_path / "export")
    saved_model.export_saved_model(model, cfg, classes, export_dir)
    exported = loader.load(export_dir, ("serve_bytes",)).serve_bytes
    image_bytes = tf.constant([records.read_example_numpy(serialized)["image_bytes"]
                               for serialized in tf.data.TFRecordDataset(paths).as_numpy_iterator()])
    live, saved = validator.detect_fn(image_bytes), exported(image_bytes)
    assert int(np.sum(saved["num_detections"])) > 0
    for key in ("num_detections", "detection_classes", "detection_class_names"):
        np.testing.assert_array_equal(live[key], saved[key])
    for key in ("detection_boxes", "detection_scores"):
        np.testing.assert_allclose(live[key], saved[key], atol=1e-5)
    report = runner.evaluate(exported, record_paths=paths, metrics=("voc07", "coco"))
    assert metrics["voc07_map"] == pytest.approx(report["map"]["voc07"], abs=1e-6)
    assert metrics["coco_ap"] == pytest.approx(report["coco"]["AP"], abs=1e-6)
    assert metrics["coco_ap50"] == pytest.approx(report["coco"]["AP50"], abs=1e-6)
    summaries = events.read_summaries(log_dir)
    for name in ("voc07_map", "coco_ap", "coco_ap50", "seconds"):
        (step, value), = summaries[f"eval/{name}"]
        assert step == 7 and math.isclose(value, metrics[name], rel_tol=1e-6)
    for index in range(2):
        (step, image), = summaries[f"eval/detections/{index}"]
        # tf.summary.image: [너비, 높이, PNG 바이트]; 원본 크기 (VOC_IMAGES 의 처음 두 장: 40×30, 24×36)
        assert step == 7 and image[2].startswith(b"\x89PNG")
    sizes = [summaries[f"eval/detections/{index}"][0][1][:2] for index in range(2)]
    assert sizes == [[b"40", b"30"], [b"24", b"36"]]
    assert "eval/detections/2" not in summaries
