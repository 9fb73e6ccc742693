"""레코드 명세 (`RecordSpec`): 레코드를 쓰고 읽는 쪽이 함께 아는 것을 한 번 계산해 넘기는 얼린 객체.

`<split>.json` 의 스키마, 캔버스 기하 (캔버스 목록, 캔버스마다 앵커 수), 앵커 지문이 이 모듈에만 있다.
`make_tfrecords` 는 이 명세로 `<split>.json` 을 쓰고, 학습·평가는 이 명세로 읽는다. 지문과 파일 검사는 프로세스에서
한 번 (`RecordSpec.read`): `build_dataset`, 학습 루프, 변환기는 명세 (또는 필요한 캔버스 하나) 를 받는다.

용어:
  캔버스 k: 학습 배치의 고정 모양 (Hc, Wc). 넓이 오름차순 (같으면 가로형 먼저), 번호 = 이 순서. 짧은 변은
    min_size, 긴 변은 canvas_long_sides 와 max_size (stride 배수로 올림). 두 방향이 같은 모양이면 하나다.
  A 캔버스 하나의 앵커 수 (`ops.anchors.num_anchors`): 한 수준이면 (Hc / stride)·(Wc / stride)·위치당 앵커 수, 피라미드면 P2–P6 의 합.
  지문(fingerprint): 앵커 라벨을 정하는 설정 (캔버스, 앵커, 매칭 임계값, G, difficult 방식) 과 레코드의 라벨
    형식 (`records.ANCHOR_LABEL_FORMAT`) 의 sha256 앞 12자리.
  canvas_counts: 캔버스마다 레코드 수 (학습 루프가 루프마다 캔버스를 이 비율로 고른다).
  스케일 지터 (`input.train_short_sides`): 이미지는 min_size 에서 정해진 캔버스 k 에 그대로 묶이고, 짧은 변 s 로
    리사이즈할 때는 캔버스 k 를 s 에 맞춰 키우거나 줄인 모양 (`scaled_canvas`) 에 들어간다. 묶음이 그대로라
    레코드의 캔버스 고르기 (크기 특징) 와 canvas_counts 가 모든 스케일에서 맞고, 어떤 스케일에서도 빈 캔버스가 없다.
    레코드는 min_size 가 아닌 s 마다 그 캔버스의 앵커 라벨을 미리 담는다 (`label_short_sides`); 지터 목록은 켤
    때만 지문과 `<split>.json` 의 "train_short_sides" 에 들어간다 (지터 없는 레코드의 지문은 그대로).
"""

import dataclasses
import glob
import hashlib
import json
import math
import os
from typing import Optional, Tuple

import tensorflow as tf

from frcnn.data import records
from frcnn.ops import anchors


def _round_up(value: int, stride: int) -> int:
    return int(math.ceil(value / stride) * stride)


def largest_canvas(config) -> Tuple[int, int]:
    """가장 큰 가로형 캔버스 (min_size, max_size 를 stride 배수로 올림): 어떤 가로형 이미지든 담는다."""
    stride = config.anchors.stride
    return _round_up(config.input.min_size, stride), _round_up(config.input.max_size, stride)


def canvases(config) -> Tuple[Tuple[int, int], ...]:
    """프리셋의 캔버스 (높이, 너비) 들 (번호 = 이 순서; 모듈 설명 참고)."""
    short, longest = largest_canvas(config)
    # 짧은 변보다 짧거나 최대 캔버스보다 긴 변은 어떤 이미지도 쓰지 않으므로 뺀다 (min/max_size 를 바꿔도 된다).
    longs = {side for side in config.input.canvas_long_sides if short <= side < longest} | {longest}
    shapes = {shape for long in longs for shape in ((short, long), (long, short))}
    return tuple(sorted(shapes, key=lambda shape: (shape[0] * shape[1], shape[0])))


