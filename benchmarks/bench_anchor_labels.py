"""희소 앵커 라벨 측정: 레코드 바이트와 학습 파이프라인 images/s 를 옛 (밀집 int16) 형식과 한 실행 안에서 나란히.

사용 예 (옛 형식 = 이 변경 앞 커밋의 worktree):
    git worktree add /tmp/old_21a <앞 커밋>
    nice -n 15 python -m benchmarks.bench_anchor_labels --old_tree=/tmp/old_21a --preset=vgg16_paper

하는 일:
  1. `bench_make_tfrecords.make_voc` 로 VOC 크기 (500×375, 일곱 장에 한 장 세로형) JPEG 의 임시 VOC 를 만든다.
  2. 두 트리의 `tools.make_tfrecords` 로 각자 레코드를 만든다 (각 트리 디렉터리에서 하위 프로세스).
  3. 바이트: 레코드마다 JPEG 바이트, 라벨 바이트 (라벨 특징 `image/anchor_matches*` 를 뺀 직렬화와의 차이,
     특징 이름 포함), 나머지. "라벨이 더하는 몫" = 라벨 바이트 / 라벨 없는 레코드 바이트.
  4. 같음: 두 트리의 `build_dataset` (모든 캔버스, 뒤집기 없음·있음) 이 내는 `anchor_matches` 가 이미지마다
     비트 단위로 같은지.
  5. 속도: 두 트리의 학습 모드 `build_dataset` (`benchmarks.bench_pipeline` 과 같은 측정에 이미지당 CPU 시간을
     더한 것) 을 번갈아 --rounds 번 (기계가 시끄러워서) 돌려 images/s 와 이미지당 CPU ms 의 중앙값과 비율 (새 / 옛).
     학습 루프처럼 캔버스 하나 (--canvas) 의 데이터셋이다.
  6. 디코딩만: 레코드 하나를 라벨 없이 파싱 vs 모두 파싱 + 밀집 코드로 풀기의 시간 차 (ms, 순차, 다섯 번 중 최소) 와
     그것이 새 파이프라인의 이미지 한 장 시간에서 차지하는 몫. 시끄러운 기계에서 5 의 비율보다 안정적이다.
  7. 끄기: 새 트리의 한 프로세스에서 라벨 디코딩을 0 텐서로 바꾼 파이프라인과 번갈아 잰 이미지당 CPU ms.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import bench_make_tfrecords
from frcnn.data import records

FLAGS = flags.FLAGS
flags.DEFINE_string("old_tree", None, "Worktree of the commit before sparse labels (dense int16 records); "
                    "without it only this tree's bytes and its label-decoding ablation are measured (presets "
                    "that never had dense records, e.g. resnet50_fpn).")
flags.DEFINE_string("preset", "vgg16_paper", "Preset to make records for.")
flags.DEFINE_integer("voc_images", 50, "Synthetic VOC-sized images (--seed: bench_make_tfrecords's flag).")
flags.DEFINE_integer("rounds", 5, "Alternating old/new pipeline measurements.")
flags.DEFINE_integer("num_batches", 150, "Batches timed per pipeline measurement.")
flags.DEFINE_integer("canvas", 0, "Canvas index of the timed one-canvas dataset (-1: all canvases).")

NEW_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 두 트리에 공통인 API 로 `anchor_matches` 를 source_id·뒤집기별로 npz 에 쓰는 코드 (트리 디렉터리에서 실행).
_DUMP_MATCHES = """
import sys
import numpy as np
from frcnn import config as config_lib
from frcnn.data import record_spec
from pipelines import input_pipeline
pattern, preset, output = sys.argv[1:4]
spec = record_spec.RecordSpec.read(pattern, config_lib.build_config(preset))
found = {}
for flip in (False, True):
    for batch in input_pipeline.build_dataset(spec, training=False, batch_size=1, flip=flip):
        found[batch["source_ids"].numpy()[0].decode() + ("/flipped" if flip else "")] = (
            batch["anchor_matches"].numpy()[0])
