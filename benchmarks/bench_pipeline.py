"""학습 입력 파이프라인 속도 측정: `build_dataset` (학습 모드) 가 내는 images/s.

사용 예:
    python -m benchmarks.bench_pipeline --records='records/trainval-*.tfrecord' --preset=vgg16_paper

--records 를 비우면 `bench_make_tfrecords` 와 같은 합성 VOC (500×375) 를 임시로 만들어 변환한 뒤 잰다.
"""

import os
import tempfile
import time

from absl import app, flags

from benchmarks import bench_make_tfrecords
from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import sources
from pipelines import convert
from pipelines import input_pipeline

FLAGS = flags.FLAGS
flags.DEFINE_string("records", None, "TFRecord glob made by make_tfrecords (default: make synthetic ones).")
flags.DEFINE_string("preset", "vgg16_paper", "Preset the records were made for.")
flags.DEFINE_string("params_override", "", "Overrides applied to the preset.")
flags.DEFINE_integer("batch_size", None, "Batch size (default: the preset's train.batch_size).")
flags.DEFINE_integer("num_batches", 200, "Batches to time after the warm-up.")
flags.DEFINE_integer("warmup_batches", 10, "Batches read before timing (fills shuffle buffer and prefetch).")
flags.DEFINE_integer("synthetic_images", 300, "Synthetic images when --records is empty.")
flags.DEFINE_integer("canvas", None, "Canvas index (the training loop's one-canvas datasets); default: all "
                     "canvases, batched per canvas.")


def measure(pattern: str, config, batch_size, num_batches: int, warmup_batches: int, canvas=None) -> float:
    """학습 모드 데이터셋에서 배치를 꺼내는 속도 (images/s)."""
    spec = record_spec.RecordSpec.read(pattern, config)
    iterator = iter(input_pipeline.build_dataset(spec, training=True, batch_size=batch_size, canvas=canvas))
    for _ in range(warmup_batches):
        next(iterator)
    start = time.perf_counter()
    images = sum(int(next(iterator)["images"].shape[0]) for _ in range(num_batches))
    return images / (time.perf_counter() - start)


def main(argv):
    del argv
    config = config_lib.build_config(FLAGS.preset, FLAGS.params_override)
    batch_size = FLAGS.batch_size or config.train.batch_size
    with tempfile.TemporaryDirectory() as work_dir:
        pattern = FLAGS.records
        if not pattern:
            voc_dir = os.path.join(work_dir, "VOC2007")
            bench_make_tfrecords.make_voc(voc_dir, FLAGS.synthetic_images, seed=0)
            options = convert.ConvertOptions(output_dir=os.path.join(work_dir, "records"), split="trainval",
                                             params_override=FLAGS.params_override)
            convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                            record_spec.RecordSpec.from_config(config), options)
            pattern = os.path.join(work_dir, "records", "trainval-*.tfrecord")
        rate = measure(pattern, config, batch_size, FLAGS.num_batches, FLAGS.warmup_batches, FLAGS.canvas)
    print(f"build_dataset(training=True, canvas={FLAGS.canvas}) preset {config.name}, batch {batch_size}: "
          f"{rate:.1f} images/s "
          f"on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    app.run(main)
