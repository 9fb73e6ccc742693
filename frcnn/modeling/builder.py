"""설정 → 모델: 피라미드 프리셋 (`fpn.variant`) 이면 `fpn_model.FpnFasterRCNN`, 아니면 `model.FasterRCNN`.

학습·내보내기·벤치마크가 모델을 이 함수 하나로 만든다 (두 클래스의 인자는 같다).
"""

from frcnn.modeling import fpn_model
from frcnn.modeling import model


def build_model(config, num_classes, **kwargs):
    """`model.FasterRCNN(config, num_classes, **kwargs)` 또는 그 피라미드 판 (변수는 `build_all` 에서)."""
    model_class = fpn_model.FpnFasterRCNN if config.fpn.variant else model.FasterRCNN
    return model_class(config, num_classes, **kwargs)
