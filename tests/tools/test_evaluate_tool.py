"""tools/evaluate.py 테스트: 테스트 안에서 만든 작은 SavedModel 을 하위 프로세스로 평가한다.

용어: 정규화 박스 [ymin, xmin, ymax, xmax] ∈ [0, 1], VOC 박스 (xmin, ymin, xmax, ymax) 1-based 픽셀.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.testing import REPO_ROOT, write_voc_dir

# 이미지 id → (W, H, [(이름, VOC 박스, difficult, truncated)]). 고정 검출을 각 이미지의 VOC 픽셀로 바꾸면:
#   cat (0.1..0.5) → 이미지 1 (11,11,50,50), 이미지 2 (21,11,100,50);
#   dog 0.7 (0.6..0.9) → GT 없음 (FP); dog 0.6 (0..0.3) → 이미지 1 (1,1,30,30), 이미지 2 (1,1,60,30).
FIXED_DATASET = {
    "000001": (100, 100, [("cat", ("11", "11", "50", "50"), "0", None),
                          ("dog", ("1", "1", "30", "30"), "0", None)]),
    "000002": (200, 100, [("cat", ("21", "11", "100", "50"), "0", None),
                          ("dog", ("1", "1", "60", "30"), "0", None),
                          ("bird", ("100", "60", "150", "90"), "0", None)]),
}


class _FixedDetector(tf.Module):
    """모든 이미지에 같은 정규화 검출을 돌려주는 SavedModel (serve_bytes 서명)."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        batch = tf.shape(image_bytes)[0]

        def tile(value):
            value = tf.constant(value)
            return tf.tile(value[tf.newaxis], tf.concat([[batch], tf.ones([tf.rank(value)], tf.int32)], 0))

        return {
            "detection_boxes": tile(np.array([[0.1, 0.1, 0.5, 0.5], [0.6, 0.6, 0.9, 0.9],
                                              [0.0, 0.0, 0.3, 0.3], [0, 0, 0, 0]], np.float32)),
            "detection_scores": tile(np.array([0.9, 0.7, 0.6, 0.0], np.float32)),
            "detection_classes": tile(np.array([8, 12, 12, 0], np.int32)),
            "detection_class_names": tile(np.array([b"cat", b"dog", b"dog", b""])),
            "num_detections": tf.fill([batch], tf.constant(3, tf.int32)),
        }


def _run_tool(*args):
    return subprocess.run([sys.executable, "-m", "tools.evaluate", "--noprogress", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def _table_rows(stdout):
    """표의 줄을 첫 칸 (COCO 줄은 두 칸) → 칸 목록으로."""
    rows = {}
    for line in stdout.splitlines():
        if not line.strip() or line.startswith("-"):
            continue
        cells = line.split()
        rows[" ".join(cells[:2]) if line.startswith("COCO") else cells[0]] = cells
    return rows


@pytest.mark.slow
def test_evaluate_tool_with_saved_model(tmp_path):
    # 손 계산: cat 2 TP → 1. dog: 0.7 FP, 0.7 FP, 0.6 TP, 0.6 TP → recall [0, 0, .5, 1],
    # precision [0, 0, 1/3, 1/2] → 11점·전 점 모두 0.5. bird: 검출 없음 → 0. mAP = 1.5 / 3 = 0.5.
    # COCO: IoU ≈ 1 인 TP 와 IoU 0 인 FP → AP = 0.5.
    voc_path = write_voc_dir(tmp_path, FIXED_DATASET, split="test")
    saved_model = str(tmp_path / "saved_model")
    module = _FixedDetector()
    tf.saved_model.save(module, saved_model, signatures={"serve_bytes": module.serve_bytes})
    output_path = str(tmp_path / "report.json")
    result = _run_tool(f"--saved_model={saved_model}", f"--voc_dir={voc_path}", f"--output={output_path}",
                       "--batch_size=2")
    assert result.returncode == 0, result.stderr
    rows = _table_rows(result.stdout)
    assert rows["cat"][1:] == ["2", "1.0000", "1.0000"]
    assert rows["dog"][1:] == ["2", "0.5000", "0.5000"]
    assert rows["bird"][1:] == ["1", "0.0000", "0.0000"]
    assert rows["person"][1:] == ["0", "-", "-"]
    assert rows["mAP"][1:] == ["5", "0.5000", "0.5000"]
    assert rows["COCO AP"][2:] == ["0.5000"]
    with open(output_path) as handle:
        written = json.load(handle)
    assert written["map"] == pytest.approx({"voc07": 0.5, "voc12": 0.5})
    assert written["num_images"] == 2 and written["source"]["saved_model"] == saved_model

    # 잘못된 입력: 없는 분할 → 파일 이름을 담은 한 줄 오류, 0 이 아닌 종료 코드, 보고서 없음.
    missing_output = str(tmp_path / "missing.json")
    result = _run_tool(f"--saved_model={saved_model}", f"--voc_dir={voc_path}", "--split=val",
                       f"--output={missing_output}")
    assert result.returncode != 0
    assert "val.txt" in result.stderr and "not found" in result.stderr
    assert not os.path.exists(missing_output)

    # --records glob 에 맞는 파일이 없으면 그 glob 을 담은 한 줄 오류.
    pattern = str(tmp_path / "records" / "*.tfrecord")
    result = _run_tool(f"--saved_model={saved_model}", f"--records={pattern}")
    assert result.returncode == 1
    assert f"evaluate: error: {pattern}: no TFRecord files match" in result.stderr
