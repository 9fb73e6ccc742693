"""스케일 지터 (`input.train_short_sides`) 측정: 스케일마다 미리 계산한 앵커 라벨이 레코드에 더하는 바이트·변환 시간과,
지터를 켠 파이프라인 (그 스케일의 라벨을 레코드에서 푼다) 의 속도를 지터 끔과 나란히.

사용 예:
    nice -n 10 python -m benchmarks.bench_scale_jitter --preset=resnet50_fpn \
        --sides=640,672,704,736,768,800 --voc_images=30

하는 일:
  1. `bench_make_tfrecords.make_voc` 로 VOC 크기 (500×375, 일곱 장에 한 장 세로형) JPEG 의 임시 VOC 를 만든다.
  2. 프리셋 그대로 (지터 없는) 레코드와 `input.train_short_sides=--sides` 레코드 (min_size 가 아닌 s 마다 라벨을 더
     담는다) 를 만든다 (변환 시간도 잰다: 먼저 한 번 버리는 변환으로 TF 초기화를 뺀다).
  3. 바이트: 이미지당 JPEG·레코드 바이트 두 벌, 스케일마다의 희소 라벨 바이트 (그 특징을 뺀 크기의 차), 배수.
  4. 속도: 학습 모드 `build_dataset(canvas=--canvas)` (기본: 레코드가 가장 많은 캔버스) 를 지터 없는 레코드
     ('off'), 지터 레코드의 min_size ('jitter@min_size': 같은 크기, 파싱할 특징만 많다), 그리고 --timed_sides 의 s
     마다 ('jitter@s') 한 프로세스에서 번갈아 --rounds 번 재어 wall images/s 와 이미지당 프로세스 CPU ms 의 중앙값을 낸다.
"""

import json
import os
import statistics
import tempfile
import time

from absl import app, flags
import tensorflow as tf

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


def _convert(voc_dir: str, output_dir: str, overrides: str):
    """(레코드 glob, 변환 초) ."""
    config = config_lib.build_config(FLAGS.preset, overrides)
    options = convert.ConvertOptions(output_dir=output_dir, split="trainval", params_override=overrides)
    summary = convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                              record_spec.RecordSpec.from_config(config), options)
    return os.path.join(output_dir, "trainval-*.tfrecord"), summary["seconds"]


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


def _scale_label_bytes(pattern: str, sides) -> dict:
    """짧은 변 s → 이미지당 그 스케일의 희소 라벨 바이트 (`…/s{s}/…` 특징을 뺀 직렬화 크기의 차)."""
    totals, count = {side: 0 for side in sides}, 0
    for path in tf.io.gfile.glob(pattern):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            count += 1
            for side in sides:
                example = tf.train.Example.FromString(serialized)
                feature = example.features.feature
                for name in [name for name in feature if f"/s{side}/" in name]:
                    del feature[name]
                totals[side] += len(serialized) - len(example.SerializeToString())
    return {side: total / count for side, total in totals.items()}


def _bytes(plain_pattern: str, jitter_pattern: str, config) -> dict:
    plain = bench_anchor_labels.record_bytes(plain_pattern)
    jitter = bench_anchor_labels.record_bytes(jitter_pattern)
    count = plain["images"]
    sides = record_spec.label_short_sides(config)
    scales = _scale_label_bytes(jitter_pattern, sides)
    record, jitter_record = plain["record"] / count, jitter["record"] / count
    print(f"per image: JPEG {plain['jpeg'] / count:.0f} B; record without jitter (labels at "
          f"{config.input.min_size} only: {plain['labels'] / count:.0f} B) {record:.0f} B")
    for side, value in scales.items():
        print(f"  sparse label bytes at short side {side}: {value:.0f} B")
    print(f"record with the labels of all {len(sides) + 1} scales: {jitter_record:.0f} B = "
          f"{jitter_record / record:.3f}× the record without jitter; labels "
          f"{jitter['labels'] / plain['labels']:.2f}× the labels")
    return {"jpeg": plain["jpeg"] / count, "record": record, "jitter_record": jitter_record,
            "labels": plain["labels"] / count, "jitter_labels": jitter["labels"] / count,
            "scale_labels": scales}


def _speed(plain_pattern: str, jitter_pattern: str, config) -> dict:
    plain = record_spec.RecordSpec.read(plain_pattern, config_lib.build_config(FLAGS.preset))
    jitter = record_spec.RecordSpec.read(jitter_pattern, config)
    settings = [("off", plain, None), (f"jitter@{jitter.min_size}", jitter, None)] + [
        (f"jitter@{side}", jitter, int(side)) for side in FLAGS.timed_sides if int(side) != jitter.min_size]
    found = {name: ([], []) for name, _, _ in settings}
    for round_index in range(FLAGS.rounds):
        for name, spec, side in settings:
            rate, cpu_ms = _rate(spec, side)
            found[name][0].append(rate)
            found[name][1].append(cpu_ms)
            print(f"round {round_index + 1} {name:12s} canvas {spec.training_canvas(_canvas(spec), side)}: "
                  f"{rate:.1f} images/s, {cpu_ms:.1f} CPU ms/image", flush=True)
    medians = {name: (statistics.median(rates), statistics.median(cpu))
               for name, (rates, cpu) in found.items()}
    for name, (rate, cpu_ms) in medians.items():
        print(f"median {name:12s}: {rate:.1f} images/s ({rate / medians['off'][0]:.3f}× off), "
              f"{cpu_ms:.1f} CPU ms/image ({cpu_ms / medians['off'][1]:.3f}× off)")
    return {"rounds": found, "medians": medians}


def main(argv):
    del argv
    overrides = f"input.train_short_sides=({','.join(FLAGS.sides)},)"
    config = config_lib.build_config(FLAGS.preset, overrides)
    with tempfile.TemporaryDirectory() as work_dir:
        voc_dir = os.path.join(work_dir, "VOC2007")
        bench_make_tfrecords.make_voc(voc_dir, FLAGS.voc_images, seed=0)
        _convert(voc_dir, os.path.join(work_dir, "warmup"), "")  # TF 초기화를 변환 시간에서 뺀다
        plain_pattern, plain_seconds = _convert(voc_dir, os.path.join(work_dir, "plain"), "")
        jitter_pattern, jitter_seconds = _convert(voc_dir, os.path.join(work_dir, "jitter"), overrides)
        print(f"preset {FLAGS.preset}, {FLAGS.voc_images} synthetic VOC-sized JPEGs, "
              f"{os.cpu_count()} CPU cores; make_tfrecords {plain_seconds:.1f} s without jitter, "
              f"{jitter_seconds:.1f} s with {overrides} ({jitter_seconds / plain_seconds:.2f}×)", flush=True)
        sizes = _bytes(plain_pattern, jitter_pattern, config)
        speed = _speed(plain_pattern, jitter_pattern, config)
    print(json.dumps({"preset": FLAGS.preset, "bytes": sizes, "speed": speed,
                      "convert_seconds": {"off": plain_seconds, "jitter": jitter_seconds}}))


if __name__ == "__main__":
    app.run(main)
