"""torchvision 기준 구현과 비교하는 일치 시험의 도우미 (torch·torchvision 은 `[torch]` 추가 묶음; 없으면 건너뛴다).

  - `import_torchvision()`: torch, torchvision 을 가져오거나 시험을 건너뛴다.
  - `randomize_(module, seed)`: 합성곱 bias 와 BN 의 아핀 값·이동 통계를 무작위로 (기본값 1/0 이면 정규화가
    항등에 가까워 틀린 정규화 공식도 통과한다).
  - `copy_weights(torch_module, keras_model)`: torch 모듈 경로의 '.' 을 '_' 로 바꾼 이름의 Keras 층에 가중치를
    옮긴다 (Conv2d OIHW → HWIO, BatchNorm2d·FrozenBatchNorm2d 는 weight, bias, running_mean, running_var,
    Linear 는 전치; Flatten 뒤의 Linear 는 `flattened_dense_values`).
  - `reference_backbone(depth, variant, …)`: torchvision 의 ResNet-FPN 백본 (무작위, eval 모드), `random_images`.
  - `nchw`/`nhwc`: 배열 축 순서 바꾸기. `assert_close_relative`: 기준 최댓값에 대한 상대 오차 검사.
  - `assert_same_ranking`: 점수 순 박스 목록이 같은지 (거의 같은 점수끼리의 순서 바뀜은 허용).
  - `copy_faster_rcnn(reference, model, variant)`: torchvision FasterRCNN 전체 → `FpnFasterRCNN`.
"""

import sys

import numpy as np
import pytest

INPUT_SHAPE = (2, 3, 100, 130)  # [B, C, H, W]: 32 의 배수가 아니라 ⌈n/2⌉ 단계와 두 배 아닌 확대를 드러낸다


def import_torchvision():
    """(torch, torchvision); 설치되지 않았으면 시험을 건너뛴다.

    PyPI 의 CUDA torch 는 triton (GPU 커널 컴파일러) 을 함께 설치하고, torchvision 을 가져올 때 torch._dynamo 가
    triton 을 가져온다. triton 의 네이티브 라이브러리는 TensorFlow 뒤에 읽히면 segfault 를 낸다 (LLVM 기호
    충돌) — CPU eager 시험에는 triton 이 필요 없으므로 가져오기를 막는다 (torch 는 없는 것으로 안다).
    """
    sys.modules.setdefault("triton", None)
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.set_num_threads(1)  # 공유 CPU 에서 검소하게
    return torch, torchvision


def randomize_(module, seed):
    """module 안의 합성곱 bias 와 BN (BatchNorm2d, FrozenBatchNorm2d) 값을 무작위로 바꾼다 (제자리)."""
    import torch
    from torchvision.ops import misc

    generator = torch.Generator().manual_seed(seed)

    def uniform(tensor, low, high):
        tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)

    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (torch.nn.BatchNorm2d, misc.FrozenBatchNorm2d)):
                uniform(layer.weight, 0.5, 1.5)
                uniform(layer.bias, -0.3, 0.3)
                uniform(layer.running_mean, -0.3, 0.3)
                uniform(layer.running_var, 0.5, 2.0)
            elif isinstance(layer, torch.nn.Conv2d) and layer.bias is not None:
                uniform(layer.bias, -0.1, 0.1)


def _keras_values(layer):
    """torch 층 하나의 값을 Keras `set_weights` 순서의 numpy 목록으로."""
    import torch
    from torchvision.ops import misc

    if isinstance(layer, torch.nn.Conv2d):
        values = [layer.weight.detach().numpy().transpose(2, 3, 1, 0)]
        return values + ([layer.bias.detach().numpy()] if layer.bias is not None else [])
    if isinstance(layer, (torch.nn.BatchNorm2d, misc.FrozenBatchNorm2d)):
        return [tensor.detach().numpy() for tensor in
                (layer.weight, layer.bias, layer.running_mean, layer.running_var)]
    if isinstance(layer, torch.nn.Linear):
        return [layer.weight.detach().numpy().T, layer.bias.detach().numpy()]
    raise TypeError(f"no Keras mapping for {type(layer).__name__}")


