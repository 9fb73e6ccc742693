"""추론 모델: 학습된 모델의 가중치를 새 `FasterRCNN` 에 옮겨 내보낼 모델을 만든다. 학습된 모델은 그대로 둔다.

용어:
  학습된 모델: 체크포인트에서 복원한 `FasterRCNN` (교대 학습이면 RPN 전용 백본도 있다).
  추론 모델: 내보낼 설정 (검출 점수 문턱, 최대 검출 수, 절단 SVD) 으로 새로 만든 `FasterRCNN`. 추론은
    `backbone` 하나로 RPN 과 검출기를 돌리므로 RPN 전용 백본은 옮기지 않는다. 모든 가중치가 학습된 모델에서
    오므로 ImageNet 가중치를 다시 읽지 않는다 (`backbone.weights=none` 으로 만든다).
  절단 SVD: `detection.fc_svd_ranks` 가 있고 검출기 몸통에 fc6/fc7 이 있으면 학습된 몸통에서 새 SVD 몸통을
    만들어 쓴다 (`truncated_svd.compress_fc_head`); 원래 fc6/fc7 은 추론 모델에 없다.
  fc 몸통 (fc6/fc7, SVD 든 아니든) 은 추론 모델에서 `heads.OutputMajorFcBody` 가 된다: 같은 값, 커널만 출력 축
    먼저 — CPU 의 fc6 행렬곱이 VGG16 합성곱과 같은 속도로 돈다.
"""

from frcnn import config as config_lib
from frcnn.export import truncated_svd
from frcnn.modeling import heads
from frcnn.modeling import builder


def build_inference_model(trained, config):
    """학습된 모델의 가중치로 `config` 의 추론 모델을 만든다.

    Args:
      trained: 변수가 만들어진 (`build_all` 뒤의) 학습된 `FasterRCNN`. 바꾸지 않는다.
      config: 내보낼 `ExperimentConfig` — 학습 설정에서 검출 설정만 바꾼 것 (`with_detection_overrides`).

    Returns:
      (model, compressed): 새 `FasterRCNN` 과 {층 이름: 쓴 특잇값 수 또는 None (그대로)};
        절단 SVD 를 쓰지 않으면 (ranks 가 비었거나 몸통에 fc6/fc7 이 없으면) {}.

    Raises:
      ValueError: 설정의 구조 (백본, 채널 수 등) 가 학습된 모델과 달라 가중치 모양이 맞지 않을 때.
    """
    config = config_lib.without_pretrained_weights(config)
    box_head, compressed = _inference_box_head(trained.detector_head.body, config.detection.fc_svd_ranks)
    model = builder.build_model(config, trained.num_classes, box_head=box_head)
    stride = config.anchors.stride
    model.build_all((4 * stride, 4 * stride))  # 변수만 만든다 (특징은 입력 크기와 무관)
    _copy_weights(trained, model, copy_body=box_head is None)
    return model, compressed


def _inference_box_head(body, ranks):
    """fc6/fc7 몸통이면 (출력 축 먼저 몸통 — ranks 가 있으면 절단 SVD 의 —, 쓴 rank) 를, 아니면 (None, {}) 를
    돌려준다 (None: 학습된 몸통의 구조 그대로, 가중치는 `_copy_weights` 가 옮긴다)."""
    layer_names = {layer.name for layer in body.layers}
    if not set(truncated_svd.FC_LAYER_NAMES) <= layer_names:
        return None, {}
    compressed = {}
    if ranks:
        body, compressed = truncated_svd.compress_fc_head(body, ranks)
    return heads.OutputMajorFcBody(body, name=f"{body.name}_out_major"), compressed


def _copy_weights(trained, model, copy_body):
    """백본, RPN 헤드, 검출기 분류·박스 층 (그리고 copy_body 면 몸통) 의 가중치를 값으로 복사한다."""
    pairs = [(trained.backbone, model.backbone), (trained.rpn_head, model.rpn_head),
             (trained.detector_head.class_logits, model.detector_head.class_logits),
             (trained.detector_head.box_deltas, model.detector_head.box_deltas)]
    if copy_body:
        pairs.append((trained.detector_head.body, model.detector_head.body))
    for source, target in pairs:
        try:
            target.set_weights(source.get_weights())
        except ValueError as error:
            raise ValueError(f"cannot copy the trained {source.name} weights into the inference model: "
                             f"{error}") from None
