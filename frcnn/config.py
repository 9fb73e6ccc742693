"""실험 설정: 구성 요소별 frozen dataclass, 이름으로 등록된 프리셋, `key=value` 덮어쓰기.

용어:
  캔버스(canvas): 이미지를 비율 유지로 리사이즈한 뒤 패딩해 넣는 고정 크기 판 (높이, 너비). 짧은 변은
    min_size, 긴 변은 `input.canvas_long_sides` 와 max_size 중 하나 (stride 배수로 올림); 가로형(landscape)·
    세로형(portrait) 모두 있다. 이미지는 자기를 담는 가장 작은 캔버스에 들어가 (py-faster-rcnn·detectron2 의
    종횡비 묶음) 4:3 이미지가 3:5 판의 패딩 비용을 치르지 않는다. 캔버스 목록·앵커 수·앵커 지문은 설정에서
    계산되는 지식이라 `frcnn/data/record_spec.py` (RecordSpec) 에 있다; 이 모듈은 설정만 갖는다.
  섹션(section): ExperimentConfig 의 dataclass 필드 하나 (input, anchors, backbone, rpn, roi, detection, train).
    키는 `section.key` 로 부른다 (`train.num_steps`).

라이브러리는 absl.flags 를 가져오지 않는다. 바이너리가 플래그를 읽어 `build_config` 를 부른다.
`--params_override` 와 run.json 의 모르는 키는 조용히 버리지 않고, 키와 그 섹션의 키 목록을 밝히며 실패한다.
"""

