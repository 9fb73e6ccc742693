"""--init_from 대 처음부터: 표본 세트의 세 모양으로 학습한 원본에서 나머지 세 모양을 같은 스텝만큼 미세 조정한다.

예 (이슈 22 의 "Must show"):
  python -m benchmarks.bench_init_from --workspace=/tmp/init_bench --source_steps=1500 --steps=500 --seeds=1,2

용어:
  표본 세트: `tools.make_synthetic_voc` (모양 여섯: circle, cross, ring, square, star, triangle), workspace/data.
  보기(view): 같은 이미지에 한 무리의 클래스 물체만 남긴 VOC 사본 (JPEGImages 는 심볼릭 링크, Annotations 는 다른
    클래스의 <object> 를 지운 XML). 다른 클래스의 도형은 이미지에 남아 배경이 된다 (두 방식 모두 같다).
    first: circle, cross, ring (원본 학습), second: square, star, triangle (비교).
  원본(source): first 의 trainval 로 --source_steps 학습.
  비교: second 의 trainval 로 seed 마다 `--init_from=원본` 과 처음부터를, 같은 --steps 와 같은 설정으로 학습하고
    내보내 second 의 test 로 VOC07 mAP 를 잰다 (원본과 새 클래스는 겹치지 않으므로 옮겨지는 클래스 행은 없다:
    백본, RPN, 몸통만 옮긴다).
"""

import json
import os
import shutil
import xml.etree.ElementTree as ElementTree

from absl import app
from absl import flags

from benchmarks.side_by_side import run_tool as _tool

flags.DEFINE_string("workspace", None, "Root for data/, views/, records/, runs/, exports/, reports/.")
flags.DEFINE_string("config", "cpu_small", "Preset to train.")
flags.DEFINE_integer("source_steps", 1500, "Training steps of the source run (first classes).")
flags.DEFINE_integer("steps", 500, "Training steps of each compared run (second classes).")
flags.DEFINE_list("seeds", ["1"], "train.seed of each pair of compared runs.")
flags.DEFINE_string("params_override", "", "Extra overrides for every training run.")
FLAGS = flags.FLAGS

VIEWS = {"first": ("circle", "cross", "ring"), "second": ("square", "star", "triangle")}


def make_view(voc_dir, view_dir, classes):
    """classes 의 물체만 남긴 VOC 사본을 만든다 (있으면 그대로)."""
    if os.path.isdir(view_dir):
        return
    staging = view_dir + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(os.path.join(staging, "Annotations"))
    os.symlink(os.path.abspath(os.path.join(voc_dir, "JPEGImages")), os.path.join(staging, "JPEGImages"))
    shutil.copytree(os.path.join(voc_dir, "ImageSets"), os.path.join(staging, "ImageSets"))
    for name in sorted(os.listdir(os.path.join(voc_dir, "Annotations"))):
        tree = ElementTree.parse(os.path.join(voc_dir, "Annotations", name))
        root = tree.getroot()
        for element in root.findall("object"):
            if element.findtext("name") not in classes:
                root.remove(element)
        tree.write(os.path.join(staging, "Annotations", name))
    os.rename(staging, view_dir)


def prepare(root):
    """표본 세트, 두 보기, 보기마다 trainval·test 레코드."""
    voc_dir = os.path.join(root, "data", "VOC2007")
    if not os.path.isdir(voc_dir):
        _tool("make_synthetic_voc", f"--output_dir={root}/data")
    for view, classes in VIEWS.items():
        view_dir = os.path.join(root, "views", view, "VOC2007")
        make_view(voc_dir, view_dir, classes)
        for split in ("trainval", "test"):
            records_dir = os.path.join(root, "records", view)
            if not os.path.exists(os.path.join(records_dir, f"{split}.json")):
                _tool("make_tfrecords", f"--voc_dir={view_dir}", f"--split={split}",
                      f"--output_dir={records_dir}", f"--config={FLAGS.config}",
                      f"--classes={','.join(classes)}")


def run_once(root, name, view, steps, seed, init_from=None):
    """한 실행: 학습 → 내보내기 → 그 보기의 test 로 평가. 반환: {name, seed, voc07, train_wall_s, train_cpu_s}."""
    model_dir, export_dir = (os.path.join(root, kind, name) for kind in ("runs", "exports"))
    report = os.path.join(root, "reports", f"{name}.json")
    overrides = ",".join(item for item in (f"train.seed={seed}", FLAGS.params_override) if item)
    extra = [f"--init_from={init_from}"] if init_from else []
    wall, cpu = _tool("train", f"--records={root}/records/{view}/trainval-*.tfrecord",
                      f"--model_dir={model_dir}", f"--config={FLAGS.config}", f"--num_steps={steps}",
                      f"--params_override={overrides}", "--noprogress", *extra)
    _tool("export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--overwrite")
    _tool("evaluate", f"--saved_model={export_dir}", f"--voc_dir={root}/views/{view}/VOC2007", "--split=test",
          "--noprogress", f"--output={report}", "--metrics=voc07")
    with open(report) as handle:
        voc07 = json.load(handle)["map"]["voc07"]
    with open(os.path.join(model_dir, "run.json")) as handle:
        carried = json.load(handle).get("init_from", {}).get("classes_carried")
    return {"run": name, "seed": seed, "voc07": voc07, "train_wall_s": round(wall), "train_cpu_s": round(cpu),
            "classes_carried": carried}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workspace:
        raise app.UsageError("--workspace is required")
    root = FLAGS.workspace
    prepare(root)
    source = run_once(root, "source", "first", FLAGS.source_steps, 0)
    print(json.dumps(source), flush=True)
    results = []
    for seed in map(int, FLAGS.seeds):
        for name, init_from in (("init_from", os.path.join(root, "runs", "source")), ("scratch", None)):
            results.append(run_once(root, f"{name}_s{seed}", "second", FLAGS.steps, seed, init_from))
            print(json.dumps(results[-1]), flush=True)
    print(f"| second-view run ({FLAGS.steps} steps) | seed | VOC07 mAP (square, star, triangle) | "
          "training wall / CPU s |")
    print("| --- | --- | --- | --- |")
    for row in results:
        print(f"| {row['run'].rsplit('_s', 1)[0]} | {row['seed']} | {row['voc07']:.4f} | "
              f"{row['train_wall_s']} / {row['train_cpu_s']} |")


if __name__ == "__main__":
    app.run(main)