def flattened_dense_values(linear, channels, height, width):
    """Flatten 바로 뒤의 torch Linear → Keras Dense 값: 입력 축을 (c, y, x) 에서 (y, x, c) 로 바꾼다."""
    weight = linear.weight.detach().numpy().reshape(-1, channels, height, width)
    return [weight.transpose(2, 3, 1, 0).reshape(height * width * channels, -1), linear.bias.detach().numpy()]


def copy_weights(torch_module, keras_model, overrides=None):
    """torch_module 의 합성곱·BN·Linear 가중치를 같은 경로 이름 ('.' → '_') 의 keras_model 층으로.

    overrides: 선택 {Keras 층 이름: 값 목록} — 그 층은 이 값으로 (예: `flattened_dense_values`).
    옮긴 층 수를 돌려준다.

    Raises:
      AssertionError: Keras 모델의 가중치 층 가운데 옮겨지지 않은 층이 있을 때.
    """
    import torch
    from torchvision.ops import misc

    overrides = overrides or {}
    copied = set()
    for path, layer in torch_module.named_modules():
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d,
                              misc.FrozenBatchNorm2d)):
            name = path.replace(".", "_")
            keras_model.get_layer(name).set_weights(overrides.get(name) or _keras_values(layer))
            copied.add(name)
    missing = [layer.name for layer in keras_model.layers if layer.weights and layer.name not in copied]
    assert not missing, f"Keras layers without torch weights: {missing}"
    return len(copied)


def nhwc(tensor):
    """torch [B, C, H, W] → numpy [B, H, W, C]."""
    return tensor.detach().numpy().transpose(0, 2, 3, 1)


def nchw(array):
    """numpy [B, H, W, C] → [B, C, H, W] (연속 배열)."""
    return np.ascontiguousarray(np.asarray(array).transpose(0, 3, 1, 2))


