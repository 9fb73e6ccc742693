"""torchvision 의 학습된 가중치 → 이 프로젝트의 실행 디렉터리 (`tools/import_weights`).

torch·torchvision (`[torch]` 추가 묶음) 은 이 모듈의 함수 안에서만 가져온다 (없으면 한 줄 ImportError).

용어:
  구조 모델(structure): 가중치 없이 (`weights=None`) 만든 torchvision 모델. `.pth` 상태를 torchvision 자신의
    `load_state_dict` 로 읽어 torchvision 이 처리하는 옛 키 이름을 새 이름으로 바꾼다: RPNHead 판 1 의
    `rpn.head.conv.{weight,bias}` → `conv.0.0.*`, FPN 판 1 의 `inner_blocks.i.*`·`layer_blocks.i.*` → `….i.0.*`
    (`_metadata` 의 판 번호가 없거나 2 보다 작을 때), FrozenBatchNorm2d 가 버리는 `num_batches_tracked`.
  상태(state): 구조 모델의 `state_dict()` 를 numpy 로 (num_batches_tracked 제외) — `modeling.torchvision_weights`
    가 Keras 층에 옮긴다.
  COCO 91 칸: torchvision 의 분류기 행 0 (배경), 1..90 (= COCO 범주 id; 'N/A' 10 칸은 비어 있는 id). 모델은 91 행을
    모두 갖고 (소프트맥스가 torchvision 과 같다), 이름 있는 80 범주가 클래스 1..80 (범주 id 순, 곧
    `make_tfrecords --source=coco` 의 라벨) — `detection.class_slots` 가 라벨 → 행 (= COCO 범주 id) 표다.
  BN eps: v1 COCO 가중치는 FrozenBatchNorm eps 0 으로 쓴다 (torchvision `overwrite_eps`) — `backbone.norm_epsilon`.
  출처 기록 ("source" in run.json): arch, file, sha256, 게시된 해시 접두어 (torchvision 파일 이름의 `-<hex>.pth`)
    와 맞는지, 검출기면 coco_category_ids {우리 라벨 id (문자열): COCO 범주 id} (`class_slots` 와 같은 표 — COCO
    결과 파일의 category_id 로 바꿀 때).
"""

import dataclasses
import hashlib
import os
import re
import sys

import tensorflow as tf

from frcnn import config as config_lib
from frcnn import fileio
from frcnn.data import record_spec
from frcnn.modeling import fpn_backbones
from frcnn.modeling import layer_weights
from frcnn.modeling import resnet_tv
from frcnn.modeling import torchvision_weights
from frcnn.training import run_file
from frcnn.training import trainer

TORCH_HINT = "pip install -e '.[torch]' (or pip install frcnn[torch])"
SOURCE_FILE = "source.json"  # --arch=resnet50 의 출력 디렉터리에 쓰는 출처 기록
NOT_A_CLASS = "N/A"


@dataclasses.dataclass(frozen=True)
class Arch:
    """가져올 수 있는 torchvision 모델 하나: 빌더 이름, 게시된 가중치 (`<Enum>.<이름>`), 프리셋, 기본 BN eps."""

    builder: str
    weights: str
    preset: str
    bn_eps: float


ARCHS = {
    "fasterrcnn_resnet50_fpn": Arch("fasterrcnn_resnet50_fpn", "FasterRCNN_ResNet50_FPN_Weights.COCO_V1",
                                    "resnet50_fpn", 0.0),
    "fasterrcnn_resnet50_fpn_v2": Arch("fasterrcnn_resnet50_fpn_v2",
                                       "FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1", "resnet50_fpn_v2", 1e-5),
    "resnet50": Arch("resnet50", "ResNet50_Weights.IMAGENET1K_V1", "", 1e-5),
}


def import_torch():
    """(torch, torchvision).

    triton (CUDA torch 가 함께 설치하는 GPU 커널 컴파일러) 은 TensorFlow 뒤에 읽히면 segfault 를 낸다 — CPU 에서는
    쓰지 않으므로 가져오기를 막는다.

    Raises:
      ImportError: 한 줄, `[torch]` 추가 묶음을 밝힌다.
    """
    sys.modules.setdefault("triton", None)
    try:
        import torch
        import torchvision
    except ImportError as error:
        raise ImportError(f"import_weights needs torch and torchvision ({error.name or error} is missing): "
                          f"install the torch extra: {TORCH_HINT}") from None
    return torch, torchvision


