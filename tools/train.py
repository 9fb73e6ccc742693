"""Faster R-CNN 학습 바이너리: 플래그 → 설정 → `frcnn.training.loop.train`.

예:
  python -m tools.train --records='workspace/records/trainval-*.tfrecord' \\
      --model_dir=workspace/runs/cpu_small --config=cpu_small
같은 명령을 다시 실행하면 마지막 체크포인트에서 이어간다 (kill -9 뒤에도). 끝난 학습은 다시 하지 않는다.
미세 조정: --init_from=RUN_DIR (또는 RUN_DIR/checkpoints/ckpt-N, RUN_DIR/best) 에서 가중치만 옮겨 스텝 0 부터
(`frcnn.training.init_from`); model_dir 에 체크포인트가 있으면 이어 학습이 이긴다.
검증하며 학습: --eval_records='workspace/records/test-*.tfrecord' --eval_every=250 (model_dir/eval 의 TensorBoard
`eval/` 스칼라·이미지, checkpoints/best/, run.json 의 "best").

용어:
  편의 플래그: --training_mode, --num_steps, --batch_size, --backbone, --backbone_weights, --mixed_precision,
    --jit_compile, --eval_every. params_override 뒤에
    붙어 같은 키를 덮어쓴다.
  단계 길이 (alternating): train.stage_steps 가 있으면 그것, --num_steps 를 주면 그 총 스텝을 2:1:2:1 로, 둘 다
    없으면 프리셋의 joint 예산 train.num_steps 의 논문 비율 8/7, 4/7, 8/7, 4/7 (`frcnn.training.schedule`).
    params_override 의 train.num_steps 는 joint 예산이다 (논문 비율로 늘어난다); --num_steps 만 총 스텝이다.
  혼합 정밀도: 프로세스 전역 Keras dtype 정책이라 라이브러리가 아니라 이 바이너리가 정한다
    (GPU mixed_float16, CPU mixed_bfloat16; 변수와 체크포인트는 float32).
  seed, 출력: 전역 난수 seed (`train.seed`), 알림 줄 (이어 학습, 할 일 없음), 진행 막대 (tqdm) 도 이 바이너리가
    맡는다; 라이브러리 (`loop.train`) 는 `log`, `progress` 콜백을 부를 뿐이다.
"""

import sys

from absl import app
from absl import flags

from tools import _quiet

flags.DEFINE_string("records", None,
                    "Training TFRecord glob made by make_tfrecords, e.g. 'records/trainval-*.tfrecord'.")
flags.DEFINE_string("model_dir", None,
                    "Output directory: run.json (resolved config), checkpoints/, train/ (TensorBoard).")
flags.DEFINE_string("config", "cpu_small", "Preset: vgg16_paper, vgg16_seed or cpu_small.")
flags.DEFINE_string("params_override", "",
                    "Config overrides 'section.key=value,...', e.g. 'train.learning_rate=0.01'. "
                    "Scale jitter: 'input.train_short_sides=(640,672,704,736,768,800)' draws one "
                    "shorter side per training loop (detectron2's ResizeShortestEdge draws one per "
                    "image; one per loop keeps shapes static); off by default, input.min_size stays "
                    "the evaluation size. The anchor labels of each scale are precomputed by "
                    "make_tfrecords, so make the records with the same input.train_short_sides "
                    "(stored labels: +7.7 % record bytes for six scales at resnet50_fpn, where "
                    "labelling in tf.data ran the pipeline at 0.18x).")
flags.DEFINE_enum("training_mode", None, ["joint", "alternating"],
                  "joint = approximate joint training (train.num_steps steps); alternating = the paper's "
                  "4-step training: RPN, detector, RPN, detector. Its stage lengths: train.stage_steps if "
                  "set; else --num_steps split 2:1:2:1 if given; else the paper's ratios to the preset's "
                  "joint budget train.num_steps: 8/7, 4/7, 8/7, 4/7 (vgg16_paper 70k -> 80k/40k/80k/40k, "
                  "cpu_small 1500 -> 1714/857/1714/857). The plan is printed when training starts. "
                  "Default: the preset's (joint).")