def assert_close_relative(actual, expected, tolerance=1e-4):
    """|actual − expected| ≤ tolerance · max|expected| (원소마다) — 특징의 '1e-4 상대' 기준."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.abs(expected).max()), 1e-12)
    error = float(np.abs(actual - expected).max())
    assert error <= tolerance * scale, f"max error {error:.3g} > {tolerance} x {scale:.3g}"


def reference_backbone(depth, variant, trainable_layers=3, epsilon=1e-5, seed=0):
    """torchvision 의 ResNet-FPN 백본 (eval 모드, 무작위 BN): v1 은 FrozenBatchNorm2d (eps), v2 는 BN (FPN 도).

    fasterrcnn_resnet50_fpn (사전학습 백본) 과 _v2 가 `_resnet_fpn_extractor` 로 만드는 그대로.
    """
    torch, torchvision = import_torchvision()
    from torchvision.models.detection import backbone_utils
    from torchvision.models.detection._utils import overwrite_eps
    from torchvision.ops import misc

    torch.manual_seed(seed)
    builder = getattr(torchvision.models, f"resnet{depth}")
    if variant == "v1":
        resnet = builder(norm_layer=misc.FrozenBatchNorm2d)
        overwrite_eps(resnet, epsilon)
        backbone = backbone_utils._resnet_fpn_extractor(resnet, trainable_layers)
    else:
        backbone = backbone_utils._resnet_fpn_extractor(builder(), trainable_layers,
                                                        norm_layer=torch.nn.BatchNorm2d)
    randomize_(backbone, seed + 1)
    return backbone.eval()


def random_images(seed=0, shape=INPUT_SHAPE):
    """[B, C, H, W] float32 정규화된 이미지 같은 값 (numpy, 표준 정규분포)."""
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def assert_same_ranking(actual_boxes, actual_scores, expected_boxes, expected_scores, actual_labels=None,
                        expected_labels=None, tie=1e-5):
    """자리마다 같은 박스 (0.05 px) 와 라벨 — 점수가 tie 안으로 같은 것끼리는 순서가 바뀌어도 된다.

    TF 와 torch 의 float32 시그모이드·소프트맥스는 1 ulp 다를 수 있어 (0.8955542 와 0.8955541) 거의 같은 두
    점수의 순서가 뒤집힌다. 기대 박스 하나는 한 번만 짝지어진다.
    """
    if actual_labels is None:
        actual_labels = np.zeros(len(actual_boxes), int)
        expected_labels = np.zeros(len(expected_boxes), int)
    used = np.zeros(len(expected_boxes), bool)
    for index, (box, score, label) in enumerate(zip(actual_boxes, actual_scores, actual_labels)):
        group = np.flatnonzero((np.abs(expected_scores - score) <= tie) & (expected_labels == label) & ~used)
        assert len(group), f"box {index}: no expected box of label {label} with score {score}"
        distances = np.abs(expected_boxes[group] - box).max(axis=1)
        assert distances.min() <= 0.05, f"box {index}: {box} is {distances.min():.3g} px off"
        used[group[np.argmin(distances)]] = True


# torchvision 델타 (dx, dy, dw, dh) 의 k 번째 → 이 프로젝트 (dy, dx, dh, dw) 의 k 번째 자리에 올 torchvision 번호
DELTA_ORDER = (1, 0, 3, 2)


def _delta_channels(groups):
    """앵커·클래스 groups 개의 델타 채널을 이 프로젝트 순서로: [g·4 + DELTA_ORDER[k]]."""
    return [group * 4 + k for group in range(groups) for k in DELTA_ORDER]


def copy_rpn_head(reference, head):
    """torchvision `RPNHead` → `rpn.RpnHead` (만들어진 것): conv.i.0 → rpn_conv…, 델타 채널은 앵커마다 순서 바꿈."""
    def values(layer, order=None):
        kernel = layer.weight.detach().numpy().transpose(2, 3, 1, 0)
        bias = layer.bias.detach().numpy()
        return [kernel, bias] if order is None else [kernel[..., order], bias[order]]

    for index, conv in enumerate([head.conv] + head.extra_convs):
        conv.set_weights(values(reference.conv[index][0]))
    head.objectness.set_weights(values(reference.cls_logits))
    head.box_deltas.set_weights(values(reference.bbox_pred, _delta_channels(head.anchors_per_location)))


def copy_box_predictor(predictor, detector_head):
    """torchvision `FastRCNNPredictor` → `heads.DetectorHead` (만들어진 것) 의 class_logits·box_deltas."""
    order = _delta_channels(detector_head.num_classes + 1)
    detector_head.class_logits.set_weights([predictor.cls_score.weight.detach().numpy().T,
                                            predictor.cls_score.bias.detach().numpy()])
    detector_head.box_deltas.set_weights([predictor.bbox_pred.weight.detach().numpy().T[:, order],
                                          predictor.bbox_pred.bias.detach().numpy()[order]])


def copy_faster_rcnn(reference, model, variant):
    """torchvision FasterRCNN 의 가중치를 같은 구조의 `FpnFasterRCNN` (변수가 만들어진 것) 으로 (v1: fc6 의
    Flatten 순서, v2: 4conv 뒤 fc "5")."""
    features = model.backbone.features
    copy_weights(reference.backbone.body, features.get_layer("body"))
    copy_weights(reference.backbone.fpn, features.get_layer("fpn"))
    copy_rpn_head(reference.rpn.head, model.rpn_head)
    first_fc = "fc6" if variant == "v1" else "5"
    box_head = reference.roi_heads.box_head
    fc = dict(box_head.named_modules())[first_fc]
    channels, pool_size = model.config.fpn.channels, model.config.roi.pool_size
    copy_weights(box_head, model.detector_head.body,
                 overrides={first_fc: flattened_dense_values(fc, channels, pool_size, pool_size)})
    copy_box_predictor(reference.roi_heads.box_predictor, model.detector_head)
