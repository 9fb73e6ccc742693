"""미세 조정의 시작 가중치 (`tools/train --init_from`): 다른 실행 디렉터리의 체크포인트에서 가중치만 옮긴다.

용어:
  원본(source): `--init_from` 이 가리키는 실행 — RUN_DIR (최신 체크포인트), RUN_DIR/checkpoints/ckpt-N,
    RUN_DIR/checkpoints/best/ckpt-N, RUN_DIR/best 또는 RUN_DIR/checkpoints/best (검증 mAP 최고). 모델은 내보내기와
    같은 `trainer.load_trained_model` 로 다시 만든다 (run.json 의 설정 + 체크포인트, float32).
  가중치만: 새 실행은 스텝 0, 새 옵티마이저로 시작한다. model_dir 에 체크포인트가 이미 있으면 이어 학습이 이기고
    init_from 은 쓰지 않는다 (`loop.train`).
  변수 키: 모델의 직속 하위 층 이름 (backbone, rpn_backbone, rpn_head, detector_head, …) + 그 안의 변수 경로
    (`variable.path`). 프리셋과 무관하게 두 모델의 변수를 이 키로 짝짓는다 (FPN 프리셋도 같은 규칙).
  예측 층(predictor): `heads.DetectorHead` 의 class_logits 와 box_deltas — 마지막 축이 클래스마다 k 칸 (로짓 1,
    박스 델타 4) 인 C+1 개 행. 배경 행 0 은 클래스와 무관하므로 늘 옮기고, 클래스 행은 이름이 맞는 원본 클래스의
    행을 옮긴다 — 그대로, 내장 별칭 (VOC ↔ COCO, `ALIASES`), 또는 사용자의 --class_map (mine:theirs). 맞는 것이
    없는 클래스의 행은 새 모델의 초기값 그대로 둔다.
  교대 학습: 원본의 `backbone` (추론이 쓰는 마지막 공유 백본) 을 새 모델의 `backbone` 과 `rpn_backbone` 둘 다에
    옮긴다. 원본의 `rpn_backbone` (교대 학습 1–2단계의 중간 산물; 내보내기도 버린다) 은 쓰지 않는다.
  엄격함: 예측 층 밖의 변수는 모두 옮겨야 한다. 새 모델에 있고 원본에 없는 변수, 원본에 있고 새 모델에 없는 변수
    (구조가 다르다), 모양이 다른 변수는 그 이름을 밝히는 오류 하나로 멈추고 아무것도 바꾸지 않는다.
"""

import dataclasses
import os
import re

import tensorflow as tf

from frcnn import config as config_lib
from frcnn.training import best_checkpoint
from frcnn.training import run_file
from frcnn.training import trainer as trainer_lib

# VOC 이름 → COCO 이름 (양방향으로 쓴다).
VOC_TO_COCO = {"aeroplane": "airplane", "motorbike": "motorcycle", "sofa": "couch", "tvmonitor": "tv",
               "diningtable": "dining table", "pottedplant": "potted plant"}
ALIASES = {**VOC_TO_COCO, **{coco: voc for voc, coco in VOC_TO_COCO.items()}}

RPN_BACKBONE, BACKBONE = "rpn_backbone", "backbone"
_SHOWN = 8  # 오류에 보일 변수 이름의 최대 수
STRUCTURE_SECTIONS = ("backbone", "anchors", "rpn", "roi")  # 구조가 다를 때 오류에 보일 설정 절


@dataclasses.dataclass(frozen=True)
class SourceWeights:
    """원본 실행의 가중치 (numpy) 와 클래스.

    Attributes:
      source: 사용자가 준 --init_from 경로.
      checkpoint: 읽은 체크포인트 경로.
      config: 원본의 `ExperimentConfig`.
      classes: 원본 클래스 이름 (1..C 순서).
      weights: {변수 키: np.ndarray} 예측 층 밖의 변수.
      predictor: {변수 키: np.ndarray} 예측 층 변수 (마지막 축이 행들, 행마다 k 칸).
      class_rows: 원본 클래스마다 예측 층의 행 번호 (보통 1..C; 행이 클래스보다 많은 모델 — COCO 의 91 칸 —
        은 가져오기가 정한다). 행 0 은 배경.
    """

    source: str
    checkpoint: str
    config: object
    classes: tuple
    weights: dict
    predictor: dict
    class_rows: tuple


