"""어디서나 도는 내보내기: LiteRT (TFLite, 내장 연산만) 와 ONNX 로 옮긴 검출 그래프.

SavedModel 의 `serving_default` 와 같은 리사이즈·검출을 하되, LiteRT 내장 연산과 ONNX 로 옮겨지지 않는 연산을
피한다: RoIAlign 은 학습에서 쓰는 matmul 쌍선형 표본 (CropAndResize 없음), RPN 과 클래스별 NMS 는
NonMaxSuppressionV5 한 번 (클래스별은 클래스 오프셋; CombinedNonMaxSuppression·while 루프 NMS 없음) —
`frcnn/ops/nms.py` 참고. 가중치는 상수로 얼려 넣는다 (변환기가 자원 변수로
남기면 LiteRT 에서 초기화되지 않은 변수를 읽는다).

용어:
  입력 `images`: uint8 [1, H, W, 3], H·W 는 아무 크기 (LiteRT 의 resize_tensor_input, ONNX 의 동적 축).
  출력: `signature.PORTABLE_OUTPUT_NAMES` (SavedModel 출력에서 클래스 이름을 뺀 것, 배치 1).
  메타데이터: 클래스 이름 JSON 목록 (0 번은 빈 이름 = 패딩) 을 TFLite 의 `metadata` 항목 `signature.LABELS_KEY` 와
    ONNX 의 `metadata_props` 에 넣는다. `labels.txt` 는 k 번째 줄 = 클래스 k (0 번 줄은 빈 줄 없이 1 번부터).
"""

import ctypes
import gc
import json
import os
import tempfile

import tensorflow as tf
from tensorflow.python.framework import convert_to_constants

from frcnn.export import detection
from frcnn.export import signature as signature_lib
from frcnn.ops import nms

QUANTIZATIONS = ("float16", "dynamic_int8")


def frozen_signature(module):
    """가중치를 상수로 얼린, 출력 이름이 붙은 `tf.function` (변환기 입력)."""
    concrete = module.detect.get_concrete_function()
    frozen = convert_to_constants.convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    names = sorted(concrete.structured_outputs)  # 얼린 함수는 dict 를 키 순서로 편 목록을 돌려준다

    @tf.function(input_signature=[signature_lib.PORTABLE_INPUT_SPEC])
    def signature(images):
        return dict(zip(names, frozen(images)))

    return signature