def _scaled_side(side: int, short_side: int, config) -> int:
    """min_size 에서 캔버스 변 side 안에 드는 이미지가 짧은 변 short_side 로 리사이즈될 때의 변 상한 (픽셀).

    'round' 규칙: min_size 에서 반올림한 변 ≤ side 면 실수 변 < side + ½ 이고, s 에서의 배율은 min_size 배율의
    s / min_size 배 이하라 (긴 변 상한은 배율을 줄이기만 한다) 변 ≤ ⌊(side + ½)·s / min_size + ½⌋.
    'torchvision' 규칙 (내림): 실수 변 < side + 1 이라 변 ≤ ⌊(side + 1)·s / min_size⌋. 둘 다 float32 배율 오차를
    덮도록 1e-3 을 더한다. 이 위 한계는 min_size 에서 긴 변 상한에 걸리지 않은 이미지의 것이다. 걸린 이미지 (긴 변
    = max_size, 반올림·내림으로 max_size − 1 일 수도; 그래서 그 길이를 담는 변만) 는 s < min_size 여도 배율이
    min_size 때보다 크지 않아 (max_size / 긴 변 그대로일 수 있다) 변이 줄지 않는다: 그런 변은 side 를 한계로 둔다.
    """
    min_size, max_size = config.input.min_size, config.input.max_size
    side_slack, round_slack = (0.5, 0.5) if config.input.size_rule == "round" else (1.0, 0.0)
    bound = math.floor((side + side_slack) * short_side / min_size + round_slack + 1e-3)
    if side >= max_size - 1:  # 긴 변 상한에 걸린 이미지를 담을 수 있는 변
        bound = max(bound, min(side, max_size))
    return min(bound, max_size)


def scaled_canvas(config, canvas: Tuple[int, int], short_side: int) -> Tuple[int, int]:
    """캔버스 k (min_size 의 (Hc, Wc)) 에 드는 모든 이미지를 짧은 변 short_side 로 리사이즈했을 때 담는 캔버스.

    short_side == min_size 면 canvas 그대로; 아니면 변마다 `_scaled_side` 를 stride 배수로 올린다. 여유: 짧은 변은
    min_size 에서 캔버스의 짧은 변에 드는 거의 정사각형인 반대 방향 이미지 때문에 stride 하나쯤, 가장 큰 캔버스의 긴
    변은 s < min_size 에서도 max_size 그대로 (긴 변 상한에 걸린, 가로세로비 > max_size / min_size 인 이미지).
    """
    if short_side == config.input.min_size:
        return tuple(canvas)
    stride = config.anchors.stride
    return tuple(_round_up(_scaled_side(side, short_side, config), stride) for side in canvas)


def label_short_sides(config) -> Tuple[int, ...]:
    """레코드가 min_size 의 라벨 말고 더 담는 지터 스케일의 짧은 변들 (오름차순; min_size 는 기본 라벨이라 뺀다)."""
    return tuple(sorted(side for side in config.input.train_short_sides if side != config.input.min_size))


def num_anchors(config, canvas: Tuple[int, int]) -> int:
    """캔버스 (높이, 너비) 하나의 앵커 수 A (`ops.anchors.num_anchors`)."""
    return anchors.num_anchors(config, canvas)