import ast
import dataclasses
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """입력 크기 정책과 데이터 파이프라인 설정."""

    min_size: int = 600  # 짧은 변을 이 크기로
    max_size: int = 1000  # 긴 변은 이 크기 이하로
    max_gt_boxes: int = 100  # 이미지당 GT 최대 수 G (나머지는 −1 패딩)
    random_flip: bool = True  # 학습 시 좌우 뒤집기
    shuffle_buffer: int = 512
    # VOC 의 difficult 물체를 학습 타깃에서 어떻게 다룰지 (레코드에는 평가용으로 모두 남는다):
    #   drop   — 학습 타깃에서 뺀다 (py-faster-rcnn·tf-faster-rcnn·simple-faster-rcnn 의 USE_DIFF=False),
    #   ignore — 양성도 음성도 아니다: 덮는 앵커·RoI 는 무시 (devkit 처럼 상도 벌도 주지 않음),
    #   keep   — 보통 물체처럼 학습한다.
    difficult: str = "drop"
    # 이미지 밖 (캔버스·stride 패딩) 픽셀을 정규화 뒤 0 (평균색) 으로: py-faster-rcnn 처럼 평균을 뺀 뒤 패딩한다.
    # 끄면 패딩은 검정 (0–255 의 0) 으로 정규화된다.
    neutral_padding: bool = True
    # 최대 캔버스 (min_size, max_size) 말고 더 둘 캔버스의 긴 변 (픽셀, stride 배수). 비면 방향마다 하나.
    # [min_size, max_size) 밖의 값은 쓰이지 않는다 (크기를 덮어써도 오류가 아니다).
    canvas_long_sides: Tuple[int, ...] = ()
    # 리사이즈 크기 규칙 (`data.resize.SIZE_RULES`): round — 배율 (float32) × 변을 반올림, 긴 변 ≤ max_size;
    # torchvision — torchvision `GeneralizedRCNNTransform` 그대로 ⌊변 · 배율⌋ 을 float64 로 (FPN 프리셋).
    size_rule: str = "round"
    # 학습 스케일 지터 (Detectron ResizeShortestEdge 처럼): 비면 끔 (기본). 값이 있으면 학습 루프마다 이 짧은 변 (픽셀)
    # 중 하나를 고르게 골라 그 루프의 모든 배치를 (짧은 변 s, 긴 변 ≤ max_size) 로 리사이즈한다 — Detectron 은
    # 이미지마다 고르지만 여기서는 모양을 정적으로 두려고 루프 (train.steps_per_loop 스텝의 배치들) 마다 고른다 (우리의
    # 차이). 캔버스는 min_size 의 캔버스 k 를 s 배율로 키우거나 줄인 것 (`record_spec.scaled_canvas`). 앵커 라벨은
    # make_tfrecords 가 s 마다 미리 계산해 레코드에 담는다 (그래서 레코드도 같은 목록으로 만들어야 한다: 켜면 목록이
    # 앵커 지문에 든다). 측정 (resnet50_fpn): 여섯 스케일이 레코드를 7.7 % 키우는 데 그치지만 tf.data 에서 계산하면
    # 파이프라인이 0.18× 로 느려진다. min_size 는 늘 평가·추론 크기다.
    train_short_sides: Tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class AnchorConfig:
    """앵커: 크기(한 변, 픽셀) × 종횡비(높이/너비) 를 stride 간격 격자에 둔다."""

    stride: int = 16
    sizes: Tuple[float, ...] = (128.0, 256.0, 512.0)
    aspect_ratios: Tuple[float, ...] = (0.5, 1.0, 2.0)

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.sizes) * len(self.aspect_ratios)


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """백본과 검출기 헤드."""

    # vgg16 | resnet50 | mobilenet_v2 | small_cnn (한 수준) | resnet_fpn | small_fpn (특징 피라미드, `fpn.variant`)
    name: str = "vgg16"
    # imagenet | none (처음부터) | 로컬 가중치 파일 경로 | checkpoint (사전학습 백본처럼 만들되 — 얼린 블록,
    # resnet_fpn v1 의 FrozenBatchNorm — 아무것도 싣지 않는다: 가중치는 체크포인트나 --init_from 이 채운다)
    weights: str = "imagenet"
    # 사전학습 가중치일 때 얼릴 앞쪽 블록 수 (VGG16: conv1–conv2; resnet_fpn: torchvision
    # trainable_backbone_layers = 5 − freeze_blocks, 곧 2 면 conv1·layer1 을 얼린다)
    freeze_blocks: int = 2
    depth: int = 50  # resnet_fpn 의 ResNet 깊이 (18, 34, 50, 101)
    # resnet_fpn v1 의 FrozenBatchNorm eps (torchvision 1e-5; 그 COCO v1 가중치는 0 으로 쓴다)
    norm_epsilon: float = 1e-5
    width: int = 32  # small_cnn 의 첫 단계 채널 수
    fc_units: int = 4096  # VGG16/small_cnn 헤드의 fc6/fc7 너비
    dropout: float = 0.5


@dataclasses.dataclass(frozen=True)
class FpnConfig:
    """특징 피라미드 (P2–P6; `modeling.fpn_model`). variant 가 비면 한 수준 모델이다.

    v1 — torchvision `fasterrcnn_resnet50_fpn`: FPN 합성곱에 bias, RPN 합성곱 하나, 몸통 TwoMLPHead.
    v2 — `fasterrcnn_resnet50_fpn_v2`: 백본·FPN 에 BatchNorm (bias 없음), RPN 합성곱 둘, 몸통 4×(합성곱-BN) + fc.
    피라미드 프리셋에서 anchors.sizes 는 수준마다 하나 (P2 부터), anchors.stride 는 캔버스가 나뉘는 가장 큰
    stride (32), rpn.pre_nms_top_k 는 수준마다, rpn.min_box_size 는 리사이즈된 이미지 픽셀이다 (torchvision).
    """

    variant: str = ""  # "" | v1 | v2
    channels: int = 256  # 피라미드 채널 (torchvision 256)


