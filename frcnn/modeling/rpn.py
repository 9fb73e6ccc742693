"""RPN: 3×3 합성곱 + 1×1 객체성 + 1×1 박스 델타, 그리고 제안(proposal) 생성.

용어:
  B 배치, Hf·Wf 특징맵, K 위치당 앵커 수, A = Hf·Wf·K, T 사전 NMS top-k, P 사후 NMS 제안 수.
  객체성은 앵커마다 로짓 하나(시그모이드) — 논문의 2-way softmax 와 같은 모델이며 detectron2 방식.
  박스 형식 `[ymin, xmin, ymax, xmax]`, 이미지 픽셀. 제안 패딩 행은 유효 마스크로 표시한다.
"""

import keras
import tensorflow as tf

from frcnn.ops import box_coder
from frcnn.ops import box_ops
from frcnn.ops import nms


class RpnHead(keras.layers.Layer):
    """특징맵 → (객체성 로짓 [B, A], 박스 델타 [B, A, 4]).

    conv_depth: 3×3 합성곱 + ReLU 층 수 (torchvision `RPNHead(conv_depth=…)`: fasterrcnn_resnet50_fpn 1, _v2 2;
    stride 1 의 3×3 'same' 은 PyTorch 의 패딩 1 과 같다). FPN 이면 같은 헤드를 수준마다 적용한다.
    """

    def __init__(self, channels, anchors_per_location, conv_depth=1, **kwargs):
        super().__init__(**kwargs)
        self.anchors_per_location = anchors_per_location
        init = keras.initializers.RandomNormal(stddev=0.01)
        self.conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                        kernel_initializer=init, name="rpn_conv")
        # 둘째 층부터 (속성 `conv` 는 그대로라 예전 체크포인트가 읽힌다)
        self.extra_convs = [keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                                kernel_initializer=init, name=f"rpn_conv_{index}")
                            for index in range(2, conv_depth + 1)]
        # 목록 속성은 tf.train.Checkpoint 가 따라가지 않는다 (변수가 저장되지 않는다): 층마다 속성 conv_2, … 로도 둔다
        for index, conv in enumerate(self.extra_convs, start=2):
            setattr(self, f"conv_{index}", conv)
        self.objectness = keras.layers.Conv2D(anchors_per_location, 1, kernel_initializer=init,
                                              name="rpn_objectness")
        self.box_deltas = keras.layers.Conv2D(anchors_per_location * 4, 1, kernel_initializer=init,
                                              name="rpn_box_deltas")

    def call(self, features):
        hidden = self.conv(features)
        for conv in self.extra_convs:
            hidden = conv(hidden)
        batch_size = tf.shape(features)[0]
        # [B, Hf, Wf, K] → [B, A]
        objectness_logits = tf.reshape(self.objectness(hidden), [batch_size, -1])
        # [B, Hf, Wf, 4K] → [B, A, 4]
        box_deltas = tf.reshape(self.box_deltas(hidden), [batch_size, -1, 4])
        return tf.cast(objectness_logits, tf.float32), tf.cast(box_deltas, tf.float32)


def generate_proposals(objectness_logits, box_deltas, anchors, image_sizes, scales, rpn_config,
                       training):
    """앵커와 RPN 출력으로 제안을 만든다: top-k → 디코딩 → 자르기 → 작은 박스 제거 → NMS → 고정 개수.

    Args:
      objectness_logits: [B, A] float32.
      box_deltas: [B, A, 4] float32.
      anchors: [A, 4] float32.
      image_sizes: [B, 2] float32 리사이즈된 이미지 (높이, 너비) — 패딩이 아니라 이미지에 자른다.
      scales: [B] float32 리사이즈 배율 (최소 크기는 원본 픽셀 기준).
      rpn_config: `config.RpnConfig`.
      training: Python bool, 학습/시험 개수와 NMS 구현 선택 (`ops/nms.py`).

    Returns:
      proposals: [B, P, 4] float32 (기울기 없음).
      proposal_scores: [B, P] float32 객체성 확률 (패딩은 0).
      valid: [B, P] bool.
    """
    pre_nms = rpn_config.pre_nms_top_k if training else rpn_config.test_pre_nms_top_k
    post_nms = rpn_config.post_nms_top_k if training else rpn_config.test_post_nms_top_k
    num_anchors = anchors.shape[0] or tf.shape(anchors)[0]
    if isinstance(num_anchors, int):
        pre_nms = min(pre_nms, num_anchors)
    else:
        pre_nms = tf.minimum(pre_nms, num_anchors)
    # [B, A] 중심이 이미지 안인 앵커만 제안이 된다 (캔버스·배치 패딩에 중심이 있는 앵커는 맨 뒤로, 점수 −1).
    centred_inside = box_ops.centres_inside_image(anchors, image_sizes)
    objectness_logits = tf.where(centred_inside, tf.stop_gradient(objectness_logits), _OUTSIDE_LOGIT)
    box_deltas = tf.stop_gradient(box_deltas)
    # [B, T] 상위 앵커
    top_logits, top_index = tf.math.top_k(objectness_logits, k=pre_nms, sorted=True)
    top_inside = tf.gather(centred_inside, top_index, batch_dims=1)
    top_deltas = tf.gather(box_deltas, top_index, batch_dims=1)
    top_anchors = tf.gather(anchors, top_index)
    # [B, T, 4] 디코딩 후 이미지 안으로 자른 박스
    boxes = box_ops.clip_boxes(box_coder.decode(top_deltas, top_anchors, rpn_config.box_weights),
                               image_sizes)
    min_size = rpn_config.min_box_size * scales[:, None]
    scores = tf.where(box_ops.sides_at_least(boxes, min_size) & top_inside, tf.sigmoid(top_logits), -1.0)
    # 학습: 배치째 XLA 로 컴파일되는 NMS (`train.jit_compile`); 추론: 이미지마다 V5 (같은 결과, 훨씬 싸다).
    nms_fn = nms.padded_nms if training else nms.per_image_nms
    selected, num_valid = nms_fn(boxes, scores, post_nms, rpn_config.nms_iou)
    valid = tf.range(post_nms)[None, :] < num_valid[:, None]
    proposals = tf.gather(boxes, selected, batch_dims=1)
    proposal_scores = tf.gather(scores, selected, batch_dims=1)
    proposals = tf.where(valid[..., None], proposals, 0.0)
    proposal_scores = tf.where(valid, proposal_scores, 0.0)
    return tf.stop_gradient(proposals), tf.stop_gradient(proposal_scores), valid


# 이미지 밖 앵커의 로짓: 어떤 실제 로짓보다 작아 top-k 의 맨 뒤로 간다 (float32 에서 유한).
_OUTSIDE_LOGIT = -1e30