def anchor_fingerprint(config, shapes=None) -> str:
    """앵커 라벨을 결정하는 설정의 지문 (12자리 hex). shapes: 이미 계산한 캔버스 목록 (없으면 계산)."""
    relevant = {
        "min_size": config.input.min_size,
        "max_size": config.input.max_size,
        "canvases": shapes or canvases(config),
        "anchors": dataclasses.asdict(config.anchors),
        "positive_iou": config.rpn.positive_iou,
        "negative_iou": config.rpn.negative_iou,
        "allow_cross_boundary": config.rpn.allow_cross_boundary,
        "max_gt_boxes": config.input.max_gt_boxes,
        "difficult": config.input.difficult,
        "anchor_labels": records.ANCHOR_LABEL_FORMAT,
    }
    if config.input.size_rule != "round" or config.fpn.variant:
        # 기본 ('round', 한 수준) 이 아닌 것만 적는다: 그 전의 레코드 지문은 그대로다
        relevant.update(size_rule=config.input.size_rule, pyramid=bool(config.fpn.variant))
    if config.input.train_short_sides:
        # 지터 스케일마다 라벨을 미리 담은 레코드 (켤 때만: 지터 없는 레코드·프리셋의 지문은 그대로다)
        relevant.update(train_short_sides=sorted(config.input.train_short_sides))
    text = json.dumps(relevant, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class RecordSpec:
    """레코드 한 묶음 (또는 설정만) 의 명세. `from_config` 나 `read` 로 만든다.

    Attributes:
      config: `ExperimentConfig` (프리셋 이름, 리사이즈 크기, 앵커).
      fingerprint: 앵커 지문.
      canvas_shapes: 캔버스 (Hc, Wc) 들 (번호 순).
      anchor_counts: 캔버스마다 앵커 수 A.
      files: 샤드 경로들 (정렬; 설정만으로 만든 명세는 비어 있다).
      classes: 클래스 이름들 (1..C).
      canvas_counts: 캔버스마다 레코드 수.
      metadata: 읽은 `<split>.json` 의 나머지 (개수, 소스, COCO 범주 등; 비교하지 않는다).
    """

    config: object
    fingerprint: str
    canvas_shapes: Tuple[Tuple[int, int], ...]
    anchor_counts: Tuple[int, ...]
    files: Tuple[str, ...] = ()
    classes: Tuple[str, ...] = ()
    canvas_counts: Tuple[int, ...] = ()
    metadata: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config, classes=(), canvas_counts=()):
        """설정만으로 (쓰는 쪽, 레코드가 없는 쪽: 데모, run.json, 시험용 가짜 데이터셋)."""
        shapes = canvases(config)
        return cls(config=config, fingerprint=anchor_fingerprint(config, shapes), canvas_shapes=shapes,
                   anchor_counts=tuple(num_anchors(config, shape) for shape in shapes),
                   classes=tuple(classes), canvas_counts=tuple(canvas_counts))

    @classmethod
    def read(cls, file_pattern: str, config):
        """샤드 glob 과 설정으로 (읽는 쪽): 파일, `<split>.json`, 첫 레코드의 지문을 한 번 확인한다.

        Raises:
          ValueError: 맞는 파일이 없음, 샤드 이름·분할이 어긋남, json 을 읽을 수 없음 (파일을 밝힌다), 지문이나
            difficult 방식이 설정과 다름 (레코드를 만든 프리셋과 다시 만드는 방법을 알려 준다).
        """
        spec = cls.from_config(config)
        files = matching_files(file_pattern)
        metadata_file = _metadata_file(files, file_pattern)
        metadata = _load_json(metadata_file)
        _check_fingerprint(spec, metadata, _first_record_fingerprint(files[0]), file_pattern)
        return dataclasses.replace(
            spec, files=tuple(files), classes=tuple(metadata.get("classes") or ()), metadata=metadata,
            canvas_counts=_canvas_counts(metadata, len(spec.canvas_shapes), metadata_file))

    @property
    def min_size(self) -> int:
        return self.config.input.min_size  # 짧은 변 목표 (리사이즈)

    @property
    def max_size(self) -> int:
        return self.config.input.max_size  # 긴 변 상한

    def canvas(self, index: int):
        """캔버스 번호 k → ((Hc, Wc), A)."""
        return self.canvas_shapes[index], self.anchor_counts[index]

    def training_canvas(self, index: int, short_side=None) -> Tuple[int, int]:
        """캔버스 k 의 짧은 변 short_side (None 이면 min_size) 학습 모양 (Hc, Wc) (`scaled_canvas`)."""
        if short_side is None:
            return self.canvas_shapes[index]
        return scaled_canvas(self.config, self.canvas_shapes[index], short_side)

    def metadata_for(self, split: str, counts: dict, **extra) -> dict:
        """변환기가 쓸 `<split>.json` 내용 (스키마는 여기서만 정한다).

        Args:
          split: 분할 이름.
          counts: num_images, num_objects, num_difficult, num_crowd, canvas_counts ({k: 수}).
          extra: 소스의 것 (source, coco_annotations, coco_categories …), skipped, params_override 등.
        """
        canvas_counts = counts["canvas_counts"]
        return {
            "split": split, "classes": list(self.classes), "preset": self.config.name,
            "anchor_fingerprint": self.fingerprint, "canvases": [list(shape) for shape in self.canvas_shapes],
            "num_anchors": list(self.anchor_counts),
            "canvas_counts": [canvas_counts.get(index, 0) for index in range(len(self.canvas_shapes))],
            **{key: counts[key] for key in ("num_images", "num_objects", "num_difficult", "num_crowd")},
            "difficult": self.config.input.difficult, "anchor_labels": records.ANCHOR_LABEL_FORMAT,
            # 지터 스케일의 라벨을 담았을 때만 (지터 없는 레코드의 json 은 그대로)
            **({"train_short_sides": sorted(self.config.input.train_short_sides)}
               if self.config.input.train_short_sides else {}),
            **extra,
        }


def matching_files(file_pattern: str) -> list:
    """TFRecord glob 에 맞는 파일 목록 (정렬). 없으면 ValueError ("<pattern>: no TFRecord files match")."""
    files = sorted(glob.glob(file_pattern))
    if not files:
        raise ValueError(f"{file_pattern}: no TFRecord files match")
    return files


def read_metadata(file_pattern: str) -> dict:
    """샤드 옆의 `<split>.json` 을 지문 확인 없이 읽는다 (검증 레코드의 클래스 확인 등; 오류는 `RecordSpec.read` 처럼)."""
    files = matching_files(file_pattern)
    return _load_json(_metadata_file(files, file_pattern))


