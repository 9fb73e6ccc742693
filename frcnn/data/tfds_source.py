"""tfds `voc/2007` 를 변환 소스로 연다 (`make_tfrecords --source=tfds`).

이미지는 `SkipDecoding` 으로 원래 JPEG 바이트 그대로 받고, 스레드 풀에서 끝까지 디코딩해 크기를 잰다.

용어:
  G 한 이미지의 물체 수.
  tfds 박스: objects/bbox [G, 4] float32 정규화 [ymin, xmin, ymax, xmax] (tfds 가 VOC 픽셀에서
    (x − 1)/W, x/W 로 만든 값 = 이 프로젝트의 연속 픽셀 / W 와 같은 관례). 그대로 레코드에 쓴다.
  tfds 라벨: objects/label, tfds 클래스 이름(VOC 20개, 정렬)의 0부터 시작하는 번호.
  tfds 원소 키: 'image', 'image/filename', 'objects' 는 tfds `voc` 데이터셋의 스키마이다 (이 프로젝트의
    레코드 특징 이름이 아니다; 레코드 형식은 `frcnn.data.records`).
"""

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from frcnn.data import classes
from frcnn.data import sources
from frcnn.data import voc

DATASET_NAME = "voc/2007"
# tfds voc/2007 원소의 키 (tfds 의 스키마).
TFDS_IMAGE = "image"
TFDS_FILENAME = "image/filename"
TFDS_OBJECTS = "objects"


def _count_examples(dataset, info, split: str) -> int:
    """분할의 이미지 수: 메타데이터 → 데이터셋 cardinality → 직접 세기 순으로 구한다."""
    try:
        return int(info.splits[split].num_examples)
    except (KeyError, ValueError):
        pass
    cardinality = int(dataset.cardinality())
    if cardinality >= 0:
        return cardinality
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def _check_boxes(source_path: str, boxes: np.ndarray) -> None:
    """정규화 박스가 [0, 1] 안에서 뒤집히지 않았는지 검사한다."""
    ymin, xmin, ymax, xmax = boxes.T
    inside = (ymin >= 0) & (xmin >= 0) & (ymax <= 1) & (xmax <= 1) & (ymax > ymin) & (xmax > xmin)
    if not np.all(inside):
        bad = boxes[np.argmin(inside)]
        raise sources.SourceError(source_path, f"box {bad.tolist()} is empty, inverted or outside [0, 1]")


def _tfds_example(element: dict, split: str, tfds_names, class_list) -> sources.SourceItem:
    """tfds 원소 하나(numpy)를 SourceExample 로 바꾼다. 문제가 있으면 SourceError 를 돌려준다."""
    filename = element[TFDS_FILENAME].decode()
    source_path = f"tfds:{DATASET_NAME}/{split}/{filename}"
    objects = element[TFDS_OBJECTS]
    image_bytes = element[TFDS_IMAGE]
    try:
        image_format, (width, height) = voc.decode_image_checked(source_path, image_bytes)
        boxes = np.asarray(objects["bbox"], np.float32).reshape(-1, 4)
        _check_boxes(source_path, boxes)
        names = tuple(tfds_names[int(label)] for label in objects["label"])
        class_ids = classes.class_ids(names, class_list, source_path)
    except voc.VocError as error:
        return sources.SourceError.caused_by(error)
    return sources.SourceExample(
        image_id=os.path.splitext(filename)[0],
        filename=filename,
        source_path=source_path,
        image_bytes=image_bytes,
        image_format=image_format.lower(),
        height=height,
        width=width,
        normalized_boxes=boxes,
        class_ids=class_ids,
        class_names=names,
        difficult=np.asarray(objects["is_difficult"], bool),
        truncated=np.asarray(objects["is_truncated"], bool),
    )


def open_tfds_source(split: str, data_dir: Optional[str], classes_flag: Optional[str]) -> sources.Source:
    """tfds `voc/2007` 의 한 분할 ('train', 'test', 'train+validation' 등; data_dir 이 None 이면 tfds 기본값) 을
    연다. classes_flag 가 비면 tfds 클래스 이름 그대로.

    Raises:
      SourceError: 데이터셋을 열 수 없거나 --classes 가 잘못됐을 때.
    """
    import tensorflow_datasets as tfds  # 무거운 선택 의존성이라 --source=tfds 일 때만 가져온다.

    try:
        dataset, info = tfds.load(DATASET_NAME, split=split, data_dir=data_dir, with_info=True,
                                  shuffle_files=False,
                                  decoders={TFDS_IMAGE: tfds.decode.SkipDecoding()})
    except Exception as error:  # tfds 는 여러 종류의 예외를 던진다.
        raise sources.SourceError(f"tfds:{DATASET_NAME}/{split}", f"cannot load: {error}") from error
    tfds_names = tuple(info.features[TFDS_OBJECTS]["label"].names)
    try:
        class_list = classes.parse_classes_flag(classes_flag) if classes_flag else tfds_names
    except voc.VocError as error:
        raise sources.SourceError.caused_by(error) from error
    num_examples = _count_examples(dataset, info, split)

    def items():
        elements = dataset.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
        yield from sources.parallel_map(
            lambda element: _tfds_example(element, split, tfds_names, class_list), elements)

    return sources.Source("tfds", tuple(class_list), num_examples, items())