def published_weights(arch):
    """torchvision 의 가중치 Enum 값 (`Arch.weights`)."""
    _, torchvision = import_torch()
    enum_name, member = ARCHS[arch].weights.split(".")
    module = torchvision.models if arch == "resnet50" else torchvision.models.detection
    return getattr(module, enum_name)[member]


def structure_model(arch):
    """가중치 없는 torchvision 모델 (`load_state_dict` 로 상태를 읽는 틀)."""
    _, torchvision = import_torch()
    if arch == "resnet50":
        return torchvision.models.resnet50(weights=None)
    builder = getattr(torchvision.models.detection, ARCHS[arch].builder)
    return builder(weights=None, weights_backbone=None, num_classes=len(coco_categories()))


def coco_categories():
    """torchvision 의 COCO 91 칸 이름 ('__background__', 'person', …, 'N/A', …)."""
    _, torchvision = import_torch()
    from torchvision.models import _meta
    return list(_meta._COCO_CATEGORIES)


def coco_classes(categories):
    """91 칸 이름 → (이름 있는 80 클래스 이름, 그 행 번호 = COCO 범주 id) — 범주 id 순."""
    named = [(index, name) for index, name in enumerate(categories) if index > 0 and name != NOT_A_CLASS]
    return tuple(name for _, name in named), tuple(index for index, _ in named)


def download(arch):
    """게시된 가중치를 torch hub 캐시에 내려받고 (해시 검사) 그 파일 경로를 돌려준다."""
    torch, _ = import_torch()
    weights = published_weights(arch)
    weights.get_state_dict(progress=True, check_hash=True)
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))


def read_state(structure, path):
    """`.pth` 상태 → 구조 모델에 `load_state_dict` (torchvision 의 옛 이름 처리) → {키: numpy} (num_batches_tracked 제외).

    Raises:
      ValueError: 읽을 수 없는 파일, 상태가 아닌 내용, 빠진·남는·모양이 다른 텐서 (이름을 밝힌다).
    """
    torch, _ = import_torch()
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: cannot read a torch state dict: {str(error).splitlines()[0]}") from None
    if not isinstance(raw, dict) or not all(isinstance(value, torch.Tensor) for value in raw.values()):
        raise ValueError(f"{path}: not a state dict (a mapping of tensor names to tensors)")
    try:
        missing, unexpected = structure.load_state_dict(raw, strict=False)
    except RuntimeError as error:
        mismatched = re.findall(r"size mismatch for ([^:]+): (copying a param with shape \S+ .*?)\.?$",
                                str(error), re.MULTILINE)
        names = "; ".join(f"{key} ({detail})" for key, detail in mismatched) or str(error).splitlines()[0]
        raise ValueError(f"{path}: mis-shaped tensors: {names}") from None
    missing = [key for key in missing if not key.endswith(torchvision_weights.IGNORED_PARAMETER)]
    if missing or unexpected:
        raise ValueError(f"{path}: {len(missing)} tensors missing: {', '.join(missing[:12]) or '-'}; "
                         f"{len(unexpected)} unexpected tensors: {', '.join(unexpected[:12]) or '-'}")
    return {key: value.detach().cpu().numpy() for key, value in structure.state_dict().items()
            if not key.endswith(torchvision_weights.IGNORED_PARAMETER)}


