"""학습 입력 파이프라인: 샤드 TFRecord → 디코딩·리사이즈·뒤집기·캔버스 패딩 → 캔버스별 배치.

레코드의 앵커 매칭 코드는 `make_tfrecords` 가 같은 리사이즈 식(`resize.resize_scale`)과 같은
float32 연산(`resize.canvas_boxes`)으로 미리 계산했다. 앵커 지문은 `RecordSpec.read` 가 시작 전에 한 번
확인하고 (레코드마다 다시 확인한다), 뒤집기를 하면 미리 계산해 둔 뒤집힌 이미지의 코드를 쓴다.
레코드의 코드는 희소하다 (`records` 모듈 설명): 적힌 양성·무시 앵커를 캔버스의 [A] 에 흩뿌리고, 이미지 경계를
넘는 앵커의 −1 은 같은 앵커·같은 이미지 크기로 다시 계산한다 (`rpn_targets.boundary_ignored`, 그래프 안).
스케일 지터 (`build_dataset(short_side=s)`) 도 같다: 변환기가 s 마다 미리 계산해 둔 그 스케일 캔버스의 라벨을
푼다 (tf.data 에서 라벨을 계산하면 resnet50_fpn 에서 이미지당 CPU 가 몇 배라서; `input.train_short_sides` 설명).

용어:
  B 배치, G 최대 GT 수 (`input.max_gt_boxes`, −1 패딩), A 앵커 수.
  H, W 원본 크기; h, w 리사이즈된 크기; Hc, Wc 캔버스 크기 (`RecordSpec.canvas_shapes` 의 k 번째).
  박스: `[ymin, xmin, ymax, xmax]` float32 캔버스 픽셀 (레코드는 정규화 좌표).
  캔버스별 배치: 이미지는 자기 크기로 정해지는 캔버스 k 에 들어간다 (`resize.canvas_for_image`). `canvas=k` 면
    그 캔버스의 레코드만 (디코딩 전에 크기 특징으로 고른다) 정적 모양 [B, Hc, Wc, 3] 으로 낸다: 학습은
    캔버스마다 데이터셋 하나, 학습 스텝 추적 하나. `canvas=None` 이면 캔버스가 같은 것끼리 묶지만
    element_spec 의 Hc, Wc, A 는 None 이다.
  깨진 레코드: 이미지를 디코딩할 수 없는 레코드는 경고 한 줄 (image/source_id) 을 남기고 건너뛴다. 다음
    이미지의 'skipped_records' 가 그 앞에서 건너뛴 수라서, 배치의 합을 더하면 건너뛴 총수다 (학습 루프가 센다).
"""

import os
import sys

import numpy as np
import tensorflow as tf

from frcnn.data import record_spec
from frcnn.data import records
from frcnn.data import resize
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.ops import box_ops


def _pad_objects(values, max_gt_boxes: int, padding):
    """[G', ...] 을 [G, ...] 로 뒤를 채운다 (G' ≤ G 는 변환기가 보장)."""
    count = tf.shape(values)[0]
    paddings = [[0, max_gt_boxes - count]] + [[0, 0]] * (values.shape.rank - 1)
    padded = tf.pad(values, paddings, constant_values=padding)
    return tf.ensure_shape(padded, [max_gt_boxes] + values.shape[1:].as_list())


def _flip_decision(random_flip: bool, flip, seed):
    """이 이미지를 뒤집을지 (bool 스칼라 텐서): flip 이 주어지면 그대로, 아니면 random_flip 이면 반반."""
    if flip is not None:
        return tf.constant(bool(flip))
    if not random_flip:
        return tf.constant(False)
    return tf.random.uniform([], seed=seed) < 0.5


def _parse(serialized, spec):
    """레코드 → `records.parse_example` dict (지터 스케일의 라벨도; 앵커 지문이 명세와 다르면 오류: 건너뛰지 않는다)."""
    parsed = records.parse_example(serialized, record_spec.label_short_sides(spec.config))
    fingerprint_check = tf.debugging.assert_equal(
        parsed["anchor_fingerprint"], spec.fingerprint,
        message=f"record anchor fingerprint differs from preset '{spec.config.name}'")
    with tf.control_dependencies([fingerprint_check]):
        parsed["image_bytes"] = tf.identity(parsed["image_bytes"])
    return parsed


def _decode(parsed):
    image = tf.io.decode_image(parsed["image_bytes"], channels=3, expand_animations=False)
    return dict(parsed, image=image, decoded=tf.constant(True))


