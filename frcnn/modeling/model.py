"""Faster R-CNN 모델: 논문 그림 순서대로 — 백본 → RPN → 제안 → RoI 타깃 → RoI pooling → 검출기 헤드 →
손실 / 후처리.

용어:
  B 배치, H·W 입력(캔버스) 크기, Hf·Wf 특징맵, Cf 특징 채널, A 앵커 수, P 제안 수, R 이미지당 RoI 수,
  C 클래스 수 (배경 0 제외), G 최대 GT 수.
  박스 형식 `[ymin, xmin, ymax, xmax]`, 리사이즈된 이미지 픽셀.
  단계(stage): joint (근사 결합 학습) 와 4단계 교대 학습 —
    rpn (1) 처음 백본으로 RPN, detector (2) 자기 백본 사본으로 1단계 제안에 검출기,
    rpn_finetune (3) 2단계 백본(고정) 위에서 RPN 전용 층, detector_finetune (4) 3단계 제안으로 검출기 전용 층.
"""

import keras
import tensorflow as tf

from frcnn.modeling import backbones
from frcnn.modeling import crowd
from frcnn.modeling import difficult
from frcnn.modeling import heads
from frcnn.modeling import losses
from frcnn.modeling import postprocess
from frcnn.modeling import roi_targets
from frcnn.modeling import rpn
from frcnn.modeling import rpn_targets
from frcnn.ops import anchors as anchors_lib
from frcnn.ops import roi_ops

STAGES = ("joint", "rpn", "detector", "rpn_finetune", "detector_finetune")


