"""학습 중 검증 곡선 그리기: `tools/train --eval_records` 가 model_dir/eval 에 쓴 TensorBoard 이벤트 파일에서
`eval/voc07_map`, `eval/coco_ap`, `eval/coco_ap50` 를 읽어 스텝에 대한 곡선 PNG 를 그리고, 표 (스텝, 지표, 평가
초) 를 출력한다. 최고 체크포인트 (run.json 의 "best") 는 점으로 표시한다.

예:
  python -m tools.plot_validation --model_dir=workspace/runs/cpu_small --output=benchmarks/validation_map.png

용어:
  같은 스텝이 여러 번 있으면 (이어 학습이 같은 스텝을 다시 평가) 마지막에 쓴 값을 쓴다.
"""

import os
import sys

from absl import app
from absl import flags

flags.DEFINE_string("model_dir", None, "tools/train output directory trained with --eval_records.")
flags.DEFINE_string("output", None, "PNG to write (e.g. benchmarks/validation_map.png).")
flags.mark_flags_as_required(["model_dir", "output"])
FLAGS = flags.FLAGS

CURVES = (("eval/voc07_map", "VOC07 mAP"), ("eval/coco_ap50", "COCO AP50"), ("eval/coco_ap", "COCO AP"))
SECONDS = "eval/seconds"


def read_eval_scalars(log_dir):
    """이벤트 파일들의 `eval/` 스칼라를 {태그: {스텝: 값}} 로 읽는다 (`frcnn.training.events`; 같은 스텝은 마지막 값).

    Raises:
      ValueError: 이벤트 파일이나 eval/ 스칼라가 없을 때.
    """
    from frcnn.training import events  # tensorflow 를 가져오므로 --help 를 빠르게 두려고 여기서

    scalars = {tag: dict(values) for tag, values in events.read_summaries(log_dir, "scalars").items()
               if tag.startswith("eval/")}
    if not scalars:
        raise ValueError(f"{log_dir}: no validation scalars (train with --eval_records)")
    return scalars


def plot(scalars, best, output):
    """곡선 PNG 를 원자적으로 쓴다."""
    from matplotlib.figure import Figure

    from frcnn import fileio

    figure = Figure(figsize=(6, 3.6), dpi=120)
    axes = figure.add_subplot()
    for tag, label in CURVES:
        if tag in scalars:
            steps = sorted(scalars[tag])
            axes.plot(steps, [scalars[tag][step] for step in steps], marker="o", markersize=3, label=label)
    if best:
        axes.plot([best["step"]], [best["voc07_map"]], "k*", markersize=11,
                  label=f"best (step {best['step']}, mAP {best['voc07_map']:.3f})")
    axes.set_xlabel("training step")
    axes.set_ylabel("validation AP")
    axes.set_xlim(left=0)
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    with fileio.atomic_write(output, mode="wb") as handle:
        figure.savefig(handle, format="png")


def _table(scalars):
    """스텝마다 한 줄: 지표들과 평가 초."""
    tags = [tag for tag, _ in CURVES if tag in scalars] + ([SECONDS] if SECONDS in scalars else [])
    lines = ["step  " + "  ".join(f"{tag[5:]:>9s}" for tag in tags)]
    for step in sorted(scalars[tags[0]]):
        values = [scalars[tag].get(step, float("nan")) for tag in tags]
        lines.append(f"{step:<5d} " + "  ".join(f"{value:9.4f}" for value in values))
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from frcnn.training import run_file

    try:
        scalars = read_eval_scalars(os.path.join(FLAGS.model_dir, "eval"))
        plot(scalars, run_file.read_best(FLAGS.model_dir), FLAGS.output)
    except (ValueError, OSError) as error:
        print(f"plot_validation: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(_table(scalars))
    print(f"plot_validation: wrote {FLAGS.output}")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
