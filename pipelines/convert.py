"""소스 → 샤드 TFRecord 변환: 앵커 라벨 미리 계산, 샤드에 번갈아 쓰기, 성공할 때만 제 이름으로 옮기기.

흐름:
  1. 출력 검사 (기존 결과가 있으면 --overwrite 없이는 오류).
  2. 소스 열기 (`frcnn.data.sources.open_voc_source`, `frcnn.data.tfds_source.open_tfds_source`,
     `frcnn.data.coco.open_coco_source`): 소스가
     이미지·주석을 검사해 `SourceExample` 을 차례로 낸다.
  3. 같은 방향(가로/세로)·비슷한 물체 수의 이미지를 `LABEL_BATCH_SIZE` 장씩 모아 `tf.function` 한 번으로 원본과
     좌우 뒤집은 GT 의 앵커 매칭 코드를 함께 계산한다 (이미지별 즉시 실행 TF 호출 없음). 레코드에는 희소하게
     적는다 (`records.build_example`: 양성·IoU 무시 앵커만, 경계 밖 앵커는 읽을 때 다시 계산). 스케일 지터
     (`input.train_short_sides`) 면 min_size 가 아닌 짧은 변 s 마다 같은 배치를 s 로 리사이즈한 GT 로 한 번 더
     (그 이미지가 s 에서 들어가는 캔버스 `RecordSpec.training_canvas(k, s)` 의 앵커): 변환 시간이 스케일 수배.
  4. 샤드에 번갈아 쓰고, 끝나면 `<split>.json` 과 함께 제 이름으로 옮긴다 (`fileio.StagedFiles`).
     새 파일을 모두 옮긴 뒤에야 새 묶음에 없는 옛 출력(예: 샤드가 더 많던 옛 실행)을 지운다.
     실패하면 임시 파일을 지우고 옛 출력은 그대로 둔다.
  파일 이름(`<split>-NNNNN-of-MMMMM.tfrecord`, `<split>.json`)은 `frcnn.data.records` 가 정한다.
  진행 표시는 하지 않는다: 부르는 쪽이 `ConvertOptions.progress(done, total)` 콜백을 줄 수 있다.

용어:
  B 라벨 배치의 이미지 수, G 배치 안 최대 물체 수 (−1 패딩), A 앵커 수.
  H, W 원본 크기; h, w 리사이즈된 크기 (`resize.resize_scale`, 파이프라인과 같은 식).
  박스: 레코드는 정규화 [ymin, xmin, ymax, xmax] (연속 픽셀 / H 또는 W); 앵커 라벨은
    정규화 박스 × (h, w) 인 캔버스 픽셀 박스로 계산한다 (`resize.canvas_boxes`, 파이프라인과 같은 float32 연산).
"""

import collections
import contextlib
import dataclasses
import functools
import glob
import os
import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from frcnn import fileio
from frcnn.data import record_spec
from frcnn.data import records
from frcnn.data import resize
from frcnn.data import sources
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.ops import box_ops
from pipelines import anchor_labeling

# 한 번의 tf.function 호출로 라벨을 붙이는 이미지 수 (원본 + 뒤집기로 2B 행).
LABEL_BATCH_SIZE = 32
# --num_shards 기본값: 샤드 하나에 이 정도의 이미지.
IMAGES_PER_SHARD = 500
CREATED_BY = "tools/make_tfrecords"