np.savez(output, **found)
"""

# 레코드 하나의 라벨 디코딩 비용 (ms): 라벨 특징 없이 파싱 vs 모두 파싱 + 밀집 코드 [A] 로 풀기, 캔버스 하나,
# 메모리에 올린 레코드, 순차 map (CPU 시간). 옛 트리는 int16 바이트 (decode_raw), 새 트리는 희소 목록.
_DECODE_COST = """
import sys, time
import tensorflow as tf
from frcnn import config as config_lib
from frcnn.data import record_spec, records, resize
from pipelines import input_pipeline
pattern, preset, canvas, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
spec = record_spec.RecordSpec.read(pattern, config_lib.build_config(preset))
if hasattr(input_pipeline, "dense_anchor_matches"):
    table = input_pipeline.anchor_table(spec, canvas)
    def labels(parsed):
        _, size = resize.canvas_boxes(tf.zeros([1, 4]), parsed["height"], parsed["width"], spec.min_size,
                                      spec.max_size)
        return input_pipeline.dense_anchor_matches(parsed, spec, table, canvas, size, tf.constant(False))
else:
    def labels(parsed):
        return records.decode_anchor_matches(parsed["anchor_matches_bytes"], spec.anchor_counts[canvas])
plain_spec = {key: value for key, value in records.parsing_spec().items()
              if not key.startswith(records.ANCHOR_MATCHES)}
functions = {"without": lambda serialized: tf.io.parse_single_example(serialized, plain_spec)[records.HEIGHT],
             "with": lambda serialized: labels(records.parse_example(serialized))}
cached = tf.data.TFRecordDataset(list(spec.files)).filter(input_pipeline._canvas_filter(canvas, spec)).cache()
best = {}
for _ in range(5):
    for name, function in functions.items():
        iterator = iter(cached.repeat().map(function))
        for _ in range(50):
            next(iterator)
        start = time.perf_counter()
        for _ in range(count):
            next(iterator)
        best[name] = min(best.get(name, 1e9), (time.perf_counter() - start) / count * 1e3)
print(best["with"] - best["without"])
"""

# 학습 모드 `build_dataset` (캔버스 하나, 무작위 뒤집기) 의 wall images/s 와 이미지당 프로세스 CPU 시간 (ms, 모든
# 스레드). CPU 시간은 다른 작업이 코어를 나눠 써도 덜 흔들린다 (두 트리에 같은 코드).
_PIPELINE = """
import sys, time
from frcnn import config as config_lib
from frcnn.data import record_spec
from pipelines import input_pipeline
pattern, preset, canvas, num_batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
config = config_lib.build_config(preset)
spec = record_spec.RecordSpec.read(pattern, config)
dataset = input_pipeline.build_dataset(spec, training=True, canvas=None if canvas < 0 else canvas)
iterator = iter(dataset)
for _ in range(10):
    next(iterator)
wall, cpu = time.perf_counter(), time.process_time()
images = sum(int(next(iterator)["images"].shape[0]) for _ in range(num_batches))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(images / wall, cpu / images * 1e3)
"""

# 같은 프로세스·같은 트리에서 라벨 디코딩 (`dense_anchor_matches`) 을 0 텐서로 바꾼 파이프라인과 번갈아 잰
# 이미지당 CPU ms: 디코딩이 파이프라인에 더하는 몫을 다른 차이 (레코드 크기, 트리) 없이 본다 (새 트리 전용).
_ABLATION = """
import sys, time
import tensorflow as tf
from frcnn import config as config_lib
from frcnn.data import record_spec
from pipelines import input_pipeline
pattern, preset, canvas, num_batches = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
spec = record_spec.RecordSpec.read(pattern, config_lib.build_config(preset))
real = input_pipeline.dense_anchor_matches
zeros = lambda *arguments: tf.zeros([spec.anchor_counts[canvas]], tf.int32)
for _ in range(4):
    for name, function in (("real", real), ("zeros", zeros)):
        input_pipeline.dense_anchor_matches = function
        iterator = iter(input_pipeline.build_dataset(spec, training=True, canvas=canvas))
        for _ in range(10):
            next(iterator)
        cpu = time.process_time()
        images = sum(int(next(iterator)["images"].shape[0]) for _ in range(num_batches))
        print(name, (time.process_time() - cpu) / images * 1e3)