class FasterRCNN(keras.Model):
    """RPN 과 Fast R-CNN 검출기가 백본을 공유하는 모델.

    Attributes:
      backbone: `backbones.Backbone`, 검출기 (와 joint·3–4단계 RPN) 의 특징.
      rpn_backbone: `backbones.Backbone` 또는 None — 교대 학습 1–2단계 RPN 의 자기 백본
        (`separate_rpn_backbone=True` 일 때만).
      rpn_head: `rpn.RpnHead`.
      detector_head: `heads.DetectorHead` (몸통 + 분류·박스 층).
    """

    # 학습 스텝이 쓰는 배치 키 (파이프라인의 문자열 source_ids 등은 XLA 로 넘기지 않는다).
    TRAINING_KEYS = ("images", "image_sizes", "scales", "gt_boxes", "gt_classes", "gt_difficult",
                     "gt_crowd", "anchor_matches")

    def __init__(self, config, num_classes, separate_rpn_backbone=False, box_head=None, **kwargs):
        """모델을 만든다 (변수는 `build_all` 에서).

        Args:
          config: `config.ExperimentConfig`.
          num_classes: int, C. `detection.class_slots` 가 있으면 그 길이와 같아야 하고, 분류기 행은
            max(class_slots) + 1 개다 (가져온 COCO 모델의 91 행).
          separate_rpn_backbone: 교대 학습용 RPN 전용 백본을 만든다 (논문의 "별도 네트워크").
          box_head: 선택, 검출기 몸통 keras.Model (내보내기의 절단 SVD 몸통); None 이면 설정대로 만든다.
        """
        super().__init__(**kwargs)
        self.config = config
        self.num_classes = num_classes
        self.backbone = self.build_backbone("backbone")
        self.rpn_backbone = self.build_backbone("rpn_backbone") if separate_rpn_backbone else None
        self.rpn_head = rpn.RpnHead(config.rpn.conv_channels, self.anchors_per_location(),
                                    conv_depth=config.rpn.conv_depth, name="rpn_head")
        slots = config.detection.class_slots
        if slots and len(slots) != num_classes:
            raise ValueError(f"detection.class_slots names {len(slots)} classifier rows for "
                             f"{num_classes} classes")
        body = box_head if box_head is not None else self.build_box_head()
        self.detector_head = heads.DetectorHead(body, max(slots, default=num_classes), name="detector_head")

    # ---- 구성 요소 (피라미드 모델 `fpn_model.FpnFasterRCNN` 이 바꾼다) ----
    def build_backbone(self, name):
        return backbones.build_backbone(self.config, name)

    def build_box_head(self):
        return backbones.build_box_head(self.config)

    def anchors_per_location(self):
        return self.config.anchors.num_anchors_per_location

    # ---- 백본 → RPN → 제안 ----
    def anchors(self, features):
        """특징맵 크기에 맞는 앵커 [A, 4] (학습 캔버스면 정적, 추론이면 동적)."""
        height = features.shape[1] or tf.shape(features)[1]
        width = features.shape[2] or tf.shape(features)[2]
        return anchors_lib.generate_anchors(height, width, self.config.anchors.stride,
                                            self.config.anchors.sizes, self.config.anchors.aspect_ratios)

    def rpn_outputs(self, features):
        """RPN 헤드: 특징 → (객체성 로짓 [B, A], 박스 델타 [B, A, 4])."""
        return self.rpn_head(features)

    def proposals(self, features, inputs, training):
        """RPN 출력과 제안. 반환: (objectness_logits, box_deltas, anchors, (proposals, scores, valid))."""
        # [B, A], [B, A, 4]
        objectness_logits, box_deltas = self.rpn_outputs(features)
        anchors = self.anchors(features)
        proposals = rpn.generate_proposals(objectness_logits, box_deltas, anchors, inputs["image_sizes"],
                                           inputs["scales"], self.config.rpn, training)
        return objectness_logits, box_deltas, anchors, proposals

    # ---- (RoI 타깃은 학습에서만: `_detector_losses`) → RoI pooling → 검출기 헤드 ----
    def detector(self, features, rois, training, portable=False):
        """[B, Hf, Wf, Cf] 특징과 [B, R, 4] RoI → (class_logits [B·R, C+1], box_deltas [B·R, C+1, 4]).

        portable: 추론도 RoIAlign 을 matmul 로 (LiteRT 내장 연산·ONNX 로 옮길 수 있는 형태; crop_and_resize 없음).
        """
        output_size = self.config.roi.pool_size * self.backbone.roi_size_multiplier
        stride = self.config.anchors.stride
        # RoIAlign: 학습은 XLA 로 컴파일되고 역전파가 빠른 matmul, 추론은 순전파가 빠른 crop_and_resize (같은 값).
        # RoI max pooling: 둘 다 같은 정확한 bin 최댓값 — 추론의 동적 특징맵은 긴 변 상한 ⌈max_size / stride⌉ 칸.
        implementation = "matmul" if training or portable else "crop_and_resize"
        # [B·R, P, P, Cf] RoI 특징
        pooled = roi_ops.roi_features(features, rois, stride, output_size, self.config.roi.op, implementation,
                                      max_feature_size=-(-self.config.input.max_size // stride))
        return self.detector_head(pooled, training=training, portable=portable)

    # ---- 손실 (학습) ----
    def compute_losses(self, batch, stage="joint", seed=None):
        """한 단계의 손실들.

        Args:
          batch: 파이프라인 dict — images [B, H, W, 3], image_sizes [B, 2], scales [B],
            gt_boxes [B, G, 4], gt_classes [B, G], gt_difficult [B, G], gt_crowd [B, G] bool,
            anchor_matches [B, A].
          stage: `STAGES` 중 하나 (Python 문자열).
          seed: 선택, stateless 씨앗.

        Returns:
          dict: 단계에 해당하는 손실 스칼라들과 `total_loss`.
        """
        if stage not in STAGES:
            raise ValueError(f"unknown stage '{stage}' (expected one of {STAGES})")
        rpn_backbone = self.rpn_backbone if stage in ("rpn", "detector") else self.backbone
        # 이 단계에서 RPN 쪽 백본을 학습하는가 (BN 이 학습 모드인가)
        sizes = self._padding_mask_sizes(batch["image_sizes"])
        rpn_features = rpn_backbone(batch["images"], training=stage in ("joint", "rpn"), image_sizes=sizes)
        logits, deltas, anchors, (proposals, _, valid) = self.proposals(rpn_features, batch, True)
        result = {}
        if stage in ("joint", "rpn", "rpn_finetune"):
            result.update(self._rpn_losses(logits, deltas, anchors, batch, seed))
        if stage in ("joint", "detector", "detector_finetune"):
            if stage == "joint":
                features = rpn_features
            else:
                features = self.backbone(batch["images"], training=stage == "detector", image_sizes=sizes)
            result.update(self._detector_losses(features, proposals, valid, batch, seed))
        result["total_loss"] = tf.add_n(list(result.values()))
        return result

    def _rpn_losses(self, objectness_logits, box_deltas, anchors, batch, seed):
        """레코드의 앵커 매칭 코드 → 타깃 → 샘플링한 앵커의 RPN 손실."""
        labels, box_targets = rpn_targets.decode_anchor_matches(
            batch["anchor_matches"], anchors, batch["gt_boxes"], self.config.rpn.box_weights)
        objectness_loss, box_loss = losses.rpn_losses(objectness_logits, box_deltas, labels, box_targets,
                                                      self.config.rpn, seed)
        return {"rpn_objectness_loss": objectness_loss, "rpn_box_loss": box_loss}

    def _detector_losses(self, features, proposals, proposal_valid, batch, seed):
        """제안 → RoI 타깃 (샘플링) → RoI pooling → 헤드 → 검출기 손실.

        difficult 물체는 `input.difficult` 대로 전경 GT 에서 빠지거나 (drop, ignore) 배경도 막는다 (ignore).
        crowd 물체는 전경 GT 에서 빠지고 그 안에 드는 후보의 배경도 막는다 (`crowd`).
        """
        target_boxes, ignore_boxes = difficult.training_boxes(batch["gt_boxes"], batch["gt_difficult"],
                                                              self.config.input.difficult)
        target_boxes, crowd_boxes = crowd.split_crowd(target_boxes, batch["gt_boxes"], batch["gt_crowd"])
        targets = roi_targets.sample_rois(proposals, proposal_valid, target_boxes, batch["gt_classes"],
                                          self.config.roi, seed, ignore_boxes, crowd_boxes)
        class_logits, box_deltas = self.detector(features, targets["rois"], training=True)
        class_loss, box_loss = losses.detector_losses(class_logits, box_deltas, targets, self.config.roi)
        return {"detector_class_loss": class_loss, "detector_box_loss": box_loss}

    def _padding_mask_sizes(self, image_sizes):
        """백본의 패딩 마스크에 줄 int32 (h, w) — `input.neutral_padding` 이 꺼져 있으면 None (마스크 없음).

        정수로 준다: Keras 는 float 인자를 혼합 정밀도의 계산 dtype (bfloat16) 으로 바꾼다.
        """
        return tf.cast(image_sizes, tf.int32) if self.config.input.neutral_padding else None

    def stage_variables(self, stage):
        """단계에서 학습할 변수들 (논문의 4단계: 공유 합성곱은 3–4단계에서 고정)."""
        groups = {
            "joint": [self.backbone, self.rpn_head, self.detector_head],
            "rpn": [self.rpn_backbone, self.rpn_head],
            "detector": [self.backbone, self.detector_head],
            "rpn_finetune": [self.rpn_head],
            "detector_finetune": [self.detector_head],
        }
        variables = []
        for module in groups[stage]:
            if module is None:
                raise ValueError(f"stage '{stage}' needs the model built with separate_rpn_backbone=True")
            variables.extend(module.trainable_variables)
        return variables

    # ---- 후처리 (추론) ----
    def detect(self, images, image_sizes, scales, portable=False):
        """검출: 백본 → RPN → 제안 → RoI pooling → 헤드 → 클래스별 NMS.

        Args:
          images: [B, H, W, 3] float32 0–255, 리사이즈 후 stride 배수로만 패딩된 이미지.
          image_sizes: [B, 2] float32 리사이즈된 (높이, 너비).
          scales: [B] float32 리사이즈 배율.
          portable: LiteRT 내장 연산·ONNX 로 옮길 수 있는 그래프 (B = 1; matmul RoIAlign, 클래스 오프셋 NMS).

        Returns:
          `postprocess.detect` 의 dict (정규화 좌표).
        """
        inputs = {"image_sizes": image_sizes, "scales": scales}
        features = self.backbone(images, training=False, image_sizes=self._padding_mask_sizes(image_sizes))
        _, _, _, (proposals, _, valid) = self.proposals(features, inputs, False)
        class_logits, box_deltas = self.detector(features, proposals, training=False, portable=portable)
        return postprocess.detect(proposals, valid, class_logits, box_deltas, image_sizes,
                                  self.config.detection, self.config.roi,
                                  nms="class_offset" if portable else "combined",
                                  min_box_size=self.config.detection.min_box_size)

    def call(self, images, training=False):
        """Keras 호환 진입점: 캔버스 전체를 이미지로 보고 검출한다."""
        shape = tf.shape(images)
        sizes = tf.cast(tf.tile(shape[None, 1:3], [shape[0], 1]), tf.float32)
        return self.detect(images, sizes, tf.ones([shape[0]]))

    def build_all(self, canvas_shape):
        """변수를 만든다 (체크포인트 복원이나 가중치 복사 전에 호출).

        Args:
          canvas_shape: (높이, 너비) Python int, stride 의 배수.
        """
        height, width = canvas_shape
        images = tf.zeros([1, height, width, 3])
        for backbone in filter(None, [self.backbone, self.rpn_backbone]):
            features = backbone(images, training=False)
            self.rpn_outputs(features)
        rois = tf.constant([[[0.0, 0.0, float(height), float(width)]]])
        self.detector(features, rois, training=False)