class ConversionError(sources.SourceError):
    """변환을 막는 문제 (소스의 한 파일, 출력 디렉터리, 설정). str(err) == f"{path}: {problem}"."""


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """출력과 오류 처리 설정.

    Attributes:
      output_dir: 샤드와 `<split>.json` 을 쓸 디렉터리 (없으면 만든다).
      split: 분할 이름 (파일 이름 앞부분).
      num_shards: 샤드 수; None 이면 이미지 `IMAGES_PER_SHARD` 장당 하나 (최소 1).
      skip_invalid: 잘못된 이미지를 오류 대신 건너뛰고 json 의 "skipped" 에 적는다.
      overwrite: 같은 분할의 기존 출력을 바꿔 쓴다.
      params_override: 설정 덮어쓰기 문자열 (json 에 기록).
      progress: None (조용히) 또는 `progress(done, total)` 콜백; 소스를 연 뒤 (0, total) 로 한 번,
        그 뒤 소스 항목 하나(건너뛴 것 포함)를 처리할 때마다 불린다. total 은 소스의 이미지 수.
    """

    output_dir: str
    split: str
    num_shards: Optional[int] = None
    skip_invalid: bool = False
    overwrite: bool = False
    params_override: str = ""
    progress: Optional[Callable[[int, int], None]] = None


# ---------------------------------------------------------------- 앵커 라벨


class AnchorLabeler:
    """같은 캔버스 이미지 배치의 원본·뒤집기 앵커 매칭 코드를 한 번의 tf.function 호출로 계산한다.

    앵커도 인자로 받아 모든 캔버스가 그래프 하나를 함께 쓴다 (추적·최적화는 처음 한 번). 스케일 지터의 짧은 변 s
    (`record_spec.label_short_sides`) 는 그래프가 s 마다 하나다 (리사이즈 크기가 그래프의 상수).
    """

    def __init__(self, spec):
        self.spec = spec
        self.config = spec.config
        self._anchors = {}  # (캔버스 번호, 짧은 변) → [A, 4] 앵커 (처음 쓸 때 만든다)
        self._functions = {}  # (짧은 변, crowd 여부) → tf.function
        # 캔버스 번호: 이미지마다 부르므로 그래프 하나로 (즉시 실행의 연산 여러 개보다 빠르다)
        self._canvas_for_image = tf.function(
            lambda height, width: resize.canvas_for_image(height, width, spec),
            input_signature=[tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)])

    def canvas_of(self, example: sources.SourceExample) -> int:
        """이미지가 들어갈 캔버스 번호 k (학습 파이프라인과 같은 `resize.canvas_for_image`)."""
        return int(self._canvas_for_image(example.height, example.width))

    def anchors(self, canvas: int, short_side=None):
        """캔버스 번호 k 의 (짧은 변 short_side 면 그 스케일의 캔버스 `RecordSpec.training_canvas`) 앵커 [A, 4]."""
        key = (canvas, short_side)
        if key not in self._anchors:
            shape = self.spec.training_canvas(canvas, short_side)
            self._anchors[key] = anchors_lib.anchors_for_canvas(self.config, shape)
        return self._anchors[key]

    def _function(self, short_side, with_crowd: bool):
        """짧은 변 (None 이면 min_size) 과 crowd 여부의 라벨 그래프. crowd 가 있는 배치만 (COCO) crowd 규칙이 든
        그래프로: VOC 배치는 IoA 를 계산하지 않는다."""
        key = (short_side, with_crowd)
        if key not in self._functions:
            signature = [tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None, None, 4], tf.float32),
                         tf.TensorSpec([None, None], tf.bool), tf.TensorSpec([None], tf.int32),
                         tf.TensorSpec([None], tf.int32)]
            if with_crowd:
                signature.append(tf.TensorSpec([None, None], tf.bool))
            self._functions[key] = tf.function(functools.partial(self._label_batch, short_side),
                                               input_signature=signature)
        return self._functions[key]

    def _label_batch(self, short_side, anchors, normalized_boxes, is_difficult, heights, widths,
                     is_crowd=None):
        """짧은 변 (None 이면 min_size), [A, 4] 앵커, [B, G, 4] 정규화 GT, [B, G] difficult, [B] H, [B] W, 선택
        [B, G] crowd → ([B, A], [B, A]) int16 원본·뒤집기 코드와 [B, A] bool 경계 밖 앵커
        (`rpn_targets.boundary_ignored`; 두 벌이 같다). difficult·crowd 규칙은 `anchor_labeling.label_boxes`."""
        config = self.config
        gt_boxes, image_sizes = resize.canvas_boxes(normalized_boxes, heights, widths,
                                                    short_side or config.input.min_size,
                                                    config.input.max_size, config.input.size_rule)
        # [B, G, 4] 리사이즈된 너비 w 안에서 뒤집은 GT
        flipped_boxes = box_ops.flip_left_right(gt_boxes, image_sizes[:, 1:2])
        both_boxes = tf.concat([gt_boxes, flipped_boxes], axis=0)
        both_difficult = tf.concat([is_difficult, is_difficult], axis=0)
        both_sizes = tf.concat([image_sizes, image_sizes], axis=0)
        both_crowd = None if is_crowd is None else tf.concat([is_crowd, is_crowd], axis=0)
        # [2B, A] 매칭 코드
        matches = anchor_labeling.label_boxes(anchors, both_boxes, both_difficult, both_sizes, config,
                                              both_crowd)
        matches, flipped = tf.split(tf.cast(matches, tf.int16), 2, axis=0)
        return matches, flipped, rpn_targets.boundary_ignored(anchors, image_sizes, config.rpn)

    def __call__(self, examples: Sequence[sources.SourceExample], short_side=None):
        """한 방향의 이미지들에 라벨을 붙인다.

        Args:
          examples: 모두 같은 캔버스 (`canvas_of`) 의 `sources.SourceExample` 들.
          short_side: None (min_size, 캔버스 k) 또는 지터의 짧은 변 s (s 로 리사이즈, 캔버스 k 를 s 로 바꾼 모양).

        Returns:
          (anchor_matches [B, A] int16, anchor_matches_flipped [B, A] int16, boundary_ignored [B, A] bool)
          numpy; A 는 그 캔버스의 앵커 수, boundary_ignored 는 이미지 경계를 넘어 무시되는 앵커 (레코드에 적지 않는다).
        """
        canvas = self.canvas_of(examples[0])
        max_objects = max(1, max(len(example.class_ids) for example in examples))
        # [B, G, 4] −1 패딩한 정규화 GT
        padded = np.full((len(examples), max_objects, 4), -1.0, np.float32)
        is_difficult = np.zeros((len(examples), max_objects), bool)
        is_crowd = np.zeros((len(examples), max_objects), bool)
        for index, example in enumerate(examples):
            padded[index, :len(example.class_ids)] = example.normalized_boxes
            is_difficult[index, :len(example.class_ids)] = example.difficult
            is_crowd[index, :len(example.class_ids)] = records.crowd_flags(example)
        heights = np.array([example.height for example in examples], np.int32)
        widths = np.array([example.width for example in examples], np.int32)
        arguments = (self.anchors(canvas, short_side), padded, is_difficult, heights, widths)
        if is_crowd.any():
            labels = self._function(short_side, True)(*arguments, is_crowd)
        else:
            labels = self._function(short_side, False)(*arguments)
        return tuple(label.numpy() for label in labels)