flags.DEFINE_integer("num_steps", None, "Total training steps. joint: the steps. alternating: the total over "
                     "the 4 stages, split 2:1:2:1 (unless train.stage_steps is set); without it the stages "
                     "follow the paper's ratios to train.num_steps (see --training_mode). Default: the "
                     "preset's train.num_steps.")
flags.DEFINE_integer("batch_size", None, "Global batch size (over all replicas). Default: the preset's.")
flags.DEFINE_string("backbone", None,
                    "Backbone: vgg16, resnet50, mobilenet_v2 or small_cnn. Default: the preset's. Also sets "
                    "the backbone's default weights (small_cnn: none; others: imagenet) unless "
                    "--backbone_weights or params_override names them.")
flags.DEFINE_string("backbone_weights", None,
                    "imagenet (Keras downloads the ImageNet weights; VGG16's fc1/fc2 become fc6/fc7), none "
                    "(train from scratch) or the path of a local Keras weights file: a legacy .h5 such as "
                    "vgg16_weights_tf_dim_ordering_tf_kernels.h5, or a .weights.h5 saved with "
                    "keras.applications.VGG16(weights='imagenet').save_weights(PATH). A pretrained VGG16 "
                    "needs the include_top=True file (with fc1/fc2); ResNet50/MobileNetV2 take either. "
                    "Default: the preset's (vgg16_paper, vgg16_seed: imagenet; cpu_small: none), or "
                    "--backbone's.")
flags.DEFINE_bool("mixed_precision", None, "mixed_float16 on GPU, mixed_bfloat16 on CPU (variables and "
                  "checkpoints stay float32). Default: the preset's train.mixed_precision.")
flags.DEFINE_bool("jit_compile", None,
                  "Compile the train step with XLA. Default: the preset's train.jit_compile.")
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker", "one_device"],
                  "tf.distribute strategy. auto: MultiWorkerMirrored with TF_CONFIG, Mirrored with GPUs, "
                  "else default.")
flags.DEFINE_string("eval_records", None,
                    "Validation TFRecord glob made by make_tfrecords (same classes), e.g. "
                    "'records/test-*.tfrecord': evaluated in the training process every --eval_every steps "
                    "and at the end (TensorBoard eval/ scalars and drawn detections in model_dir/eval); the "
                    "checkpoint with the best VOC07 mAP is kept in checkpoints/best/ (tools/export "
                    "--checkpoint=best), its step and mAP in run.json.")
flags.DEFINE_integer("eval_every", None, "Validation interval in steps (needs --eval_records; 0 = only at "
                     "the end). Default: the preset's train.eval_every.")
flags.DEFINE_string("init_from", None,
                    "Fine-tune: start from the weights of another run directory (ours or an imported one): "
                    "RUN_DIR (its latest checkpoint), RUN_DIR/checkpoints/ckpt-N, or RUN_DIR/best (its best "
                    "validation checkpoint). Weights only: the run starts at step 0 with a fresh optimizer. "
                    "Every variable is copied (the model structure must match: same backbone, channels, "
                    "anchors per location, RoI size), except the class rows of the predictor, which are "
                    "copied for each class whose name matches a source class (exactly, through the "
                    "VOC<->COCO aliases aeroplane/airplane, motorbike/motorcycle, sofa/couch, tvmonitor/tv, "
                    "diningtable/dining table, pottedplant/potted plant, or --class_map) and start fresh for "
                    "the others; the carried-over classes are printed and written to run.json. Applies only "
                    "when --model_dir has no checkpoint yet: an existing checkpoint is resumed and "
                    "--init_from is ignored (with a note). Alternating training copies the source backbone "
                    "into both backbones. The backbone is built as a pretrained one (frozen early blocks, "
                    "FrozenBatchNorm for resnet50_fpn) without reading ImageNet weights "
                    "(backbone.weights=checkpoint) and takes the source's backbone.norm_epsilon; "
                    "--backbone_weights or --params_override win. See the README's fine-tuning section for a "
                    "schedule.")
flags.DEFINE_string("class_map", None,
                    "With --init_from: 'mine:theirs,...' — copy the predictor rows of source class 'theirs' "
                    "for this run's class 'mine' (e.g. 'car:truck,plane:airplane'); wins over name matches.")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
FLAGS = flags.FLAGS

