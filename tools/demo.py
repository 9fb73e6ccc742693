"""한 명령 데모: 합성 VOC → TFRecord → cpu_small 학습 (test 분할로 검증하며) → 검증 곡선 그림 → SavedModel
내보내기 → 평가(mAP 표) → 검출 그림.

각 단계는 문서에 적힌 도구 명령(`python -m tools.X ...`)을 그대로 실행하므로, 출력과 진행 막대도 같다.
다시 실행하면 끝난 단계(데이터, 레코드, 학습)는 건너뛰고 이어간다 (앵커 지문이 다른 옛 레코드는 다시 만든다).
"""

import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from frcnn import config as config_lib
from frcnn.data import record_spec

flags.DEFINE_string("workspace", "workspace",
                    "Workspace root: data/, records/, runs/, exports/, eval/, detections/.")
flags.DEFINE_string("config", "cpu_small", "Preset to train.")
flags.DEFINE_string("params_override", "", "Extra config overrides for make_tfrecords and training "
                    "(e.g. 'input.difficult=ignore'); records made for other settings are remade.")
flags.DEFINE_integer("num_trainval", 400, "Synthetic trainval images.")
flags.DEFINE_integer("num_test", 200, "Synthetic test images.")
flags.DEFINE_integer("seed", 0, "Synthetic dataset seed.")
flags.DEFINE_integer("num_detect_images", 8, "How many test images to draw detections on.")
flags.DEFINE_integer("eval_every", 150, "Validate on the test split every N training steps (TensorBoard "
                     "eval/, checkpoints/best/, eval/<preset>/validation_map.png).")
FLAGS = flags.FLAGS


def _run(title, arguments, timings):
    """도구 하나를 실행하고 걸린 시간을 적는다. 실패하면 데모를 멈춘다."""
    print(f"\n=== {title} ===", flush=True)
    start = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", *arguments])
    timings.append((title, time.perf_counter() - start))
    if completed.returncode != 0:
        print(f"demo: error: step '{title}' failed (exit {completed.returncode})", file=sys.stderr)
        sys.exit(completed.returncode)


def _records_usable(records, split, config):
    """이미 있는 레코드를 이 설정으로 읽을 수 있는지 (`RecordSpec.read`: 파일, json, 지문)."""
    try:
        record_spec.RecordSpec.read(os.path.join(records, f"{split}-*.tfrecord"), config)
        return True
    except ValueError:
        return False


def _prepare_data(root, voc_dir, records, timings):
    """표본 데이터와 레코드 (없거나 다른 설정으로 만든 것만 다시 만든다)."""
    if not os.path.isdir(os.path.join(voc_dir, "Annotations")):
        _run("make_synthetic_voc", ["tools.make_synthetic_voc", f"--output_dir={os.path.join(root, 'data')}",
                                    f"--num_trainval={FLAGS.num_trainval}", f"--num_test={FLAGS.num_test}",
                                    f"--seed={FLAGS.seed}"], timings)
    config = config_lib.build_config(FLAGS.config, FLAGS.params_override)
    for split in ("trainval", "test"):
        if not _records_usable(records, split, config):
            _run(f"make_tfrecords {split}",
                 ["tools.make_tfrecords", f"--voc_dir={voc_dir}", f"--split={split}", "--overwrite",
                  f"--output_dir={records}", f"--config={FLAGS.config}",
                  f"--params_override={FLAGS.params_override}"], timings)


def _train(root, records, model_dir, timings):
    """검증하며 학습하고 (이어 학습) 검증 곡선을 그린다."""
    train = ["tools.train", f"--records={records}/trainval-*.tfrecord", f"--model_dir={model_dir}",
             f"--config={FLAGS.config}", f"--eval_records={records}/test-*.tfrecord",
             f"--eval_every={FLAGS.eval_every}"]
    if FLAGS.params_override:
        train.append(f"--params_override={FLAGS.params_override}")
    _run("train", train, timings)
    if os.path.isdir(os.path.join(model_dir, "eval")):
        curve = os.path.join(root, "eval", FLAGS.config, "validation_map.png")
        _run("plot_validation", ["tools.plot_validation", f"--model_dir={model_dir}", f"--output={curve}"],
             timings)
    else:  # 검증 없이 끝난 옛 실행: 다시 학습하지 않는다
        print(f"demo: note: {model_dir} was trained without validation; remove it to retrain with the curve")


def _export_and_evaluate(root, voc_dir, model_dir, export_dir, timings):
    """SavedModel·LiteRT·ONNX 로 내보내고 SavedModel 과 model.tflite 를 평가한다 (mAP 가 같아야 한다)."""
    _run("export", ["tools.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--overwrite",
                    "--formats=saved_model,tflite,onnx"], timings)
    _run("evaluate", ["tools.evaluate", f"--saved_model={export_dir}", f"--voc_dir={voc_dir}", "--split=test",
                      f"--output={os.path.join(root, 'eval', FLAGS.config, 'report.json')}",
                      f"--plot_dir={os.path.join(root, 'eval', FLAGS.config, 'pr_curves')}"], timings)
    tflite_report = os.path.join(root, "eval", FLAGS.config, "report_tflite.json")
    _run("evaluate model.tflite", ["tools.evaluate", f"--model={os.path.join(export_dir, 'model.tflite')}",
                                   f"--voc_dir={voc_dir}", "--split=test", "--noprogress",
                                   f"--output={tflite_report}"], timings)


def _detect(root, voc_dir, export_dir, timings):
    """시험 분할 앞쪽 이미지에 검출을 그린다."""
    with open(os.path.join(voc_dir, "ImageSets", "Main", "test.txt")) as handle:
        image_ids = [line.strip() for line in handle if line.strip()][:FLAGS.num_detect_images]
    images = ",".join(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg") for image_id in image_ids)
    _run("detect", ["tools.detect", f"--saved_model={export_dir}", f"--images={images}",
                    f"--output_dir={os.path.join(root, 'detections', FLAGS.config)}", "--format=png"],
         timings)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    root = FLAGS.workspace
    voc_dir = os.path.join(root, "data", "VOC2007")
    records = os.path.join(root, "records", FLAGS.config)
    model_dir = os.path.join(root, "runs", FLAGS.config)
    export_dir = os.path.join(root, "exports", FLAGS.config)
    timings = []
    _prepare_data(root, voc_dir, records, timings)
    _train(root, records, model_dir, timings)
    _export_and_evaluate(root, voc_dir, model_dir, export_dir, timings)
    _detect(root, voc_dir, export_dir, timings)
    print("\n=== timings ===")
    for title, seconds in timings:
        print(f"{title:28s} {seconds:7.1f} s")
    print(f"{'total':28s} {sum(seconds for _, seconds in timings):7.1f} s")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
