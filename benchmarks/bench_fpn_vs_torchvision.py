"""FPN 프리셋 대 torchvision 속도 벤치마크: 같은 CPU·같은 스레드 수·float32 로 한 실행 안에서 나란히.

1. 추론: `resnet50_fpn_v2` (와 `resnet50_fpn`) 를 내보낸 SavedModel 의 `serving_default` (uint8 이미지 한 장) 대
   torchvision `fasterrcnn_resnet50_fpn(_v2)(weights=None, weights_backbone=None, num_classes=91)` 의 eval 모드
   (`torch.inference_mode`) 검출. 이미지는 800×1216 uint8 (양쪽 크기 규칙 모두 800×1216 그대로, 32 배수).
   가중치는 torchvision 모델의 것을 우리 모델로 옮긴다 (`tests.torch_reference`): 먼저 torchvision 백본 BN 의
   이동 통계를 이 이미지의 통계로 채우고 (학습 모드 한 번, 누적 평균) 예측기를 무작위로 키워 이미지마다 검출이
   여럿 나오게 한 뒤, 두 쪽 검출 수가 같은지 확인한다 (다르면 중단).
2. 학습 스텝: `tools.train` 과 같은 `Trainer.loop_function("joint")` 한 스텝 (배치 2, 캔버스 800×1216,
   mixed_precision 끔 = float32, jit 은 프리셋 기본 = 끔, 무작위 GT 박스 --num_gt_boxes 개와 그 앵커 매칭 코드는
   데이터 파이프라인처럼 미리 계산) 대 torchvision 학습 스텝 (model.train(), 손실 합 backward, SGD 모멘텀 0.9 +
   감쇠 1e-4, 같은 두 이미지·GT). 사전학습 가중치가 없으므로 두 쪽 모두 모든 백본 층을 학습하고 보통 BatchNorm 을
   학습 모드로 쓴다 (torchvision trainable_backbone_layers=5; `fpn_backbones._resnet_fpn`). 가중치는 옮긴다.

각 비교는 워밍업 한 번 (추적 포함) 뒤 두 쪽을 번갈아 --num_runs 번 재고 중앙값과 비율 (우리 / torchvision,
목표 ≤ 1.1) 을 출력한다 (`side_by_side.compare`). 끝에 표 한 줄씩 요약한다.

예:
  PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m benchmarks.bench_fpn_vs_torchvision \
      --num_runs=3 --threads=2 --variants=v2,v1 --parts=inference,train

용어:
  B 배치 (추론 1, 학습 2), H·W 이미지 = 캔버스 (800, 1216), G 최대 GT 수 (패딩 −1), A 앵커 수.
  박스: 우리 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀, torchvision `[x1, y1, x2, y2]`.
"""

import gc
import os
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from benchmarks import side_by_side
from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import resize
from frcnn.export import saved_model
from frcnn.modeling import builder
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.training import trainer as trainer_lib
from tests import torch_reference

FLAGS = flags.FLAGS

flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 번갈아 잴 횟수 (중앙값을 낸다).")
flags.DEFINE_integer("threads", 2, "두 쪽의 스레드 수: TF intra·inter op, torch num_threads·num_interop_threads.")
flags.DEFINE_list("variants", ["v2", "v1"], "잴 FPN 변형들 (v1 = resnet50_fpn, v2 = resnet50_fpn_v2), 이 순서로.")
flags.DEFINE_list("parts", ["inference", "train"], "잴 것: inference, train.")
flags.DEFINE_integer("image_height", 800, "이미지 높이 (크기 규칙이 바꾸지 않는 크기: 짧은 변 800).")
flags.DEFINE_integer("image_width", 1216, "이미지 너비 (800×1216 은 프리셋의 캔버스 하나).")
flags.DEFINE_integer("num_gt_boxes", 3, "학습 이미지마다 무작위 GT 박스 수.")
flags.DEFINE_integer("seed", 0, "무작위 이미지·박스·가중치 씨앗.")

TARGET_RATIO = 1.1
NUM_CLASSES = 90  # torchvision num_classes=91 (배경 포함)
PRESETS = {"v1": "resnet50_fpn", "v2": "resnet50_fpn_v2"}
# 예측기의 클래스 로짓 표준편차와 배경 로짓 bias: 무작위 가중치에서도 점수 0.05 를 넘는 (RoI, 클래스) 후보가
# 1000 개쯤 나와 클래스별 NMS 가 일하고 검출이 상한 (100) 가까이 나온다 (학습된 모델의 붐비는 이미지와 비슷하다)
LOGIT_STD = 1.5
BACKGROUND_BIAS = 5.0


def torch_module():
    """torch (triton 을 막고 가져온다: `torch_reference.import_torchvision`), 스레드 수는 --threads."""
    torch, _ = torch_reference.import_torchvision()
    torch.set_num_threads(FLAGS.threads)
    return torch