@dataclasses.dataclass(frozen=True)
class RpnConfig:
    """RPN: 앵커 매칭, 미니배치 샘플링, 제안 생성."""

    conv_channels: int = 512
    conv_depth: int = 1  # 3×3 합성곱 층 수 (torchvision v2 는 2)
    positive_iou: float = 0.7  # IoU > 0.7 양성
    negative_iou: float = 0.3  # IoU < 0.3 음성
    allow_cross_boundary: bool = False  # 이미지 밖으로 나가는 앵커를 학습에서 무시 (논문)
    batch_size_per_image: int = 256
    positive_fraction: float = 0.5
    box_weights: Tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    smooth_l1_sigma: float = 3.0
    pre_nms_top_k: int = 12000
    post_nms_top_k: int = 2000
    test_pre_nms_top_k: int = 6000
    test_post_nms_top_k: int = 300
    nms_iou: float = 0.7
    min_box_size: float = 16.0  # 원본 이미지 픽셀 기준 최소 변 (논문 구현과 같음)


@dataclasses.dataclass(frozen=True)
class RoiConfig:
    """제안 타깃(RoI 샘플링)과 RoI 연산."""

    num_rois: int = 128
    foreground_fraction: float = 0.25
    foreground_iou: float = 0.5  # IoU ≥ 0.5 전경
    background_iou_low: float = 0.0  # 배경 [low, high)
    background_iou_high: float = 0.5
    box_weights: Tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)
    smooth_l1_sigma: float = 1.0
    pool_size: int = 7
    op: str = "pool"  # pool (논문의 RoI max pooling) | align


@dataclasses.dataclass(frozen=True)
class DetectionConfig:
    """추론 후처리: 클래스별 NMS."""

    score_threshold: float = 0.05
    nms_iou: float = 0.3
    max_detections: int = 100
    max_detections_per_class: int = 100
    min_box_size: float = 0.0  # 자른 뒤 변이 이보다 짧은 검출을 버린다 (픽셀; torchvision 1e-2)
    # 내보낼 때 fc6/fc7 을 절단 SVD 로 근사할 특잇값 수 (Fast R-CNN 3.1 절); 비면 끔. 학습에는 영향 없음.
    fc_svd_ranks: Tuple[int, ...] = ()
    # 분류기 행 가운데 클래스 1..C 로 보고할 행 (라벨 k ↔ 행 class_slots[k−1], 오름차순); 비면 행 1..C 그대로.
    # 분류기는 행 0..max(class_slots) 를 모두 가져 소프트맥스가 그 전부 위에서 계산되고, 목록에 없는 행은 검출로
    # 보고되지 않는다. torchvision 에서 가져온 COCO 모델 (`tools/import_weights`): 91 행 (0 배경, 1..90 = COCO 범주
    # id) 중 이름 있는 80 범주의 id — 곧 이 목록이 우리 라벨 id → COCO 범주 id 표다. 추론 전용 (학습은 거부한다).
    class_slots: Tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """학습 스케줄과 최적화."""

    batch_size: int = 2
    num_steps: int = 80000  # joint 의 스텝 수 (joint 예산)
    training_mode: str = "joint"  # joint | alternating
    # alternating 네 단계의 스텝 수. 비면 num_steps 의 논문 비율 8/7, 4/7, 8/7, 4/7 (80k/40k/80k/40k 대 joint 70k;
    # `training.schedule`); 학습은 채운 값을 run.json 에 남긴다.
    stage_steps: Tuple[int, ...] = ()
    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0005
    warmup_steps: int = 500
    decay_steps: Tuple[int, ...] = (60000,)  # 이 스텝들에서 학습률 × decay_factor
    decay_factor: float = 0.1
    gradient_clip_norm: float = 0.0  # 0 이면 끔
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 20
    # 실행 방식: jit_compile — 복제본 스텝을 XLA 로 컴파일 (이어 학습에서 바꿔도 된다),
    #   mixed_precision — GPU mixed_float16 (손실 스케일), bfloat16 명령이 있는 CPU mixed_bfloat16, 없는 CPU 는
    #     float32 (`precision.mixed_policy_name`); 변수·체크포인트는 float32.
    # 이 2코어 CPU (AVX512_BF16) 에서 잰 값 (benchmarks/bench_train_e2e): mixed 는 vgg16_paper 스텝 5.74 → 3.85 s,
    # cpu_small 0.168 → 0.140 s 로 빠르고, XLA 는 둘 다 느렸다 (6.72 s, 0.188 s). 그래서 모든 프리셋의 기본은
    # mixed_precision 켬 (bf16 명령이 없는 CPU 는 알아서 float32), jit_compile 끔.
    jit_compile: bool = False
    mixed_precision: bool = True
    # 한 tf.function 호출로 돌릴 스텝 수 (호스트는 루프마다 한 번 손실을 읽는다; 체크포인트·단계 끝에서 자른다).
    steps_per_loop: int = 20
    seed: int = 0
    # 편향의 학습률 2배 (py-faster-rcnn prototxt 의 편향 lr_mult: 2). 편향에는 가중치 감쇠도 없다 (decay_mult: 0).
    double_bias_lr: bool = False
    # 검증 평가 주기 (스텝, `tools/train --eval_records`): 이 배수와 마지막 스텝에서 평가한다; 0 이면 마지막에만.
    eval_every: int = 0


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """한 실험의 전체 설정."""

    name: str = "vgg16_paper"
    input: InputConfig = InputConfig()
    anchors: AnchorConfig = AnchorConfig()
    backbone: BackboneConfig = BackboneConfig()
    fpn: FpnConfig = FpnConfig()
    rpn: RpnConfig = RpnConfig()
    roi: RoiConfig = RoiConfig()
    detection: DetectionConfig = DetectionConfig()
    train: TrainConfig = TrainConfig()


