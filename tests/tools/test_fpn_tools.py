"""FPN 프리셋이 도구 사슬 전체를 다른 프리셋과 똑같이 지나가는지: make_tfrecords → train (학습 중 검증) →
export (SavedModel, LiteRT, ONNX) → evaluate → detect → serve.

작은 `cpu_small_fpn` (tests/testing.py 의 TINY_FPN, torchvision 크기 규칙) 을 subprocess 도구로 돌리고, 서로 다른
길로 얻은 검출을 맞춘다: LiteRT·ONNX 의 mAP = SavedModel 의 mAP, tools/detect 의 detections.json = SavedModel 을
직접 부른 결과, REST 서버의 응답 = SavedModel 을 직접 부른 결과. 점수 문턱은 0 (몇 스텝 배운 모델도 검출을 낸다).

용어: 런 = tools/train 의 출력 디렉터리 (run.json + checkpoints/).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import REPO_ROOT, TINY_FPN, rest_predict, write_voc_dir

pytestmark = pytest.mark.slow  # 모든 도구를 subprocess 로 돌린다
OVERRIDES = TINY_FPN + ",detection.score_threshold=0.0,train.checkpoint_every=4"


def _run(tool, *args, timeout=600):
    result = subprocess.run([sys.executable, "-m", f"tools.{tool}", *args], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"tools.{tool} failed:\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(VOC 디렉터리, 레코드 glob, 내보낸 디렉터리, 학습 stdout): 4 스텝 학습, 2 스텝마다 검증."""
    root = tmp_path_factory.mktemp("fpn_tools")
    voc_dir = write_voc_dir(root)
    records_dir = str(root / "records")
    _run("make_tfrecords", f"--voc_dir={voc_dir}", f"--output_dir={records_dir}", "--config=cpu_small_fpn",
         f"--params_override={OVERRIDES}", "--noprogress")
    records = os.path.join(records_dir, "trainval-*.tfrecord")
    model_dir, export_dir = str(root / "run"), str(root / "export")
    trained = _run("train", f"--records={records}", f"--model_dir={model_dir}", "--config=cpu_small_fpn",
                   f"--params_override={OVERRIDES}", "--num_steps=4", "--eval_every=2",
                   f"--eval_records={records}", "--nomixed_precision", "--noprogress")
    _run("export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--checkpoint=best",
         "--formats=saved_model,tflite,onnx")
    return voc_dir, records, export_dir, trained.stdout


def _voc07(model, records, output):
    _run("evaluate", f"--model={model}", f"--records={records}", "--metrics=voc07", f"--output={output}",
         "--noprogress")
    with open(output) as handle:
        return json.load(handle)["map"]["voc07"]


def _images(voc_dir):
    folder = os.path.join(voc_dir, "JPEGImages")
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))]


def _direct(export_dir, image_path):
    """SavedModel 의 serve_bytes 를 직접 부른 검출 (점수 > 0 인 것만, 점수 순)."""
    detect = tf.saved_model.load(export_dir).signatures["serve_bytes"]
    with open(image_path, "rb") as handle:
        outputs = detect(image_bytes=tf.constant([handle.read()]))
    count = int(outputs["num_detections"][0])
    return (outputs["detection_boxes"][0, :count].numpy(), outputs["detection_scores"][0, :count].numpy(),
            outputs["detection_classes"][0, :count].numpy())


def test_validation_export_and_evaluation_agree_across_formats(exported, tmp_path):
    _, records, export_dir, train_stdout = exported
    assert "validation at step 2" in train_stdout and "validation at step 4" in train_stdout
    saved = _voc07(export_dir, records, str(tmp_path / "saved.json"))
    for name in ("model.tflite", "model.onnx"):
        portable = _voc07(os.path.join(export_dir, name), records, str(tmp_path / f"{name}.json"))
        assert portable == pytest.approx(saved, abs=2e-3), name


def test_detect_writes_what_the_saved_model_returns(exported, tmp_path):
    voc_dir, _, export_dir, _ = exported
    image_path = _images(voc_dir)[0]
    _run("detect", f"--saved_model={export_dir}", f"--images={image_path}", f"--output_dir={tmp_path}",
         "--score_threshold=0.0")
    with open(tmp_path / "detections.json") as handle:
        written = json.load(handle)["images"][0]
    boxes, scores, _ = _direct(export_dir, image_path)
    assert written["num_detections"] == len(scores) > 0
    got = np.array([item["box_normalized"] for item in written["detections"]])
    np.testing.assert_allclose(got, boxes[np.argsort(-scores, kind="stable")], atol=1e-5)


def test_rest_server_answers_what_the_saved_model_returns(exported):
    voc_dir, _, export_dir, _ = exported
    image_path = _images(voc_dir)[-1]
    served = rest_predict(export_dir, image_path, model_name="fpn")
    boxes, scores, classes = _direct(export_dir, image_path)
    count = int(served["num_detections"])
    assert count == len(scores)
    np.testing.assert_allclose(np.array(served["detection_boxes"])[:count], boxes, atol=1e-5)
    np.testing.assert_allclose(np.array(served["detection_scores"])[:count], scores, atol=1e-6)
    np.testing.assert_array_equal(np.array(served["detection_classes"])[:count], classes)