def set_threads(threads):
    """두 쪽의 스레드 수를 같게 (TF 는 첫 연산 전에만 바꿀 수 있고, torch interop 은 한 번만)."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    torch = torch_module()
    torch.set_num_interop_threads(threads)
    print(f"threads: TF intra {tf.config.threading.get_intra_op_parallelism_threads()}, "
          f"inter {tf.config.threading.get_inter_op_parallelism_threads()}; torch {torch.get_num_threads()}, "
          f"interop {torch.get_num_interop_threads()}")


def torchvision_model(variant):
    """torchvision 의 `fasterrcnn_resnet50_fpn(_v2)` (가중치 없이, 91 클래스)."""
    torch = torch_module()
    from torchvision.models.detection import faster_rcnn

    torch.manual_seed(FLAGS.seed)
    build = {"v1": faster_rcnn.fasterrcnn_resnet50_fpn, "v2": faster_rcnn.fasterrcnn_resnet50_fpn_v2}[variant]
    return build(weights=None, weights_backbone=None, num_classes=NUM_CLASSES + 1)


def calibrate_for_detection(reference, image):
    """백본 BN 이동 통계 = image 의 통계 (학습 모드 순전파 한 번, 누적 평균), 예측기는 검출이 나오게 → eval 모드.

    Args:
      reference: torchvision FasterRCNN.
      image: [3, H, W] float32 torch 텐서, 0..1.
    """
    torch = torch_module()
    norms = [layer for layer in reference.backbone.modules() if isinstance(layer, torch.nn.BatchNorm2d)]
    for layer in norms:
        layer.reset_running_stats()
        layer.momentum = None  # 누적 평균: 한 번이면 그 배치의 통계
    reference.train()
    with torch.no_grad():
        images, _ = reference.transform([image])
        reference.backbone(images.tensors)
    for layer in norms:
        layer.momentum = 0.1
    reference.eval()
    randomize_predictor(reference, image)
    return reference


def randomize_predictor(reference, image):
    """예측기 가중치를 무작위로: 클래스 로짓의 표준편차 ≈ LOGIT_STD, 배경 bias BACKGROUND_BIAS (eval 모드에서).

    몸통 출력의 크기는 변형마다 다르므로 (v1 ‖x‖ ≈ 18, v2 ≈ 8) 이 이미지의 RoI 몸통 출력 노름으로 맞춘다.
    """
    torch = torch_module()
    outputs = []
    box_head = reference.roi_heads.box_head
    hook = box_head.register_forward_hook(lambda module, inputs, output: outputs.append(output))
    with torch.no_grad():
        reference([image])
    hook.remove()
    std = LOGIT_STD / float(outputs[0].norm(dim=1).mean())
    generator = torch.Generator().manual_seed(FLAGS.seed)
    with torch.no_grad():
        for parameter in reference.roi_heads.box_predictor.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
        reference.roi_heads.box_predictor.cls_score.bias[0] = BACKGROUND_BIAS


def check_same_setup(reference, config, height, width):
    """두 쪽이 같은 크기의 입력과 같은 제안·검출 수를 쓰는지 확인한다 (아니면 AssertionError).

    torchvision 변환 (min 800 / max 1333, 32 배수 패딩) 과 우리 크기 규칙이 모두 (height, width) 를 그대로 두어야
    하고, RPN 의 사전·사후 NMS 개수 (학습·시험), 검출 점수 문턱·NMS·상한이 같아야 한다.
    """
    torch = torch_module()
    with torch.no_grad():
        images, _ = reference.transform([torch.zeros(3, height, width)])
    theirs = (tuple(images.tensors.shape[-2:]), tuple(images.image_sizes[0]))
    _, size = resize.resize_scale(height, width, config.input.min_size, config.input.max_size,
                                  config.input.size_rule)
    stride = config.anchors.stride
    ours = tuple(-(-int(side) // stride) * stride for side in size.numpy())
    if theirs != ((height, width), (height, width)) or ours != (height, width):
        raise AssertionError(f"input size differs: torchvision (padded, resized) {theirs}, "
                             f"ours padded {ours}, image {height}x{width}")
    rpn, heads = reference.rpn, reference.roi_heads
    pairs = {"pre_nms train": (rpn._pre_nms_top_n["training"], config.rpn.pre_nms_top_k),
             "post_nms train": (rpn._post_nms_top_n["training"], config.rpn.post_nms_top_k),
             "pre_nms test": (rpn._pre_nms_top_n["testing"], config.rpn.test_pre_nms_top_k),
             "post_nms test": (rpn._post_nms_top_n["testing"], config.rpn.test_post_nms_top_k),
             "rpn nms": (rpn.nms_thresh, config.rpn.nms_iou),
             "rois per image": (heads.fg_bg_sampler.batch_size_per_image, config.roi.num_rois),
             "score threshold": (heads.score_thresh, config.detection.score_threshold),
             "detection nms": (heads.nms_thresh, config.detection.nms_iou),
             "detections": (heads.detections_per_img, config.detection.max_detections)}
    differ = {name: pair for name, pair in pairs.items() if pair[0] != pair[1]}
    if differ:
        raise AssertionError(f"settings differ (torchvision, ours): {differ}")
    print(f"same setup: input {height}x{width} reaches both models unchanged; "
          + ", ".join(f"{name} {pair[0]}" for name, pair in pairs.items()))


def export_serving(model, config, parent):
    """`tools.export` 처럼 SavedModel 로 내보내고 불러온 `serving_default`."""
    export_dir = os.path.join(parent, config.name)
    classes = [f"class_{index}" for index in range(1, NUM_CLASSES + 1)]
    saved_model.export_saved_model(model, config, classes, export_dir)
    return tf.saved_model.load(export_dir).signatures["serving_default"]


def compare_inference(variant, image):
    """내보낸 `serving_default` 대 torchvision eval 검출, 한 장 (uint8 [H, W, 3]). 반환: compare 의 세 값."""
    torch = torch_module()
    tensor = torch.from_numpy(image)
    reference = calibrate_for_detection(torchvision_model(variant), tensor.permute(2, 0, 1).float() / 255.0)
    config = config_lib.build_config(PRESETS[variant], "backbone.weights=none")
    check_same_setup(reference, config, *image.shape[:2])
    model = builder.build_model(config, NUM_CLASSES)
    model.build_all((64, 64))
    torch_reference.copy_faster_rcnn(reference, model, variant)
    images = tf.constant(image[None])

    def torchvision_detect():
        with torch.inference_mode():
            return reference([tensor.permute(2, 0, 1).float() / 255.0])

    with tempfile.TemporaryDirectory() as parent:
        serving = export_serving(model, config, parent)
        ours = serving(images=images)["num_detections"].numpy().tolist()
        theirs = len(torchvision_detect()[0]["boxes"])
        print(f"{config.name}: detections ours {ours}, torchvision {theirs}")
        if ours != [theirs]:
            raise AssertionError(f"{config.name}: detection counts differ: ours {ours}, torchvision {theirs}")
        size = f"{image.shape[0]}x{image.shape[1]}"
        return side_by_side.compare(
            (f"{config.name} serving_default {size} uint8", lambda: serving(images=images)),
            (f"torchvision {config.name} eval", torchvision_detect), FLAGS.num_runs, TARGET_RATIO)


def random_gt_boxes(generator, height, width):
    """[B=2, G, 4] 캔버스 픽셀 GT (−1 패딩, 앞 --num_gt_boxes 개) 와 [B, G] int32 클래스 (1..C, −1 패딩)."""
    boxes = -np.ones([2, FLAGS.num_gt_boxes, 4], np.float32)
    classes = -np.ones([2, FLAGS.num_gt_boxes], np.int32)
    for image_index in range(2):
        for index in range(FLAGS.num_gt_boxes):
            box_height, box_width = generator.uniform(32, height / 2), generator.uniform(32, width / 2)
            top, left = generator.uniform(0, height - box_height), generator.uniform(0, width - box_width)
            boxes[image_index, index] = [top, left, top + box_height, left + box_width]
            classes[image_index, index] = generator.integers(1, NUM_CLASSES + 1)
    return boxes, classes


def train_batch(config, generator):
    """두 쪽의 같은 학습 배치: (우리 배치 dict, torchvision 이미지 목록, 타깃 목록).

    우리 배치는 데이터 파이프라인의 것과 같은 키: images [2, H, W, 3] float32 (0..255), image_sizes [2, 2],
    gt_boxes [2, G, 4], gt_classes [2, G], anchor_matches [2, A] (`max_gt_boxes` 까지 −1 패딩) …
    """
    torch = torch_module()
    height, width = FLAGS.image_height, FLAGS.image_width
    images = generator.integers(0, 256, [2, height, width, 3]).astype(np.float32)
    boxes, classes = random_gt_boxes(generator, height, width)
    padding = config.input.max_gt_boxes - FLAGS.num_gt_boxes
    gt_boxes = np.pad(boxes, [(0, 0), (0, padding), (0, 0)], constant_values=-1)
    gt_classes = np.pad(classes, [(0, 0), (0, padding)], constant_values=-1)
    image_sizes = tf.constant([[height, width]] * 2, tf.float32)
    anchor_matches = rpn_targets.label_anchors(anchors_lib.anchors_for_canvas(config, (height, width)),
                                               tf.constant(gt_boxes), image_sizes, config.rpn)
    batch = {"images": tf.constant(images), "image_sizes": image_sizes, "scales": tf.ones([2]),
             "gt_boxes": tf.constant(gt_boxes), "gt_classes": tf.constant(gt_classes),
             "gt_difficult": tf.zeros(gt_classes.shape, tf.bool),
             "gt_crowd": tf.zeros(gt_classes.shape, tf.bool),
             "anchor_matches": anchor_matches, "skipped_records": tf.zeros([2], tf.int32)}
    torch_images = [torch.from_numpy(image).permute(2, 0, 1).contiguous() / 255.0 for image in images]
    targets = [{"boxes": torch.from_numpy(image_boxes[:, [1, 0, 3, 2]]),
                "labels": torch.from_numpy(image_classes.astype(np.int64))}
               for image_boxes, image_classes in zip(boxes, classes)]
    return batch, torch_images, targets


def torchvision_train_step(reference, images, targets, train_config):
    """torchvision 학습 스텝 함수: 순전파 (손실 dict) → 합 → backward → SGD (모멘텀, 감쇠). 반환: 손실 (분리)."""
    torch = torch_module()
    parameters = [parameter for parameter in reference.parameters() if parameter.requires_grad]
    optimizer = torch.optim.SGD(parameters, lr=train_config.learning_rate, momentum=train_config.momentum,
                                weight_decay=train_config.weight_decay)
    reference.train()

    def step():
        losses = reference(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def compare_train(variant, generator):
    """우리 joint 학습 스텝 (`tools.train` 의 루프 함수) 대 torchvision 학습 스텝. 반환: compare 의 세 값."""
    config = config_lib.build_config(
        PRESETS[variant], "backbone.weights=none,train.batch_size=2,train.mixed_precision=false")
    canvas = (FLAGS.image_height, FLAGS.image_width)
    if canvas not in record_spec.canvases(config):
        raise app.UsageError(f"{canvas} is not a canvas of {config.name}: {record_spec.canvases(config)}")
    reference = torchvision_model(variant)
    check_same_setup(reference, config, *canvas)
    batch, torch_images, targets = train_batch(config, generator)
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = trainer_lib.Trainer(config, NUM_CLASSES, model_dir, tf.distribute.get_strategy())
        torch_reference.copy_faster_rcnn(reference, trainer.model, variant)
        trainable = sum(int(np.prod(v.shape)) for v in trainer.model.stage_variables("joint"))
        torch_trainable = sum(p.numel() for p in reference.parameters() if p.requires_grad)
        print(f"{config.name}: trainable parameters ours {trainable}, torchvision {torch_trainable}; "
              f"jit_compile {config.train.jit_compile}")
        batches = iter(tf.data.Dataset.from_tensors(batch).repeat())
        joint_loop = trainer.loop_function("joint")
        one_step = tf.constant(1)
        return side_by_side.compare(
            (f"{config.name} joint train step, batch 2", lambda: joint_loop(batches, one_step)[0]),
            (f"torchvision {config.name} train step", torchvision_train_step(
                reference, torch_images, targets, config.train)), FLAGS.num_runs, TARGET_RATIO)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.num_runs < 1 or FLAGS.threads < 1:
        raise app.UsageError("--num_runs and --threads must be ≥ 1")
    unknown = sorted(set(FLAGS.variants) - set(PRESETS)) + sorted(set(FLAGS.parts) - {"inference", "train"})
    if unknown:
        raise app.UsageError(f"unknown --variants/--parts values: {unknown}")
    logging.set_verbosity(logging.WARNING)  # 내보내기의 시그니처 이름 바꿈 안내 등
    set_threads(FLAGS.threads)
    tf.random.set_seed(FLAGS.seed)
    generator = np.random.default_rng(FLAGS.seed)
    image = generator.integers(0, 256, [FLAGS.image_height, FLAGS.image_width, 3], dtype=np.uint8)
    results = []  # (이름, 우리 중앙값, torchvision 중앙값, 비율)
    for variant in FLAGS.variants:
        for part in FLAGS.parts:
            print(f"--- {PRESETS[variant]} {part}")
            if part == "inference":
                results.append((f"{PRESETS[variant]} inference", *compare_inference(variant, image)))
            else:
                results.append((f"{PRESETS[variant]} train step", *compare_train(variant, generator)))
            gc.collect()
    print(f"summary (float32, {FLAGS.threads} threads each side, median of {FLAGS.num_runs}):")
    for name, ours, theirs, ratio in results:
        print(f"  {name}: ours {ours:.3f} s, torchvision {theirs:.3f} s, ratio {ratio:.3f} "
              f"({'PASS' if ratio <= TARGET_RATIO else 'MISS'} ≤ {TARGET_RATIO})")


if __name__ == "__main__":
    app.run(main)