def _vgg16_paper() -> ExperimentConfig:
    # py-faster-rcnn 의 VGG16 end2end (solver: 70k 반복, 50k 에서 lr × 0.1, iter_size 2 = 이미지 2장,
    # 편향 lr_mult 2, 워밍업 없음). ImageNet 가중치로 시작하고, 내보낼 때 절단 SVD 는 쓰지 않는다.
    # 캔버스 608×800 (4:3, 패딩 1.3 %), 608×912 (3:2, 2.5 %), 608×1008 (그 밖) 과 세로형.
    return ExperimentConfig(
        input=InputConfig(canvas_long_sides=(800, 912)),
        train=TrainConfig(batch_size=2, num_steps=70000, decay_steps=(50000,), warmup_steps=0,
                          double_bias_lr=True))


def _vgg16_seed() -> ExperimentConfig:
    # 노트북: 224×224, 앵커 32/64/128 × 3 비율, stride 16 → 14×14×9 = 1764 앵커, RoI 64개 중 전경 16개.
    return ExperimentConfig(
        name="vgg16_seed",
        input=InputConfig(min_size=224, max_size=224),
        anchors=AnchorConfig(stride=16, sizes=(32.0, 64.0, 128.0)),
        rpn=RpnConfig(pre_nms_top_k=1764, post_nms_top_k=300, test_pre_nms_top_k=1764,
                      test_post_nms_top_k=100, min_box_size=4.0),
        roi=RoiConfig(num_rois=64, foreground_fraction=0.25),
        train=TrainConfig(batch_size=8, num_steps=20000, decay_steps=(15000,), warmup_steps=200),
    )


def _cpu_small() -> ExperimentConfig:
    # 2코어 CPU 에서 합성 데이터로 쓸 만한 mAP 에 닿도록 고른 작은 백본과 캔버스 (데모와 테스트의 기본).
    return ExperimentConfig(
        name="cpu_small",
        # BN 이 있는 small_cnn 은 평균색 패딩에서, 또 difficult 를 뺀 학습에서 표본 세트 mAP 가 낮았다
        # (README "Reproducing the paper" 의 A/B 표).
        input=InputConfig(min_size=128, max_size=192, max_gt_boxes=16, shuffle_buffer=256,
                          neutral_padding=False, difficult="keep", canvas_long_sides=(176,)),
        anchors=AnchorConfig(stride=8, sizes=(16.0, 32.0, 64.0, 128.0)),
        backbone=BackboneConfig(name="small_cnn", weights="none", width=32, fc_units=256, dropout=0.0,
                                freeze_blocks=0),
        rpn=RpnConfig(conv_channels=128, pre_nms_top_k=1000, post_nms_top_k=256,
                      test_pre_nms_top_k=600, test_post_nms_top_k=100, min_box_size=4.0),
        roi=RoiConfig(num_rois=64, op="align"),
        train=TrainConfig(batch_size=8, num_steps=1500, learning_rate=0.02, warmup_steps=100,
                          decay_steps=(1200,), weight_decay=0.0001, checkpoint_every=250, steps_per_loop=10,
                          gradient_clip_norm=10.0),
    )