"""


def _run(tree: str, arguments) -> str:
    """트리 디렉터리에서 파이썬 하위 프로세스를 돌리고 표준 출력을 돌려준다 (실패하면 stderr 와 함께 오류)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=tree)
    result = subprocess.run([sys.executable] + list(arguments), cwd=tree, env=environment,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{tree}: {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _make_records(tree: str, voc_dir: str, output_dir: str) -> str:
    _run(tree, ["-m", "tools.make_tfrecords", f"--voc_dir={voc_dir}", "--split=trainval",
                f"--output_dir={output_dir}", f"--config={FLAGS.preset}"])
    return os.path.join(output_dir, "trainval-*.tfrecord")


def record_bytes(pattern: str) -> dict:
    """레코드 바이트를 JPEG, 앵커 라벨 특징, 나머지로 나눈 합 (이미지 수와 함께)."""
    totals = {"images": 0, "record": 0, "jpeg": 0, "labels": 0}
    for path in tf.io.gfile.glob(pattern):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            example = tf.train.Example.FromString(serialized)
            feature = example.features.feature
            totals["jpeg"] += len(feature[records.ENCODED].bytes_list.value[0])
            for name in [name for name in feature if name.startswith(records.ANCHOR_MATCHES)]:
                del feature[name]
            totals["labels"] += len(serialized) - len(example.SerializeToString())
            totals["record"] += len(serialized)
            totals["images"] += 1
    return totals


def _print_bytes(name: str, totals: dict) -> float:
    """한 형식의 이미지당 바이트와, 라벨이 레코드에 더하는 몫 (%) 을 출력하고 그 몫을 돌려준다."""
    count = totals["images"]
    share = 100.0 * totals["labels"] / (totals["record"] - totals["labels"])
    print(f"{name:7s} per image: record {totals['record'] / count:9.0f} B, "
          f"JPEG {totals['jpeg'] / count:8.0f} B, "
          f"labels {totals['labels'] / count:8.0f} B (labels/JPEG {totals['labels'] / totals['jpeg']:.3f}); "
          f"labels add {share:.1f} % to the record")
    return share


def _same_matches(old_pattern: str, new_pattern: str, work_dir: str) -> int:
    """두 트리의 파이프라인 `anchor_matches` 가 같은지 확인하고 비교한 (이미지, 뒤집기) 수를 돌려준다."""
    dumps = {}
    for side, tree, pattern in (("old", FLAGS.old_tree, old_pattern), ("new", NEW_TREE, new_pattern)):
        dumps[side] = os.path.join(work_dir, f"{side}_matches.npz")
        _run(tree, ["-c", _DUMP_MATCHES, pattern, FLAGS.preset, dumps[side]])
    old, new = np.load(dumps["old"]), np.load(dumps["new"])
    if sorted(old.files) != sorted(new.files):
        raise AssertionError(f"different images: {sorted(set(old.files) ^ set(new.files))}")
    for key in old.files:
        if old[key].shape != new[key].shape or not np.array_equal(old[key], new[key]):
            raise AssertionError(f"{key}: dense anchor labels differ between the old and new records")
    return len(old.files)


def _pipeline_rate(tree: str, pattern: str):
    """한 트리의 (wall images/s, 이미지당 CPU ms)."""
    output = _run(tree, ["-c", _PIPELINE, pattern, FLAGS.preset, str(FLAGS.canvas), str(FLAGS.num_batches)])
    rate, cpu_ms = output.split()[-2:]
    return float(rate), float(cpu_ms)


def _compare_pipelines(old_pattern: str, new_pattern: str) -> dict:
    """옛·새 파이프라인을 번갈아 재고 (wall images/s, 이미지당 CPU ms) 의 중앙값·비율을 출력한다."""
    sides = (("old", FLAGS.old_tree, old_pattern), ("new", NEW_TREE, new_pattern))
    rates, cpu = {"old": [], "new": []}, {"old": [], "new": []}
    for round_index in range(FLAGS.rounds):
        for side, tree, pattern in sides:
            rate, cpu_ms = _pipeline_rate(tree, pattern)
            rates[side].append(rate)
            cpu[side].append(cpu_ms)
        print(f"round {round_index + 1}: old {rates['old'][-1]:.1f}, new {rates['new'][-1]:.1f} images/s; "
              f"CPU per image old {cpu['old'][-1]:.1f}, new {cpu['new'][-1]:.1f} ms", flush=True)
    medians = {side: statistics.median(values) for side, values in rates.items()}
    cpu_medians = {side: statistics.median(values) for side, values in cpu.items()}
    ratio = statistics.median(new / old for old, new in zip(rates["old"], rates["new"]))
    print(f"pipeline median images/s: old (dense) {medians['old']:.1f}, new (sparse) {medians['new']:.1f}, "
          f"new/old of the medians {medians['new'] / medians['old']:.3f}, median of the rounds' new/old "
          f"{ratio:.3f}")
    print(f"pipeline median CPU ms per image: old {cpu_medians['old']:.2f}, new {cpu_medians['new']:.2f}, "
          f"new/old {cpu_medians['new'] / cpu_medians['old']:.3f}")
    return {**medians, "median_round_ratio": ratio, "rounds": rates, "cpu_ms_per_image": cpu}


def _decode_costs(old_pattern: str, new_pattern: str, rates: dict) -> dict:
    """라벨 디코딩 비용 (ms/레코드) 과 그것이 새 파이프라인의 이미지당 CPU 시간 (중앙값) 에서 차지하는 몫."""
    canvas = max(FLAGS.canvas, 0)
    costs = {}
    for side, tree, pattern in (("old", FLAGS.old_tree, old_pattern), ("new", NEW_TREE, new_pattern)):
        output = _run(tree, ["-c", _DECODE_COST, pattern, FLAGS.preset, str(canvas), "2000"])
        costs[side] = float(output.split()[-1])
    cpu_ms = statistics.median(rates["cpu_ms_per_image"]["new"])
    print(f"label parsing + decoding per record (canvas {canvas}, one thread): old (dense) "
          f"{costs['old']:.3f} ms, new (sparse) {costs['new']:.3f} ms = "
          f"{100 * costs['new'] / cpu_ms:.2f} % of the new pipeline's {cpu_ms:.1f} CPU ms per image")
    return costs


def _ablation(pattern: str) -> dict:
    """새 트리에서 라벨 디코딩을 끈 파이프라인과의 이미지당 CPU ms (중앙값) 를 출력한다."""
    canvas = max(FLAGS.canvas, 0)
    output = _run(NEW_TREE, ["-c", _ABLATION, pattern, FLAGS.preset, str(canvas), str(FLAGS.num_batches)])
    values = {"real": [], "zeros": []}
    for line in output.splitlines():
        name, cpu_ms = line.split()
        values[name].append(float(cpu_ms))
    medians = {name: statistics.median(found) for name, found in values.items()}
    print(f"same process, new tree, CPU ms per image (median of 4 alternations): labels decoded "
          f"{medians['real']:.2f}, decoding replaced by zeros {medians['zeros']:.2f} "
          f"(decoding adds {100 * (medians['real'] / medians['zeros'] - 1):+.1f} %)")
    return values


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as work_dir:
        voc_dir = os.path.join(work_dir, "VOC2007")
        bench_make_tfrecords.make_voc(voc_dir, FLAGS.voc_images, FLAGS.seed)
        new_pattern = _make_records(NEW_TREE, voc_dir, os.path.join(work_dir, "new"))
        print(f"preset {FLAGS.preset}, {FLAGS.voc_images} synthetic VOC-sized JPEGs "
              "(500×375, every 7th 375×500)")
        patterns = {"sparse": new_pattern}
        if FLAGS.old_tree:
            patterns["dense"] = _make_records(FLAGS.old_tree, voc_dir, os.path.join(work_dir, "old"))
        shares = {name: _print_bytes(name, record_bytes(pattern)) for name, pattern in patterns.items()}
        rates = costs = None
        if FLAGS.old_tree:
            print(f"bit-identical dense anchor_matches from old and new records: "
                  f"{_same_matches(patterns['dense'], new_pattern, work_dir)} (image, flip) pairs")
            rates = _compare_pipelines(patterns["dense"], new_pattern)
            costs = _decode_costs(patterns["dense"], new_pattern, rates)
        ablation = _ablation(new_pattern)
    print(json.dumps({"preset": FLAGS.preset, "label_share_percent": shares, "images_per_second": rates,
                      "label_decode_ms": costs, "ablation_cpu_ms_per_image": ablation}))


if __name__ == "__main__":
    app.run(main)