def resolve_source(path):
    """--init_from 경로 → (실행 디렉터리, `load_trained_model` 의 checkpoint 인자: None, "best" 또는 경로).

    Raises:
      ValueError: run.json 이 있는 실행 디렉터리를 찾을 수 없거나, 가리킨 체크포인트가 없을 때.
    """
    path = os.path.normpath(path)
    parent = os.path.dirname(path)
    if os.path.isfile(run_file.run_file_path(path)):
        return path, None
    if os.path.basename(path) == "best":
        for run_dir in (parent, os.path.dirname(parent)):
            if os.path.isfile(run_file.run_file_path(run_dir)):
                return run_dir, "best"
    if re.fullmatch(r"ckpt-\d+", os.path.basename(path)):
        run_dir = os.path.dirname(parent)
        if os.path.basename(parent) == "best":
            run_dir = os.path.dirname(run_dir)
        if os.path.isfile(run_file.run_file_path(run_dir)):
            if not tf.io.gfile.exists(path + ".index"):
                raise ValueError(f"--init_from {path}: no such checkpoint (no {path}.index)")
            return run_dir, path
    raise ValueError(f"--init_from {path}: not a run directory (no {run_file.RUN_FILE}); expected RUN_DIR, "
                     "RUN_DIR/checkpoints/ckpt-N or RUN_DIR/best of a tools/train (or import) output")


def load_source(path):
    """원본 실행을 읽는다 (활성 Keras dtype 정책이 float32 일 때; `tools/train` 은 정책을 정하기 전에 부른다).

    Returns:
      `SourceWeights`.

    Raises:
      ValueError: 실행 디렉터리·체크포인트가 없거나, 체크포인트가 run.json 의 모델과 맞지 않을 때.
    """
    run_dir, checkpoint = resolve_source(path)
    if checkpoint is None and not trainer_lib.latest_checkpoint(run_dir):
        raise ValueError(f"--init_from {path}: {run_dir} has no checkpoint in {run_dir}/checkpoints")
    if checkpoint == "best":
        checkpoint = best_checkpoint.best_checkpoint_path(run_dir)
    model, config, classes, checkpoint = trainer_lib.load_trained_model(run_dir, checkpoint)
    keyed = variable_keys(model)
    predictor = predictor_keys(model)
    weights = {key: variable.numpy() for key, variable in keyed.items()
               if key not in predictor and not key.startswith(RPN_BACKBONE + "/")}
    return SourceWeights(path, checkpoint, config, tuple(classes), weights,
                         {key: keyed[key].numpy() for key in predictor},
                         tuple(config.detection.class_slots) or tuple(range(1, len(classes) + 1)))


def variable_keys(model):
    """{변수 키: 변수}: 직속 하위 층 이름 + 변수 경로 (경로가 이미 그 이름으로 시작하면 경로 그대로).

    Raises:
      ValueError: 두 변수가 같은 키를 가지거나, 하위 층에 속하지 않는 변수가 있을 때.
    """
    keyed = {}
    for layer in model.layers:
        for variable in layer.variables:
            path = variable.path
            key = path if path.startswith(layer.name + "/") else f"{layer.name}/{path}"
            if key in keyed:
                raise ValueError(f"two variables of the model are both named '{key}'; cannot match them")
            keyed[key] = variable
    if len(keyed) != len(model.variables):
        raise ValueError(f"{len(model.variables) - len(keyed)} variables of the model belong to no "
                         "sub-layer; cannot match them by name")
    return keyed


def predictor_keys(model):
    """예측 층 (`detector_head` 의 class_logits, box_deltas) 변수들의 키 집합."""
    head = model.detector_head
    identities = {id(variable) for variable in head.class_logits.variables + head.box_deltas.variables}
    return {key for key, variable in variable_keys(model).items() if id(variable) in identities}


def parse_class_map(text):
    """'mine:theirs,…' → {mine: theirs} (이름 앞뒤 공백 무시; 이름 안의 공백은 그대로: 'table:dining table').

    Raises:
      ValueError: 항목에 ':' 가 없거나, 이름이 비었거나, 같은 클래스를 두 번 적었을 때.
    """
    mapping = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        mine, separator, theirs = (part.strip() for part in item.partition(":"))
        if not separator or not mine or not theirs:
            raise ValueError(f"--class_map item '{item}' is not 'mine:theirs'")
        if mine in mapping:
            raise ValueError(f"--class_map names class '{mine}' twice")
        mapping[mine] = theirs
    return mapping


def match_classes(classes, source_classes, class_map=None):
    """새 클래스마다 원본 클래스를 고른다: --class_map, 같은 이름, 별칭 (`ALIASES`) 순서.

    Returns:
      (carried {새 이름: 원본 이름} (새 클래스 순서), fresh [원본이 없는 새 이름]).

    Raises:
      ValueError: class_map 이 새 클래스에 없는 이름이나 원본 클래스에 없는 이름을 적었을 때 (모두 밝힌다).
    """
    class_map = dict(class_map or {})
    unknown_mine = [mine for mine in class_map if mine not in classes]
    unknown_theirs = [theirs for theirs in class_map.values() if theirs not in source_classes]
    if unknown_mine or unknown_theirs:
        parts = ([f"{unknown_mine} not among this run's classes {list(classes)}"] if unknown_mine else []) + (
            [f"{unknown_theirs} not among the source's classes {list(source_classes)}"]
            if unknown_theirs else [])
        raise ValueError(f"--class_map: {'; '.join(parts)}")
    carried, fresh = {}, []
    for name in classes:
        theirs = class_map.get(name) or (name if name in source_classes else ALIASES.get(name))
        if theirs in source_classes:
            carried[name] = theirs
        else:
            fresh.append(name)
    return carried, fresh


