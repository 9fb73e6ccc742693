"""SavedModel 내보내기: 디코딩 → 리사이즈 → 백본 → RPN → 제안 → RoI pooling → 헤드 → 클래스별 NMS →
입력 이미지 기준 정규화 박스까지 전부 그래프 안에 넣는다. 불러오는 쪽은 frcnn·keras 없이 TF 만 있으면 된다.

용어:
  B 배치, H·W 입력 이미지 크기, h·w 리사이즈된 크기, N 최대 검출 수.
  시그니처: serving_default(images uint8 [B, H, W, 3]), serve_bytes(image_bytes string [B]),
    serve_examples(examples string [B] 직렬화된 tf.Example). 출력은 DESIGN.md 의 이름 그대로.
  추론에서는 학습 캔버스까지 패딩하지 않는다: 배치 안 가장 큰 리사이즈 크기까지만, 백본이 필요로 하면
    (`Backbone.pad_to_stride`) 그것을 stride 배수로 올린다. VGG16 은 패딩 없이 ⌊h / 16⌋ 격자를 쓴다.
"""

import dataclasses
import os
import shutil
import tempfile

import tensorflow as tf

from frcnn.data import resize
from frcnn.export import truncated_svd

OUTPUT_KEYS = ("detection_boxes", "detection_scores", "detection_classes", "detection_class_names",
               "num_detections")


class DetectionModule(tf.Module):
    """내보낼 추론 그래프."""

    def __init__(self, model, config, classes):
        super().__init__(name="frcnn")
        self.model = model
        self.config = config
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

    def _resize_one(self, image, canvas_height, canvas_width):
        """한 장을 리사이즈해 (canvas_height, canvas_width) 의 왼쪽 위에 둔다."""
        resized, scale = resize.resize_image(image, self.config)
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, canvas_height, canvas_width)
        return padded, tf.shape(resized)[:2], scale

    def detect_images(self, images):
        """[B, H, W, 3] uint8 (같은 크기) → 출력."""
        shape = tf.shape(images)
        scale, size = resize.resize_scale(shape[1], shape[2], self.config.input.min_size,
                                              self.config.input.max_size)
        resized = tf.image.resize(tf.cast(images, tf.float32), size, method="bilinear")
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, self._padded(size[0]), self._padded(size[1]))
        sizes = tf.tile(size[None], [shape[0], 1])
        return self._detect_resized(padded, sizes, tf.fill([shape[0]], scale))

    def detect_encoded(self, image_bytes):
        """[B] JPEG/PNG 바이트 (크기가 달라도 됨) → 출력."""
        longest = self._padded(self.config.input.max_size)  # 리사이즈된 변의 상한 (map_fn 의 정적 모양)

        def decode(encoded):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            return self._resize_one(image, longest, longest)

        padded, sizes, scales = tf.map_fn(
            decode, image_bytes, fn_output_signature=(
                tf.TensorSpec([longest, longest, 3], tf.float32), tf.TensorSpec([2], tf.int32),
                tf.TensorSpec([], tf.float32)))
        # 배치에서 가장 큰 이미지만큼만 남긴다 (학습 캔버스까지 패딩하지 않는다).
        height = self._padded(tf.reduce_max(sizes[:, 0]))
        width = self._padded(tf.reduce_max(sizes[:, 1]))
        return self._detect_resized(padded[:, :height, :width], sizes, scales)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve_images(self, images):
        return self.detect_images(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_bytes(self, image_bytes):
        return self.detect_encoded(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
        features = tf.io.parse_example(examples, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
        return self.detect_encoded(features["image/encoded"])


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


def compress_head(model, ranks):
    """`detection.fc_svd_ranks` 대로 검출기 헤드의 fc6/fc7 을 절단 SVD 로 바꾼다 (모델을 고친다).

    Returns:
      {층 이름: 쓴 특잇값 수 또는 None (그대로)}; ranks 가 비었거나 헤드에 fc6/fc7 이 없으면 {}.
    """
    body = model.detector_head.body
    layer_names = {layer.name for layer in body.layers}
    if not ranks or not set(truncated_svd.FC_LAYER_NAMES) <= layer_names:
        return {}
    compressed, used = truncated_svd.compress_fc_head(body, ranks)
    model.detector_head.replace_body(compressed)
    return used


def export_saved_model(model, config, classes, export_dir, overwrite=False):
    """SavedModel 을 임시 디렉터리에 쓰고 성공하면 `export_dir` 로 옮긴다.

    `config.detection.fc_svd_ranks` 가 있으면 헤드를 절단 SVD 로 바꿔 내보낸다 (`model` 이 바뀐다).

    Returns:
      `compress_head` 의 결과 (절단 SVD 를 쓴 층).

    Raises:
      ValueError: export_dir 이 이미 있고 overwrite 가 아닐 때.
    """
    if os.path.exists(export_dir) and not overwrite:
        raise ValueError(f"{export_dir}: already exists (use --overwrite)")
    model.config = config
    compressed = compress_head(model, config.detection.fc_svd_ranks)
    module = DetectionModule(model, config, classes)
    signatures = {
        "serving_default": module.serve_images,
        "serve_bytes": module.serve_bytes,
        "serve_examples": module.serve_examples,
    }
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        tf.saved_model.save(module, temporary, signatures=signatures)
        if os.path.exists(export_dir):
            shutil.rmtree(export_dir)
        os.replace(temporary, export_dir)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary)
    return compressed
