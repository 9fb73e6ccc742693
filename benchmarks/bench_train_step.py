"""학습 스텝 벤치마크: Faster R-CNN joint 학습 스텝 전체 vs. VGG16 합성곱(conv1_1..conv5_3) 만의 순전파+역전파.

vgg16_paper 프리셋(백본 가중치 none, train.batch_size=1)으로 600×800 무작위 이미지 한 장을 그 이미지를 담는
가장 작은 캔버스 (608×800) 에 두고, 무작위 GT 박스 3개와 그 앵커 매칭 코드로 배치를 만든다. 각 함수를 한 번씩 워밍업한 뒤
번갈아 --num_runs 번 재고 중앙값과 비율(목표 ≤ 1.25)을 출력한다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_train_step --num_runs=3

용어:
  B 배치(=1), H·W 캔버스 (600×800 이면 608×800), G 최대 GT 수 (패딩 −1), A 앵커 수.
  박스 형식 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀.
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import side_by_side
from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import resize
from frcnn.modeling import backbones
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.training import trainer as trainer_lib

FLAGS = flags.FLAGS

flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 번갈아 잴 횟수 (중앙값을 낸다).")
flags.DEFINE_integer("num_gt_boxes", 3, "무작위 GT 박스 수.")
flags.DEFINE_integer("image_height", 600, "캔버스에 놓을 이미지 높이 (픽셀).")
flags.DEFINE_integer("image_width", 800, "캔버스에 놓을 이미지 너비 (픽셀).")
flags.DEFINE_integer("seed", 0, "무작위 이미지·박스 씨앗.")

TARGET_RATIO = 1.25
NUM_CLASSES = 20

SPEC = record_spec.RecordSpec.from_config  # 설정 → 캔버스 명세


def random_batch(config, generator):
    """캔버스 배치 한 개를 만든다.

    Args:
      config: `ExperimentConfig`.
      generator: numpy Generator.

    Returns:
      dict: images [1, H, W, 3] float32, image_sizes [1, 2], scales [1], gt_boxes [1, G, 4],
        gt_classes [1, G] int32, anchor_matches [1, A] int32.
    """
    height, width = FLAGS.image_height, FLAGS.image_width
    canvas = record_spec.canvases(config)[int(resize.canvas_for_image(height, width, SPEC(config)))]
    canvas_height, canvas_width = canvas
    images = np.zeros([1, canvas_height, canvas_width, 3], np.float32)
    images[0, :height, :width] = generator.integers(0, 256, [height, width, 3])
    max_boxes = config.input.max_gt_boxes
    gt_boxes = -np.ones([1, max_boxes, 4], np.float32)
    gt_classes = -np.ones([1, max_boxes], np.int32)
    for index in range(FLAGS.num_gt_boxes):
        box_height = generator.uniform(64, height / 2)
        box_width = generator.uniform(64, width / 2)
        top = generator.uniform(0, height - box_height)
        left = generator.uniform(0, width - box_width)
        gt_boxes[0, index] = [top, left, top + box_height, left + box_width]
        gt_classes[0, index] = generator.integers(1, NUM_CLASSES + 1)
    image_sizes = tf.constant([[height, width]], tf.float32)
    anchor_matches = rpn_targets.label_anchors(anchors_lib.anchors_for_canvas(config, canvas),
                                               tf.constant(gt_boxes), image_sizes, config.rpn)
    return {"images": tf.constant(images), "image_sizes": image_sizes, "scales": tf.ones([1]),
            "gt_boxes": tf.constant(gt_boxes), "gt_classes": tf.constant(gt_classes),
            "gt_difficult": tf.zeros(gt_classes.shape, tf.bool),
            "gt_crowd": tf.zeros(gt_classes.shape, tf.bool), "anchor_matches": anchor_matches,
            "skipped_records": tf.zeros([1], tf.int32)}


def vgg16_conv_step(config):
    """VGG16 합성곱 층만의 순전파+역전파+SGD 갱신 `tf.function` 을 만든다 (별도 가중치)."""
    features = backbones.build_backbone(config, "baseline").features
    optimizer = keras.optimizers.SGD(learning_rate=0.001, momentum=config.train.momentum)
    optimizer.build(features.trainable_variables)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            outputs = features(backbones.caffe_normalize(images), training=True)
            loss = tf.reduce_mean(tf.square(outputs))
        gradients = tape.gradient(loss, features.trainable_variables)
        optimizer.apply_gradients(zip(gradients, features.trainable_variables))
        return loss

    return step


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if FLAGS.num_runs < 1:
        raise app.UsageError("--num_runs must be ≥ 1")
    config = config_lib.build_config("vgg16_paper", "train.batch_size=1,backbone.weights=none")
    _, resized = resize.resize_scale(FLAGS.image_height, FLAGS.image_width, 600, 1000)
    if resized.numpy().tolist() != [FLAGS.image_height, FLAGS.image_width]:
        raise app.UsageError(f"image {FLAGS.image_height}×{FLAGS.image_width} is not a resized size "
                             "(shorter side 600, longer ≤ 1000)")
    tf.random.set_seed(FLAGS.seed)
    batch = random_batch(config, np.random.default_rng(FLAGS.seed))
    canvas = batch["images"].shape[1:3]
    print(f"canvas {canvas[0]}×{canvas[1]}, image {FLAGS.image_height}×{FLAGS.image_width}, "
          f"positive anchors {int(tf.reduce_sum(tf.cast(batch['anchor_matches'] > 0, tf.int32)))}")
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = trainer_lib.Trainer(config, NUM_CLASSES, model_dir, tf.distribute.get_strategy())
        batches = iter(tf.data.Dataset.from_tensors(batch).repeat())
        joint_loop = trainer.loop_function("joint")
        one_step = tf.constant(1)
        baseline_step = vgg16_conv_step(config)
        side_by_side.compare(("joint train step", lambda: joint_loop(batches, one_step)[0]),
                             ("vgg16 conv1..conv5_3 fwd+bwd+SGD", lambda: baseline_step(batch["images"])),
                             FLAGS.num_runs, TARGET_RATIO)


if __name__ == "__main__":
    app.run(main)
