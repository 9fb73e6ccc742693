"""내보낸 SavedModel `serving_default` 한 장의 연산별 시간표 (TF 프로파일러, `tf.profiler.experimental`).

vgg16_paper 프리셋 (무작위 가중치, SVD 없는 기본 내보내기) 을 임시 디렉터리로 내보내거나 (`--export_dir` 를 주면
그것을 쓴다), 불러와 600×800 uint8 무작위 이미지 한 장으로 워밍업한 뒤 --num_runs 번을 프로파일러로 추적한다.
호스트 평면 (xplane.pb) 의 TF 연산 사건 (이름 `노드:연산종류`) 을 모아 실행당 연산 종류별·노드별 시간 (ms) 표를
Markdown 으로 출력하고 --output 에 쓴다. 백본 (VGG16) 합성곱 시간에 대한 비율도 적는다. 연산들이
스레드 여럿에서 겹쳐 돌 수 있으므로 연산 시간의 합은 벽시계 시간과 다를 수 있다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.profile_export --num_runs=3 \\
      --output=benchmarks/profile_vgg16_paper.md
"""

import collections
import glob
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.export import saved_model
from frcnn.modeling import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "프로파일할 SavedModel (없으면 무작위 vgg16_paper 를 내보낸다).")
flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 추적할 실행 수 (노드 시간은 실행당 평균).")
flags.DEFINE_integer("image_height", 600, "입력 이미지 높이.")
flags.DEFINE_integer("image_width", 800, "입력 이미지 너비.")
flags.DEFINE_integer("top", 40, "노드 표의 줄 수.")
flags.DEFINE_string("output", None, "Markdown 표를 쓸 파일 (없으면 출력만).")

NUM_CLASSES = 20
_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf")


def export_random(parent):
    """무작위 가중치 vgg16_paper 를 SVD 없이 내보내고 경로를 돌려준다."""
    config = config_lib.build_config("vgg16_paper", "backbone.weights=none")
    tf.random.set_seed(0)
    model = model_lib.FasterRCNN(config, NUM_CLASSES)
    model.build_all(record_spec.largest_canvas(config))
    export_dir = os.path.join(parent, "full")
    saved_model.export_saved_model(model, config, [f"class_{i}" for i in range(1, NUM_CLASSES + 1)],
                                   export_dir)
    return export_dir


def trace(export_dir, image, num_runs, logdir):
    """(실행당 벽시계 초 중앙값, {(노드 이름, 연산 종류): 실행당 ms}) — 프로파일러로 num_runs 번 추적."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    images = tf.constant(image)
    serving(images=images)["num_detections"].numpy()
    walls = []
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=3)
    tf.profiler.experimental.start(logdir, options=options)
    for _ in range(num_runs):
        start = time.perf_counter()
        serving(images=images)["num_detections"].numpy()
        walls.append(time.perf_counter() - start)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as handle:
        space.ParseFromString(handle.read())
    times = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                name, _, op = label.rpartition(":")
                if name and "::" not in label and op.isidentifier() and op not in _CALL_OPS:
                    times[(name, op)] += event.duration_ps / 1e9 / num_runs
    return statistics.median(walls), times


def tables(wall, times):
    """Markdown 줄들: 요약, 연산 종류별 표, 노드별 표."""
    by_op = collections.Counter()
    for (_, op), value in times.items():
        by_op[op] += value
    total = sum(by_op.values())
    conv = sum(value for (name, op), value in times.items() if "backbone" in name and "Conv2D" in op)
    lines = [f"wall per run (median, while tracing): {wall * 1000:.0f} ms; op time per run {total:.0f} ms; "
             f"VGG16 convolutions (backbone) {conv:.0f} ms; op time / backbone convolutions "
             f"{total / conv:.3f}",
             "", "| op type | ms per run | / backbone convolutions |", "| --- | ---: | ---: |"]
    lines += [f"| {op} | {value:.1f} | {value / conv:.4f} |"
              for op, value in by_op.most_common() if value >= 0.5]
    lines += ["", f"top {FLAGS.top} nodes:", "", "| node | op | ms per run |", "| --- | --- | ---: |"]
    for (name, op), value in times.most_common(FLAGS.top):
        lines.append(f"| `{name.replace('StatefulPartitionedCall/', '')[-80:]}` | {op} | {value:.1f} |")
    return lines


def main(argv):
    del argv
    image = np.random.default_rng(0).integers(0, 256, [1, FLAGS.image_height, FLAGS.image_width, 3],
                                              dtype=np.uint8)
    with tempfile.TemporaryDirectory() as parent:
        export_dir = FLAGS.export_dir or export_random(parent)
        wall, times = trace(export_dir, image, FLAGS.num_runs, os.path.join(parent, "profile"))
    lines = [f"serving_default {FLAGS.image_height}x{FLAGS.image_width} uint8, {os.cpu_count()} CPU cores, "
             f"{FLAGS.num_runs} traced runs", "", *tables(wall, times)]
    print("\n".join(lines))
    if FLAGS.output:
        with open(FLAGS.output, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)
