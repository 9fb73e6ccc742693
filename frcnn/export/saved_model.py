"""SavedModel 내보내기: 학습된 가중치 → 새 추론 모델 → `detection.DetectionModule` 의 세 시그니처 (그리고 원하면
`portable` 의 model.tflite / model.onnx) 를 한 디렉터리에 원자적으로 쓴다.

디코딩 → 리사이즈 → 백본 → RPN → 제안 → RoI pooling → 헤드 → 클래스별 NMS → 입력 이미지 기준 정규화 박스까지
전부 그래프 안에 있다: 불러오는 쪽은 frcnn·keras 없이 TF 만 있으면 된다. 시그니처 이름·출력은 `signature`.
"""

import dataclasses
import os

import tensorflow as tf

from frcnn import fileio
from frcnn.data import image_header
from frcnn.export import detection
from frcnn.export import inference_model
from frcnn.export import portable


def with_detection_overrides(config, score_threshold=None, max_detections=None, fc_svd_ranks=None):
    """내보내기 플래그로 검출 설정을 바꾼다 (None 은 설정 그대로)."""
    detection = config.detection
    if fc_svd_ranks is not None:
        detection = dataclasses.replace(detection, fc_svd_ranks=tuple(fc_svd_ranks))
    if score_threshold is not None:
        detection = dataclasses.replace(detection, score_threshold=score_threshold)
    if max_detections is not None:
        detection = dataclasses.replace(detection, max_detections=max_detections,
                                        max_detections_per_class=min(detection.max_detections_per_class,
                                                                     max_detections))
    return dataclasses.replace(config, detection=detection)


def export_saved_model(model, config, classes, export_dir, overwrite=False, formats=("saved_model",),
                       quantize=None, max_image_pixels=image_header.DEFAULT_MAX_IMAGE_PIXELS):
    """학습된 모델의 가중치로 추론 모델을 새로 만들어 SavedModel 로 원자적으로 쓴다.

    `config.detection.fc_svd_ranks` 가 있으면 추론 모델의 검출기 몸통은 절단 SVD 다. `model` 은 바꾸지 않는다.

    Args:
      model: 학습된 `FasterRCNN` (변수가 만들어진 것).
      config: 내보낼 설정 (`with_detection_overrides`).
      classes: 클래스 이름들 (1..C).
      export_dir: SavedModel 디렉터리.
      overwrite: 이미 있는 export_dir 을 바꾼다.
      formats: 'saved_model', 'tflite', 'onnx' 중 쓸 것들 (tflite·onnx 는 `portable` 의 model.tflite,
        model.onnx 와 labels.txt). 하나라도 실패하면 export_dir 에 아무것도 남기지 않는다.
      quantize: None 또는 'float16' / 'dynamic_int8' (TFLite 만).
      max_image_pixels: int, serve_bytes·serve_examples 의 픽셀 예산 (이미지 하나의 H × W × 프레임).

    Returns:
      {층 이름: 쓴 특잇값 수 또는 None}; 절단 SVD 를 쓰지 않았으면 {}
        (`inference_model.build_inference_model`).

    Raises:
      ValueError: export_dir 이 이미 있고 overwrite 가 아닐 때, 모르는 형식, TFLite·ONNX 로 바꿀 수 없을 때,
        max_image_pixels 가 양수가 아닐 때.
      ImportError: tflite·onnx 에 필요한 변환기가 없을 때.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown export formats {unknown} (expected some of {', '.join(FORMATS)})")
    if max_image_pixels <= 0:
        raise ValueError(f"max_image_pixels must be positive, got {max_image_pixels}")
    if os.path.exists(export_dir) and not overwrite:
        raise ValueError(f"{export_dir}: already exists (use --overwrite)")
    inference, compressed = inference_model.build_inference_model(model, config)
    module = detection.DetectionModule(inference, config, classes, max_image_pixels)
    with fileio.atomic_directory(export_dir) as staging:
        if "saved_model" in formats:
            tf.saved_model.save(module, staging, signatures=module.signatures())
        portable_formats = [name for name in formats if name != "saved_model"]
        if portable_formats:
            portable.write_portable(inference, config, classes, staging, portable_formats, quantize)
    return compressed


FORMATS = ("saved_model", "tflite", "onnx")
