"""FPN 조각을 이어 torchvision `FasterRCNN` (ResNet-18-FPN v1·v2, 무작위 가중치) 과 끝에서 끝까지 같은 검출을 내는지
(torch 가 없으면 건너뛴다). 모델 배선 (`model.py`) 전의 시험용 조립: 변환 → 백본·FPN → RPN 헤드 → 앵커 → 제안 →
MultiScaleRoIAlign → TwoMLPHead + 예측기 → 후처리 → 원본 좌표.

빠른 시험은 작게: min_size 128, max_size 200 (크기 규칙은 같다); slow 시험은 800/1333 에 네 크기
(289×385 포함), 제안 사전 300 / 사후 100, 클래스 3 + 배경. RPN·예측기 가중치를
키워 점수가 고르게 흩어지고 이미지마다 검출이 10 개 이상 나오게 한다. 두 이미지는 방향이 다르다 (가로형, 세로형).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.data import resize
from frcnn.data import tv_transform
from frcnn.modeling import fpn
from frcnn.modeling import fpn_box_heads
from frcnn.modeling import fpn_proposals
from frcnn.modeling import heads
from frcnn.modeling import postprocess
from frcnn.modeling import rpn
from frcnn.ops import fpn_anchors
from frcnn.ops import multiscale_roi_align
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


def _keras_parts(variant, reference):
    backbone = fpn.resnet_fpn(18, variant)
    torch_reference.copy_weights(reference.backbone.body, backbone.get_layer("body"))
    torch_reference.copy_weights(reference.backbone.fpn, backbone.get_layer("fpn"))
    rpn_head = rpn.RpnHead(256, 3, conv_depth=1 if variant == "v1" else 2)
    rpn_head(tf.zeros([1, 4, 4, 256]))
    torch_reference.copy_rpn_head(reference.rpn.head, rpn_head)
    body, first_fc = ((fpn_box_heads.two_mlp_head(), "fc6") if variant == "v1"
                      else (fpn_box_heads.conv_fc_head(), "5"))
    box_head = reference.roi_heads.box_head
    fc = dict(box_head.named_modules())[first_fc]
    torch_reference.copy_weights(box_head, body,
                                 overrides={first_fc: torch_reference.flattened_dense_values(fc, 256, 7, 7)})
    detector_head = heads.DetectorHead(body, CLASSES)
    detector_head(tf.zeros([1, 7, 7, 256]))
    torch_reference.copy_box_predictor(reference.roi_heads.box_predictor, detector_head)
    return backbone, rpn_head, detector_head


def _batch(images, min_size, max_size):
    """변환 → 같은 크기 (32 배수) 로 0 패딩한 배치 [B, Hp, Wp, 3] 과 리사이즈 크기 [B, 2]."""
    transformed = [tv_transform.transform_image(tf.constant(image), min_size, max_size) for image in images]
    sizes = np.stack([size.numpy() for _, size in transformed])
    canvas = tv_transform.padded_size(int(sizes[:, 0].max()), int(sizes[:, 1].max()))
    return tf.stack([resize.pad_to_canvas(image, canvas) for image, _ in transformed]), sizes


def _detect(parts, images, min_size, max_size):
    backbone, rpn_head, detector_head = parts
    batch, sizes = _batch(images, min_size, max_size)
    pyramid = backbone(batch)
    outputs = [rpn_head(level) for level in pyramid]
    anchors, counts = fpn_anchors.pyramid_anchors(*batch.shape[1:3])
    proposals, _, valid = fpn_proposals.fpn_proposals(
        tf.concat([logits for logits, _ in outputs], 1), tf.concat([deltas for _, deltas in outputs], 1),
        anchors, counts, tf.constant(sizes), PRE_NMS, POST_NMS)
    roi_features = multiscale_roi_align.multiscale_roi_align(pyramid[:4], proposals)  # P2–P5
    class_logits, box_deltas = detector_head(roi_features)
    return postprocess.detect(proposals, valid, class_logits, box_deltas, tf.constant(sizes, tf.float32),
                              config_lib.DetectionConfig(score_threshold=0.05, nms_iou=0.5),
                              config_lib.RoiConfig(), min_box_size=1e-2)


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_detections_match_torchvision_faster_rcnn_end_to_end(variant):
    compare_end_to_end(variant, IMAGE_SHAPES, 128, 200)


@pytest.mark.slow
def test_detections_match_torchvision_at_full_size():
    compare_end_to_end("v1", FULL_SIZE_SHAPES, 800, 1333)


def compare_end_to_end(variant, shapes, min_size, max_size):
    """shapes 의 무작위 이미지 한 배치를 양쪽에 먹여 같은 검출 (이미지마다 10 개 이상) 인지."""
    torch, _ = torch_reference.import_torchvision()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8) for shape in shapes]
    reference = _reference_model(variant, min_size, max_size)
    with torch.no_grad():
        expected = reference([torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 for image in images])
    detections = _detect(_keras_parts(variant, reference), images, min_size, max_size)
    for index, (shape, target) in enumerate(zip(shapes, expected)):
        count = int(detections["num_detections"][index])
        assert count == len(target["boxes"]) >= 10, (index, count, len(target["boxes"]))
        # 정규화 좌표 × 원본 (H, W) = 원본 픽셀. 점수는 단계를 거치며 1e-5 쯤 어긋난다 (그 안의 순서는
        # 바뀔 수 있다)
        boxes = detections["boxes"][index, :count].numpy() * np.tile(shape, 2)
        scores = detections["scores"][index, :count].numpy()
        np.testing.assert_allclose(scores, target["scores"].numpy(), atol=1e-4)
        classes = detections["classes"][index, :count].numpy()
        expected_boxes = target["boxes"].numpy()[:, [1, 0, 3, 2]]
        torch_reference.assert_same_ranking(boxes, scores, expected_boxes, target["scores"].numpy(), classes,
                                            target["labels"].numpy(), tie=1e-4)
