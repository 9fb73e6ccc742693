"""joint 대 4단계 alternating 학습: 같은 레코드로 seed 마다 둘을 차례로 학습·내보내기·평가해 VOC07 mAP 와 시간을 잰다.

예 (README 의 표본 세트, 이슈 25):
  python -m tools.make_synthetic_voc --output_dir=/tmp/modes/data
  python -m tools.make_tfrecords --voc_dir=/tmp/modes/data/VOC2007 --split=trainval \
      --output_dir=/tmp/modes/records --config=cpu_small
  python -m tools.make_tfrecords --voc_dir=/tmp/modes/data/VOC2007 --split=test \
      --output_dir=/tmp/modes/records --config=cpu_small
  python -m benchmarks.bench_training_modes --workspace=/tmp/modes --seeds=1,2,3

용어:
  실행(run): `tools.train --training_mode=<모드> --params_override=train.seed=<seed>` (프리셋 기본 단계 길이) →
    `tools.export` → `tools.evaluate --split=test`. 모든 실행은 차례로 (동시에 돌리지 않는다): seed 마다 joint,
    alternating 순서라 같은 seed 의 둘이 비슷한 기계 부하를 만난다.
  시간: 학습 프로세스의 벽시계 초와 CPU 초 (자식의 user + sys; 공유 기계에서 벽시계보다 덜 흔들린다).
  퍼짐(spread): 실행들의 (최대 − 최소) / 2.
"""

import json
import os
import statistics

from absl import app
from absl import flags

from benchmarks.side_by_side import run_tool as _tool

flags.DEFINE_string("workspace", None, "Root with data/VOC2007 and records/{trainval,test}-*.tfrecord; runs, "
                    "exports and reports are written under it (modes/).")
flags.DEFINE_string("config", "cpu_small", "Preset to train.")
flags.DEFINE_list("seeds", ["1", "2", "3"], "train.seed of each pair of runs.")
flags.DEFINE_list("modes", ["joint", "alternating"], "Training modes to compare.")
flags.DEFINE_string("params_override", "", "Extra overrides for every training run.")
FLAGS = flags.FLAGS


def run_once(root, mode, seed):
    """한 실행: 학습 → 내보내기 → 평가. 반환: {config, mode, seed, voc07, coco_ap(_small), train_wall_s, train_cpu_s}."""
    name = f"{FLAGS.config}_{mode}_s{seed}"
    model_dir, export_dir = (os.path.join(root, "modes", kind, name) for kind in ("runs", "exports"))
    report = os.path.join(root, "modes", "reports", f"{name}.json")
    overrides = ",".join(item for item in (f"train.seed={seed}", FLAGS.params_override) if item)
    wall, cpu = _tool("train", f"--records={root}/records/trainval-*.tfrecord", f"--model_dir={model_dir}",
                      f"--config={FLAGS.config}", f"--training_mode={mode}", f"--params_override={overrides}",
                      "--noprogress")
    _tool("export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--overwrite")
    _tool("evaluate", f"--saved_model={export_dir}", f"--voc_dir={root}/data/VOC2007", "--split=test",
          "--noprogress", f"--output={report}")
    with open(report) as handle:
        scores = json.load(handle)
    return {"config": FLAGS.config, "mode": mode, "seed": seed, "voc07": scores["map"]["voc07"],
            "coco_ap": scores["coco"]["AP"], "coco_ap_small": scores["coco"]["APs"],
            "train_wall_s": wall, "train_cpu_s": cpu}


def _summary(values):
    return f"{statistics.mean(values):.3f} ± {(max(values) - min(values)) / 2:.3f}"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workspace:
        raise app.UsageError("--workspace is required")
    results = []
    for seed in FLAGS.seeds:
        for mode in FLAGS.modes:
            results.append(run_once(FLAGS.workspace, mode, int(seed)))
            print(json.dumps(results[-1]), flush=True)
    print(f"| mode | VOC07 mAP (mean ± spread, {len(FLAGS.seeds)} runs) | COCO AP_small | training wall s | "
          "training CPU s |")
    print("| --- | --- | --- | --- | --- |")
    for mode in FLAGS.modes:
        rows = [row for row in results if row["mode"] == mode]
        print(f"| {mode} | {_summary([row['voc07'] for row in rows])} | "
              f"{_summary([row['coco_ap_small'] for row in rows])} | "
              f"{statistics.mean(row['train_wall_s'] for row in rows):.0f} | "
              f"{statistics.mean(row['train_cpu_s'] for row in rows):.0f} |")


if __name__ == "__main__":
    app.run(main)
