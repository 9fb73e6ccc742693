"""GT 로 앵커 매칭 코드를 계산하는 한 곳: 레코드 변환 (`convert.AnchorLabeler`) 이 min_size 와 스케일 지터의
짧은 변마다 (`input.train_short_sides`) 같은 함수로 라벨을 미리 계산한다 (학습 파이프라인은 계산하지 않고 푼다).

용어:
  B 이미지 수, G 최대 GT 수 (−1 패딩; 패딩 행은 코드에 영향이 없다), A 앵커 수, K 쓰이는 앵커 수.
  박스: `[ymin, xmin, ymax, xmax]` float32 캔버스 픽셀. 코드: `rpn_targets` 모듈 설명 (−1 무시, 0 음성, k ≥ 1 GT k−1).
  difficult 물체는 `input.difficult` 대로 (`modeling.difficult`), crowd 물체는 `modeling.crowd` 대로 다룬다.
"""

import tensorflow as tf

from frcnn.modeling import crowd
from frcnn.modeling import difficult
from frcnn.modeling import rpn_targets
from frcnn.ops import box_ops


def label_boxes(anchors, gt_boxes, is_difficult, image_sizes, config, is_crowd=None):
    """[B, G] GT 의 앵커 매칭 코드 (difficult·crowd 규칙을 적용한 `rpn_targets.label_anchors`).

    Args:
      anchors: [A, 4] float32 캔버스 앵커.
      gt_boxes: [B, G, 4] float32 캔버스 픽셀, −1 패딩.
      is_difficult: [B, G] bool.
      image_sizes: [B, 2] float32 리사이즈된 (h, w).
      config: `ExperimentConfig` (input.difficult, rpn).
      is_crowd: 선택, [B, G] bool (None 이면 crowd 없음; 모두 거짓이면 None 과 같은 코드).

    Returns:
      [B, A] int32 매칭 코드.
    """
    target_boxes, ignore_boxes = difficult.training_boxes(gt_boxes, is_difficult, config.input.difficult)
    crowd_boxes = None
    if is_crowd is not None:
        target_boxes, crowd_boxes = crowd.split_crowd(target_boxes, gt_boxes, is_crowd)
    return label_used_anchors(anchors, target_boxes, image_sizes, config.rpn, ignore_boxes, crowd_boxes)


def label_used_anchors(anchors, gt_boxes, image_sizes, rpn_config, ignore_boxes=None, crowd_boxes=None):
    """`rpn_targets.label_anchors` 와 같은 결과를, 배치의 어느 이미지에도 들어가지 않는 앵커를 빼고 계산한다.

    경계를 넘는 앵커를 무시하는 설정(논문)에서는 배치의 가장 큰 (h, w) 밖으로 나가는 앵커가 모든
    이미지에서 IoU −1 (무시) 이라 최고 IoU·GT 별 최고 앵커 어디에도 끼지 않는다. 그 앵커들을 빼고
    라벨을 붙인 뒤 −1 로 채워 넣으면 결과가 같고, vgg16_paper 에서는 IoU 계산이 절반 이하로 준다.
    (오프라인 변환 전용: 동적 모양의 gather/scatter 를 쓴다. 모델·내보낸 그래프에는 쓰지 않는다.)

    Args:
      anchors: [A, 4] float32.
      gt_boxes: [B, G, 4] float32 캔버스 픽셀, −1 패딩.
      image_sizes: [B, 2] float32 리사이즈된 (h, w).
      rpn_config: `config.RpnConfig`.
      ignore_boxes: 선택, [B, G, 4] 무시 박스 (`rpn_targets.label_anchors`).
      crowd_boxes: 선택, [B, G, 4] crowd 상자 (`rpn_targets.label_anchors`).

    Returns:
      [B, A] int32 매칭 코드.
    """
    if rpn_config.allow_cross_boundary:
        return rpn_targets.label_anchors(anchors, gt_boxes, image_sizes, rpn_config, ignore_boxes,
                                         crowd_boxes)
    largest_size = tf.reduce_max(image_sizes, axis=0, keepdims=True)  # [1, 2]
    # [K] 배치의 어떤 이미지 안에 들어갈 수 있는 앵커의 번호
    used_indices = tf.where(box_ops.inside_image(anchors, largest_size)[0])
    used_matches = rpn_targets.label_anchors(tf.gather_nd(anchors, used_indices), gt_boxes,
                                             image_sizes, rpn_config, ignore_boxes, crowd_boxes)  # [B, K]
    # [A] 앵커마다 쓰인 앵커 목록 안의 자리; 쓰지 않은 앵커는 K (덧붙인 무시(−1) 열, K = 0 이어도 있다).
    # int32 전치는 하지 않는다: AVX-512 가 있는 일부 CPU 에서도 oneDNN 이 int32 Transpose 마다 ERROR 줄을 찍는다.
    num_used = tf.shape(used_indices)[0]
    position = tf.tensor_scatter_nd_update(tf.fill([tf.shape(anchors)[0]], num_used), used_indices,
                                           tf.range(num_used))
    ignored = tf.fill([tf.shape(gt_boxes)[0], 1], rpn_targets.IGNORE_CODE)
    return tf.gather(tf.concat([used_matches, ignored], axis=1), position, axis=1)  # [B, A]
