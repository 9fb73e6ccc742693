"""postprocess.detect 를 torchvision `RoIHeads.postprocess_detections` (score > 0.05, 변 ≥ 1e-2 px, 클래스별
NMS 0.5, 상위 100) 와 비교한다: 같은 제안·로짓·델타를 먹여 같은 검출 (박스 0.05 px, 점수 1e-4, 같은 클래스·개수)
(torch 가 없으면 건너뛴다).

torchvision 의 델타 (dx, dy, dw, dh) 는 클래스마다 [1, 0, 3, 2] 로 바꿔 먹인다. 이 프로젝트의 검출은 리사이즈된
이미지의 정규화 좌표라 (h, w) 를 곱해 픽셀로 비교한다. 제안의 일부는 이미지 밖에 걸치거나 완전히 밖이라
자르면 넓이 0 이 된다 (torchvision 은 그런 박스를 버린다).
"""

import numpy as np
import pytest
import tensorflow as tf

from frcnn import config as config_lib
from frcnn.modeling import postprocess
from tests import torch_reference

CLASSES = 4  # + 배경
IMAGE_SIZES = ((120, 150), (96, 160))
NUM_ROIS = 60


def _inputs(seed):
    rng = np.random.default_rng(seed)
    corners = rng.uniform(-30, 160, size=(2, NUM_ROIS, 2))
    sizes = rng.uniform(4, 80, size=(2, NUM_ROIS, 2))
    rois = np.concatenate([corners, corners + sizes], axis=-1).astype(np.float32)  # y1 x1 y2 x2
    rois[:, :3] = [[-90, -90, -60, -50], [130, 10, 190, 40], [10, 170, 40, 220]]  # 이미지 밖
    logits = (rng.normal(size=(2 * NUM_ROIS, CLASSES + 1)) * 3).astype(np.float32)
    logits[:6, 1] = 8.0  # 밖의 제안도 점수가 높다
    deltas = (rng.normal(size=(2 * NUM_ROIS, (CLASSES + 1) * 4)) * 0.5).astype(np.float32)
    return rois, logits, deltas


def _reference(rois, logits, deltas):
    torch, _ = torch_reference.import_torchvision()
    from torchvision.models.detection import roi_heads

    heads = roi_heads.RoIHeads(None, None, None, 0.5, 0.5, 512, 0.25, None, score_thresh=0.05, nms_thresh=0.5,
                               detections_per_img=100)
    proposals = [torch.from_numpy(image[:, [1, 0, 3, 2]]) for image in rois]
    with torch.no_grad():
        boxes, scores, labels = heads.postprocess_detections(
            torch.from_numpy(logits), torch.from_numpy(deltas), proposals, list(IMAGE_SIZES))
    return [(box.numpy()[:, [1, 0, 3, 2]], score.numpy(), label.numpy())
            for box, score, label in zip(boxes, scores, labels)]


@pytest.mark.parametrize("nms", postprocess.NMS_METHODS)
def test_detect_matches_torchvision_postprocess_detections(nms):
    rois, logits, deltas = _inputs(seed=0)
    expected = _reference(rois, logits, deltas)
    order = [klass * 4 + k for klass in range(CLASSES + 1) for k in (1, 0, 3, 2)]
    for images in ([0, 1],) if nms == "combined" else ([0], [1]):  # class_offset 는 배치 1 만
        rows = np.concatenate([np.arange(i * NUM_ROIS, (i + 1) * NUM_ROIS) for i in images])
        sizes = np.asarray(IMAGE_SIZES, np.float32)[images]
        detections = postprocess.detect(
            tf.constant(rois[images]), tf.ones([len(images), NUM_ROIS], tf.bool), tf.constant(logits[rows]),
            tf.constant(deltas[rows][:, order].reshape(-1, CLASSES + 1, 4)), tf.constant(sizes),
            config_lib.DetectionConfig(score_threshold=0.05, nms_iou=0.5), config_lib.RoiConfig(), nms=nms,
            min_box_size=1e-2)
        for slot, image in enumerate(images):
            expected_boxes, expected_scores, expected_labels = expected[image]
            count = int(detections["num_detections"][slot])
            assert count == len(expected_boxes), (image, count, len(expected_boxes))
            boxes = detections["boxes"][slot, :count].numpy() * np.tile(sizes[slot], 2)
            scores = detections["scores"][slot, :count].numpy()
            np.testing.assert_allclose(scores, expected_scores, atol=1e-4)
            torch_reference.assert_same_ranking(boxes, scores, expected_boxes, expected_scores,
                                                detections["classes"][slot, :count].numpy(), expected_labels)
