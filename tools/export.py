"""학습된 체크포인트를 SavedModel 로 내보내는 바이너리 (RoI pooling 까지 그래프 안에).

예:
  python -m tools.export --model_dir=workspace/runs/cpu_small --export_dir=workspace/exports/cpu_small
"""

import sys

from absl import app
from absl import flags

flags.DEFINE_string("model_dir", None, "tools/train output directory (run.json + checkpoints/).")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.")
flags.DEFINE_string("checkpoint", None, "A specific checkpoint prefix; default: the latest in model_dir.")
flags.DEFINE_float("score_threshold", None, "Minimum detection score; default: the preset's (0.05).")
flags.DEFINE_integer("max_detections", None, "Detections per image N; default: the preset's (100).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export_dir.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir or not FLAGS.export_dir:
        raise app.UsageError("--model_dir and --export_dir are required")
    if FLAGS.max_detections is not None and FLAGS.max_detections <= 0:
        raise app.UsageError("--max_detections must be > 0")
    from frcnn import export
    from frcnn import training
    try:
        model, config, classes, checkpoint = training.load_trained_model(FLAGS.model_dir, FLAGS.checkpoint)
        config = export.with_detection_overrides(config, FLAGS.score_threshold, FLAGS.max_detections)
        export.export_saved_model(model, config, classes, FLAGS.export_dir, FLAGS.overwrite)
    except (ValueError, OSError) as error:
        print(f"export: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"export: wrote {FLAGS.export_dir} from {checkpoint} ({len(classes)} classes)")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