def _mark_undecodable(parsed):
    """디코딩에 실패한 레코드의 표시 원소 (decoded=False) 와 경고 한 줄."""
    message = tf.strings.join(["WARNING: skipping record with image/source_id '", parsed["source_id"],
                               "': its image cannot be decoded"])
    with tf.control_dependencies([tf.print(message, output_stream=sys.stderr)]):
        image = tf.zeros([1, 1, 3], tf.uint8)
    return dict(parsed, image=image, decoded=tf.constant(False))


def _decode_or_mark(parsed):
    """원소 하나짜리 데이터셋: 디코딩한 원소, 또는 디코딩 오류면 표시 원소 (그래프에서 오류를 잡는 길은
    데이터셋의 ignore_errors 뿐이라 레코드마다 작은 데이터셋을 만든다)."""
    one = tf.data.Dataset.from_tensors(parsed)
    decoded = one.map(_decode).ignore_errors()
    return decoded.concatenate(one.map(_mark_undecodable)).take(1)


_DECODE_CYCLE = 8  # 디코딩 interleave 가 동시에 여는 레코드 수
_REORDER_MARGIN = 8 * _DECODE_CYCLE  # 순서 없는 interleave 가 원소를 앞당길 수 있는 넉넉한 한도


def _skip_undecodable(dataset, num_records: int, what: str):
    """표시 원소를 빼고, 남은 원소마다 바로 앞에서 건너뛴 수 'skipped_records' (int32) 를 붙인다.

    반복하는 데이터셋에서 레코드가 모두 깨졌으면 좋은 원소가 영영 오지 않는다: 연달아 2 × num_records 개를
    건너뛰면 (에포크 경계를 넘어도 좋은 레코드가 하나라도 있으면 그보다 적다) 오류로 멈춘다. 학습의 디코딩
    interleave 는 순서를 지키지 않아 (빨리 실패하는 깨진 레코드의 표시가 느린 좋은 디코딩을 앞지른다) 그만큼
    (`_REORDER_MARGIN`) 더 기다린다: 레코드가 둘뿐인 캔버스에서 부하가 크면 네 번 연달아 건너뛸 수 있었다.
    """
    limit = 2 * max(num_records, 1) + _REORDER_MARGIN

    def count(skipped, element):
        decoded = element["decoded"]
        check = tf.debugging.assert_less(
            skipped, limit, message=f"every record of {what} has an undecodable image")
        with tf.control_dependencies([check]):
            return tf.where(decoded, 0, skipped + 1), dict(element, skipped_records=skipped)

    counted = dataset.scan(tf.constant(0, tf.int32), count)
    return counted.filter(lambda element: element["decoded"])


def anchor_table(spec, canvas=None, short_side=None):
    """캔버스 k (None 이면 모든 캔버스) 의 앵커를 한 번 계산해 둔 표 (데이터셋마다 한 번).

    short_side: None (min_size) 또는 지터의 짧은 변 s (캔버스 k 를 s 로 바꾼 모양 `RecordSpec.training_canvas`).

    Returns:
      (anchors [ΣA, 4] float32 numpy — 캔버스 번호 순으로 이은 것, starts [K] 시작 위치, counts [K] 앵커 수);
      canvas 가 주어지면 그 캔버스 하나 (K = 1).
    """
    indices = range(len(spec.canvas_shapes)) if canvas is None else [canvas]
    arrays = [anchors_lib.anchors_for_canvas(spec.config, spec.training_canvas(index, short_side)).numpy()
              for index in indices]
    counts = np.array([len(array) for array in arrays], np.int32)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
    return np.concatenate(arrays), starts, counts


def dense_anchor_matches(parsed, spec, table, canvas_index, image_size, flip, short_side=None):
    """레코드의 희소 앵커 라벨 → 그 캔버스의 [A] int32 밀집 매칭 코드 (그래프 안).

    Args:
      parsed: `records.parse_example` dict (희소 라벨 두 벌; 지터면 스케일마다 두 벌 더).
      spec: `RecordSpec` (rpn 설정).
      table: `anchor_table(spec, canvas, short_side)`.
      canvas_index: 표가 캔버스 하나면 무시, 모든 캔버스면 이미지의 캔버스 번호 (int32 스칼라 텐서).
      image_size: [2] float32 리사이즈된 (h, w) (`resize.canvas_boxes`).
      flip: bool 스칼라 텐서, 뒤집힌 이미지의 라벨을 쓸지.
      short_side: None (min_size 의 라벨) 또는 지터의 짧은 변 s (레코드의 s 스케일 라벨, 변환기가 미리 계산).

    Returns:
      [A] int32 (표가 캔버스 하나면 A 가 정적).
    """
    anchors, starts, counts = table
    anchors = tf.constant(anchors)
    if len(starts) > 1:
        # [A_k, 4] 이 이미지의 캔버스 앵커
        begin, size = tf.gather(starts, canvas_index), tf.gather(counts, canvas_index)
        anchors = tf.slice(anchors, [begin, 0], [size, 4])
    boundary = rpn_targets.boundary_ignored(anchors, image_size[None], spec.config.rpn)[0]  # [A]
    sparse = tf.cond(flip, lambda: [parsed[key] for key in records.anchor_label_keys(True, short_side)],
                     lambda: [parsed[key] for key in records.anchor_label_keys(False, short_side)])
    return records.decode_anchor_matches(sparse, boundary)


