"""실행 기록 `model_dir/run.json`: 해석된 설정, 클래스 이름, 레코드 glob, 앵커 지문, 최고 체크포인트.

용어:
  실행 기록(run file): 학습이 시작할 때 쓰는 `run.json`. 내보내기·평가가 이것으로 같은 모델을 다시 만든다.
  이어 학습(resume): 같은 model_dir 로 다시 실행하는 것. 기록된 설정·클래스와 다르면 거부한다
    (다른 설정의 체크포인트를 섞지 않도록). 이어 학습에서 다시 쓸 때도 "best" 는 그대로 둔다.
  최고 기록(best): 검증 VOC07 mAP 가 가장 높았던 평가 (`best_checkpoint`): 스텝, mAP, 체크포인트 경로,
    검증 레코드 glob. 검증하지 않은 실행에는 없다.

  시작 가중치 기록(init_from): `--init_from` 으로 시작한 실행의 원본 — {"source": 경로, "checkpoint": 경로,
    "classes_carried": {새 이름: 원본 이름}, "classes_fresh": [이름, ...]} (`init_from`). 이어 학습에서도 그대로 둔다.

형식 (JSON): {"config": `config.to_dict`, "classes": [이름, ...], "records": glob, "anchor_fingerprint": hex,
  "best": {"step": int, "voc07_map": float, "checkpoint": 경로, "eval_records": glob} (선택),
  "init_from": {...} (선택)}.
"""

import json
import os

from frcnn import config as config_lib
from frcnn import fileio

RUN_FILE = "run.json"


def run_file_path(model_dir):
    return os.path.join(model_dir, RUN_FILE)


def make_run_info(spec, records):
    """run.json 에 쓸 내용 (spec: `RecordSpec` — 설정, 클래스, 지문). JSON 왕복으로 튜플을 리스트로 바꿔 읽은 기록과
    그대로 비교되게 한다."""
    run_info = {"config": config_lib.to_dict(spec.config), "classes": list(spec.classes), "records": records,
                "anchor_fingerprint": spec.fingerprint}
    return json.loads(json.dumps(run_info))


# 실행 방식 키: 체크포인트와 호환되므로 이어 학습에서 달라도 된다 (run.json 에는 마지막 값을 쓴다).
# mixed_precision 은 아니다: GPU 의 mixed_float16 은 옵티마이저를 LossScaleOptimizer 로 감싸 체크포인트 모양이 바뀐다.
# eval_every 는 언제 검증할지일 뿐이다.
RUNTIME_KEYS = (("train", "jit_compile"), ("train", "steps_per_loop"), ("train", "eval_every"))
BEST_KEY = "best"
INIT_FROM_KEY = "init_from"


def _without_runtime_keys(config):
    """config dict 에서 RUNTIME_KEYS 를 뺀 복사본."""
    stripped = {section: dict(values) if isinstance(values, dict) else values
                for section, values in config.items()}
    for section, key in RUNTIME_KEYS:
        if isinstance(stripped.get(section), dict):
            stripped[section].pop(key, None)
    return stripped


def _differing_keys(saved_config, config):
    """`section.key` 중 값이 다른 것들 (정렬)."""
    return sorted(
        f"{section}.{key}" for section, values in config.items() if isinstance(values, dict)
        for key, value in values.items()
        if saved_config.get(section, {}).get(key) != value)


def check_run_file(model_dir, run_info):
    """같은 model_dir 에 다른 설정으로 이어 학습하지 않도록 한다 (RUNTIME_KEYS 는 달라도 된다).

    Raises:
      ValueError: 기록된 설정이나 클래스가 다를 때 (다른 키를 밝힌다).
    """
    path = run_file_path(model_dir)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as handle:
        saved = json.load(handle)
    saved_config = _without_runtime_keys(saved.get("config", {}))
    config = _without_runtime_keys(run_info["config"])
    if saved_config != config or saved.get("classes") != run_info["classes"]:
        differing = _differing_keys(saved_config, config)
        raise ValueError(f"{path}: model_dir holds a run with a different config "
                         f"({', '.join(differing) or 'classes'} differ); use a new --model_dir")


def write_run_file(model_dir, spec, records, init_from=None):
    """명세 (`RecordSpec`) 의 해석된 설정, 클래스 이름, 지문을 model_dir/run.json 에 원자적으로 쓴다 (export 가 읽는다). 이어 학습이면
    기록된 최고 기록 ("best") 과 시작 가중치 기록 ("init_from") 을 그대로 둔다.

    Args:
      init_from: 선택, 이번에 옮긴 시작 가중치의 기록 dict (`init_from.initialize` 의 반환).

    Raises:
      ValueError: model_dir 에 다른 설정의 기록이 있을 때.
    """
    os.makedirs(model_dir, exist_ok=True)
    run_info = make_run_info(spec, records)
    check_run_file(model_dir, run_info)
    kept = {key: _read_key(model_dir, key) for key in (BEST_KEY, INIT_FROM_KEY)}
    if init_from is not None:
        kept[INIT_FROM_KEY] = init_from
    run_info.update({key: value for key, value in kept.items() if value is not None})
    fileio.write_json(run_file_path(model_dir), run_info)


def _read_key(model_dir, key):
    """run.json 의 키 하나의 값 (없거나 run.json 이 없으면 None)."""
    path = run_file_path(model_dir)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get(key)


def read_best(model_dir):
    """run.json 의 최고 기록 dict (없거나 run.json 이 없으면 None)."""
    return _read_key(model_dir, BEST_KEY)


def write_best(model_dir, best):
    """run.json 의 최고 기록을 `best` (dict) 로 바꿔 원자적으로 다시 쓴다 (나머지는 그대로).

    Raises:
      ValueError: run.json 이 없을 때 (학습이 먼저 쓴다).
    """
    path = run_file_path(model_dir)
    if not os.path.exists(path):
        raise ValueError(f"{path}: not found — write_run_file first")
    with open(path, encoding="utf-8") as handle:
        run_info = json.load(handle)
    run_info[BEST_KEY] = best
    fileio.write_json(path, run_info)


def read_run_file(model_dir):
    """(config, classes) 를 읽는다.

    Raises:
      ValueError: run.json 이 없거나 깨졌거나, 모르는 설정 키가 있을 때 (경로와 키를 밝힌다).
    """
    path = run_file_path(model_dir)
    if not os.path.exists(path):
        raise ValueError(f"{path}: not found — is --model_dir a tools/train output directory?")
    try:
        with open(path, encoding="utf-8") as handle:
            run_info = json.load(handle)
        config_data, classes = run_info["config"], tuple(run_info["classes"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: unreadable run file: {error}") from error
    try:
        return config_lib.from_dict(config_data), classes
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from error
