"""`tools.train` 종단 간(end-to-end) 학습 속도: 스텝당 시간 = (긴 실행 − 짧은 실행) 벽시계 시간 / 스텝 수 차.

무작위 잡음 + 사각형 JPEG (VOC 클래스 물체 1–3 개) 으로 임시 VOC 를 만들어 `tools.make_tfrecords` 로 변환하고,
변형(variant)마다 새 model_dir 두 개에 `tools.train` 을 --short_steps, --long_steps 스텝 돌린다 (각각 하위 프로세스).
두 실행 모두 시작·추적·컴파일과 마지막 체크포인트 한 번을 치르므로 차이를 빼면 순수한 학습 스텝만 남는다.
vgg16_paper 에서는 같은 프로세스에서 keras VGG16 (include_top=False) 의 순전파+역전파+SGD 를 [B, 600, 800, 3]
배치로 재어 비율을 낸다 (issue 10 의 목표: batch 1 에서 ≤ 1.25).

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_train_e2e --variants=plain,jit
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_train_e2e --config=cpu_small --image_height=96 \\
      --image_width=128 --variants=plain,jit --short_steps=2 --long_steps=6
"""

import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image, ImageDraw

from frcnn.data import voc

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "vgg16_paper", "Preset to train.")
flags.DEFINE_integer("batch_size", 1, "Global batch size of the training runs (and of the baseline).")
flags.DEFINE_integer("image_height", 300, "Height of the synthetic JPEGs.")
flags.DEFINE_integer("image_width", 400, "Width of the synthetic JPEGs.")
flags.DEFINE_integer("num_images", 16, "Number of synthetic images in the records.")
flags.DEFINE_integer("short_steps", 2, "Steps of the short run.")
flags.DEFINE_integer("long_steps", 10, "Steps of the long run.")
flags.DEFINE_integer("repeats", 1, "Runs of each length (alternating); the fastest of each is used.")
flags.DEFINE_list("variants", ["plain"], "Comma list of plain, jit, mixed, jit+mixed.")
flags.DEFINE_bool("baseline", True, "Time keras VGG16 fwd+bwd+SGD on 600×800 (vgg16_paper only).")
flags.DEFINE_string("params_override", "", "Extra training overrides, appended to the benchmark's own.")
flags.DEFINE_string("work_dir", None, "Directory for the VOC, records and runs (default: a temporary one).")
flags.DEFINE_integer("seed", 0, "Random seed of the images and boxes.")

# 두 플래그를 늘 밝힌다 (프리셋 기본값이 무엇이든 변형의 뜻이 같도록).
VARIANT_FLAGS = {"plain": ["--nojit_compile", "--nomixed_precision"],
                 "jit": ["--jit_compile", "--nomixed_precision"],
                 "mixed": ["--nojit_compile", "--mixed_precision"],
                 "jit+mixed": ["--jit_compile", "--mixed_precision"]}
# 기록·중간 체크포인트가 잰 구간에 끼지 않도록 (마지막 스텝의 체크포인트는 두 실행에 다 있어 상쇄된다).
TRAIN_OVERRIDES = "train.checkpoint_every=100000,train.log_every=100000"
BASELINE_SHAPE = (600, 800, 3)
BASELINE_RUNS = 5


