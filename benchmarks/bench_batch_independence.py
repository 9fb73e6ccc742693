"""크기가 다른 이미지 배치의 추론 비용: 이미지마다 자기 크기로 검출 (지금의 `serve_bytes`, 배치의 다른 이미지가
결과를 바꾸지 않는다) 과, 배치에서 가장 큰 이미지까지 패딩해 한 번에 검출 (이전 방식, 결과가 배치 구성에
좌우된다) 을 같은 프로세스에서 번갈아 잰다. 한 장과 --batch_size 장 (가로·세로가 섞인 VOC 크기) 둘 다.

예:
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_batch_independence --config=cpu_small --num_runs=5
  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_batch_independence --config=vgg16_paper --num_runs=2

용어: B 배치, H·W 원본 크기. 가중치는 무작위 (backbone.weights=none) — 지연만 잰다.
"""

import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks import side_by_side
from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import resize
from frcnn.export import detection
from frcnn.modeling import model as model_lib

FLAGS = flags.FLAGS
flags.DEFINE_enum("config", "cpu_small", sorted(config_lib.PRESETS), "프리셋.")
flags.DEFINE_integer("batch_size", 4, "배치의 이미지 수.")
flags.DEFINE_integer("num_runs", 3, "워밍업 뒤 번갈아 잴 횟수 (중앙값).")

# VOC 에서 흔한 (H, W): 4:3 가로, 3:4 세로, 3:2 가로, 2:3 세로, …
SIZES = [(375, 500), (500, 375), (333, 500), (500, 333), (281, 500), (500, 400)]


def _jpegs(count):
    rng = np.random.default_rng(0)
    return tf.constant([tf.io.encode_jpeg(rng.integers(0, 255, SIZES[index % len(SIZES)] + (3,), np.uint8))
                        .numpy() for index in range(count)])


def _padded_batch_fn(module, config):
    """이전 방식: 리사이즈한 이미지들을 배치에서 가장 큰 크기 (stride 배수) 까지 패딩해 한 번에 검출."""
    longest = module._padded(config.input.max_size)

    def decode(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        resized, scale = resize.resize_image(image, config.input.min_size, config.input.max_size)
        return tf.image.pad_to_bounding_box(resized, 0, 0, longest, longest), tf.shape(resized)[:2], scale

    @tf.function
    def detect(image_bytes):
        padded, sizes, scales = tf.map_fn(decode, image_bytes, fn_output_signature=(
            tf.TensorSpec([longest, longest, 3], tf.float32), tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([], tf.float32)))
        height = module._padded(tf.reduce_max(sizes[:, 0]))
        width = module._padded(tf.reduce_max(sizes[:, 1]))
        return module._detect_resized(padded[:, :height, :width], sizes, scales)

    return detect


def main(argv):
    del argv
    config = config_lib.build_config(FLAGS.config, "backbone.weights=none")
    model = model_lib.FasterRCNN(config, 20)
    model.build_all(record_spec.largest_canvas(config))
    module = detection.DetectionModule(model, config, [f"class{index}" for index in range(1, 21)])
    per_image = tf.function(module.detect_encoded)
    padded = _padded_batch_fn(module, config)
    for count in (1, FLAGS.batch_size):
        images = _jpegs(count)
        print(f"--- {FLAGS.config}, {count} image(s) {[SIZES[i % len(SIZES)] for i in range(count)]}")
        side_by_side.compare((f"per image ({count})", lambda: per_image(images)),
                             (f"padded batch ({count})", lambda: padded(images)), FLAGS.num_runs, 1.10)


if __name__ == "__main__":
    app.run(main)