# ---------------------------------------------------------------- 출력 파일


def existing_outputs(output_dir: str, split: str) -> list:
    """같은 분할의 기존 출력 파일들 (샤드와 json)."""
    shards = glob.glob(records.shard_glob(output_dir, split))
    metadata = records.metadata_path(output_dir, split)
    return sorted(shards) + ([metadata] if os.path.exists(metadata) else [])


def _check_outputs(options: ConvertOptions) -> None:
    if os.path.exists(options.output_dir) and not os.path.isdir(options.output_dir):
        raise ConversionError(options.output_dir, "output path exists and is not a directory")
    found = existing_outputs(options.output_dir, options.split) if os.path.isdir(options.output_dir) else []
    if found and not options.overwrite:
        raise ConversionError(found[0], f"outputs for split '{options.split}' already exist "
                                        "(pass --overwrite to replace them)")


class _ShardWriter:
    """샤드를 번갈아 쓰고, `commit` 에서 `<split>.json` 과 함께 제 이름으로 옮긴다 (`fileio.StagedFiles`)."""

    def __init__(self, output_dir: str, split: str, num_shards: int):
        self.split = split
        self.num_shards = num_shards
        self._staged = fileio.StagedFiles(output_dir)
        self._writers = [tf.io.TFRecordWriter(self._staged.path(records.shard_name(split, index, num_shards)))
                         for index in range(num_shards)]
        self.count = 0

    def write(self, serialized: bytes) -> None:
        self._writers[self.count % self.num_shards].write(serialized)
        self.count += 1

    def commit(self, metadata: dict, replace: Sequence[str]) -> list:
        """샤드를 닫고 json 을 쓴 뒤 모두 제 이름으로 옮기고, 그다음 새 파일이 덮어쓰지 않은 옛 출력
        (`replace` 중 새 이름에 없는 것) 을 지운다. 최종 경로 목록을 돌려준다.

        옮기기가 실패하면 옛 출력을 하나도 지우지 않은 채 예외가 나간다 (json 은 샤드 다음에 옮긴다).
        """
        self._close()
        metadata_name = os.path.basename(records.metadata_path(self._staged.directory, self.split))
        fileio.dump_json(self._staged.path(metadata_name), metadata)
        files = self._staged.commit()
        written = {os.path.basename(path) for path in files}
        for path in replace:
            if os.path.basename(path) not in written:
                os.remove(path)
        return files

    def abort(self) -> None:
        self._close()
        self._staged.abort()

    def _close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers = []


# ---------------------------------------------------------------- 변환


@dataclasses.dataclass
class _Tally:
    """쓴 이미지·물체 수와 건너뛴 파일."""

    num_images: int = 0
    num_objects: int = 0
    num_difficult: int = 0
    num_crowd: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    canvas_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # 번호 → 수


def _check_example(item: sources.SourceItem, max_gt_boxes: int) -> sources.SourceItem:
    """GT 수가 설정의 G 를 넘으면 ConversionError 로 바꾼다."""
    if isinstance(item, sources.SourceExample) and len(item.class_ids) > max_gt_boxes:
        return ConversionError(item.source_path, (
            f"{len(item.class_ids)} objects, more than input.max_gt_boxes={max_gt_boxes}; "
            f"rerun with --params_override=input.max_gt_boxes={len(item.class_ids)}"))
    return item


def _batch_key(example: sources.SourceExample, labeler: AnchorLabeler) -> tuple:
    """라벨 배치 묶음 키: (캔버스 번호, 물체 수를 2의 거듭제곱으로 올린 값).

    같은 캔버스끼리, 그리고 비슷한 물체 수끼리 묶어 G 패딩에 드는 IoU 계산을 줄인다.
    """
    num_objects = max(1, len(example.class_ids))
    return labeler.canvas_of(example), 1 << (num_objects - 1).bit_length()


def _write_batch(examples, labeler, writer, fingerprint, tally) -> None:
    """한 캔버스의 이미지 배치에 라벨을 (지터 스케일마다도) 붙이고 쓴다."""
    matches, flipped, boundary = labeler(examples)
    # {짧은 변: (코드, 뒤집기 코드, 경계 밖)} 지터 스케일마다 [B, A_s]
    scaled = {side: labeler(examples, side) for side in record_spec.label_short_sides(labeler.config)}
    canvas = labeler.canvas_of(examples[0])  # 배치는 한 캔버스
    for index, example in enumerate(examples):
        scale_labels = {side: tuple(part[index] for part in labels) for side, labels in scaled.items()}
        record = records.build_example(example, matches[index], flipped[index], fingerprint, boundary[index],
                                       scale_labels)
        writer.write(record.SerializeToString())
        tally.num_images += 1
        tally.num_objects += len(example.class_ids)
        tally.num_difficult += int(np.sum(example.difficult))
        tally.num_crowd += int(np.sum(records.crowd_flags(example)))
        tally.canvas_counts[canvas] += 1


@contextlib.contextmanager
def _closing(items):
    """오류로 멈출 때 소스 생성기(와 그 스레드 풀)를 닫는다."""
    try:
        yield items
    finally:
        if hasattr(items, "close"):
            items.close()