# 진행 막대에 보일 손실과 그 짧은 이름.
SHORT_LOSS_NAMES = {"rpn_objectness_loss": "rpn_cls", "rpn_box_loss": "rpn_box",
                    "detector_class_loss": "det_cls", "detector_box_loss": "det_box", "total_loss": "total"}


class _ProgressBar:
    """`loop.train` 의 진행 콜백으로 쓰는 tqdm 막대 (루프마다 그 스텝 수만큼 나아간다). 첫 루프 뒤에 (그
    스텝부터: 첫 루프는 추적·컴파일이 섞여 속도 추정에서 뺀다) 만든다."""

    def __init__(self):
        self._bar = None

    def __call__(self, step, total, stage, losses, images_per_second):
        if self._bar is None:
            from tqdm import tqdm
            self._bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True)
        short = {SHORT_LOSS_NAMES[name]: f"{value:.3f}" for name, value in losses.items()
                 if name in SHORT_LOSS_NAMES}
        self._bar.set_postfix(stage=stage, img_s=f"{images_per_second:.1f}", **short)
        self._bar.update(step - self._bar.n)

    def write(self, message):
        """막대를 깨지 않고 알림 한 줄을 쓴다."""
        _quiet.write_above_bar(message)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _overrides():
    """편의 플래그를 params_override 뒤에 붙인다 (편의 플래그가 이긴다).

    --backbone 만 주면 그 백본의 기본 가중치 (small_cnn: none, 나머지: imagenet) 를 params_override **앞에**
    둔다: 프리셋의 가중치가 다른 백본에 붙지 않고 (vgg16_paper 의 imagenet 으로 small_cnn 은 오류), 사용자가
    params_override 나 --backbone_weights 로 적은 가중치는 그대로 이긴다.
    """
    items = _init_from_defaults() if FLAGS.init_from else []
    if FLAGS.backbone is not None and FLAGS.backbone_weights is None:
        items.append(f"backbone.weights={'none' if FLAGS.backbone == 'small_cnn' else 'imagenet'}")
    items += [FLAGS.params_override] if FLAGS.params_override else []
    named = {"train.training_mode": FLAGS.training_mode, "train.num_steps": FLAGS.num_steps,
             "train.batch_size": FLAGS.batch_size, "backbone.name": FLAGS.backbone,
             "backbone.weights": FLAGS.backbone_weights, "train.mixed_precision": FLAGS.mixed_precision,
             "train.jit_compile": FLAGS.jit_compile, "train.eval_every": FLAGS.eval_every}
    items += [f"{key}={value}" for key, value in named.items() if value is not None]
    return ",".join(items)


def _init_from_defaults():
    """--init_from 의 기본 덮어쓰기 (params_override 와 편의 플래그가 이긴다).

    backbone.weights=checkpoint: 백본을 사전학습 구조로 만들되 (얼린 블록, resnet_fpn v1 의 FrozenBatchNorm)
    ImageNet 가중치를 내려받거나 읽지 않는다 — 원본 실행의 가중치가 덮어쓴다. backbone.norm_epsilon 은 원본의
    값 (torchvision COCO v1 은 0): 같은 가중치가 같은 특징을 내도록. 원본의 run.json 을 읽을 수 없으면 (이어
    학습에서 원본이 지워졌을 때) eps 는 프리셋의 것.
    """
    from frcnn import config as config_lib
    from frcnn.training import init_from
    from frcnn.training import run_file

    items = [f"backbone.weights={config_lib.CHECKPOINT_WEIGHTS}"]
    try:
        source_config, _ = run_file.read_run_file(init_from.resolve_source(FLAGS.init_from)[0])
    except ValueError:
        return items
    return items + [f"backbone.norm_epsilon={source_config.backbone.norm_epsilon!r}"]


