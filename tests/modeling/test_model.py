"""model 테스트: 단계별 손실 키, 교대 학습 단계별 변수, 한 스텝이 그 단계 변수만 바꾸는지,
변수 추적(체크포인트), 작은 끝-끝 학습에서 손실 감소, 검출 출력 모양.

용어:
  B 배치 (2), H·W 캔버스 (64×96), A 앵커 수, G 최대 GT 수 (4), C 클래스 수 (2).
  박스 `[ymin, xmin, ymax, xmax]` 캔버스 픽셀, GT 패딩 −1.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from frcnn.ops import anchors as anchors_lib
from frcnn.data import record_spec
from frcnn import config as config_lib
from frcnn.modeling import builder
from frcnn.modeling import model as model_lib
from frcnn.modeling import rpn_targets

OVERRIDES = ("backbone.width=8,backbone.fc_units=32,input.min_size=64,input.max_size=96,"
             "input.max_gt_boxes=4,rpn.conv_channels=16,rpn.pre_nms_top_k=300,rpn.post_nms_top_k=64,"
             "rpn.test_pre_nms_top_k=200,rpn.test_post_nms_top_k=32,roi.num_rois=32,"
             "detection.max_detections=10")
CONFIG = config_lib.build_config("cpu_small", OVERRIDES)
# 같은 크기의 피라미드 모델 (cpu_small_fpn: P2–P6, 수준별 제안, MultiScaleRoIAlign)
FPN_CONFIG = config_lib.build_config(
    "cpu_small_fpn", OVERRIDES + ",fpn.channels=16,anchors.sizes=(8,16,32,64,128),rpn.test_pre_nms_top_k=100")
CONFIGS = {"single": CONFIG, "fpn": FPN_CONFIG}
CANVAS = record_spec.largest_canvas(CONFIG)
NUM_CLASSES = 2
RPN_KEYS = {"rpn_objectness_loss", "rpn_box_loss"}
DETECTOR_KEYS = {"detector_class_loss", "detector_box_loss"}
STAGE_KEYS = {
    "joint": RPN_KEYS | DETECTOR_KEYS,
    "rpn": RPN_KEYS,
    "detector": DETECTOR_KEYS,
    "rpn_finetune": RPN_KEYS,
    "detector_finetune": DETECTOR_KEYS,
}


def _synthetic_batch(config=CONFIG):
    """어두운 배경에 밝은 사각형(클래스 1 빨강, 2 초록)을 그린 이미지 2 장과 앵커 매칭 코드."""
    height, width = CANVAS
    images = np.full((2, height, width, 3), 30.0, np.float32)
    gt_boxes = np.full((2, 4, 4), -1.0, np.float32)
    gt_classes = np.full((2, 4), -1, np.int32)
    gt_boxes[0, :2] = [[8, 10, 40, 50], [20, 60, 56, 90]]
    gt_classes[0, :2] = [1, 2]
    gt_boxes[1, 0] = [30, 20, 60, 60]
    gt_classes[1, 0] = 2
    colors = {1: (230.0, 40.0, 40.0), 2: (40.0, 230.0, 40.0)}
    for b in range(2):
        for box, label in zip(gt_boxes[b], gt_classes[b]):
            if label > 0:
                ymin, xmin, ymax, xmax = box.astype(int)
                images[b, ymin:ymax, xmin:xmax] = colors[label]
    image_sizes = tf.constant([[height, width]] * 2, tf.float32)
    anchors = anchors_lib.anchors_for_canvas(config, CANVAS)
    anchor_matches = rpn_targets.label_anchors(anchors, tf.constant(gt_boxes), image_sizes, config.rpn)
    return {
        "images": tf.constant(images),
        "image_sizes": image_sizes,
        "scales": tf.ones([2]),
        "gt_boxes": tf.constant(gt_boxes),
        "gt_classes": tf.constant(gt_classes),
        "gt_difficult": tf.zeros(gt_classes.shape, tf.bool),
        "gt_crowd": tf.zeros(gt_classes.shape, tf.bool),
        "anchor_matches": anchor_matches,
    }


def _build_model(separate_rpn_backbone, config=CONFIG):
    keras.utils.set_random_seed(0)
    model = builder.build_model(config, NUM_CLASSES, separate_rpn_backbone=separate_rpn_backbone)
    model.build_all(CANVAS)
    return model


@pytest.fixture(scope="module")
def batch():
    return _synthetic_batch()


@pytest.fixture(scope="module")
def batches():
    return {name: _synthetic_batch(config) for name, config in CONFIGS.items()}


@pytest.fixture(scope="module")
def alternating_model():
    return _build_model(separate_rpn_backbone=True)


def _all_variables(model):
    """모델의 모든 변수 (백본 특징 모델 포함, 중복 없이)."""
    modules = [model, model.backbone.features, model.rpn_backbone.features if model.rpn_backbone else None]
    seen, variables = set(), []
    for module in filter(None, modules):
        for variable in module.variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    return variables


def _stage_modules(model, stage):
    """논문의 4단계 표: 단계마다 학습하는 모듈."""
    return {
        "joint": [model.backbone.features, model.rpn_head, model.detector_head],
        "rpn": [model.rpn_backbone.features, model.rpn_head],
        "detector": [model.backbone.features, model.detector_head],
        "rpn_finetune": [model.rpn_head],
        "detector_finetune": [model.detector_head],
    }[stage]


def _ids(variables):
    return {id(variable) for variable in variables}


def test_compute_losses_keys_per_stage(alternating_model, batch):
    for stage, keys in STAGE_KEYS.items():
        losses = alternating_model.compute_losses(batch, stage, seed=tf.constant([1, 2]))
        assert set(losses) == keys | {"total_loss"}, stage
        values = {key: float(value) for key, value in losses.items()}
        assert all(np.isfinite(value) and value >= 0.0 for value in values.values())
        np.testing.assert_allclose(values["total_loss"], sum(values[key] for key in keys), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown stage"):
        alternating_model.compute_losses(batch, "everything")


def test_stage_variables_hold_exactly_the_stage_modules(alternating_model):
    model = alternating_model
    for stage in STAGE_KEYS:
        expected = set()
        for module in _stage_modules(model, stage):
            expected |= _ids(module.trainable_variables)
        assert _ids(model.stage_variables(stage)) == expected, stage
    # 검출기 헤드는 몸통(fc6/fc7) 을 포함하고, 두 백본은 변수를 공유하지 않는다.
    body_variables = _ids(model.detector_head.body.trainable_variables)
    assert body_variables <= _ids(model.stage_variables("detector_finetune"))
    assert not _ids(model.rpn_backbone.features.variables) & _ids(model.backbone.features.variables)
    assert not _ids(model.stage_variables("rpn")) & _ids(model.stage_variables("detector"))
    assert not _ids(model.stage_variables("rpn_finetune")) & _ids(model.backbone.features.variables)


def test_alternating_stages_need_separate_rpn_backbone():
    model = _build_model(separate_rpn_backbone=False)
    with pytest.raises(ValueError, match="separate_rpn_backbone"):
        model.stage_variables("rpn")


@pytest.mark.parametrize("kind", sorted(CONFIGS))
@pytest.mark.parametrize("stage", ["rpn", "detector", "rpn_finetune", "detector_finetune"])
def test_one_step_changes_only_stage_variables(stage, kind, batches):
    batch = batches[kind]
    model = _build_model(separate_rpn_backbone=True, config=CONFIGS[kind])
    variables = _all_variables(model)
    before = [variable.numpy().copy() for variable in variables]
    stage_variables = model.stage_variables(stage)
    with tf.GradientTape() as tape:
        total_loss = model.compute_losses(batch, stage, seed=tf.constant([3, 4]))["total_loss"]
    gradients = tape.gradient(total_loss, stage_variables)
    assert all(gradient is not None for gradient in gradients)
    for variable, gradient in zip(stage_variables, gradients):
        variable.assign_sub(0.5 * tf.convert_to_tensor(gradient))
    # 그 단계 모듈의 변수 (BN 이동 통계 포함) 만 바뀔 수 있다.
    allowed = set()
    for module in _stage_modules(model, stage):
        allowed |= _ids(module.variables)
    changed = {id(variable) for variable, old in zip(variables, before)
               if not np.array_equal(variable.numpy(), old)}
    assert changed <= allowed, [v.path for v in variables if id(v) in changed - allowed]
    # 그 단계의 학습 변수는 모두 바뀐다 — 피라미드의 검출기 단계에서는 P2 출력 층까지만: 64×96 캔버스의 RoI 는
    # 모두 √넓이 < 112 라 P2 에서 읽히고 (`roi_levels`), P3–P5 출력 합성곱은 검출기 손실에 닿지 않는다.
    unreached = (("layer_blocks_1", "layer_blocks_2", "layer_blocks_3")
                 if kind == "fpn" and stage.startswith("detector") else ())
    expected = [v for v in stage_variables if not v.path.startswith(unreached)]
    assert _ids(expected) <= changed, [v.path for v in expected if id(v) not in changed]


def test_model_tracks_backbone_variables_for_checkpoints(tmp_path):
    # 체크포인트 `tf.train.Checkpoint(model=model)` 가 백본 합성곱까지 저장·복원해야 한다.
    model = _build_model(separate_rpn_backbone=True)
    tracked = _ids(model.variables)
    assert _ids(model.backbone.features.variables) <= tracked
    assert _ids(model.rpn_backbone.features.variables) <= tracked
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "checkpoint"))
    restored = model_lib.FasterRCNN(CONFIG, NUM_CLASSES, separate_rpn_backbone=True)
    restored.build_all(CANVAS)
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    for saved, loaded in zip(model.backbone.features.variables, restored.backbone.features.variables):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())


@pytest.mark.parametrize("roi_op, jit_compile", [("align", False), ("pool", True), ("fpn", True)])
def test_joint_training_reduces_loss(batches, roi_op, jit_compile):
    """RoIAlign, (XLA 로 컴파일한) 정확한 RoI max pooling, (XLA 로 컴파일한) 피라미드 모델 모두 학습된다."""
    batch = batches["fpn" if roi_op == "fpn" else "single"]
    config = (FPN_CONFIG if roi_op == "fpn"
              else config_lib.build_config("cpu_small", f"{OVERRIDES},roi.op={roi_op}"))
    model = _build_model(separate_rpn_backbone=False, config=config)
    variables = model.stage_variables("joint")
    optimizer = keras.optimizers.SGD(learning_rate=0.02, momentum=0.9)
    optimizer.build(variables)

    @tf.function(jit_compile=jit_compile)
    def train_step(seed):
        with tf.GradientTape() as tape:
            losses = model.compute_losses(batch, "joint", seed)
        optimizer.apply_gradients(zip(tape.gradient(losses["total_loss"], variables), variables))
        return losses["total_loss"]

    history = [float(train_step(tf.constant([step, 0]))) for step in range(40)]
    assert np.isfinite(history).all()
    assert np.mean(history[-5:]) <= 0.6 * history[0], history
    detections = model.detect(batch["images"], batch["image_sizes"], batch["scales"])
    assert detections["boxes"].shape == (2, config.detection.max_detections, 4)


def test_detect_output_shapes_and_dtypes(alternating_model, batch):
    result = alternating_model.detect(batch["images"], batch["image_sizes"], batch["scales"])
    num_detections = CONFIG.detection.max_detections
    assert result["boxes"].shape == (2, num_detections, 4) and result["boxes"].dtype == tf.float32
    assert result["scores"].shape == (2, num_detections) and result["scores"].dtype == tf.float32
    assert result["classes"].shape == (2, num_detections) and result["classes"].dtype == tf.int32
    assert result["num_detections"].shape == (2,) and result["num_detections"].dtype == tf.int32
    boxes = result["boxes"].numpy()
    assert (boxes >= 0.0).all() and (boxes <= 1.0).all()
    classes = result["classes"].numpy()
    assert ((classes >= 0) & (classes <= NUM_CLASSES)).all()
    # Keras 진입점 (`call`) 도 같은 dict 를 준다.
    called = alternating_model(batch["images"])
    assert set(called) == {"boxes", "scores", "classes", "num_detections"}
