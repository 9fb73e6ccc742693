"""내보낼 검출 그래프: 리사이즈 → (필요하면) stride 배수로 패딩 → 검출 → 시그니처 출력. SavedModel 과 LiteRT·ONNX
그래프가 같은 코드를 쓴다 (이 파일 하나).

용어:
  B 배치, H·W 입력 이미지 크기, h·w 리사이즈된 크기, N 최대 검출 수.
  추론에서는 학습 캔버스까지 패딩하지 않는다: 이미지는 자기 리사이즈 크기 그대로, 백본이 필요로 하면
    (`Backbone.pad_to_stride`) stride 배수로만 올린다 (패딩은 정규화 뒤 0, 패딩에 중심이 있는 앵커는 제안이
    되지 않는다). VGG16 은 패딩 없이 ⌊h / 16⌋ 격자를 쓴다. 크기가 다른 이미지 배치(serve_bytes,
    serve_examples)는 이미지마다 따로 검출하므로 한 이미지의 결과가 배치의 다른 이미지에 좌우되지 않는다.
  이식 그래프 (`PortableDetectionModule`): 한 장 (B = 1), `model.detect(..., portable=True)` — LiteRT 내장 연산과
    ONNX 로 옮겨지는 RoIAlign·NMS (`frcnn/ops/nms.py`) — 이고 클래스 이름 출력이 없다.
"""

import tensorflow as tf

from frcnn.data import image_header
from frcnn.data import records
from frcnn.data import resize
from frcnn.export import signature

# serve_bytes·serve_examples 가 한 호출에서 동시에 디코딩·검출하는 이미지 수 (map_fn 의 parallel_iterations).
DECODE_PARALLELISM = 2


class DetectionModule(tf.Module):
    """SavedModel 로 내보낼 추론 그래프 (시그니처 셋)."""

    portable = False

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
        """백본이 필요로 하면 stride 배수로 올린다 (int32 텐서)."""
        if not self.model.backbone.pad_to_stride:
            return value
        stride = self.config.anchors.stride
        return (value + stride - 1) // stride * stride

    def _detect_batch(self, images):
        """[B, H, W, 3] (같은 크기: 리사이즈·패딩이 모두 같다) → 리사이즈 → 패딩 → 검출 dict."""
        shape = tf.shape(images)
        batch = images.shape[0] or shape[0]  # 정적이면 Python int (배치 1 의 NMS 는 루프 없는 연산 하나)
        scale, size = resize.resize_scale(shape[1], shape[2], self.config.input.min_size,
                                          self.config.input.max_size, self.config.input.size_rule,
                                          portable=self.portable)
        # SavedModel 은 uint8 그대로 리사이즈한다 (같은 float32 결과, 원본 크기의 float32 사본 없이); LiteRT 의
        # RESIZE_BILINEAR 는 입력과 출력 dtype 이 같아야 하므로 이식 그래프는 먼저 float32 로 바꾼다.
        source = tf.cast(images, tf.float32) if self.portable else images
        resized = tf.image.resize(source, size, method="bilinear", antialias=False)
        height, width = self._padded(size[0]), self._padded(size[1])
        padded = tf.image.pad_to_bounding_box(resized, 0, 0, height, width)
        # 채널 3 을 모양 텐서에 상수로 둔다: LiteRT 변환기는 동적 패딩 뒤의 모양을 모두 잃고, 채널을 모르는
        # 합성곱은 내장 연산이 되지 못한다 (EnsureShape 도 내장 연산이 아니다).
        padded = tf.reshape(padded, tf.stack([batch, height, width, 3]))
        sizes = tf.tile(tf.cast(size, tf.float32)[None], [batch, 1])
        return self.model.detect(padded, sizes, tf.fill([batch], scale), portable=self.portable)

    def detect_images(self, images):
        """[B, H, W, 3] uint8 (같은 크기) → 시그니처 출력 (배치째 한 번에)."""
        return signature.outputs_from_detections(self._detect_batch(images), self.class_names)

    def detect_encoded(self, image_bytes):
        """[B] JPEG/PNG 바이트 (크기가 달라도 됨) → 출력. 이미지마다 자기 크기로 따로 검출한다 (그래프 안의
        map_fn): 더 큰 이미지 옆에 있어도 패딩이 생기지 않아, 결과가 혼자 보낸 것과 같다."""
        def detect(encoded):
            image = image_header.checked_decode(encoded, self.max_image_pixels)  # 헤더의 픽셀 예산을 디코딩 전에
            outputs = self.detect_images(image[None])
            return {key: value[0] for key, value in outputs.items()}

        count = self.config.detection.max_detections
        return tf.map_fn(detect, image_bytes, fn_output_signature=signature.output_specs(count, batch=False),
                         parallel_iterations=DECODE_PARALLELISM)

    @tf.function(input_signature=[signature.INPUT_SPECS[signature.SERVING_DEFAULT]])
    def serve_images(self, images):
        return self.detect_images(images)

    @tf.function(input_signature=[signature.INPUT_SPECS[signature.SERVE_BYTES]])
    def serve_bytes(self, image_bytes):
        return self.detect_encoded(image_bytes)

    @tf.function(input_signature=[signature.INPUT_SPECS[signature.SERVE_EXAMPLES]])
    def serve_examples(self, examples):
        return self.detect_encoded(records.parse_image_bytes(examples))

    def signatures(self):
        """SavedModel 의 시그니처 이름 → 함수."""
        return {signature.SERVING_DEFAULT: self.serve_images, signature.SERVE_BYTES: self.serve_bytes,
                signature.SERVE_EXAMPLES: self.serve_examples}


class PortableDetectionModule(DetectionModule):
    """한 장짜리 (B = 1) 이식 가능한 검출 그래프 (LiteRT·ONNX 변환기 입력)."""

    portable = True

    @tf.function(input_signature=[signature.PORTABLE_INPUT_SPEC])
    def detect(self, images):
        return signature.outputs_from_detections(self._detect_batch(images))