def tflite_model(signature, classes, quantize=None):
    """LiteRT 내장 연산만 쓰는 .tflite 바이트 (클래스 이름 메타데이터 포함).

    Raises:
      ValueError: 내장 연산으로 바꿀 수 없을 때 (막는 연산을 밝힌다), 모르는 quantize.
    """
    if quantize not in (None,) + QUANTIZATIONS:
        raise ValueError(f"unknown quantization '{quantize}' (expected one of {QUANTIZATIONS})")
    with tempfile.TemporaryDirectory() as directory:
        # 얼린 함수 하나짜리 SavedModel 로 거쳐 간다: from_concrete_functions 는 (RoI max pooling 의
        # custom_gradient 가 있으면) 시그니처를 빠뜨린다. 추론만 하므로 사용자 정의 기울기는 저장하지 않는다.
        holder = tf.Module()
        holder.detect = signature
        signatures = {"serving_default": signature.get_concrete_function()}
        tf.saved_model.save(holder, directory, signatures=signatures,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
        converter = tf.lite.TFLiteConverter.from_saved_model(directory)
        return _convert(converter, classes, quantize)


def _convert(converter, classes, quantize):
    """내장 연산만으로 변환하고 클래스 이름 메타데이터를 더한다."""
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
    try:
        blob = converter.convert()
    except Exception as error:  # 변환기는 여러 종류의 예외를 던진다: 막는 연산 줄만 남긴다
        raise ValueError(f"cannot convert to LiteRT built-in ops: {_blocking_ops(error)}") from None
    return _with_tflite_metadata(blob, signature_lib.LABELS_KEY, json.dumps([""] + list(classes)).encode())


def _blocking_ops(error):
    """변환기 오류에서 막는 연산을 밝힌 줄 ("TF Select ops: …") 을 고른다."""
    lines = str(error).splitlines()
    for marker in ("TF Select ops", "neither a custom op"):
        found = [line.strip() for line in lines if marker in line]
        if found:
            return found[0][-300:]
    return lines[0].strip()[-300:] if lines else type(error).__name__


def _with_tflite_metadata(blob, name, data):
    """.tflite flatbuffer 에 `metadata` 항목 (이름 → 버퍼) 을 더한다 (TFLite 스키마의 객체 API)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    buffer = schema.BufferT()
    buffer.data = list(data)
    model.buffers.append(buffer)
    metadata = schema.MetadataT()
    metadata.name = name
    metadata.buffer = len(model.buffers) - 1
    model.metadata = (model.metadata or []) + [metadata]
    builder = flatbuffers.Builder(len(blob) + len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def onnx_model(signature, classes):
    """tf2onnx 로 바꾼 .onnx 바이트 (opset 17, 동적 H·W, 클래스 이름 metadata_props).

    Raises:
      ImportError: tf2onnx 가 없을 때.
      ValueError: 바꿀 수 없을 때.
    """
    import tf2onnx

    try:
        proto, _ = tf2onnx.convert.from_function(
            signature, input_signature=[signature_lib.PORTABLE_INPUT_SPEC], opset=17)
    except Exception as error:  # tf2onnx 는 여러 종류의 예외를 던진다
        raise ValueError(f"cannot convert to ONNX: {str(error).strip().splitlines()[0]}") from None
    entry = proto.metadata_props.add()
    entry.key, entry.value = signature_lib.LABELS_KEY, json.dumps([""] + list(classes))
    return proto.SerializeToString()


def _release_memory():
    """쓰레기를 모으고, glibc 면 malloc_trim 으로 비어 있는 힙을 운영체제에 돌려준다 (변환 사이의 최고 메모리를 낮춘다)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # glibc 가 아닌 곳 (macOS, musl)
        pass


def write_portable(inference, config, classes, directory, formats, quantize=None):
    """추론 모델을 directory 에 model.tflite / model.onnx 와 labels.txt 로 쓴다.

    Args:
      inference: `inference_model.build_inference_model` 의 모델.
      config: 내보낼 설정.
      classes: 클래스 이름들 (1..C).
      directory: 쓸 디렉터리 (보통 SavedModel 내보내기의 임시 디렉터리: 실패하면 아무것도 남지 않는다).
      formats: 'tflite', 'onnx' 중 쓸 것들.
      quantize: None 또는 `QUANTIZATIONS` 하나 (TFLite 만).

    Raises:
      ValueError: 바꿀 수 없는 모델, 설정 (막는 것을 밝힌다).
      ImportError: 변환기 (tf2onnx) 가 없을 때 — `DEPLOY_HINT`.
    """
    limits = config.detection
    try:
        nms.check_class_offset(limits.max_detections_per_class, limits.max_detections)
    except ValueError as error:
        raise ValueError(f"cannot export {', '.join(formats)}: {error}; export with "
                         f"--max_detections={limits.max_detections_per_class}") from error
    module = detection.PortableDetectionModule(inference, config, classes)
    signature = frozen_signature(module)
    # 큰 모델 (vgg16_paper) 은 변환마다 최고 20 GiB 남짓을 쓴다: ONNX 를 먼저 (tf2onnx 의 큰 numpy 배열은 곧
    # 운영체제로 돌아간다), 그 뒤 glibc 가 쥔 메모리를 돌려주고 TFLite 를 바꾼다.
    if "onnx" in formats:
        with open(os.path.join(directory, signature_lib.ONNX_FILE), "wb") as handle:
            handle.write(onnx_model(signature, classes))
        _release_memory()
    if "tflite" in formats:
        with open(os.path.join(directory, signature_lib.TFLITE_FILE), "wb") as handle:
            handle.write(tflite_model(signature, classes, quantize))
        _release_memory()
    with open(os.path.join(directory, signature_lib.LABELS_FILE), "w", encoding="utf-8") as handle:
        handle.write("".join(f"{name}\n" for name in classes))