def initialize(model, classes, source, class_map=None):
    """`source` 의 가중치를 `model` 에 옮긴다 (모두 확인한 뒤에만 바꾼다).

    Args:
      model: 변수가 만들어진 새 `FasterRCNN` (`trainer.build_model`).
      classes: 새 클래스 이름 (1..C).
      source: `SourceWeights`.
      class_map: 선택, {새 이름: 원본 이름}.

    Returns:
      run.json 의 "init_from" 기록 dict: source, checkpoint, classes_carried {mine: theirs}, classes_fresh [...].

    Raises:
      ValueError: 구조가 다를 때 (빠진·남는 변수), 모양이 다를 때, class_map 이 모르는 클래스를 적었을 때.
    """
    carried, fresh = match_classes(classes, source.classes, class_map)
    keyed = variable_keys(model)
    predictor = predictor_keys(model)
    values = _body_values(keyed, predictor, source, model.config)
    source_rows = dict(zip(source.classes, source.class_rows))
    rows = [0] + [source_rows[carried[name]] if name in carried else None for name in classes]
    values.update({key: _predictor_value(key, keyed[key].numpy(), source.predictor.get(key), rows)
                   for key in sorted(predictor)})
    for key, value in values.items():
        keyed[key].assign(value)
    return {"source": source.source, "checkpoint": source.checkpoint, "classes_carried": carried,
            "classes_fresh": fresh}


def _source_key(key):
    """새 모델의 키 → 원본의 키 (rpn_backbone 은 원본의 backbone 에서 온다)."""
    if key.startswith(RPN_BACKBONE + "/"):
        return BACKBONE + key[len(RPN_BACKBONE):]
    return key


def _body_values(keyed, predictor, source, config):
    """예측 층 밖 변수마다 옮길 값 {키: 배열}. 빠진·남는·모양이 다른 변수가 있으면 ValueError."""
    values, missing, mismatched, used = {}, [], [], set()
    for key, variable in keyed.items():
        if key in predictor:
            continue
        source_key = _source_key(key)
        value = source.weights.get(source_key)
        if value is None:
            missing.append(key)
            continue
        used.add(source_key)
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(f"{key} (source {list(value.shape)}, this run {list(variable.shape)})")
        else:
            values[key] = value
    unused = sorted(set(source.weights) - used)
    if missing or unused:
        raise ValueError(f"--init_from {source.source}: the source model has another architecture "
                         f"({_architecture_note(source.config, config)}): {len(missing)} variable(s) of this "
                         f"run are missing in the source {_names(missing)}, {len(unused)} source variable(s) "
                         f"have no counterpart here {_names(unused)}")
    if mismatched:
        raise ValueError(f"--init_from {source.source}: {len(mismatched)} variable(s) differ in shape from "
                         f"the source's: {_names(mismatched)}")
    return values


def _predictor_value(key, fresh, source_value, rows):
    """예측 층 변수 하나의 새 값: fresh (새 초기값) 에 원본 행을 덮는다. rows[j]: 새 행 j 의 원본 행 또는 None."""
    if source_value is None:
        raise ValueError(f"predictor variable '{key}' is missing in the source")
    width, source_width = fresh.shape[-1], source_value.shape[-1]
    per_class = width // len(rows)
    source_rows = source_width // per_class if per_class else 0
    if (fresh.shape[:-1] != source_value.shape[:-1] or width % len(rows) or source_width % per_class):
        raise ValueError(f"predictor variable '{key}' differs in shape from the source's beyond its class "
                         f"rows (source {list(source_value.shape)}, this run {list(fresh.shape)})")
    if max(row for row in rows if row is not None) >= source_rows:
        raise ValueError(f"predictor variable '{key}' of the source has {source_rows} class rows, fewer than "
                         f"its class list needs ({max(row for row in rows if row is not None) + 1})")
    value = fresh.copy()
    for row, source_row in enumerate(rows):
        if source_row is not None:
            value[..., row * per_class:(row + 1) * per_class] = \
                source_value[..., source_row * per_class:(source_row + 1) * per_class]
    return value


def _architecture_note(source_config, config):
    """오류 메시지용: 모델 구조 절 (STRUCTURE_SECTIONS) 에서 값이 다른 설정 키들."""
    source_dict, this_dict = config_lib.to_dict(source_config), config_lib.to_dict(config)
    differing = [f"{section}.{key}: source {value!r}, this run {this_dict[section].get(key)!r}"
                 for section in STRUCTURE_SECTIONS for key, value in source_dict[section].items()
                 if this_dict[section].get(key) != value]
    return "; ".join(differing) or "no config key of " + "/".join(STRUCTURE_SECTIONS) + " differs"


def _names(names):
    """오류에 보일 이름 목록 (앞 _SHOWN 개와 남은 수)."""
    names = list(names)
    shown = ", ".join(names[:_SHOWN])
    return f"[{shown}{f', … {len(names) - _SHOWN} more' if len(names) > _SHOWN else ''}]"