def make_voc(voc_dir, num_images, height, width, seed):
    """잡음 배경에 채운 사각형 1–3 개를 그린 JPEG 과 VOC XML 을 쓴다 (모두 같은 크기 → 캔버스 하나)."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    image_ids = [f"{index:06d}" for index in range(num_images)]
    for image_id in image_ids:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        objects = []
        for _ in range(rng.integers(1, 4)):
            box_w, box_h = rng.integers(width // 8, width // 2), rng.integers(height // 8, height // 2)
            xmin, ymin = rng.integers(1, width - box_w), rng.integers(1, height - box_h)
            box = (int(xmin), int(ymin), int(xmin + box_w), int(ymin + box_h))  # VOC 1-based 포함 좌표
            draw.rectangle([box[0] - 1, box[1] - 1, box[2] - 1, box[3] - 1],
                           fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
            objects.append((voc.VOC_CLASSES[rng.integers(len(voc.VOC_CLASSES))], box))
        image.save(os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"), quality=90)
        xml = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin>"
                      f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
                      for name, b in objects)
        with open(os.path.join(voc_dir, "Annotations", f"{image_id}.xml"), "w") as handle:
            handle.write(f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
                         f"<height>{height}</height><depth>3</depth></size>{xml}</annotation>")
    with open(os.path.join(voc_dir, "ImageSets", "Main", "trainval.txt"), "w") as handle:
        handle.write("\n".join(image_ids) + "\n")


def run_tool(module, args):
    """`python -m module args` 를 하위 프로세스로 돌리고 벽시계 초를 돌려준다 (실패하면 출력 끝을 보이고 끝낸다)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{module} failed (exit {result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds


def vgg16_seconds(batch_size, policy="float32"):
    """keras VGG16 합성곱부의 순전파+역전파+SGD 한 스텝: 워밍업 한 번 뒤 BASELINE_RUNS 번의 중앙값 (초).

    policy: 모델을 만들 때의 Keras dtype 정책 (혼합 정밀도 변형은 같은 정밀도의 기준과도 견준다).
    """
    import keras
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(policy)
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=BASELINE_SHAPE)
    keras.mixed_precision.set_global_policy("float32")
    optimizer = keras.optimizers.SGD(learning_rate=0.001, momentum=0.9)
    images = tf.random.uniform((batch_size, *BASELINE_SHAPE), 0, 255)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.cast(model(images, training=True), tf.float32)))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    step().numpy()
    times = []
    for _ in range(BASELINE_RUNS):
        start = time.perf_counter()
        step().numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    unknown = [name for name in FLAGS.variants if name not in VARIANT_FLAGS]
    if unknown or not 0 < FLAGS.short_steps < FLAGS.long_steps or FLAGS.repeats < 1:
        raise app.UsageError(f"bad --variants {unknown}, or not 0 < --short_steps < --long_steps, "
                             "or --repeats < 1")
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"TensorFlow {importlib.metadata.version('tensorflow')}")
    print(f"config {FLAGS.config}, batch {FLAGS.batch_size}, {FLAGS.num_images} images "
          f"{FLAGS.image_height}×{FLAGS.image_width}, steps {FLAGS.short_steps} vs {FLAGS.long_steps}, "
          f"best of {FLAGS.repeats}")
    baseline, mixed_baseline = None, None  # 학습 실행보다 먼저 잰다 (변형마다의 줄에 비율을 싣는다)
    if FLAGS.baseline and FLAGS.config == "vgg16_paper":
        baseline = vgg16_seconds(FLAGS.batch_size)
        print(f"baseline: keras VGG16 (include_top=False) fwd+bwd+SGD on [{FLAGS.batch_size}, 600, 800, 3]: "
              f"{baseline:.3f} s (median of {BASELINE_RUNS})")
        if any("mixed" in variant for variant in FLAGS.variants):
            from frcnn.training import precision
            mixed_baseline = vgg16_seconds(FLAGS.batch_size, precision.mixed_policy_name())
            print(f"baseline under {precision.mixed_policy_name()}: {mixed_baseline:.3f} s "
                  f"(median of {BASELINE_RUNS})")
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = FLAGS.work_dir or temporary
        voc_dir, records_dir = os.path.join(work_dir, "VOC2007"), os.path.join(work_dir, "records")
        make_voc(voc_dir, FLAGS.num_images, FLAGS.image_height, FLAGS.image_width, FLAGS.seed)
        seconds = run_tool("tools.make_tfrecords", [
            f"--voc_dir={voc_dir}", f"--output_dir={records_dir}", f"--config={FLAGS.config}", "--noprogress",
            "--overwrite"])
        print(f"records made in {seconds:.1f} s")
        overrides = ",".join(filter(None, [TRAIN_OVERRIDES, FLAGS.params_override]))
        results = {}
        for variant in FLAGS.variants:
            # 짧은·긴 실행을 번갈아 --repeats 번; 각 길이의 가장 빠른 것을 쓴다 (다른 부하의 튐을 줄인다).
            times = {FLAGS.short_steps: [], FLAGS.long_steps: []}
            for steps in [FLAGS.short_steps, FLAGS.long_steps] * FLAGS.repeats:
                model_dir = os.path.join(work_dir, "runs", f"{variant}-{steps}-{time.time_ns()}")
                times[steps].append(run_tool("tools.train", [
                    f"--records={records_dir}/trainval-*.tfrecord", f"--model_dir={model_dir}",
                    f"--config={FLAGS.config}", f"--num_steps={steps}", f"--batch_size={FLAGS.batch_size}",
                    "--backbone_weights=none", "--noprogress", f"--params_override={overrides}",
                    *VARIANT_FLAGS[variant]]))
            walls = [min(times[FLAGS.short_steps]), min(times[FLAGS.long_steps])]
            per_step = (walls[1] - walls[0]) / (FLAGS.long_steps - FLAGS.short_steps)
            results[variant] = (walls[0], walls[1], per_step)
            ratio = (f"; ratio {per_step / baseline:.2f} vs VGG16 fwd+bwd {baseline:.2f} s"
                     if baseline else "")
            if mixed_baseline and "mixed" in variant:
                ratio += f", {per_step / mixed_baseline:.2f} vs mixed VGG16 {mixed_baseline:.2f} s"
            print(f"variant {variant}: per-step {per_step:.2f} s ({FLAGS.short_steps} steps "
                  f"{walls[0]:.1f} s, {FLAGS.long_steps} steps {walls[1]:.1f} s){ratio}", flush=True)
            if FLAGS.repeats > 1:
                print("  all runs: " + "; ".join(f"{steps} steps {', '.join(f'{t:.1f}' for t in runs)} s"
                                                 for steps, runs in times.items()))
    print(f"\n{'variant':<10} {'short s':>8} {'long s':>8} {'per-step s':>10} {'img/s':>7} {'ratio':>6}")
    for variant, (short, long, per_step) in results.items():
        ratio = f"{per_step / baseline:.2f}" if baseline else "-"
        images_per_second = FLAGS.batch_size / per_step if per_step > 0 else float("nan")
        print(f"{variant:<10} {short:>8.1f} {long:>8.1f} {per_step:>10.3f} "
              f"{images_per_second:>7.2f} {ratio:>6}")


if __name__ == "__main__":
    app.run(main)