def _prepare(parsed, spec, training, flip, seed, canvas, table, short_side=None):
    """디코딩한 레코드 하나 → 배치 전 원소 dict (모양은 `build_dataset` 의 배치 모양에서 B 를 뺀 것).

    short_side 가 None 이면 min_size, 아니면 지터의 짧은 변 s (canvas 는 번호): 둘 다 레코드의 그 스케일 라벨
    (table = `anchor_table(spec, canvas, short_side)`).
    """
    config = spec.config
    image = parsed["image"]
    original_size = tf.shape(image)[:2]
    sizes = (short_side or spec.min_size, spec.max_size, config.input.size_rule)
    resized, scale = resize.resize_image(image, *sizes)
    max_gt_boxes = config.input.max_gt_boxes
    normalized_boxes = _pad_objects(parsed["boxes"], max_gt_boxes, -1.0)  # [G, 4]
    gt_boxes, image_size = resize.canvas_boxes(normalized_boxes, original_size[0], original_size[1], *sizes)
    do_flip = _flip_decision(training and config.input.random_flip, flip, seed)
    resized = tf.cond(do_flip, lambda: tf.image.flip_left_right(resized), lambda: resized)
    gt_boxes = tf.where(do_flip, box_ops.flip_left_right(gt_boxes, image_size[1]), gt_boxes)
    if canvas is None:
        index = resize.canvas_for_image(original_size[0], original_size[1], spec)
        shape = tf.unstack(tf.constant(spec.canvas_shapes, tf.int32)[index])
    else:
        index, shape = canvas, spec.training_canvas(canvas, short_side)
    anchor_matches = dense_anchor_matches(parsed, spec, table, index, image_size, do_flip, short_side)
    return {
        "images": resize.pad_to_canvas(resized, shape),
        "image_sizes": image_size,
        "original_sizes": original_size,
        "scales": scale,
        "gt_boxes": gt_boxes,
        "gt_classes": _pad_objects(parsed["classes"], max_gt_boxes, -1),
        "gt_difficult": _pad_objects(parsed["difficult"], max_gt_boxes, False),
        "gt_crowd": _pad_objects(parsed["is_crowd"], max_gt_boxes, False),
        "anchor_matches": anchor_matches,
        "source_ids": parsed["source_id"],
        "skipped_records": parsed["skipped_records"],
    }


def _read_records(files, training: bool, seed):
    """샤드를 병렬로 섞어 읽는다 (학습이면 파일 순서도 섞는다)."""
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)


def _canvas_filter(canvas: int, spec):
    """캔버스 k 의 레코드만 남기는 술어 (디코딩 전에 크기 특징으로 판단)."""
    def keep(serialized):
        height, width = records.parse_image_size(serialized)
        return tf.equal(resize.canvas_for_image(height, width, spec), canvas)

    return keep


def _batch_by_canvas(dataset, spec, batch_size: int, drop_remainder: bool):
    """같은 캔버스끼리 배치한다 (배치마다 캔버스 모양이 하나)."""
    def canvas_key(element):
        original = element["original_sizes"]
        return tf.cast(resize.canvas_for_image(original[0], original[1], spec), tf.int64)

    return dataset.group_by_window(
        key_func=canvas_key,
        reduce_func=lambda key, window: window.batch(batch_size, drop_remainder=drop_remainder),
        window_size=batch_size)


