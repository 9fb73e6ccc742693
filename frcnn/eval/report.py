"""평가 보고: 콘솔 표, JSON 보고서, 클래스별 precision–recall 그림.

보고서 dict (JSON 으로 그대로 쓴다) 의 모양:
  {"num_images": int, "wall_time_s": float, "iou_threshold": float, "metrics": [..], "source": {..},
   "classes": [{"id", "name", "num_gt", "num_difficult", "num_detections",
                "ap": {"voc07", "voc12", "coco", "coco_ap50"}}, ...],
   "map": {"voc07", "voc12"}, "coco": {"AP", "AP50", "AP75", "APs", "APm", "APl"}}
정의되지 않은 값 (GT 없는 클래스의 AP, 계산하지 않은 지표) 은 null.

용어:
  C: 클래스 수 (id 1..C). num_gt: difficult 가 아닌 GT 수 (devkit 의 npos).
"""

import math
import os
import re

from matplotlib.figure import Figure

from frcnn import fileio
from frcnn.eval import coco_ap, voc_ap

VOC_METRICS = {"voc07": True, "voc12": False}  # 지표 이름 → use_07_metric
ALL_METRICS = ("voc07", "voc12", "coco")


def _finite_or_none(value):
    """NaN/None 을 None 으로, 나머지는 float 로."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def build_report(class_names, ground_truths, detections, voc_results, coco_result, **info):
    """지표 결과를 보고서 dict 로 모은다.

    Args:
      class_names: 클래스 이름 목록 (id 1..C 순서).
      ground_truths, detections: voc_ap.ImageGroundTruth·ImageDetections 목록 (클래스별 GT·검출 수를 센다).
      voc_results: {"voc07": VocApResult, "voc12": VocApResult} 중 계산한 것; coco_result: CocoResult 또는 None.
      **info: 보고서 최상위에 그대로 넣을 값 (num_images, wall_time_s, source 등).
    """
    num_classes = len(class_names)
    num_gt, num_difficult = voc_ap.count_ground_truths(ground_truths, num_classes)
    classes = []
    for class_index, name in enumerate(class_names):
        class_id = class_index + 1
        ap = {metric: _finite_or_none(result.per_class[class_index].ap)
              for metric, result in voc_results.items()}
        if coco_result is not None:
            ap["coco"] = coco_result.per_class_ap.get(class_id)
            ap["coco_ap50"] = coco_result.per_class_ap50.get(class_id)
        classes.append({
            "id": class_id, "name": name, "num_gt": int(num_gt[class_index]),
            "num_difficult": int(num_difficult[class_index]),
            "num_detections": int(sum(int((detection.classes == class_id).sum())
                                      for detection in detections)),
            "ap": ap,
        })
    report = dict(info)
    report["classes"] = classes
    report["map"] = {metric: _finite_or_none(result.mean_ap) for metric, result in voc_results.items()}
    report["coco"] = dict(coco_result.stats) if coco_result is not None else None
    return report


def _format_value(value):
    """표의 숫자 칸: 정의되지 않으면 '-'."""
    return "-" if value is None else f"{value:.4f}"


def format_table(report):
    """보고서 dict 를 사람이 읽는 표 (끝 줄바꿈 없는 여러 줄) 로: 열 class, #gt (difficult 제외), AP VOC07,
    AP VOC12, 그 아래 mAP 줄과 COCO 줄."""
    name_width = max([len("class"), len("mAP"), len("COCO AP50")]
                     + [len(row["name"]) for row in report["classes"]])
    header = f"{'class':<{name_width}}  {'#gt':>6}  {'AP VOC07':>8}  {'AP VOC12':>8}"
    rule = "-" * len(header)
    lines = [header, rule]
    for row in report["classes"]:
        voc07, voc12 = _format_value(row["ap"].get("voc07")), _format_value(row["ap"].get("voc12"))
        lines.append(f"{row['name']:<{name_width}}  {row['num_gt']:>6d}  {voc07:>8}  {voc12:>8}")
    lines.append(rule)
    total_gt = sum(row["num_gt"] for row in report["classes"])
    map_values = report.get("map") or {}
    lines.append(f"{'mAP':<{name_width}}  {total_gt:>6d}  "
                 f"{_format_value(map_values.get('voc07')):>8}  {_format_value(map_values.get('voc12')):>8}")
    if report.get("coco") is not None:
        lines.append(rule)
        for name in coco_ap.COCO_STAT_NAMES:
            label = "COCO " + name
            lines.append(f"{label:<{name_width}}  {'':>6}  {_format_value(report['coco'][name]):>8}")
    lines.append(f"{report.get('num_images', 0)} images, {report.get('wall_time_s', 0.0):.1f} s")
    return "\n".join(lines)


def write_json_report(report, path):
    """보고서를 path 에 JSON 으로 원자적으로 쓴다 (frcnn.fileio; 상위 디렉터리는 만든다).

    NaN/inf 는 JSON 표준이 아니므로 받지 않는다 (정의되지 않은 값은 build_report 가 null 로 바꾼다).

    Raises:
      ValueError: report 에 NaN 또는 inf 가 있을 때.
    """
    fileio.write_json(path, report, allow_nan=False)


def plot_file_name(class_name):
    """클래스 이름으로 그림 파일 이름을 만든다: pr_<안전한 이름>.png."""
    return "pr_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name) + ".png"


def plot_precision_recall(class_names, voc_results, plot_dir):
    """GT 가 있는 클래스마다 precision–recall 곡선을 PNG 로 그린다 (지표별 AP 를 범례에).

    그림들은 frcnn.fileio.staged_files 로 plot_dir 에 모두-아니면-없음으로 쓰고, 쓴 경로 목록 (클래스 순서) 을
    돌려준다. voc_results 의 지표들 ("voc07", "voc12") 은 곡선이 같고 AP 만 다르다.
    """
    if not voc_results:
        return []
    first_result = next(iter(voc_results.values()))
    paths = []
    with fileio.staged_files(plot_dir) as staged:
        for class_index, name in enumerate(class_names):
            class_result = first_result.per_class[class_index]
            if class_result.num_gt == 0:
                continue
            ap_text = ", ".join(f"AP {metric} {result.per_class[class_index].ap:.3f}"
                                for metric, result in voc_results.items())
            file_name = plot_file_name(name)
            _plot_one(class_result, f"{name} ({ap_text})", staged.path(file_name))
            paths.append(os.path.join(plot_dir, file_name))
    return paths


def _plot_one(class_result, title, path):
    """한 클래스의 곡선을 그려 path 에 PNG 로 저장한다.

    pyplot 대신 Figure 객체를 직접 쓴다: 전역 백엔드·그림 상태를 건드리지 않는다.
    """
    figure = Figure(figsize=(5, 4), dpi=80)
    axes = figure.subplots()
    axes.step(class_result.recall, class_result.precision, where="post")
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.05)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(f"{title}\n#gt {class_result.num_gt}, #det {class_result.num_detections}", fontsize=9)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