def _write_all(source: sources.Source, spec, writer: _ShardWriter, options: ConvertOptions) -> _Tally:
    """소스의 모든 항목을 검사·라벨·기록한다. 잘못된 항목은 건너뛰거나 ConversionError 를 던진다."""
    labeler = AnchorLabeler(spec)
    fingerprint = spec.fingerprint
    tally = _Tally()
    pending = collections.defaultdict(list)
    report = options.progress or (lambda done, total: None)
    report(0, source.num_examples)
    with _closing(source.items):
        for done, item in enumerate(source.items, start=1):
            item = _check_example(item, spec.config.input.max_gt_boxes)
            report(done, source.num_examples)
            if isinstance(item, sources.SourceError):
                if not options.skip_invalid:
                    raise ConversionError(item.path, item.problem) from item
                tally.skipped.append({"file": item.path, "reason": item.problem})
                continue
            batch = pending[_batch_key(item, labeler)]
            batch.append(item)
            if len(batch) == LABEL_BATCH_SIZE:
                _write_batch(batch, labeler, writer, fingerprint, tally)
                batch.clear()
        for batch in pending.values():
            if batch:
                _write_batch(batch, labeler, writer, fingerprint, tally)
    return tally


def _metadata(source: sources.Source, spec, options: ConvertOptions, tally: _Tally, num_shards: int) -> dict:
    """`<split>.json` 내용 (스키마는 `RecordSpec.metadata_for`)."""
    counts = {"num_images": tally.num_images, "num_objects": tally.num_objects, "num_crowd": tally.num_crowd,
              "num_difficult": tally.num_difficult, "canvas_counts": tally.canvas_counts}
    return dataclasses.replace(spec, classes=tuple(source.classes)).metadata_for(
        options.split, counts, num_shards=num_shards, source=source.name, **source.metadata,
        skipped=tally.skipped, params_override=options.params_override, created_by=CREATED_BY)


def _open(open_source: Callable[[], sources.Source]) -> sources.Source:
    """소스를 연다. 소스의 오류는 ConversionError 로 바꾼다."""
    try:
        return open_source()
    except sources.SourceError as error:
        raise ConversionError(error.path, error.problem) from error


def convert(open_source: Callable[[], sources.Source], spec, options: ConvertOptions) -> dict:
    """소스를 열어 샤드 TFRecord 와 `<split>.json` 을 쓴다. 실패하면 아무것도 남기지 않는다.

    Args:
      open_source: 인자 없이 `sources.Source` 를 돌려주는 함수 (출력 검사 뒤에 부른다); 던지는
        `sources.SourceError` 는 ConversionError 로 바뀐다.
      spec: `RecordSpec.from_config(config)` (캔버스·앵커·매칭 임계값·G·지문).
      options: ConvertOptions.

    Returns:
      요약 dict: json 메타데이터의 모든 키 + 'files' (쓴 경로), 'seconds', 'images_per_second'.

    Raises:
      ConversionError: 출력이 이미 있음, 소스 문제, 또는 (skip_invalid 가 아닐 때) 잘못된 이미지 하나.
    """
    _check_outputs(options)
    start = time.perf_counter()
    created_dir = not os.path.isdir(options.output_dir)
    os.makedirs(options.output_dir, exist_ok=True)
    writer = None
    try:
        source = _open(open_source)
        num_shards = options.num_shards or max(1, round(source.num_examples / IMAGES_PER_SHARD))
        writer = _ShardWriter(options.output_dir, options.split, num_shards)
        tally = _write_all(source, spec, writer, options)
        metadata = _metadata(source, spec, options, tally, num_shards)
        files = writer.commit(metadata, existing_outputs(options.output_dir, options.split))
    except BaseException:
        if writer is not None:
            writer.abort()
        if created_dir and not os.listdir(options.output_dir):
            os.rmdir(options.output_dir)
        raise
    seconds = time.perf_counter() - start
    return {**metadata, "files": files, "seconds": seconds,
            "images_per_second": tally.num_images / max(seconds, 1e-9)}
