"""내보낸 SavedModel `serving_default` 한 장의 연산별 시간표 (TF 런타임 프로파일러의 step stats).

vgg16_paper 프리셋 (무작위 가중치, SVD 없는 기본 내보내기) 을 임시 디렉터리로 내보내거나 (`--export_dir` 를 주면
그것을 쓴다), `tf.compat.v1` 세션으로 불러 600×800 uint8 무작위 이미지 한 장을 `FULL_TRACE` 로 --num_runs 번
돌린다. 노드마다 (함수 몸체 안의 연산 포함) 실행 시간을 모아 연산 종류별·노드별 중앙값 표 (Markdown) 를 출력하고
--output 에 쓴다. 전체 벽시계 시간과 합성곱 (Conv2D) 의 몫도 적는다. 스레드 두 개가 연산을 겹쳐 돌리므로 노드
시간의 합은 벽시계 시간보다 클 수 있다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.profile_export --num_runs=3 \\
      --output=benchmarks/profile_vgg16_paper.md
"""

import collections
import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from frcnn import config as config_lib
from frcnn.export import saved_model
from frcnn.modeling import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "프로파일할 SavedModel (없으면 무작위 vgg16_paper 를 내보낸다).")
flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 추적할 실행 수 (노드 시간은 중앙값).")
flags.DEFINE_integer("image_height", 600, "입력 이미지 높이.")
flags.DEFINE_integer("image_width", 800, "입력 이미지 너비.")
flags.DEFINE_integer("top", 40, "노드 표의 줄 수.")
flags.DEFINE_string("output", None, "Markdown 표를 쓸 파일 (없으면 출력만).")

NUM_CLASSES = 20
_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf",
             "_Retval", "_Arg", "NoOp", "Identity", "Const")


def export_random(parent):
    """무작위 가중치 vgg16_paper 를 SVD 없이 내보내고 경로를 돌려준다."""
    config = config_lib.build_config("vgg16_paper", "backbone.weights=none")
    tf.random.set_seed(0)
    model = model_lib.FasterRCNN(config, NUM_CLASSES)
    model.build_all(config_lib.largest_canvas(config))
    export_dir = os.path.join(parent, "full")
    saved_model.export_saved_model(model, config, [f"class_{i}" for i in range(1, NUM_CLASSES + 1)],
                                   export_dir)
    return export_dir


def trace(export_dir, image, num_runs):
    """(벽시계 초 목록, 실행마다 {(노드 이름, 연산 종류): 마이크로초}) ."""
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        signature = meta.signature_def["serving_default"]
        feed = signature.inputs["images"].name
        fetches = {key: value.name for key, value in signature.outputs.items()}
        session.run(fetches, {feed: image})
        options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        walls, runs = [], []
        for _ in range(num_runs):
            metadata = tf.compat.v1.RunMetadata()
            start = time.perf_counter()
            session.run(fetches, {feed: image}, options=options, run_metadata=metadata)
            walls.append(time.perf_counter() - start)
            runs.append(_node_times(metadata))
    return walls, runs


def _node_times(metadata):
    times = collections.Counter()
    for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
            op = node.timeline_label.split("(")[0].split(" = ")[-1].strip() or node.node_name
            times[(node.node_name, op)] += node.all_end_rel_micros
    return times


def tables(walls, runs):
    """Markdown 줄들: 요약, 연산 종류별 표, 노드별 표."""
    keys = set().union(*runs)
    median = {key: statistics.median(run.get(key, 0) for run in runs) for key in keys}
    leaf = {key: value for key, value in median.items() if key[1] not in _CALL_OPS}
    by_op = collections.Counter()
    for (_, op), value in leaf.items():
        by_op[op] += value
    total = sum(by_op.values())
    wall = statistics.median(walls) * 1e6
    lines = [f"wall (median of {len(walls)} traced runs): {wall / 1000:.1f} ms; sum of op times "
             f"{total / 1000:.1f} ms; Conv2D {by_op['Conv2D'] / 1000:.1f} ms "
             f"({by_op['Conv2D'] / total:.1%} of op time)", "",
             "| op type | ms | share of op time |", "| --- | ---: | ---: |"]
    lines += [f"| {op} | {value / 1000:.2f} | {value / total:.1%} |" for op, value in by_op.most_common()
              if value >= 100]
    lines += ["", f"top {FLAGS.top} nodes:", "", "| node | op | ms |", "| --- | --- | ---: |"]
    for (name, op), value in sorted(leaf.items(), key=lambda item: -item[1])[:FLAGS.top]:
        lines.append(f"| `{name[-90:]}` | {op} | {value / 1000:.2f} |")
    return lines


def main(argv):
    del argv
    image = np.random.default_rng(0).integers(0, 256, [1, FLAGS.image_height, FLAGS.image_width, 3],
                                              dtype=np.uint8)
    with tempfile.TemporaryDirectory() as parent:
        export_dir = FLAGS.export_dir or export_random(parent)
        walls, runs = trace(export_dir, image, FLAGS.num_runs)
    lines = [f"# serving_default {FLAGS.image_height}x{FLAGS.image_width}, {os.cpu_count()} CPU cores", "",
             *tables(walls, runs)]
    print("\n".join(lines))
    if FLAGS.output:
        with open(FLAGS.output, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)