def _train():
    """전략 → 정밀도 정책 → 설정 → 데이터 확인 → seed → 학습. 반환: `loop.train` 의 결과."""
    import keras
    import tensorflow as tf

    from frcnn import config as config_lib
    from frcnn.data import record_spec
    from frcnn.training import distribute
    from frcnn.training import init_from
    from frcnn.training import loop
    from frcnn.training import precision
    from frcnn.training import schedule
    from pipelines import input_pipeline

    # 다중 워커 전략(TF_CONFIG)은 집합 연산 설정 때문에 다른 TF 연산보다 먼저 만들어야 한다.
    strategy = distribute.make_strategy(FLAGS.strategy)
    # --num_steps 는 alternating 에서 총 스텝 (2:1:2:1); 없으면 논문 비율 (loop 가 같은 규칙으로 채운다).
    config = config_lib.build_config(FLAGS.config, _overrides())
    config = schedule.resolve_stage_steps(config, FLAGS.num_steps)
    class_map = init_from.parse_class_map(FLAGS.class_map)
    source = _load_source(init_from)  # float32 모델로 읽으므로 정책을 정하기 전에
    if config.train.mixed_precision:  # 모델을 만들기 전에
        policy = precision.mixed_policy_name()
        if policy == "float32":
            print("train: note: this CPU has no bfloat16 instructions (AVX512_BF16 / AMX); training in "
                  "float32, which is faster here than emulated mixed bfloat16")
        keras.mixed_precision.set_global_policy(policy)
    spec = record_spec.RecordSpec.read(FLAGS.records, config)  # 파일·지문 확인은 한 번, 학습 시작 (run.json) 전에
    tf.random.set_seed(config.train.seed)

    def make_dataset(batch_size, canvas, short_side=None):
        return input_pipeline.build_dataset(spec, training=True, batch_size=batch_size, canvas=canvas,
                                            short_side=short_side)

    make_validator = _validator_factory(config, spec.classes) if FLAGS.eval_records else None
    bar = _ProgressBar() if FLAGS.progress else None
    try:
        return loop.train(spec, FLAGS.records, FLAGS.model_dir, make_dataset, strategy, bar,
                          bar.write if bar else print, FLAGS.eval_records, make_validator, source, class_map)
    finally:
        if bar is not None:
            bar.close()


def _load_source(init_from):
    """--init_from 의 원본 가중치 (`init_from.SourceWeights`) 또는 None (플래그 없음, 또는 이어 학습이 이긴다)."""
    from frcnn.training import trainer

    if not FLAGS.init_from:
        return None
    latest = trainer.latest_checkpoint(FLAGS.model_dir)
    if latest:  # 이어 학습이 이긴다: 원본은 읽지도 않는다 (지워졌어도 이어 학습은 된다)
        print(f"train: note: --init_from ignored: {FLAGS.model_dir} already has a checkpoint ({latest}); "
              "resuming from it")
        return None
    return init_from.load_source(FLAGS.init_from)


def _validator_factory(config, classes):
    """검증 레코드를 확인하고 (같은 클래스) `loop.train` 의 make_validator 를 돌려준다.

    Raises:
      ValueError: 레코드가 없거나, 메타데이터를 읽을 수 없거나, 클래스가 학습 레코드와 다를 때.
    """
    from frcnn.data import record_spec
    from frcnn.eval import validation
    from frcnn.training import distribute
    from frcnn.viz import draw

    eval_classes = record_spec.read_metadata(FLAGS.eval_records).get("classes")
    if list(eval_classes or ()) != list(classes):
        raise ValueError(f"{FLAGS.eval_records}: validation records have classes {eval_classes}, but the "
                         f"training records have {list(classes)}; make them with the same --classes")
    paths = record_spec.matching_files(FLAGS.eval_records)

    def make_validator(model, strategy):
        log_dir = distribute.worker_dir(FLAGS.model_dir, strategy, "eval")
        return validation.Validator(model, config, classes, paths, log_dir, draw.draw_detections)

    return make_validator


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.records or not FLAGS.model_dir:
        raise app.UsageError("--records and --model_dir are required")
    if FLAGS.eval_every is not None and not FLAGS.eval_records:
        raise app.UsageError("--eval_every needs --eval_records")
    if FLAGS.class_map and not FLAGS.init_from:
        raise app.UsageError("--class_map needs --init_from")
    try:
        result = _train()
    except (ValueError, FloatingPointError, OSError) as error:
        print(f"train: error: {error}", file=sys.stderr)
        sys.exit(1)
    losses = " ".join(f"{name}={value:.4f}" for name, value in result["losses"].items())
    print(f"train: done at step {result['step']}; checkpoint {result['checkpoint']} {losses}")


def run():
    app.run(main)


if __name__ == "__main__":
    app.run(main)