def _resnet50_fpn(variant="v1") -> ExperimentConfig:
    # torchvision `fasterrcnn_resnet50_fpn` (_v2) 그대로: 변환 800/1333 (float64 크기 규칙, 32 배수 패딩), ResNet-50
    # v1.5 + FPN P2–P6, 앵커 32…512 × 3 비율, RPN 학습 2000/2000·시험 1000/1000 (수준별 사전), 교차 경계 앵커도
    # 학습, RoI 512 개 중 25 % 전경, MultiScaleRoIAlign 7×7, 몸통 1024, smooth L1 β = 1/9 (σ = 3), 점수 0.05,
    # NMS 0.5, 100 개, 변 ≥ 1e-2. 학습은 torchvision 레시피 (배치 16, lr 0.02, 감쇠 1e-4, 워밍업 1000, 26 에폭 중
    # 16·22 에서 × 0.1) 를 배치 2 로 선형 축소하고 VOC07 trainval (5011 장) 26 에폭 ≈ 65k 스텝으로 잡았다.
    # 캔버스: 800×1088 (4:3), 800×1216 (3:2), 800×1344 (그 밖) 과 세로형.
    return ExperimentConfig(
        name="resnet50_fpn" if variant == "v1" else "resnet50_fpn_v2",
        input=InputConfig(min_size=800, max_size=1333, size_rule="torchvision",
                          canvas_long_sides=(1088, 1216)),
        anchors=AnchorConfig(stride=32, sizes=(32.0, 64.0, 128.0, 256.0, 512.0)),
        backbone=BackboneConfig(name="resnet_fpn", depth=50, fc_units=1024, dropout=0.0, freeze_blocks=2),
        fpn=FpnConfig(variant=variant),
        rpn=RpnConfig(conv_channels=256, conv_depth=1 if variant == "v1" else 2, allow_cross_boundary=True,
                      pre_nms_top_k=2000, post_nms_top_k=2000, test_pre_nms_top_k=1000,
                      test_post_nms_top_k=1000, min_box_size=1e-3),
        roi=RoiConfig(num_rois=512, smooth_l1_sigma=3.0, op="align"),
        detection=DetectionConfig(nms_iou=0.5, min_box_size=1e-2),
        train=TrainConfig(batch_size=2, num_steps=65000, learning_rate=0.0025, weight_decay=0.0001,
                          warmup_steps=1000, decay_steps=(40000, 55000)),
    )


def _cpu_small_fpn() -> ExperimentConfig:
    # cpu_small 과 같은 입력·학습에 FPN 기계 (P2–P6, 수준별 제안, MultiScaleRoIAlign) 를 작은 BN 합성곱망
    # (stride 4–32) 위에 얹었다. 캔버스는 32 배수 (128×160, 128×192). 앵커는 torchvision 처럼 격자 칸의 모서리에
    # 중심이 있어 (반 칸 어긋남 없음) P5·P6 의 큰 앵커가 거의 모두 이미지 밖으로 걸친다 — torchvision 처럼 학습에 쓴다.
    small = _cpu_small()
    return dataclasses.replace(
        small, name="cpu_small_fpn",
        input=dataclasses.replace(small.input, canvas_long_sides=(160,)),
        anchors=AnchorConfig(stride=32, sizes=(16.0, 32.0, 64.0, 128.0, 256.0)),
        backbone=dataclasses.replace(small.backbone, name="small_fpn"),
        fpn=FpnConfig(variant="v1", channels=64),
        rpn=dataclasses.replace(small.rpn, conv_channels=64, pre_nms_top_k=300, test_pre_nms_top_k=300,
                                min_box_size=1e-3, allow_cross_boundary=True),
        detection=DetectionConfig(min_box_size=1e-2),
    )