def _decoded_records(spec, training, seed, canvas):
    """샤드 → (캔버스 k 의 것만) → 섞기·반복 → 파싱 → 디코딩 (깨진 이미지는 경고하고 건너뛴다)."""
    dataset = _read_records(list(spec.files), training, seed)
    if canvas is not None:
        dataset = dataset.filter(_canvas_filter(canvas, spec))
    if training:
        dataset = dataset.shuffle(spec.config.input.shuffle_buffer, seed=seed).repeat()
    dataset = dataset.map(lambda serialized: _parse(serialized, spec), num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.interleave(_decode_or_mark, cycle_length=_DECODE_CYCLE,
                                 num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=not training)
    if canvas is None:
        return _skip_undecodable(dataset, spec.metadata.get("num_images", 0), spec.files[0])
    shape = spec.canvas_shapes[canvas]
    return _skip_undecodable(dataset, spec.canvas_counts[canvas],
                             f"canvas {canvas} ({shape[0]}×{shape[1]}) in {os.path.dirname(spec.files[0])}")


def _check_arguments(spec, canvas, short_side):
    """`build_dataset` 의 인자 검사 (Raises 는 그쪽 설명)."""
    num_canvases = len(spec.canvas_shapes)
    if canvas is not None and not (isinstance(canvas, int) and 0 <= canvas < num_canvases):
        raise ValueError(f"canvas must be None or a canvas index in [0, {num_canvases}), got {canvas!r}")
    if short_side is not None and canvas is None:
        raise ValueError("short_side (scale jitter) needs a canvas index: one static shape per dataset")
    sides = spec.config.input.train_short_sides
    if short_side is not None and short_side not in sides:
        raise ValueError(f"short_side must be one of input.train_short_sides={tuple(sides)} (the records "
                         f"hold anchor labels for those only), got {short_side!r}")
    if not spec.files:
        raise ValueError("build_dataset needs a RecordSpec read from records (RecordSpec.read)")


def build_dataset(spec, training: bool, batch_size=None, flip=None, seed=None,
                  canvas=None, short_side=None) -> tf.data.Dataset:
    """학습·평가용 배치 데이터셋을 만든다.

    Args:
      spec: `record_spec.RecordSpec.read(샤드 glob, config)` — 파일, 지문, 캔버스 (한 번 확인한 것).
      training: True 면 섞기, 반복, 무작위 좌우 뒤집기 (`input.random_flip`), 마지막 작은 배치 버림.
      batch_size: 배치 크기 B (None 이면 `train.batch_size`).
      flip: None 이면 위 규칙, True/False 면 모든 이미지를 뒤집기/그대로 (시험용).
      seed: 섞기·뒤집기 seed.
      canvas: None (모든 캔버스, 캔버스별로 묶은 배치, 모양 None) 또는 캔버스 번호 k (그 캔버스의 레코드만,
        정적 모양; 그 캔버스의 레코드가 없으면 학습 데이터셋은 아무것도 내지 않는다).
      short_side: None (min_size) 또는 스케일 지터의 짧은 변 s ∈ input.train_short_sides (canvas 가 필요하다): 짧은
        변 s 로 리사이즈해 `spec.training_canvas(canvas, s)` 모양에 담고, 앵커 라벨은 변환기가 s 마다 미리 계산해
        레코드에 담은 것 (s = min_size 면 None 과 같다).

    Returns:
      원소 dict: 'images' [B, Hc, Wc, 3] float32 (0–255), 'image_sizes' [B, 2] float32 (h, w),
      'original_sizes' [B, 2] int32 (H, W), 'scales' [B] float32, 'gt_boxes' [B, G, 4] float32
      캔버스 픽셀 (−1 패딩), 'gt_classes' [B, G] int32 (1부터, −1 패딩), 'gt_difficult' [B, G] bool,
      'gt_crowd' [B, G] bool (COCO iscrowd; is_crowd 특징이 없는 레코드는 False),
      'anchor_matches' [B, A] int32, 'source_ids' [B] string, 'skipped_records' [B] int32 (각 이미지 바로
      앞에서 건너뛴 디코딩 불가 레코드 수).

    Raises:
      ValueError: 레코드 파일이 없는 명세, 없는 캔버스 번호, canvas 없는 short_side, input.train_short_sides 에
        없는 short_side.
    """
    _check_arguments(spec, canvas, short_side)
    if short_side == spec.min_size:
        short_side = None  # min_size 의 라벨은 기본 라벨이다 (`record_spec.label_short_sides`)
    batch_size = batch_size or spec.config.train.batch_size
    dataset = _decoded_records(spec, training, seed, canvas)
    table = anchor_table(spec, canvas, short_side)
    dataset = dataset.map(lambda parsed: _prepare(parsed, spec, training, flip, seed, canvas, table,
                                                  short_side),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    if canvas is not None:
        dataset = dataset.batch(batch_size, drop_remainder=training)
    else:
        dataset = _batch_by_canvas(dataset, spec, batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)
