"""make_tfrecords 변환 속도 측정: VOC 크기(500×375, 일부 세로형) JPEG 으로 임시 VOC 를 만들고 변환한다.

사용 예:
    python -m benchmarks.bench_make_tfrecords --num_images=300 --config=vgg16_paper

출력: 이미지 생성 시간, 변환 images/s (목표: 2코어에서 vgg16_paper 로 ≥ 150 images/s), 레코드 크기.
"""

import os
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

from frcnn import config as config_lib
from frcnn.data import record_spec
from frcnn.data import sources
from frcnn.data import voc
from pipelines import convert

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_images", 300, "Number of synthetic VOC images to convert.")
flags.DEFINE_string("config", "vgg16_paper", "Preset to label anchors for.")
flags.DEFINE_integer("seed", 0, "Random seed of the images and boxes.")
flags.DEFINE_integer("repeats", 1, "Conversions to time (the best is reported too).")

PORTRAIT_EVERY = 7  # 일곱 장에 한 장은 세로형 (375×500).


def _textured_image(rng, width, height) -> Image.Image:
    """실제 사진과 비슷한 크기의 JPEG 이 나오도록 부드러운 그레이디언트 + 잡음 무늬."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, 3)
    channels = [127 + 60 * np.sin(x / rng.uniform(8, 40) + y / rng.uniform(8, 40) + phase)
                for phase in phases]
    image = np.stack(channels, axis=-1) + rng.normal(0, 18, (height, width, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))


def _annotation_xml(image_id, width, height, objects) -> str:
    parts = [f"<annotation><filename>{image_id}.jpg</filename><size><width>{width}</width>"
             f"<height>{height}</height><depth>3</depth></size>"]
    for name, (xmin, ymin, xmax, ymax) in objects:
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{xmin}</xmin>"
                     f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def make_voc(voc_dir: str, num_images: int, seed: int) -> None:
    """임시 VOC 디렉터리를 만든다 (이미지마다 1–6 개의 무작위 박스)."""
    rng = np.random.default_rng(seed)
    for sub in ("Annotations", "JPEGImages", os.path.join("ImageSets", "Main")):
        os.makedirs(os.path.join(voc_dir, sub), exist_ok=True)
    image_ids = [f"{index:06d}" for index in range(num_images)]
    for index, image_id in enumerate(image_ids):
        width, height = (375, 500) if index % PORTRAIT_EVERY == 0 else (500, 375)
        objects = []
        for _ in range(rng.integers(1, 7)):
            xmin, ymin = rng.integers(1, width - 40), rng.integers(1, height - 40)
            xmax, ymax = rng.integers(xmin + 20, width + 1), rng.integers(ymin + 20, height + 1)
            objects.append((voc.VOC_CLASSES[rng.integers(len(voc.VOC_CLASSES))], (xmin, ymin, xmax, ymax)))
        _textured_image(rng, width, height).save(
            os.path.join(voc_dir, "JPEGImages", f"{image_id}.jpg"), quality=90)
        with open(os.path.join(voc_dir, "Annotations", f"{image_id}.xml"), "w") as handle:
            handle.write(_annotation_xml(image_id, width, height, objects))
    with open(os.path.join(voc_dir, "ImageSets", "Main", "trainval.txt"), "w") as handle:
        handle.write("\n".join(image_ids) + "\n")


def main(argv):
    del argv
    config = config_lib.build_config(FLAGS.config)
    with tempfile.TemporaryDirectory() as work_dir:
        voc_dir = os.path.join(work_dir, "VOC2007")
        start = time.perf_counter()
        make_voc(voc_dir, FLAGS.num_images, FLAGS.seed)
        jpeg_bytes = sum(os.path.getsize(os.path.join(voc_dir, "JPEGImages", name))
                         for name in os.listdir(os.path.join(voc_dir, "JPEGImages")))
        print(f"made {FLAGS.num_images} images in {time.perf_counter() - start:.1f} s "
              f"(mean JPEG {jpeg_bytes / FLAGS.num_images / 1024:.0f} KiB)")
        rates = []
        for repeat in range(FLAGS.repeats):
            options = convert.ConvertOptions(output_dir=os.path.join(work_dir, f"records{repeat}"),
                                             split="trainval")
            summary = convert.convert(lambda: sources.open_voc_source(voc_dir, "trainval", None),
                                      record_spec.RecordSpec.from_config(config), options)
            rates.append(summary["images_per_second"])
            record_bytes = sum(os.path.getsize(path) for path in summary["files"])
            print(f"preset {config.name}: A={summary['num_anchors']} anchors, {summary['num_images']} images "
                  f"in {summary['seconds']:.2f} s = {summary['images_per_second']:.1f} images/s, "
                  f"records {record_bytes / 2**20:.1f} MiB")
        print(f"best {max(rates):.1f} images/s on {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    app.run(main)
