"""요청이 모델에 닿기 전의 크기 검사: 픽셀 예산, 요청당 이미지 수, gRPC TensorProto 의 모양과 내용.

모델 (SavedModel 의 그래프) 도 이미지마다 예산을 검사하지만 (`frcnn.data.image_header.checked_decode`), 서버는
모델을 부르기 전에 같은 검사를 파이썬으로 한 번 더 한다: 이 검사가 없던 때 내보낸 SavedModel 도 막고, 거절이
모델의 차례 (관문·배치 큐) 를 쓰지 않게.

* ``image_bytes`` (인코딩된 이미지) 와 ``examples`` (tf.Example 의 image/encoded): 이미지마다 머리에서 읽은
  H × W × 프레임, 그리고 요청의 이미지를 모두 더한 픽셀이 예산 이하.
* ``images`` uint8 [B, H, W, 3]: B × H × W 가 예산 이하.
* 모든 입력: 요청당 인스턴스 (배치 첫 차원) 가 `max_images_per_request` 이하, 빈 텐서 (원소 0 개) 는 400.
* gRPC TensorProto: ``tf.make_ndarray`` 는 값 없이 모양만 큰 텐서를 모양대로 0 으로 채우므로, 그 전에 모양의
  차원 수·음수 차원·원소 수 (예산으로 묶인다) 와 내용의 원소 수가 맞는지 본다.

메모리의 한도: 요청 하나의 디코딩된 픽셀은 max_image_pixels 이하 (RGB 로 3 바이트씩). 동시에 모델을 도는 요청은
관문 (`--max_concurrent_predictions`) 이나 배치 스레드 (`--num_batch_threads`, 호출마다 DECODE_PARALLELISM 장씩
디코딩) 로 묶이므로, 처리 중 디코딩된 픽셀은 그 수 × max_image_pixels 를 넘지 않는다.

용어: 예산(budget) 은 픽셀 수 (`max_image_pixels`). B 배치, H/W 높이/너비.
"""

import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import types_pb2

from frcnn.data import image_header
from frcnn.data import records
from frcnn.serving import codec
from frcnn.serving.codec import RequestError

DEFAULT_MAX_IMAGES_PER_REQUEST = 64
HOW_TO_RAISE = "tools/serve --max_image_pixels"
ENCODED_INPUT = "image_bytes"
EXAMPLES_INPUT = "examples"
IMAGES_INPUT = "images"
# TensorProto 의 값 필드 (dtype 마다 하나). 복소수는 원소 하나가 값 2 개 (실수부·허수부).
_INT_VAL = (types_pb2.DT_INT32, types_pb2.DT_UINT8, types_pb2.DT_INT16, types_pb2.DT_INT8,
            types_pb2.DT_UINT16)
_VALUE_FIELDS = {
    **{dtype: "int_val" for dtype in _INT_VAL},
    types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val", types_pb2.DT_UINT64: "uint64_val", types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_HALF: "half_val", types_pb2.DT_BFLOAT16: "half_val", types_pb2.DT_STRING: "string_val",
    types_pb2.DT_COMPLEX64: "scomplex_val", types_pb2.DT_COMPLEX128: "dcomplex_val",
}
_PAIRED = (types_pb2.DT_COMPLEX64, types_pb2.DT_COMPLEX128)


class PixelBudgetExceeded(RequestError):
    """픽셀 예산이나 요청당 이미지 수를 넘는 요청 (400; 지표 ``frcnn_serving_budget_rejections_total``)."""


