"""frcnn.eval.report 테스트: 보고서 dict 모으기, 표, JSON (원자적, NaN 거부), PR 그림.

용어: C 클래스 수 (id 1..C). num_gt: difficult 가 아닌 GT 수.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from frcnn.eval import report, voc_ap
from frcnn.eval.voc_ap import ImageDetections, ImageGroundTruth


def _voc_results():
    """손으로 정한 두 클래스 결과: cat AP 1 (GT 2, 검출 2), dog 는 GT 가 없어 NaN."""
    cat = voc_ap.ClassAp(1, 2, 2, 1.0, np.array([1.0, 1.0]), np.array([0.5, 1.0]))
    dog = voc_ap.ClassAp(2, 0, 1, float("nan"), np.array([0.0]), np.array([]))
    return {"voc07": voc_ap.VocApResult((cat, dog), 1.0, True, 0.5)}


def test_build_report_counts_and_turns_nan_into_null():
    ground_truths = [ImageGroundTruth([[1, 1, 5, 5], [2, 2, 6, 6], [3, 3, 9, 9]], [1, 1, 1],
                                      [False, False, True])]
    detections = [ImageDetections([[1, 1, 5, 5], [2, 2, 6, 6], [1, 1, 2, 2]], [0.9, 0.8, 0.1], [1, 1, 2])]
    built = report.build_report(("cat", "dog"), ground_truths, detections, _voc_results(), None, num_images=1)
    assert built["num_images"] == 1 and built["coco"] is None
    assert built["map"] == {"voc07": 1.0}
    assert built["classes"] == [
        {"id": 1, "name": "cat", "num_gt": 2, "num_difficult": 1, "num_detections": 2, "ap": {"voc07": 1.0}},
        {"id": 2, "name": "dog", "num_gt": 0, "num_difficult": 0, "num_detections": 1, "ap": {"voc07": None}},
    ]


def test_table_marks_missing_values():
    evaluation_report = {"classes": [{"name": "cat", "num_gt": 0, "ap": {"voc07": None}}],
                         "map": {"voc07": None}, "coco": None, "num_images": 1, "wall_time_s": 0.5}
    lines = report.format_table(evaluation_report).splitlines()
    assert lines[2].split() == ["cat", "0", "-", "-"]
    assert lines[-1] == "1 images, 0.5 s"


def test_json_report_roundtrip_and_nan_rejected(tmp_path):
    path = str(tmp_path / "out" / "report.json")
    report.write_json_report({"map": {"voc07": 0.5}, "name": "고양이"}, path)
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle) == {"map": {"voc07": 0.5}, "name": "고양이"}
    with pytest.raises(ValueError):
        report.write_json_report({"value": float("nan")}, str(tmp_path / "bad.json"))
    assert sorted(os.listdir(tmp_path)) == ["out"]  # 반쯤 쓴 파일이 남지 않는다


def test_plot_file_name_is_safe():
    assert report.plot_file_name("potted plant/x") == "pr_potted_plant_x.png"


def test_plots_only_classes_with_ground_truth(tmp_path):
    plot_dir = str(tmp_path / "plots")
    paths = report.plot_precision_recall(("cat", "dog"), _voc_results(), plot_dir)
    assert paths == [os.path.join(plot_dir, "pr_cat.png")]
    assert os.listdir(plot_dir) == ["pr_cat.png"]  # 스테이징 디렉터리가 남지 않는다
    with Image.open(paths[0]) as image:
        assert image.format == "PNG" and image.size == (400, 320)  # 5x4 인치, 80 dpi
    assert report.plot_precision_recall(("cat",), {}, str(tmp_path / "none")) == []