def source_record(arch, path):
    """run.json 의 "source": arch, 파일, sha256, 게시된 해시 접두어와 맞는지."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    published = re.search(r"-([0-9a-f]+)\.pth$", published_weights(arch).url).group(1)
    sha256 = digest.hexdigest()
    return {"arch": arch, "file": os.path.abspath(path), "sha256": sha256,
            "published_sha256_prefix": published, "matches_published": sha256.startswith(published)}


def detector_config(arch, bn_eps=None, overrides="", class_slots=()):
    """가져온 검출기의 설정: 프리셋 + backbone.weights=checkpoint (체크포인트가 모두 갖는다; torchvision 의
    사전학습 모델처럼 v1 은 FrozenBatchNorm, 앞 두 단계는 얼린다), BN eps, class_slots, 그리고 사용자 덮어쓰기
    (예: input.min_size)."""
    eps = ARCHS[arch].bn_eps if bn_eps is None else bn_eps
    slots = ",".join(str(slot) for slot in class_slots)
    base = f"backbone.weights={config_lib.CHECKPOINT_WEIGHTS},backbone.norm_epsilon={eps!r}"
    base += f",detection.class_slots=({slots},)" if slots else ""
    return config_lib.build_config(ARCHS[arch].preset, ",".join(filter(None, (base, overrides))))


def build_detector(config, classes, state, source):
    """설정의 추론 모델 (`load_trained_model` 이 만드는 그대로) 을 만들고 상태를 모두 옮긴다.

    Raises:
      ValueError: `torchvision_weights.assign_detector` 와 같다.
    """
    model = trainer.build_model(config_lib.without_pretrained_weights(config), len(classes))
    torchvision_weights.assign_detector(model, config, state, source)
    return model


def write_run(model_dir, model, config, classes, source):
    """tools/train 과 같은 실행 디렉터리 (run.json + checkpoints/ckpt-0) 를 원자적으로 쓴다 (실패하면 아무것도 없다).

    Raises:
      ValueError: model_dir 이 이미 있을 때.
    """
    if os.path.exists(model_dir):
        raise ValueError(f"{model_dir}: already exists; choose a new --model_dir")
    run_info = run_file.make_run_info(record_spec.RecordSpec.from_config(config, classes), records=None)
    with fileio.atomic_directory(model_dir) as staging:
        fileio.write_json(run_file.run_file_path(staging), dict(run_info, source=source))
        checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(0, dtype=tf.int64))
        tf.train.CheckpointManager(checkpoint, os.path.join(staging, "checkpoints"),
                                   max_to_keep=1).save(checkpoint_number=0)


def import_detector(arch, model_dir, weights_file=None, bn_eps=None, overrides=""):
    """torchvision Faster R-CNN (게시된 것을 내려받거나 weights_file) → model_dir 실행 디렉터리.

    Returns:
      (출처 기록 dict, 설정, 클래스 이름들).

    Raises:
      ImportError: torch·torchvision 이 없을 때 (한 줄).
      ValueError: 읽을 수 없는 파일, 맞지 않는 텐서, 이미 있는 model_dir (아무것도 쓰지 않는다).
    """
    if os.path.exists(model_dir):
        raise ValueError(f"{model_dir}: already exists; choose a new --model_dir")
    path = weights_file or download(arch)
    state = read_state(structure_model(arch), path)
    classes, slots = coco_classes(coco_categories())
    config = detector_config(arch, bn_eps, overrides, slots)
    model = build_detector(config, classes, state, path)
    source = dict(source_record(arch, path),
                  coco_category_ids={str(label): slot for label, slot in enumerate(slots, start=1)})
    write_run(model_dir, model, config, classes, source)
    return source, config, classes


def import_backbone(model_dir, weights_file=None):
    """torchvision ResNet-50 (IMAGENET1K_V1) → model_dir/`fpn_backbones.BODY_WEIGHTS_FILE` (+ source.json):
    피라미드 프리셋의 `--backbone_weights=model_dir`.

    Returns:
      출처 기록 dict.

    Raises:
      ImportError, ValueError: `import_detector` 와 같다.
    """
    if os.path.exists(model_dir):
        raise ValueError(f"{model_dir}: already exists; choose a new --model_dir")
    path = weights_file or download("resnet50")
    state = read_state(structure_model("resnet50"), path)
    body = resnet_tv.resnet_body(50, "batch", name="body")
    torchvision_weights.assign_body(body, state, path)
    source = source_record("resnet50", path)
    with fileio.atomic_directory(model_dir) as staging:
        layer_weights.save_layers(body, os.path.join(staging, fpn_backbones.BODY_WEIGHTS_FILE))
        fileio.write_json(os.path.join(staging, SOURCE_FILE), source)
    return source