def _metadata_file(files, file_pattern: str) -> str:
    """샤드들이 한 디렉터리의 한 분할인지 확인하고 그 `<split>.json` 경로를 돌려준다."""
    locations = set()
    for path in files:
        match = records.SHARD_NAME_PATTERN.match(os.path.basename(path))
        if not match:
            raise ValueError(f"{path}: not a shard named <split>-NNNNN-of-MMMMM.tfrecord")
        locations.add((os.path.dirname(path), match.group("split")))
    if len(locations) != 1:
        raise ValueError(f"records '{file_pattern}' mix several splits or directories: {sorted(locations)}")
    return records.metadata_path(*locations.pop())


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the records' metadata: {error}") from error
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: the records' metadata is not a JSON object")
    return metadata


def _canvas_counts(metadata: dict, num_canvases: int, path: str) -> Tuple[int, ...]:
    counts = metadata.get("canvas_counts")
    if not isinstance(counts, list) or len(counts) != num_canvases:
        raise ValueError(f"{path}: 'canvas_counts' {counts!r} does not match the preset's {num_canvases} "
                         "canvases; remake the records")
    return tuple(int(count) for count in counts)


def _first_record_fingerprint(path: str) -> Optional[str]:
    for serialized in tf.data.TFRecordDataset(path).take(1):
        return records.parse_example(serialized)["anchor_fingerprint"].numpy().decode()
    return None


def _regenerate(config, override: str = "") -> str:
    """옛 형식 레코드를 다시 만드는 방법 (거부 메시지의 끝)."""
    override = f" --params_override={override}" if override else ""
    return f"regenerate them with make_tfrecords --config={config.name}{override} --overwrite"


def _sides_text(sides) -> str:
    return "(" + ",".join(str(side) for side in sides) + ")"


def _check_fingerprint(spec: RecordSpec, metadata: dict, record_fingerprint, file_pattern: str) -> None:
    """json 과 첫 레코드의 지문이 명세와 같은지 확인한다 (다르면 다시 만드는 방법을 밝힌 ValueError)."""
    config = spec.config
    found = metadata.get("anchor_fingerprint")
    made_with = metadata.get("difficult")
    if metadata.get("preset") == config.name and made_with not in (None, config.input.difficult):
        raise ValueError(
            f"records '{file_pattern}' were made with --difficult={made_with}, but training uses "
            f"input.difficult={config.input.difficult}; train with "
            f"--params_override=input.difficult={made_with} or remake the records")
    if found != spec.fingerprint and "canvases" not in metadata:
        raise ValueError(
            f"records '{file_pattern}' were made by an older frcnn with one canvas per orientation; the "
            f"records now hold anchor labels for the preset's aspect-ratio canvases: {_regenerate(config)}")
    if found != spec.fingerprint and metadata.get("anchor_labels") != records.ANCHOR_LABEL_FORMAT:
        raise ValueError(
            f"records '{file_pattern}' were made by an older frcnn with dense anchor labels; the records now "
            f"store them sparsely ({records.ANCHOR_LABEL_FORMAT}): {_regenerate(config)}")
    made_sides = metadata.get("train_short_sides") or []
    wanted_sides = sorted(config.input.train_short_sides)
    if found != spec.fingerprint and metadata.get("preset") == config.name and made_sides != wanted_sides:
        if not wanted_sides:
            raise ValueError(
                f"records '{file_pattern}' were made with input.train_short_sides={_sides_text(made_sides)} "
                f"(anchor labels for each jitter scale); train with --params_override="
                f"input.train_short_sides={_sides_text(made_sides)} or {_regenerate(config)}")
        have = f"the short sides {_sides_text(made_sides)}" if made_sides else "input.min_size only"
        raise ValueError(
            f"records '{file_pattern}' hold anchor labels for {have}, but training uses "
            f"input.train_short_sides={_sides_text(config.input.train_short_sides)}, whose labels "
            f"make_tfrecords precomputes for each short side: "
            f"{_regenerate(config, 'input.train_short_sides=' + _sides_text(wanted_sides))}")
    if found != spec.fingerprint or record_fingerprint not in (None, spec.fingerprint):
        found = found if found != spec.fingerprint else record_fingerprint
        override = metadata.get("params_override") or ""
        raise ValueError(
            f"records '{file_pattern}' were made for preset '{metadata.get('preset')}'"
            f"{f' with --params_override={override}' if override else ''} (anchor fingerprint {found}), "
            f"but training uses '{config.name}' ({spec.fingerprint}); "
            f"rerun make_tfrecords with --config={config.name}")
