"""torchvision state_dict (numpy 배열) → 이 프로젝트의 Keras 층: 값 변환과, 빠짐없이 옮겼는지의 검사.

torch 를 가져오지 않는다 (배열만 다룬다): `.pth` 읽기는 `frcnn.training.torchvision_import`. 시험의 torch 모듈 복사
(`tests/torch_reference`) 는 같은 변환을 따로 적어 두어 이 모듈과 독립된 기준이 된다.

용어:
  상태(state): {torchvision 키: numpy 배열} — 키는 `모듈 경로.매개변수` (backbone.body.layer1.0.conv1.weight).
  모듈 경로 → Keras 층 이름: '.' 을 '_' 로 (`resnet_tv`, `fpn`, `fpn_box_heads` 의 glossary). 경로의 앞부분
    (`DETECTOR_ROUTES`) 이 모델의 어느 하위 모델에 있는지를 정한다.
  변환: Conv2d OIHW → Keras HWIO; Linear [out, in] → [in, out]; Flatten 뒤의 Linear 는 입력 축을 (c, y, x) 에서
    (y, x, c) 로 (`flattened_dense_values`); BatchNorm2d·FrozenBatchNorm2d 는 weight, bias, running_mean,
    running_var 그대로 (Keras BatchNormalization 의 gamma, beta, moving_mean, moving_variance, `FrozenBatchNorm`
    의 같은 이름 순서); 박스 델타 출력 (RPN 의 bbox_pred, 예측기의 bbox_pred) 은 4 개씩 (dx, dy, dw, dh) →
    (dy, dx, dh, dw) (`DELTA_ORDER`).
  num_batches_tracked: BatchNorm2d 의 학습 스텝 수 — 정규화 값이 아니라 옮기지 않는다 (유일하게 쓰지 않는 키).
"""

import numpy as np

# torchvision 델타 (dx, dy, dw, dh) 의 k 번째 → 이 프로젝트 (dy, dx, dh, dw) 의 k 번째 자리에 올 torchvision 번호
DELTA_ORDER = (1, 0, 3, 2)
IGNORED_PARAMETER = "num_batches_tracked"
NORM_PARAMETERS = ("weight", "bias", "running_mean", "running_var")
# 상태 키 접두어 → 모델 속성 경로 (`FpnFasterRCNN`): 그 하위 모델 안의 층 이름은 나머지 경로의 '.' → '_'
DETECTOR_ROUTES = (("backbone.body.", "body"), ("backbone.fpn.", "fpn"), ("roi_heads.box_head.", "box_head"))
# 오류 메시지에 이름을 늘어놓을 최대 개수
_MAX_NAMED = 12


def delta_channels(groups):
    """앵커·클래스 groups 개의 델타 채널을 이 프로젝트 순서로: [g·4 + DELTA_ORDER[k]]."""
    return [group * 4 + k for group in range(groups) for k in DELTA_ORDER]


def conv_values(weight, bias=None, order=None):
    """Conv2d [O, I, kh, kw] (+ bias [O]) → Keras [kernel [kh, kw, I, O], bias]; order: 출력 채널 순서."""
    kernel = np.transpose(weight, (2, 3, 1, 0))
    values = [kernel if order is None else kernel[..., order]]
    if bias is not None:
        values.append(bias if order is None else bias[order])
    return values


def dense_values(weight, bias, order=None):
    """Linear [out, in], [out] → Keras Dense [kernel [in, out], bias]; order: 출력 순서."""
    kernel, bias = np.transpose(weight), bias
    if order is not None:
        kernel, bias = kernel[:, order], bias[order]
    return [kernel, bias]


def flattened_dense_values(weight, bias, channels, height, width):
    """Flatten 바로 뒤의 Linear [out, C·H·W] (c, y, x 순) → Dense [H·W·C (y, x, c 순), out]."""
    kernel = np.reshape(weight, (-1, channels, height, width)).transpose(2, 3, 1, 0)
    return [kernel.reshape(height * width * channels, -1), bias]


def norm_values(parameters):
    """BatchNorm2d / FrozenBatchNorm2d 의 {이름: [C]} → [weight, bias, running_mean, running_var]."""
    return [parameters[name] for name in NORM_PARAMETERS]


def group_modules(state):
    """{키: 배열} → {모듈 경로: {매개변수 이름: 배열}} (num_batches_tracked 는 뺀다, 키 순서 유지)."""
    modules = {}
    for key, value in state.items():
        path, _, parameter = key.rpartition(".")
        if parameter != IGNORED_PARAMETER:
            modules.setdefault(path, {})[parameter] = np.asarray(value)
    return modules


def _layer_values(layer, parameters, flatten_shape):
    """Keras 층 종류에 맞춘 값 목록 (합성곱, Dense — 입력이 flatten_shape 의 펼침이면 축 순서 바꿈 —, 정규화)."""
    if "running_mean" in parameters:
        return norm_values(parameters)
    weight, bias = parameters["weight"], parameters.get("bias")
    if weight.ndim == 4:
        return conv_values(weight, bias)
    if flatten_shape is not None and weight.shape[1] == int(np.prod(flatten_shape)):
        return flattened_dense_values(weight, bias, *flatten_shape)
    return dense_values(weight, bias)


