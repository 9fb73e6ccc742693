"""스케일 지터 (`input.train_short_sides`) 측정: 앵커 라벨을 tf.data 에서 계산하는 비용과, 스케일마다 미리 계산해
레코드에 넣었다면 레코드가 얼마나 커지는지.

사용 예:
    nice -n 10 python -m benchmarks.bench_scale_jitter --preset=resnet50_fpn \
        --sides=640,672,704,736,768,800 --voc_images=40

하는 일:
  1. `bench_make_tfrecords.make_voc` 로 VOC 크기 (500×375, 일곱 장에 한 장 세로형) JPEG 의 임시 VOC 를 만든다.
  2. 프리셋 그대로 (min_size) 레코드를 만들고, --sides 의 min_size 가 아닌 짧은 변 s 마다 `input.min_size=s` 로
     한 벌씩 더 만든다 (그 스케일의 희소 라벨 바이트 = 미리 계산했을 때 레코드에 더해질 바이트).
  3. 바이트: 이미지당 레코드·JPEG·라벨 바이트 (`bench_anchor_labels.record_bytes`). "모두 미리 계산" 레코드 =
     min_size 레코드 + 다른 스케일들의 라벨 바이트; 배수 = 그것 / min_size 레코드.
  4. 속도: 학습 모드 `build_dataset(canvas=--canvas)` (기본: 레코드가 가장 많은 캔버스) 를 지터 끔
     (short_side=None, 레코드의 라벨), s = min_size
     (같은 크기, 라벨만 tf.data 에서 계산), 그리고 --timed_sides 의 s 마다, 한 프로세스에서 번갈아 --rounds 번
     재어 wall images/s 와 이미지당 프로세스 CPU ms 의 중앙값을 낸다.
"""

import json
import os
import statistics
import tempfile
import time

from absl import app, flags

from benchmarks import bench_anchor_labels
from benchmarks import bench_make_tfrecords
from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import sources
from pipelines import convert
from pipelines import input_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_list("sides", ["640", "672", "704", "736", "768", "800"],
                  "input.train_short_sides whose precomputed labels are measured (detectron2's FPN default).")
flags.DEFINE_list("timed_sides", ["640", "800"], "Short sides whose pipeline speed is timed (besides 'off').")
# --preset, --voc_images, --rounds, --num_batches, --canvas 는 `bench_anchor_labels` 의 플래그 (기본값만 바꾼다;
# 여기서 --canvas=-1 은 레코드가 가장 많은 캔버스)
for _name, _value in (("preset", "resnet50_fpn"), ("voc_images", 40), ("rounds", 3), ("num_batches", 60),
                      ("canvas", -1)):
    FLAGS.set_default(_name, _value)


def _convert(voc_dir: str, output_dir: str, overrides: str) -> str:
    config = config_lib.build_config(FLAGS.preset, overrides)
    options = convert.ConvertOptions(output_dir=output_dir, split="trainval", params_override=overrides)
    convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                    record_spec.RecordSpec.from_config(config), options)
    return os.path.join(output_dir, "trainval-*.tfrecord")


def _canvas(spec) -> int:
    return FLAGS.canvas if FLAGS.canvas >= 0 else max(range(len(spec.canvas_counts)),
                                                      key=spec.canvas_counts.__getitem__)


def _rate(spec, short_side):
    """(wall images/s, 이미지당 CPU ms) — 캔버스 `_canvas`, 짧은 변 short_side (None = 지터 끔)."""
    dataset = input_pipeline.build_dataset(spec, training=True, canvas=_canvas(spec), short_side=short_side)
    iterator = iter(dataset)
    for _ in range(5):
        next(iterator)
    wall, cpu = time.perf_counter(), time.process_time()
    images = sum(int(next(iterator)["images"].shape[0]) for _ in range(FLAGS.num_batches))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return images / wall, cpu / images * 1e3


def _bytes(voc_dir: str, work_dir: str, base_pattern: str, min_size: int) -> dict:
    base = bench_anchor_labels.record_bytes(base_pattern)
    count = base["images"]
    labels = {min_size: base["labels"] / count}
    for side in sorted({int(side) for side in FLAGS.sides} - {min_size}):
        pattern = _convert(voc_dir, os.path.join(work_dir, f"s{side}"), f"input.min_size={side}")
        labels[side] = bench_anchor_labels.record_bytes(pattern)["labels"] / count
    record = base["record"] / count
    all_scales = record + sum(value for side, value in labels.items() if side != min_size)
    print(f"per image: JPEG {base['jpeg'] / count:.0f} B, record (labels at {min_size} only) {record:.0f} B")
    for side, value in labels.items():
        print(f"  sparse label bytes at short side {side}: {value:.0f} B")
    print(f"precomputing all {len(labels)} scales: record {all_scales:.0f} B = "
          f"{all_scales / record:.3f}× the "
          f"record, labels {sum(labels.values()) / labels[min_size]:.2f}× the labels")
    return {"jpeg": base["jpeg"] / count, "record": record, "labels": labels, "all_scales_record": all_scales}


def _speed(pattern: str, config) -> dict:
    spec = record_spec.RecordSpec.read(pattern, config)
    settings = [("off", None), (f"computed@{spec.min_size}", spec.min_size)] + [
        (f"computed@{side}", int(side)) for side in FLAGS.timed_sides if int(side) != spec.min_size]
    found = {name: ([], []) for name, _ in settings}
    for round_index in range(FLAGS.rounds):
        for name, side in settings:
            rate, cpu_ms = _rate(spec, side)
            found[name][0].append(rate)
            found[name][1].append(cpu_ms)
            print(f"round {round_index + 1} {name:14s} canvas {spec.training_canvas(_canvas(spec), side)}: "
                  f"{rate:.1f} images/s, {cpu_ms:.1f} CPU ms/image", flush=True)
    medians = {name: (statistics.median(rates), statistics.median(cpu))
               for name, (rates, cpu) in found.items()}
    for name, (rate, cpu_ms) in medians.items():
        print(f"median {name:14s}: {rate:.1f} images/s ({rate / medians['off'][0]:.3f}× off), "
              f"{cpu_ms:.1f} CPU ms/image ({cpu_ms / medians['off'][1]:.3f}× off)")
    return {"rounds": found, "medians": medians}


def main(argv):
    del argv
    config = config_lib.build_config(FLAGS.preset, f"input.train_short_sides=({','.join(FLAGS.sides)},)")
    with tempfile.TemporaryDirectory() as work_dir:
        voc_dir = os.path.join(work_dir, "VOC2007")
        bench_make_tfrecords.make_voc(voc_dir, FLAGS.voc_images, seed=0)
        pattern = _convert(voc_dir, os.path.join(work_dir, "base"), "")
        print(f"preset {FLAGS.preset}, {FLAGS.voc_images} synthetic VOC-sized JPEGs, "
              f"{os.cpu_count()} CPU cores",
              flush=True)
        speed = _speed(pattern, config)
        sizes = _bytes(voc_dir, work_dir, pattern, config.input.min_size)
    print(json.dumps({"preset": FLAGS.preset, "bytes": sizes, "speed": speed}))


if __name__ == "__main__":
    app.run(main)