DIFFICULT_MODES = ("drop", "ignore", "keep")
SIZE_RULES = ("round", "torchvision")
SINGLE_LEVEL_BACKBONES = ("vgg16", "resnet50", "mobilenet_v2", "small_cnn")
PYRAMID_BACKBONES = ("resnet_fpn", "small_fpn")

PRESETS = {
    "vgg16_paper": _vgg16_paper,
    "vgg16_seed": _vgg16_seed,
    "cpu_small": _cpu_small,
    "resnet50_fpn": _resnet50_fpn,
    "resnet50_fpn_v2": lambda: _resnet50_fpn("v2"),
    "cpu_small_fpn": _cpu_small_fpn,
}


def get_preset(name: str) -> ExperimentConfig:
    """이름으로 프리셋을 돌려준다.

    Raises:
      ValueError: 모르는 프리셋 이름.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset '{name}' (known: {', '.join(sorted(PRESETS))})")
    return PRESETS[name]()


def _parse_value(text: str, current):
    """문자열 값을 현재 값의 타입에 맞춰 해석한다."""
    text = text.strip()
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(f"expected a boolean, got '{text}'")
    if isinstance(current, str):
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(f"cannot parse '{text}'") from error
    if isinstance(current, tuple):
        value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(item, float) for item in current):
            return tuple(float(item) for item in value)
        return value
    if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected {type(current).__name__}, got '{text}'")


def _field_names(config_class) -> Tuple[str, ...]:
    return tuple(sorted(field.name for field in dataclasses.fields(config_class)))


def _unknown_key(section: str, key: str, config_class) -> ValueError:
    """모르는 키 오류: 키의 전체 경로와 그 섹션의 키 목록을 밝힌다 (섹션이 비면 최상위 'config')."""
    path = f"{section}.{key}" if section else key
    known = ", ".join(_field_names(config_class))
    return ValueError(f"unknown key '{path}' ({section or 'config'} has: {known})")


def _replace_path(config, path, text, section=""):
    """점으로 구분된 경로(`train.num_steps`)의 값을 바꾼 새 설정을 만든다."""
    head, *rest = path
    if head not in _field_names(type(config)):
        raise _unknown_key(section, head, type(config))
    current = getattr(config, head)
    full = f"{section}.{head}" if section else head
    if rest:
        if not dataclasses.is_dataclass(current):
            raise ValueError(f"'{full}' has no sub-keys")
        return dataclasses.replace(config, **{head: _replace_path(current, rest, text, full)})
    if dataclasses.is_dataclass(current):
        raise ValueError(f"'{full}' is a section; name one of its keys")
    return dataclasses.replace(config, **{head: _parse_value(text, current)})


def _split_overrides(text: str):
    """`a=1,b=(1,2),c=x` 를 괄호 안의 쉼표를 지키며 나눈다."""
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char in "(["
        depth -= char in ")]"
        if char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def apply_overrides(config: ExperimentConfig, overrides: str) -> ExperimentConfig:
    """`key=value,...` 덮어쓰기를 적용한다 (예: `train.num_steps=100,anchors.sizes=(32,64)`).

    Raises:
      ValueError: 잘못된 키나 값.
    """
    for item in _split_overrides(overrides or ""):
        if "=" not in item:
            raise ValueError(f"override '{item}' is not key=value")
        key, text = item.split("=", 1)
        try:
            config = _replace_path(config, key.strip().split("."), text)
        except ValueError as error:
            raise ValueError(f"--params_override '{item}': {error}") from error
    return config


def _model_checks(config):
    """입력·앵커·RPN·RoI·백본 설정의 (조건, 오류 문구) 목록."""
    return [
        (config.input.min_size > 0 and config.input.max_size >= config.input.min_size,
         "input.max_size must be ≥ input.min_size > 0"),
        (config.input.max_gt_boxes > 0, "input.max_gt_boxes must be > 0"),
        (all(isinstance(side, int) and not isinstance(side, bool) and 0 < side <= config.input.max_size
             for side in config.input.train_short_sides)
         and len(set(config.input.train_short_sides)) == len(config.input.train_short_sides),
         f"input.train_short_sides must be distinct integers in (0, input.max_size={config.input.max_size}], "
         f"got {config.input.train_short_sides}"),
        (all(side % config.anchors.stride == 0 for side in config.input.canvas_long_sides),
         "input.canvas_long_sides must be multiples of anchors.stride"),
        (config.anchors.stride in (4, 8, 16, 32), "anchors.stride must be 4, 8, 16 or 32"),
        (len(config.anchors.sizes) > 0 and len(config.anchors.aspect_ratios) > 0,
         "anchors.sizes and anchors.aspect_ratios must not be empty"),
        (0 < config.rpn.negative_iou <= config.rpn.positive_iou < 1,
         "need 0 < rpn.negative_iou ≤ rpn.positive_iou < 1"),
        (0 < config.rpn.positive_fraction <= 1, "rpn.positive_fraction must be in (0, 1]"),
        (config.rpn.test_post_nms_top_k <= config.rpn.test_pre_nms_top_k
         and config.rpn.post_nms_top_k <= config.rpn.pre_nms_top_k,
         "rpn post_nms_top_k must be ≤ pre_nms_top_k"),
        (config.rpn.post_nms_top_k + config.input.max_gt_boxes >= config.roi.num_rois,
         "rpn.post_nms_top_k + input.max_gt_boxes must be ≥ roi.num_rois"),
        (0 < config.roi.foreground_fraction <= 1, "roi.foreground_fraction must be in (0, 1]"),
        (config.roi.op in ("pool", "align"), "roi.op must be 'pool' or 'align'"),
        (config.input.difficult in DIFFICULT_MODES, "input.difficult must be 'drop', 'ignore' or 'keep'"),
        (config.backbone.name in SINGLE_LEVEL_BACKBONES + PYRAMID_BACKBONES,
         f"backbone.name must be one of {', '.join(SINGLE_LEVEL_BACKBONES + PYRAMID_BACKBONES)}"),
        (config.input.size_rule in SIZE_RULES, f"input.size_rule must be one of {', '.join(SIZE_RULES)}"),
        (config.fpn.variant in ("", "v1", "v2"), "fpn.variant must be '', 'v1' or 'v2'"),
        ((config.backbone.name in PYRAMID_BACKBONES) == bool(config.fpn.variant),
         f"fpn.variant is needed with (and only with) backbone.name {' or '.join(PYRAMID_BACKBONES)}"),
        (not config.fpn.variant or (config.anchors.stride == 32 and len(config.anchors.sizes) == 5
                                    and config.roi.op == "align"),
         "an FPN preset needs anchors.stride=32, five anchors.sizes (P2–P6) and roi.op=align"),
        (config.rpn.conv_depth >= 1, "rpn.conv_depth must be ≥ 1"),
    ]


def _training_checks(config):
    """학습·검출 설정의 (조건, 오류 문구) 목록."""
    return [
        (config.train.training_mode in ("joint", "alternating"),
         "train.training_mode must be 'joint' or 'alternating'"),
        (config.train.batch_size > 0 and config.train.num_steps > 0,
         "train.batch_size and train.num_steps must be > 0"),
        (len(config.train.stage_steps) in (0, 4), "train.stage_steps needs 4 values (or none)"),
        (config.train.steps_per_loop > 0 and config.train.checkpoint_every > 0 and config.train.log_every > 0,
         "train.steps_per_loop, train.checkpoint_every and train.log_every must be > 0"),
        (config.train.eval_every >= 0, "train.eval_every must be ≥ 0"),
        (len(config.detection.fc_svd_ranks) in (0, 2) and min(config.detection.fc_svd_ranks, default=0) >= 0,
         "detection.fc_svd_ranks needs 2 values ≥ 0 (fc6, fc7) or none"),
        (len(config.rpn.box_weights) == 4 and len(config.roi.box_weights) == 4,
         "box_weights need 4 values"),
        (all(a < b for a, b in zip((0,) + config.detection.class_slots, config.detection.class_slots)),
         "detection.class_slots must be increasing positive ints (or none)"),
    ]


def validate(config: ExperimentConfig) -> ExperimentConfig:
    """설정의 일관성을 검사한다.

    Raises:
      ValueError: 모순되거나 범위를 벗어난 값.
    """
    for ok, message in _model_checks(config) + _training_checks(config):
        if not ok:
            raise ValueError(f"invalid config '{config.name}': {message}")
    return config


def build_config(preset: str, overrides: str = "") -> ExperimentConfig:
    """프리셋 + 덮어쓰기 → 검증된 설정."""
    return validate(apply_overrides(get_preset(preset), overrides))


CHECKPOINT_WEIGHTS = "checkpoint"


def without_pretrained_weights(config: ExperimentConfig) -> ExperimentConfig:
    """사전학습 가중치를 싣지 않는 복사본: none 은 그대로, 그 밖 (imagenet, 파일) 은 `checkpoint`.

    모든 가중치를 체크포인트나 학습된 모델에서 가져오는 모델을 만들 때 쓴다: 사전학습 가중치를 다시
    내려받거나 파일에서 읽지 않지만, 학습 때와 같은 구조로 만든다 (resnet_fpn v1 은 사전학습이면
    FrozenBatchNorm, 아니면 BatchNorm 이라 변수 이름이 다르다).
    """
    weights = "none" if config.backbone.weights == "none" else CHECKPOINT_WEIGHTS
    return dataclasses.replace(config, backbone=dataclasses.replace(config.backbone, weights=weights))


def to_dict(config: ExperimentConfig) -> dict:
    """JSON 으로 쓸 수 있는 dict (튜플은 그대로; `json.dump` 가 리스트로 쓴다)."""
    return dataclasses.asdict(config)


def _check_keys(data, config_class, section: str) -> None:
    """data 의 키가 모두 config_class 의 필드인지 확인한다.

    Raises:
      ValueError: data 가 dict 가 아니거나 모르는 키가 있을 때.
    """
    if not isinstance(data, dict):
        raise ValueError(f"'{section or 'config'}' must be a mapping, got {type(data).__name__}")
    for key in data:
        if key not in _field_names(config_class):
            raise _unknown_key(section, key, config_class)


def _section_from_dict(config_class, data: dict, section: str):
    """섹션 하나 (`TrainConfig` 등). 리스트는 튜플로; 빠진 키는 기본값."""
    _check_keys(data, config_class, section)
    values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
    return config_class(**values)


def from_dict(data: dict) -> ExperimentConfig:
    """`to_dict` 의 역 (model_dir/run.json 의 "config" 읽기). 빠진 섹션·키는 기본값을 쓴다.

    Raises:
      ValueError: 모르는 섹션이나 키 (예: "unknown key 'train.foo' (train has: batch_size, ...)"),
        또는 검증에 실패한 값.
    """
    _check_keys(data, ExperimentConfig, "")
    sections = {}
    for field in dataclasses.fields(ExperimentConfig):
        if field.name not in data:
            continue
        if dataclasses.is_dataclass(field.default):
            sections[field.name] = _section_from_dict(type(field.default), data[field.name], field.name)
        else:
            sections[field.name] = data[field.name]
    return validate(ExperimentConfig(**sections))
