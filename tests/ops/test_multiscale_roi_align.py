"""multiscale_roi_align 시험: torchvision `MultiScaleRoIAlign` (roi_align CPU 커널, aligned=False) 과 같은 RoI 특징,
가장자리·맵 밖·1 칸보다 작은 박스와 수준 경계 박스 포함 (torch 가 없으면 기준 시험만 건너뛴다).

캔버스 512×640 (P2 128×160 … P5 16×20), 채널 8 — 수준 2–5 가 모두 쓰이는 크기에 작은 채널.
박스: 이 프로젝트 `[ymin, xmin, ymax, xmax]`, torchvision `[x1, y1, x2, y2]`.
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import multiscale_roi_align
from tests import torch_reference

CANVAS = (512, 640)
CHANNELS = 8
# 손으로 고른 박스 [ymin, xmin, ymax, xmax]: 수준 경계 (√넓이 112, 224, 448), 맵 밖·가장자리, 아주 작은 박스.
EDGE_BOXES = [
    [10.0, 20.0, 122.0, 132.0],      # √넓이 112 → 수준 3 (경계)
    [0.0, 0.0, 224.0, 224.0],        # 224 → 4
    [30.0, 100.0, 478.0, 548.0],     # 448 → 5
    [5.0, 7.0, 6.0, 7.5],            # 1 칸보다 작음 (폭 0.5 px → 칸 1 로)
    [-40.0, -50.0, 30.0, 20.0],      # 왼쪽 위 밖으로 걸침
    [480.0, 600.0, 530.0, 700.0],    # 오른쪽 아래 밖으로 걸침
    [-300.0, -300.0, -200.0, -150.0],  # 완전히 밖 (표본 < −1 → 0)
    [511.0, 639.0, 512.0, 640.0],    # 마지막 칸
    [-4.0, -3.0, 60.0, 61.0],        # 표본이 [−1, 0) 에 (가장자리로 자름)
    [100.0, 100.0, 100.0, 100.0],    # 넓이 0 → 최저 수준
]


def random_boxes(rng, count):
    """캔버스 안팎의 무작위 박스 [count, 4] (크기 4 … 500 px)."""
    centers = rng.uniform([-20, -20], [CANVAS[0] + 20, CANVAS[1] + 20], size=(count, 2))
    sizes = np.exp(rng.uniform(np.log(4), np.log(500), size=(count, 2)))
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1).astype(np.float32)


def pyramid(rng):
    """P2–P5 [1 또는 B, Hl, Wl, C] numpy (B = 2)."""
    return [rng.normal(size=(2, CANVAS[0] // stride, CANVAS[1] // stride, CHANNELS)).astype(np.float32)
            for stride in multiscale_roi_align.STRIDES]


def image_boxes():
    rng = np.random.default_rng(11)
    first = np.concatenate([np.asarray(EDGE_BOXES, np.float32), random_boxes(rng, 30)])
    return np.stack([first, random_boxes(rng, len(first))])  # [B, R, 4]


def test_levels_match_hand_computed_boundaries():
    boxes = tf.constant(EDGE_BOXES, tf.float32)
    levels = multiscale_roi_align.roi_levels(boxes).numpy()
    np.testing.assert_array_equal(levels[:4], [3, 4, 5, 2])
    assert levels[-1] == 2  # 넓이 0


def test_matches_torchvision_multiscale_roi_align():
    torch, torchvision = torch_reference.import_torchvision()
    rng = np.random.default_rng(3)
    features = pyramid(rng)
    boxes = image_boxes()
    pooler = torchvision.ops.MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    torch_features = {str(level): torch.from_numpy(torch_reference.nchw(values))
                      for level, values in enumerate(features)}
    torch_boxes = [torch.from_numpy(image[:, [1, 0, 3, 2]]) for image in boxes]
    # 두 번째 이미지는 패딩 안의 더 작은 이미지 (torchvision 은 가장 큰 이미지 크기로 배율을 정한다)
    expected = pooler(torch_features, torch_boxes, [CANVAS, (500, 600)])  # [B·R, C, 7, 7]
    actual = multiscale_roi_align.multiscale_roi_align([tf.constant(level) for level in features],
                                                       tf.constant(boxes))
    torch_reference.assert_close_relative(actual, torch_reference.nhwc(expected), tolerance=1e-5)
    levels = torchvision.ops.poolers.LevelMapper(2, 5)(torch_boxes).numpy() + 2
    np.testing.assert_array_equal(multiscale_roi_align.roi_levels(tf.constant(boxes)).numpy().ravel(), levels)


def test_box_entirely_outside_gives_zeros():
    features = [tf.constant(level) for level in pyramid(np.random.default_rng(0))]
    boxes = tf.constant([[[-300.0, -300.0, -200.0, -150.0]]] * 2)
    pooled = multiscale_roi_align.multiscale_roi_align(features, boxes)
    np.testing.assert_array_equal(pooled.numpy(), 0.0)


def test_compiles_with_xla_and_matches_eager():
    features = [tf.constant(level) for level in pyramid(np.random.default_rng(1))]
    boxes = tf.constant(image_boxes())
    compiled = tf.function(multiscale_roi_align.multiscale_roi_align, jit_compile=True)
    # XLA 는 나눗셈을 역수 곱으로 바꾸는 등 표본 위치를 한 ulp 쯤 옮긴다 — 무작위 맵에서 1e-5 상대 정도의 차이
    torch_reference.assert_close_relative(compiled(features, boxes),
                                          multiscale_roi_align.multiscale_roi_align(features, boxes))


def test_gradient_flows_to_the_chosen_level_only():
    features = [tf.constant(level) for level in pyramid(np.random.default_rng(2))]
    boxes = tf.constant([[[10.0, 20.0, 122.0, 132.0]]] * 2)  # 수준 3 (P3)
    with tf.GradientTape() as tape:
        tape.watch(features)
        pooled = multiscale_roi_align.multiscale_roi_align(features, boxes)
        loss = tf.reduce_sum(pooled)
    gradients = tape.gradient(loss, features)
    norms = [float(tf.reduce_sum(tf.abs(tf.convert_to_tensor(gradient)))) for gradient in gradients]
    assert norms[1] > 0 and norms[0] == norms[2] == norms[3] == 0


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_low_precision_features_keep_their_dtype(dtype):
    features = [tf.cast(level, dtype) for level in pyramid(np.random.default_rng(4))]
    pooled = multiscale_roi_align.multiscale_roi_align(features, tf.constant(image_boxes()))
    assert pooled.dtype == dtype and pooled.shape == (2 * len(image_boxes()[0]), 7, 7, CHANNELS)


def test_converts_to_litert_builtin_ops_and_gives_the_same_features():
    """gather 표본은 LiteRT 내장 연산 (GATHER 등) 만으로 변환되고 같은 값을 낸다."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    rng = np.random.default_rng(5)
    features = [level[:1, ::4, ::4] for level in pyramid(rng)]  # [1, Hl/4, Wl/4, C]: 작게
    boxes = np.asarray([EDGE_BOXES], np.float32) / 4.0
    specs = [tf.TensorSpec(level.shape, tf.float32) for level in features]
    specs.append(tf.TensorSpec(boxes.shape, tf.float32))

    @tf.function(input_signature=specs)
    def pooled(p2, p3, p4, p5, rois):
        return multiscale_roi_align.multiscale_roi_align([p2, p3, p4, p5], rois)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([pooled.get_concrete_function()], pooled)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = interpreter_module.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    inputs = dict(zip(("p2", "p3", "p4", "p5", "rois"), features + [boxes]))
    for detail in interpreter.get_input_details():  # 입력 이름에 인자 이름이 든다
        interpreter.set_tensor(detail["index"], next(value for key, value in inputs.items()
                                                     if key in detail["name"]))
    interpreter.invoke()
    actual = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    torch_reference.assert_close_relative(actual, pooled(*features, boxes), tolerance=1e-5)