class WeightTransfer:
    """상태를 모델의 층에 옮기며 쓴 키·설정한 변수를 센다. `check` 가 빠진 것·남은 것을 한 오류로 밝힌다.

    Args:
      model: 변수가 만들어진 Keras 모델 또는 층 (모든 변수가 설정되어야 한다).
      state: {키: 배열}.
      source: 오류 메시지의 출처 이름 (파일 경로).
    """

    def __init__(self, model, state, source):
        self.model = model
        self.modules = group_modules(state)
        self.source = source
        self.used = set()
        self.assigned = set()
        self.mismatched = []

    def assign(self, path, layer, values):
        """모듈 path 의 값을 layer 에 (모양이 다르면 기록만 하고 넘어간다)."""
        expected = [tuple(weight.shape) for weight in layer.weights]
        actual = [tuple(np.shape(value)) for value in values]
        self.used.add(path)
        if expected != actual:
            self.mismatched.append(f"{path} {actual} -> {layer.name} {expected}")
            return
        layer.set_weights(values)
        self.assigned.update(id(weight) for weight in layer.weights)

    def assign_named(self, prefix, container, flatten_shape=None):
        """prefix 로 시작하는 모듈마다 container 안의 같은 이름 ('.' → '_') 층에 옮긴다 (없는 층은 남은 키가 된다)."""
        layers = {layer.name: layer for layer in container.layers}
        for path, parameters in self.modules.items():
            name = path[len(prefix):].replace(".", "_") if path.startswith(prefix) else None
            if name in layers:
                self.assign(path, layers[name], _layer_values(layers[name], parameters, flatten_shape))

    def parameters(self, path):
        """모듈 path 의 {매개변수: 배열} (없으면 빈 dict: 그 층은 설정되지 않은 변수로 보고된다)."""
        return self.modules.get(path, {})

    def check(self, ignored_modules=()):
        """쓰지 않은 키 (ignored_modules 의 모듈 것은 빼고), 설정하지 않은 변수, 모양이 다른 텐서를 밝힌다.

        Raises:
          ValueError: 하나라도 있으면 — 세 목록을 이름으로.
        """
        unused = [f"{path}.{parameter}" for path, parameters in self.modules.items()
                  if path not in self.used and path not in ignored_modules
                  for parameter in parameters]
        unset = [weight.path for weight in self.model.weights if id(weight) not in self.assigned]
        problems = [(label, names) for label, names in (
            ("mis-shaped tensors", self.mismatched), ("source tensors with no place in the model", unused),
            ("model variables missing from the source", unset)) if names]
        if problems:
            raise ValueError(f"{self.source}: " + "; ".join(
                f"{len(names)} {label}: {', '.join(names[:_MAX_NAMED])}"
                f"{', …' if len(names) > _MAX_NAMED else ''}" for label, names in problems))


def _rpn_head(transfer, head):
    """rpn.head.conv.i.0 → rpn_conv(_i), cls_logits → 객체성, bbox_pred → 델타 (앵커마다 순서 바꿈)."""
    for index, conv in enumerate([head.conv] + head.extra_convs):
        path = f"rpn.head.conv.{index}.0"
        parameters = transfer.parameters(path)
        if parameters:
            transfer.assign(path, conv, conv_values(parameters["weight"], parameters.get("bias")))
    for path, layer, order in (("rpn.head.cls_logits", head.objectness, None),
                               ("rpn.head.bbox_pred", head.box_deltas,
                                delta_channels(head.anchors_per_location))):
        parameters = transfer.parameters(path)
        if parameters:
            transfer.assign(path, layer, conv_values(parameters["weight"], parameters.get("bias"), order))


def _box_predictor(transfer, detector_head):
    """roi_heads.box_predictor: cls_score → class_logits, bbox_pred → box_deltas (클래스마다 순서 바꿈)."""
    rows = detector_head.num_classes + 1
    for path, layer, order in (("roi_heads.box_predictor.cls_score", detector_head.class_logits, None),
                               ("roi_heads.box_predictor.bbox_pred", detector_head.box_deltas,
                                delta_channels(rows))):
        parameters = transfer.parameters(path)
        if parameters:
            transfer.assign(path, layer, dense_values(parameters["weight"], parameters["bias"], order))


def assign_detector(model, config, state, source):
    """torchvision `FasterRCNN` (ResNet-FPN, v1·v2) 의 상태를 `FpnFasterRCNN` 에 모두 옮긴다.

    Args:
      model: `build_all` 뒤의 `fpn_model.FpnFasterRCNN` (백본 `resnet_fpn`).
      config: 그 모델의 설정 (첫 fc 의 펼침 모양: fpn.channels × roi.pool_size²).
      state: {torchvision 키: 배열} (num_batches_tracked 는 있어도 된다).
      source: 오류 메시지의 출처 이름.

    Raises:
      ValueError: 쓰지 않은 키, 설정하지 않은 변수, 모양이 다른 텐서 (이름을 밝힌다).
    """
    features = model.backbone.features
    containers = {"body": features.get_layer("body"), "fpn": features.get_layer("fpn"),
                  "box_head": model.detector_head.body}
    transfer = WeightTransfer(model, state, source)
    pool = config.roi.pool_size
    for prefix, name in DETECTOR_ROUTES:
        transfer.assign_named(prefix, containers[name], (config.fpn.channels, pool, pool))
    _rpn_head(transfer, model.rpn_head)
    _box_predictor(transfer, model.detector_head)
    transfer.check()


def assign_body(body, state, source, ignored_modules=("fc",)):
    """torchvision ResNet 분류 모델의 상태를 `resnet_tv.resnet_body` 에 옮긴다 (ImageNet 분류기 fc 는 버린다:
    torchvision `_resnet_fpn_extractor` 도 layer4 까지만 쓴다).

    Raises:
      ValueError: `WeightTransfer.check` 와 같다.
    """
    transfer = WeightTransfer(body, state, source)
    transfer.assign_named("", body)
    transfer.check(ignored_modules)
