"""피라미드 프리셋 (`resnet50_fpn`, `_v2` 을 ResNet-18 로) 의 모델과 내보낼 검출 그래프가 torchvision `FasterRCNN`
(같은 구조, 무작위 가중치) 과 끝에서 끝까지 같은 검출을 내는지 (torch 가 없으면 건너뛴다): uint8 이미지 →
크기 규칙·리사이즈·패딩 (`export.detection`) → 백본·FPN → RPN → 앵커 → 수준별 제안 → MultiScaleRoIAlign → 몸통 +
예측기 → 후처리 → 원본 좌표.

빠른 시험은 작게: min_size 128, max_size 200 (크기 규칙은 같다); slow 시험은 800/1333 에 네 크기
(289×385 포함), 제안 사전 300 / 사후 100, 클래스 3 + 배경. RPN·예측기 가중치를
키워 점수가 고르게 흩어지고 이미지마다 검출이 10 개 이상 나오게 한다. 두 이미지는 방향이 다르다 (가로형, 세로형).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.export import detection
from frcnn.modeling import builder
from tests import torch_reference

PRE_NMS, POST_NMS = 300, 100
CLASSES = 3
# 예측기·RPN 가중치의 표준편차와 배경 로짓 bias (v2 의 몸통 출력이 더 크다)
PREDICTOR_STD = {"v1": 0.05, "v2": 0.005}
BACKGROUND_BIAS = {"v1": 4.2, "v2": 2.5}
IMAGE_SHAPES = ((97, 130), (150, 101))  # (H, W): 가로형, 세로형
# torchvision 의 실제 크기 규칙 (800, 1333): 289×385 → 799×1065, 375×500 → 800×1066, 두 방향
FULL_SIZE_SHAPES = ((289, 385), (385, 289), (375, 500), (500, 375))


def _reference_model(variant, min_size, max_size):
    """torchvision FasterRCNN: v1 (FrozenBN, RPN 합성곱 1, TwoMLPHead) 또는 v2 (BN, RPN 합성곱 2, 4conv+fc)."""
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection import faster_rcnn
    from torchvision.models.detection import rpn as tv_rpn

    torch.manual_seed(2)  # v2 의 헤드는 씨앗을 정하는 reference_backbone 보다 먼저 만들어진다
    extra = {}
    if variant == "v2":
        extra = {"rpn_head": tv_rpn.RPNHead(256, 3, conv_depth=2),
                 "box_head": faster_rcnn.FastRCNNConvFCHead((256, 7, 7), [256] * 4, [1024],
                                                            norm_layer=torch.nn.BatchNorm2d)}
        torch_reference.randomize_(extra["box_head"], seed=6)
    model = faster_rcnn.FasterRCNN(
        torch_reference.reference_backbone(18, variant, seed=3), num_classes=CLASSES + 1,
        min_size=min_size, max_size=max_size, rpn_pre_nms_top_n_test=PRE_NMS,
        rpn_post_nms_top_n_test=POST_NMS, **extra).eval()
    torch.manual_seed(4)
    with torch.no_grad():
        for module in (model.rpn.head, model.roi_heads.box_predictor):
            for parameter in module.parameters():
                parameter.copy_(torch.randn(parameter.shape) * PREDICTOR_STD[variant])
        # 배경을 높여 100 개 상한 아래로 (빠른 시험 v1 53·38 개, v2 22·46 개)
        model.roi_heads.box_predictor.cls_score.bias[0] = BACKGROUND_BIAS[variant]
    return model


def _keras_model(variant, reference, min_size, max_size):
    """같은 구조의 `FpnFasterRCNN` (resnet50_fpn(_v2) 프리셋을 ResNet-18 로) 에 reference 의 가중치를 싣는다."""
    cfg = config_lib.build_config(
        "resnet50_fpn" if variant == "v1" else "resnet50_fpn_v2",
        f"backbone.depth=18,backbone.weights=none,input.min_size={min_size},input.max_size={max_size},"
        f"rpn.test_pre_nms_top_k={PRE_NMS},rpn.test_post_nms_top_k={POST_NMS}")
    model = builder.build_model(cfg, CLASSES)
    model.build_all((64, 64))
    torch_reference.copy_faster_rcnn(reference, model, variant)
    return detection.DetectionModule(model, cfg, [f"class{index}" for index in range(1, CLASSES + 1)])


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_detections_match_torchvision_faster_rcnn_end_to_end(variant):
    compare_end_to_end(variant, IMAGE_SHAPES, 128, 200)


@pytest.mark.slow
def test_detections_match_torchvision_at_full_size():
    compare_end_to_end("v1", FULL_SIZE_SHAPES, 800, 1333)


def compare_end_to_end(variant, shapes, min_size, max_size):
    """shapes 의 무작위 이미지마다 양쪽 (torchvision eager, 내보낼 검출 그래프 `DetectionModule`) 이 같은 검출
    (이미지마다 10 개 이상) 을 내는지. 이미지는 한 장씩: 둘 다 그 이미지 크기만큼만 (32 배수로) 패딩한다."""
    torch, _ = torch_reference.import_torchvision()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8) for shape in shapes]
    reference = _reference_model(variant, min_size, max_size)
    module = _keras_model(variant, reference, min_size, max_size)
    for shape, image in zip(shapes, images):
        with torch.no_grad():
            target = reference([torch.from_numpy(image).permute(2, 0, 1).float() / 255.0])[0]
        outputs = module.detect_images(tf.constant(image[None]))
        count = int(outputs["num_detections"][0])
        assert count == len(target["boxes"]) >= 10, (shape, count, len(target["boxes"]))
        # 정규화 좌표 × 원본 (H, W) = 원본 픽셀. 점수는 단계를 거치며 1e-5 쯤 어긋난다 (그 안의 순서는
        # 바뀔 수 있다)
        boxes = outputs["detection_boxes"][0, :count].numpy() * np.tile(shape, 2)
        scores = outputs["detection_scores"][0, :count].numpy()
        np.testing.assert_allclose(scores, target["scores"].numpy(), atol=1e-4)
        classes = outputs["detection_classes"][0, :count].numpy()
        expected_boxes = target["boxes"].numpy()[:, [1, 0, 3, 2]]
        torch_reference.assert_same_ranking(boxes, scores, expected_boxes, target["scores"].numpy(), classes,
                                            target["labels"].numpy(), tie=1e-4)