class InputLimits:
    """요청 입력의 크기 한도.

    Args:
      max_image_pixels: int 또는 None — 픽셀 예산. None 이면 servable 의 것 (내보낼 때 정한 값), 그것도 없으면
        `image_header.DEFAULT_MAX_IMAGE_PIXELS`.
      max_images_per_request: int, 요청 하나의 인스턴스 (배치) 수 상한.
    """

    def __init__(self, max_image_pixels=None, max_images_per_request=DEFAULT_MAX_IMAGES_PER_REQUEST):
        if max_image_pixels is not None and max_image_pixels <= 0:
            raise ValueError(f"max_image_pixels must be positive, got {max_image_pixels}")
        if max_images_per_request <= 0:
            raise ValueError(f"max_images_per_request must be positive, got {max_images_per_request}")
        self.max_image_pixels = max_image_pixels
        self.max_images_per_request = max_images_per_request

    def budget(self, servable):
        """이 servable 에 쓸 픽셀 예산."""
        if self.max_image_pixels is not None:
            return self.max_image_pixels
        return getattr(servable, "max_image_pixels", None) or image_header.DEFAULT_MAX_IMAGE_PIXELS

    def check_inputs(self, inputs, budget):
        """numpy 로 바뀐 입력들 (입력 이름 → 배열) 을 검사한다.

        Raises:
          RequestError: 빈 텐서, 깨진 이미지 머리·tf.Example (400).
          PixelBudgetExceeded: 예산이나 요청당 이미지 수를 넘을 때 (400).
        """
        for name, array in inputs.items():
            if array.size == 0:
                raise RequestError(f"input '{name}' is empty (shape {list(array.shape)})")
            if array.ndim:
                self._check_count(name, array.shape[0])
            if name in (ENCODED_INPUT, EXAMPLES_INPUT) and array.dtype == object and array.ndim == 1:
                _check_encoded(array, name, budget)
            elif name == IMAGES_INPUT and array.ndim == 4:
                _check_pixels_of(array.shape, name, budget)

    def _check_count(self, name, count):
        if count > self.max_images_per_request:
            raise PixelBudgetExceeded(f"input '{name}' has {count} instances; at most "
                                      f"{self.max_images_per_request} per request (--max_images_per_request)")

    def check_tensor_proto(self, proto, spec, name, budget):
        """``tf.make_ndarray`` 전에 TensorProto 의 모양과 내용을 검사한다.

        Raises:
          RequestError: dtype 이나 차원 수가 시그니처와 다르거나, 음수 차원, 모양과 내용의 원소 수가 다를 때 (400).
          PixelBudgetExceeded: 원소 수가 예산을 넘을 때 (400).
        """
        codec.check_dtype(proto, spec, name)
        dims = [dim.size for dim in proto.tensor_shape.dim]
        expected = spec.shape.rank
        if proto.tensor_shape.unknown_rank or (expected is not None and len(dims) != expected):
            raise RequestError(f"input '{name}' has shape {dims} (rank {len(dims)}) but the signature "
                               f"expects rank {expected}")
        if any(size < 0 for size in dims):
            raise RequestError(f"input '{name}' has a negative dimension in its shape {dims}")
        if dims:
            self._check_count(name, dims[0])
        if name == IMAGES_INPUT and len(dims) == 4:
            _check_pixels_of(dims, name, budget)
        count = int(np.prod(dims, dtype=object)) if dims else 1
        # 이미지 배열이 아닌 입력도 원소 수는 예산 × 3 (RGB 이미지 하나의 원소 수) 까지만
        if count > 3 * budget:
            raise PixelBudgetExceeded(f"input '{name}' has {count} elements (shape {dims}); at most "
                                      f"{3 * budget} ({HOW_TO_RAISE})")
        _check_content(proto, dims, count, name)


def _check_content(proto, dims, count, name):
    """내용 (tensor_content 바이트 또는 값 필드) 의 원소 수가 모양의 원소 수와 같은지."""
    if proto.tensor_content:
        itemsize = np.dtype(_numpy_dtype(proto.dtype, name)).itemsize
        if len(proto.tensor_content) != count * itemsize:
            raise RequestError(f"input '{name}': tensor_content has {len(proto.tensor_content)} bytes but "
                               f"the shape {dims} needs {count * itemsize}")
        return
    field = _VALUE_FIELDS.get(proto.dtype)
    per_element = 2 if proto.dtype in _PAIRED else 1
    if field is None:
        raise RequestError(f"input '{name}': unsupported dtype {proto.dtype}")
    values = len(getattr(proto, field))
    if values != count * per_element:
        raise RequestError(f"input '{name}': the TensorProto has {values // per_element} values but its "
                           f"tensor_shape {dims} has {count} elements")


def _numpy_dtype(enum, name):
    from tensorflow.python.framework import dtypes  # 필요할 때만 (tf 의 dtype 표)
    try:
        return dtypes.as_dtype(enum).as_numpy_dtype
    except (TypeError, KeyError) as error:
        raise RequestError(f"input '{name}': unsupported dtype {enum}") from error


def _check_pixels_of(shape, name, budget):
    """[B, H, W, C] 모양의 B × H × W 가 예산 이하인지."""
    batch, height, width = (int(size) for size in shape[:3])
    if batch * height * width > budget:
        raise PixelBudgetExceeded(f"input '{name}': {batch} image(s) of {width}x{height} pixels exceed the "
                                  f"pixel budget of {budget} pixels per request ({HOW_TO_RAISE})")


def _encoded_image(value, name, index):
    """입력 원소 하나에서 인코딩된 이미지 바이트 (examples 면 tf.Example 의 image/encoded)."""
    if name != EXAMPLES_INPUT:
        return value
    try:
        example = example_pb2.Example.FromString(value)
    except DecodeError as error:
        raise RequestError(f"input '{name}' instance {index}: not a serialized tf.Example: {error}") \
            from error
    encoded = example.features.feature[records.ENCODED].bytes_list.value
    if len(encoded) != 1:
        raise RequestError(f"input '{name}' instance {index}: the tf.Example needs one {records.ENCODED}")
    return encoded[0]


def _check_encoded(array, name, budget):
    """인코딩된 이미지마다 머리의 픽셀, 그리고 요청의 합이 예산 이하인지 (디코딩하지 않는다)."""
    total = 0
    for index, value in enumerate(array):
        data = _encoded_image(value, name, index)
        try:
            total += image_header.check_pixels(data, budget, HOW_TO_RAISE)
        except image_header.PixelBudgetError as error:
            raise PixelBudgetExceeded(f"input '{name}' instance {index}: {error}") from error
        except image_header.ImageHeaderError as error:
            raise RequestError(f"input '{name}' instance {index}: {error}") from error
        if total > budget:
            raise PixelBudgetExceeded(f"input '{name}': the images of this request have {total} pixels "
                                      f"together, over the pixel budget of {budget} pixels per request "
                                      f"({HOW_TO_RAISE}); send them in separate requests")
