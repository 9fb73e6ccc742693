"""SavedModel 내보내기: 디코딩 → 리사이즈 → 백본 → RPN → 제안 → RoI pooling → 헤드 → 클래스별 NMS →
입력 이미지 기준 정규화 박스까지 전부 그래프 안에 넣는다. 불러오는 쪽은 frcnn·keras 없이 TF 만 있으면 된다.

용어:
  B 배치, H·W 입력 이미지 크기, h·w 리사이즈된 크기, N 최대 검출 수.
  시그니처: serving_default(images uint8 [B, H, W, 3]), serve_bytes(image_bytes string [B]),
    serve_examples(examples string [B] 직렬화된 tf.Example). 출력 이름은 WORKSPACE.md 의 표 그대로.
  추론에서는 학습 캔버스까지 패딩하지 않는다: 이미지는 자기 리사이즈 크기 그대로, 백본이 필요로 하면
    (`Backbone.pad_to_stride`) stride 배수로만 올린다 (패딩은 정규화 뒤 0, 패딩에 중심이 있는 앵커는 제안이
    되지 않는다). VGG16 은 패딩 없이 ⌊h / 16⌋ 격자를 쓴다. 크기가 다른 이미지 배치(serve_bytes,
    serve_examples)는 이미지마다 따로 검출하므로 한 이미지의 결과가 배치의 다른 이미지에 좌우되지 않는다.
"""

import dataclasses
import os

import tensorflow as tf

from frcnn import fileio
from frcnn.data import image_header
from frcnn.data import records
from frcnn.data import resize
from frcnn.export import inference_model


class DetectionModule(tf.Module):
    """내보낼 추론 그래프."""

    def __init__(self, model, config, classes, max_image_pixels=image_header.DEFAULT_MAX_IMAGE_PIXELS):
        super().__init__(name="frcnn")
        self.model = model
        self.config = config
        # 픽셀 예산: 그래프가 쓰고, 서버 (tools/serve) 가 `loaded.max_image_pixels` 로 읽는다
        self.max_image_pixels = tf.Variable(int(max_image_pixels), dtype=tf.int64, trainable=False,
                                            name="max_image_pixels")
        # 0 번은 패딩(빈 이름), 1..C 가 데이터셋 클래스
        self.class_names = tf.Variable([""] + list(classes), trainable=False, name="class_names")

    def _padded(self, value):
        """백본이 필요로 하면 stride 배수로 올린다 (Python int 나 int32 텐서)."""
        if not self.model.backbone.pad_to_stride:
            return value
        stride = self.config.anchors.stride
        return (value + stride - 1) // stride * stride

    def _detect_resized(self, images, resized_sizes, scales):
        """리사이즈된 배치 (크기가 다르면 가장 큰 크기까지 패딩) → 출력 dict."""
        detections = self.model.detect(images, tf.cast(resized_sizes, tf.float32), scales)
        classes = detections["classes"]
        return {
            "detection_boxes": detections["boxes"],
            "detection_scores": detections["scores"],
            "detection_classes": classes,
            "detection_class_names": tf.gather(self.class_names, classes),
            "num_detections": detections["num_detections"],
        }

    def _detect_one(self, image):
        """[H, W, 3] 한 장 → 자기 크기로만 리사이즈 (백본이 필요하면 stride 배수로 패딩) 해 검출 → [N, ...] 출력."""
        resized, scale = resize.resize_image(image, self.config, cast_first=False)
        size = tf.shape(resized)[:2]
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, self._padded(size[0]), self._padded(size[1]))
        outputs = self._detect_resized(padded[None], size[None], scale[None])
        return {key: value[0] for key, value in outputs.items()}

    def _output_signature(self):
        """이미지 한 장의 출력 모양 (map_fn 용)."""
        count = self.config.detection.max_detections
        return {
            "detection_boxes": tf.TensorSpec([count, 4], tf.float32),
            "detection_scores": tf.TensorSpec([count], tf.float32),
            "detection_classes": tf.TensorSpec([count], tf.int32),
            "detection_class_names": tf.TensorSpec([count], tf.string),
            "num_detections": tf.TensorSpec([], tf.int32),
        }

    def detect_images(self, images):
        """[B, H, W, 3] uint8 (같은 크기: 리사이즈·패딩이 모두 같아 배치째 한 번에) → 출력."""
        shape = tf.shape(images)
        scale, size = resize.resize_scale(shape[1], shape[2], self.config.input.min_size,
                                          self.config.input.max_size)
        resized = tf.image.resize(images, size, method="bilinear")  # uint8 그대로: 원본 크기 float32 사본 없이
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, self._padded(size[0]), self._padded(size[1]))
        sizes = tf.tile(size[None], [shape[0], 1])
        return self._detect_resized(padded, sizes, tf.fill([shape[0]], scale))

    def detect_encoded(self, image_bytes):
        """[B] JPEG/PNG 바이트 (크기가 달라도 됨) → 출력. 이미지마다 자기 크기로 따로 검출한다 (그래프 안의
        map_fn): 더 큰 이미지 옆에 있어도 패딩이 생기지 않아, 결과가 혼자 보낸 것과 같다."""
        def detect(encoded):
            return self._detect_one(image_header.checked_decode(encoded, self.max_image_pixels))

        return tf.map_fn(detect, image_bytes, fn_output_signature=self._output_signature(),
                         parallel_iterations=DECODE_PARALLELISM)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_images(self, images):
        return self.detect_images(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        return self.detect_encoded(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        return self.detect_encoded(records.parse_image_bytes(examples))


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
    module = DetectionModule(inference, config, classes, max_image_pixels)
    signatures = {
        "serving_default": module.serve_images,
        "serve_bytes": module.serve_bytes,
        "serve_examples": module.serve_examples,
    }
    with fileio.atomic_directory(export_dir) as staging:
        if "saved_model" in formats:
            tf.saved_model.save(module, staging, signatures=signatures)
        portable_formats = [name for name in formats if name != "saved_model"]
        if portable_formats:
            from frcnn.export import portable  # 순환 가져오기를 피한다 (portable 이 이 모듈을 가져온다)
            portable.write_portable(inference, config, classes, staging, portable_formats, quantize)
    return compressed


FORMATS = ("saved_model", "tflite", "onnx")
# serve_bytes·serve_examples 가 한 호출에서 동시에 디코딩·검출하는 이미지 수 (map_fn 의 parallel_iterations).
DECODE_PARALLELISM = 2
