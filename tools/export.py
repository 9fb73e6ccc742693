"""학습된 체크포인트를 SavedModel (와 LiteRT·ONNX) 로 내보내는 바이너리 (RoI pooling 까지 그래프 안에).

예:
  python -m tools.export --model_dir=workspace/runs/cpu_small --export_dir=workspace/exports/cpu_small
"""

import sys

from absl import app
from absl import flags

flags.DEFINE_string("model_dir", None, "tools/train output directory (run.json + checkpoints/).")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.")
flags.DEFINE_string("checkpoint", None, "A specific checkpoint prefix, or 'best': the one with the "
                    "highest validation VOC07 mAP (checkpoints/best/, kept by tools/train --eval_records); "
                    "default: the latest in model_dir.")
flags.DEFINE_float("score_threshold", None, "Minimum detection score; default: the preset's (0.05).")
flags.DEFINE_integer("max_detections", None, "Detections per image N; default: the preset's (100).")
flags.DEFINE_string("fc_svd_ranks", None, "Truncated SVD of the fc6,fc7 head (Fast R-CNN sec. 3.1), an "
                    "explicit speed option: singular values to keep for fc6,fc7, e.g. "
                    "'--fc_svd_ranks=1024,256' (Fast R-CNN's VGG16 setting, -0.3 mAP in that paper); 'none' "
                    "turns it off. Default: off for every preset (only a run trained with "
                    "detection.fc_svd_ranks set uses its ranks). Faster, slightly less accurate; no "
                    "reference evaluates this way.")
flags.DEFINE_bool("overwrite", False, "Replace an existing export_dir.")
flags.DEFINE_list("formats", ["saved_model"],
                  "Comma list of saved_model, tflite, onnx. tflite and onnx write model.tflite / model.onnx "
                  "and labels.txt beside the SavedModel: images uint8 [1, H, W, 3] of any size in, "
                  "detection_boxes/scores/classes and num_detections out; LiteRT built-in ops only. "
                  "They need the deploy extra: pip install -e '.[deploy]'.")
flags.DEFINE_enum("quantize", "none", ["none", "float16", "dynamic_int8"],
                  "Quantize the TFLite weights (float16 halves the file, dynamic_int8 quarters it).")
flags.DEFINE_integer("max_image_pixels", 64 * 1024 * 1024,
                     "Pixel budget of serve_bytes/serve_examples, stored in the SavedModel: an image "
                     "whose header (JPEG/PNG/GIF/BMP/WebP) gives more than this many pixels (H x W x "
                     "frames) is refused with InvalidArgumentError before it is decoded (decompression "
                     "bombs). Default 64 M pixels (48 MP phone photos pass); tools/serve reads it as its "
                     "default.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dir or not FLAGS.export_dir:
        raise app.UsageError("--model_dir and --export_dir are required")
    if FLAGS.max_detections is not None and FLAGS.max_detections <= 0:
        raise app.UsageError("--max_detections must be > 0")
    if FLAGS.max_image_pixels <= 0:
        raise app.UsageError("--max_image_pixels must be > 0")
    from frcnn.export import saved_model
    from frcnn.export import truncated_svd
    from frcnn.training import trainer
    try:
        ranks = truncated_svd.parse_ranks(FLAGS.fc_svd_ranks)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    try:
        model, config, classes, checkpoint = trainer.load_trained_model(FLAGS.model_dir, FLAGS.checkpoint)
        config = saved_model.with_detection_overrides(config, FLAGS.score_threshold, FLAGS.max_detections,
                                                      ranks)
        compressed = saved_model.export_saved_model(
            model, config, classes, FLAGS.export_dir, FLAGS.overwrite, tuple(FLAGS.formats),
            None if FLAGS.quantize == "none" else FLAGS.quantize, FLAGS.max_image_pixels)
    except ImportError as error:
        print(f"export: error: --formats={','.join(FLAGS.formats)} needs {error.name or error}: install the "
              "deploy extra: pip install -e '.[deploy]'", file=sys.stderr)
        sys.exit(1)
    except (ValueError, OSError) as error:
        print(f"export: error: {error}", file=sys.stderr)
        sys.exit(1)
    if config.detection.fc_svd_ranks and not compressed:
        print(f"export: note: the {config.backbone.name} head has no fc6/fc7; fc_svd_ranks not used")
    svd = ", ".join(f"{name} rank {rank}" for name, rank in compressed.items() if rank)
    print(f"export: wrote {FLAGS.export_dir} ({', '.join(FLAGS.formats)}) from {checkpoint} "
          f"({len(classes)} classes"
          f"{', truncated SVD: ' + svd if svd else ''})")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
