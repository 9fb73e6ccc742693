"""피라미드 Faster R-CNN (torchvision `fasterrcnn_resnet50_fpn` / `_v2` 의 구조): `model.FasterRCNN` 의 단계 중
특징·앵커·제안·RoI 특징만 수준 여럿으로 바꾼다 — 손실, 학습 단계 (joint·4단계), 후처리는 그대로다.

용어:
  L 피라미드 수준 (P2–P6), A = Σ A_l 전체 앵커 (수준 순서, `ops.fpn_anchors`), K 위치당 앵커 수 (종횡비 수).
  백본 출력: [P2, …, P6] 목록 (`fpn_backbones`). RPN 헤드는 하나를 모든 수준에 쓰고 (torchvision 처럼) 출력을
    수준 순서로 잇는다. RoI 특징은 P2–P5 에서 (`ops.multiscale_roi_align`), P6 는 RPN 만 쓴다.
  제안: 수준마다 상위 pre_nms_top_k → 수준별 NMS → 전체 상위 post_nms_top_k (`fpn_proposals`). 학습 캔버스는
    앵커 개수가 정적이고, 추론 (임의 크기) 은 동적 개수를 정적 k 로 덧대 뽑는다.
  앵커 격자의 stride = 패딩된 입력 크기 // 격자 크기: 입력 크기는 P2 의 4 배다 (입력은 32 의 배수로 패딩된다).
"""

import tensorflow as tf

from frcnn.modeling import fpn_backbones
from frcnn.modeling import fpn_proposals
from frcnn.modeling import model
from frcnn.ops import anchors as anchors_lib
from frcnn.ops import fpn_anchors
from frcnn.ops import multiscale_roi_align

# P2–P5 의 stride (RoI 특징을 읽는 수준)
ROI_STRIDES = multiscale_roi_align.STRIDES


class FpnFasterRCNN(model.FasterRCNN):
    """특징 피라미드 위의 Faster R-CNN (속성·메서드는 `model.FasterRCNN` 과 같다)."""

    def build_backbone(self, name):
        return fpn_backbones.build_backbone(self.config, name)

    def build_box_head(self):
        return fpn_backbones.build_box_head(self.config)

    def anchors_per_location(self):
        return len(self.config.anchors.aspect_ratios)

    def rpn_outputs(self, features):
        """수준마다 같은 RPN 헤드 → 이은 (객체성 로짓 [B, A], 박스 델타 [B, A, 4])."""
        outputs = [self.rpn_head(level) for level in features]
        logits = tf.concat([level_logits for level_logits, _ in outputs], 1)
        return logits, tf.concat([level_deltas for _, level_deltas in outputs], 1)

    def pyramid_anchors(self, features):
        """(앵커 [A, 4], 수준별 개수): 학습 캔버스면 정적 (Python int), 추론이면 동적."""
        p2 = features[0]
        height = 4 * p2.shape[1] if p2.shape[1] is not None else 4 * tf.shape(p2)[1]
        width = 4 * p2.shape[2] if p2.shape[2] is not None else 4 * tf.shape(p2)[2]
        return fpn_anchors.pyramid_anchors(height, width, anchors_lib.pyramid_sizes(self.config),
                                           self.config.anchors.aspect_ratios)

    def anchors(self, features):
        return self.pyramid_anchors(features)[0]

    def proposals(self, features, inputs, training):
        """RPN 출력과 수준별 제안. 반환: (objectness_logits, box_deltas, anchors, (proposals, scores, valid))."""
        objectness_logits, box_deltas = self.rpn_outputs(features)
        anchors, counts = self.pyramid_anchors(features)
        rpn = self.config.rpn
        pre_nms, post_nms = ((rpn.pre_nms_top_k, rpn.post_nms_top_k) if training
                             else (rpn.test_pre_nms_top_k, rpn.test_post_nms_top_k))
        proposals = fpn_proposals.fpn_proposals(objectness_logits, box_deltas, anchors, counts,
                                                inputs["image_sizes"], pre_nms, post_nms, rpn.nms_iou,
                                                rpn.min_box_size, training)
        return objectness_logits, box_deltas, anchors, proposals

    def detector(self, features, rois, training, portable=False):
        """[P2, …, P6] 와 [B, R, 4] RoI → (class_logits [B·R, C+1], box_deltas [B·R, C+1, 4]).

        RoIAlign 은 학습·추론·이식 그래프 모두 gather 표본 하나 (`multiscale_roi_align`; LiteRT 내장 연산).
        """
        pooled = multiscale_roi_align.multiscale_roi_align(features[:len(ROI_STRIDES)], rois, ROI_STRIDES,
                                                           self.config.roi.pool_size)
        return self.detector_head(pooled, training=training, portable=portable)
