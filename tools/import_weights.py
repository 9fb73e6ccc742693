"""torchvision 의 학습된 가중치를 이 프로젝트의 실행 디렉터리로 가져오는 바이너리 (torch·torchvision: `[torch]`).

예:
  python -m tools.import_weights --source=torchvision --arch=fasterrcnn_resnet50_fpn_v2 \\
      --model_dir=workspace/runs/coco_v2
  python -m tools.import_weights --source=torchvision --arch=fasterrcnn_resnet50_fpn \\
      --weights_file=fasterrcnn_resnet50_fpn_coco-258fb6c6.pth --model_dir=workspace/runs/coco_v1
  python -m tools.import_weights --source=torchvision --arch=resnet50 --model_dir=workspace/backbones/resnet50

검출기 (fasterrcnn_*) 는 tools/train 과 같은 실행 디렉터리 (run.json + checkpoints/ckpt-0) 를 쓴다: tools/export,
그 SavedModel 의 evaluate·detect·serve, tools/train --init_from 이 그대로 받는다. resnet50 은 피라미드 프리셋의
`--backbone_weights=DIR` 로 쓸 ResNet 몸통 가중치 (DIR/resnet_body.npz) 를 쓴다.
"""

import sys

from absl import app
from absl import flags

flags.DEFINE_enum("source", "torchvision", ["torchvision"], "Where the weights come from.")
flags.DEFINE_enum("arch", None, ["fasterrcnn_resnet50_fpn_v2", "fasterrcnn_resnet50_fpn", "resnet50"],
                  "torchvision model: the COCO detectors (presets resnet50_fpn_v2 / resnet50_fpn; 80 COCO "
                  "classes) or the IMAGENET1K_V1 ResNet-50 as backbone weights for those presets.")
flags.DEFINE_string("model_dir", None, "Output directory (must not exist); written whole or not at all.")
flags.DEFINE_string("weights_file", None, "A local torchvision state dict (.pth), read with "
                    "torch.load(weights_only=True); torchvision's old key names are accepted. Default: "
                    "download torchvision's published weights (needs a network).")
flags.DEFINE_float("bn_eps", None, "FrozenBatchNorm eps of the imported backbone (backbone.norm_epsilon). "
                   "Default: 0 for fasterrcnn_resnet50_fpn (torchvision uses its COCO weights with eps 0), "
                   "1e-5 otherwise; set it for a --weights_file trained with another eps.")
flags.DEFINE_string("params_override", "", "Config overrides of the imported run 'section.key=value,...', "
                    "e.g. "
                    "'detection.score_threshold=0.3' (not for --arch=resnet50).")
FLAGS = flags.FLAGS


def _import():
    """라이브러리 호출 하나; 출처 기록을 돌려준다 (검출기면 설정·클래스 수도 알린다)."""
    from frcnn.training import torchvision_import
    if FLAGS.arch == "resnet50":
        return torchvision_import.import_backbone(FLAGS.model_dir, FLAGS.weights_file), ""
    source, config, classes = torchvision_import.import_detector(
        FLAGS.arch, FLAGS.model_dir, FLAGS.weights_file, FLAGS.bn_eps, FLAGS.params_override)
    return source, (f"preset {config.name}, {len(classes)} classes, BN eps "
                    f"{config.backbone.norm_epsilon:g}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.arch or not FLAGS.model_dir:
        raise app.UsageError("--arch and --model_dir are required")
    if FLAGS.arch == "resnet50" and (FLAGS.params_override or FLAGS.bn_eps is not None):
        raise app.UsageError("--params_override and --bn_eps are for the detectors, not --arch=resnet50")
    try:
        source, summary = _import()
    except (ImportError, ValueError, OSError) as error:
        print(f"import_weights: error: {error}", file=sys.stderr)
        sys.exit(1)
    if not source["matches_published"]:
        print(f"import_weights: warning: {source['file']} (sha256 {source['sha256'][:16]}…) is not "
              f"torchvision's "
              f"published {FLAGS.arch} file (sha256 {source['published_sha256_prefix']}…)", file=sys.stderr)
    print(f"import_weights: wrote {FLAGS.model_dir} from {source['file']}"
          f"{' (' + summary + ')' if summary else ''}")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
