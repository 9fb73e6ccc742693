"""인코딩된 이미지의 머리(header)만 읽어 크기를 알아내고, 디코딩 전에 픽셀 예산을 검사한다.

압축 폭탄 (388 KB PNG 가 20000×20000 = 1.2 GB 로 풀리는 것) 은 디코딩하기 전에만 막을 수 있다. 그래서 크기는
JPEG/PNG/GIF/BMP/WebP 의 머리에서 읽는다. 같은 규칙을 두 번 쓴다:

* 그래프 (`header_dims`, `checked_decode`): 내보낸 SavedModel 의 `serve_bytes`, `serve_examples` 안에서 —
  TF Serving 이 우리 SavedModel 을 돌려도 막힌다. py_function 없이 TF 연산만 쓴다 (`tf.io.extract_jpeg_shape`,
  `tf.strings.substr` + `tf.io.decode_raw`, GIF 는 블록을 걷는 `tf.while_loop`). 문자열 연산은 XLA 로
  컴파일되지 않으므로 이 함수들은 `jit_compile` 없이 `tf.function` 으로만 돈다.
* 파이썬 (`image_dims`, `check_pixels`): 서버가 모델을 부르기 전에 (이 변경 전에 내보낸 SavedModel 도
  막는다), 그리고 detect / evaluate / make_tfrecords 가 파일을 디코딩하기 전에.

둘 다 TF 의 `decode_image` 가 쓸 메모리를 센다: 픽셀 = H × W × 프레임 수. GIF 는 TF 가 모든 프레임을 논리 화면
크기로 디코딩하므로 프레임 (이미지 서술자 0x2C 블록) 을 모두 센다; 애니메이션 WebP 는 ANMF 청크 수를 상한으로 쓴다.
형식은 TF 의 `decode_image` 와 같은 매직 바이트로 고른다; 모르는 형식은 0 픽셀 (디코더가 스스로 거절한다).

용어:
  예산(budget): 허용하는 최대 픽셀 수 (`max_image_pixels`, 기본 `DEFAULT_MAX_IMAGE_PIXELS`).
  dims: (H, W, 프레임 수). 머리가 잘렸거나 깨졌으면 파이썬은 `ImageHeaderError`, 그래프는 -1 을 낸다.
"""

import struct

import tensorflow as tf

# 64 M 픽셀 (2^26): 48 MP 휴대폰 사진 (8000×6000) 이 통과한다. RGB 로 풀면 192 MiB.
DEFAULT_MAX_IMAGE_PIXELS = 64 * 1024 * 1024

JPEG, PNG, GIF, BMP, WEBP, UNKNOWN = range(6)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# 프레임 크기를 담는 JPEG SOFn 마커 (C4 DHT, C8 JPG, CC DAC 제외).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}


class ImageHeaderError(ValueError):
    """아는 형식인데 머리가 잘렸거나 깨져서 크기를 읽을 수 없다."""


class PixelBudgetError(ValueError):
    """이미지 (또는 요청의 이미지들) 의 픽셀이 예산을 넘는다. 메시지가 크기와 한도를 밝힌다."""


def budget_message(height, width, frames, max_pixels, how_to_raise):
    """예산 초과 메시지 한 줄 (파이썬과 그래프가 같은 문구를 쓴다)."""
    frames_text = f" x {frames} frames" if frames > 1 else ""
    return (f"image of {width}x{height} pixels{frames_text} exceeds the pixel budget of {max_pixels} pixels "
            f"({how_to_raise})")


# ---------------------------------------------------------------- 파이썬


def image_format(data):
    """TF 의 decode_image 와 같은 매직 바이트로 형식을 고른다 (JPEG, PNG, GIF, BMP, WEBP, UNKNOWN)."""
    if data[:3] == b"\xff\xd8\xff":
        return JPEG
    if data[:8] == _PNG_SIGNATURE:
        return PNG
    if data[:3] == b"GIF":
        return GIF
    if data[:2] == b"BM":
        return BMP
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return UNKNOWN


def image_dims(data):
    """인코딩된 이미지 bytes 의 (H, W, 프레임 수) int 들을 머리에서 읽는다 (모르는 형식이면 (0, 0, 0)).

    Raises:
      ImageHeaderError: 아는 형식인데 머리가 잘렸거나 깨졌을 때.
    """
    data = bytes(data)
    kind = image_format(data)
    if kind == UNKNOWN:
        return 0, 0, 0
    reader = {JPEG: _jpeg_dims, PNG: _png_dims, GIF: _gif_dims, BMP: _bmp_dims, WEBP: _webp_dims}[kind]
    try:
        return reader(data)
    except (IndexError, struct.error) as error:
        raise ImageHeaderError(f"truncated {_NAMES[kind]} header") from error


def check_pixels(data, max_pixels, how_to_raise="--max_image_pixels"):
    """머리의 크기가 예산 안인지 확인하고 픽셀 수 (H × W × 프레임) 를 돌려준다.

    Raises:
      ImageHeaderError: 머리를 읽을 수 없을 때.
      PixelBudgetError: 예산을 넘을 때 (크기와 한도를 밝힌다).
    """
    height, width, frames = image_dims(data)
    pixels = height * width * frames
    if pixels > max_pixels:
        raise PixelBudgetError(budget_message(height, width, frames, max_pixels, how_to_raise))
    return pixels


_NAMES = {JPEG: "JPEG", PNG: "PNG", GIF: "GIF", BMP: "BMP", WEBP: "WebP"}


def _jpeg_dims(data):
    """libjpeg 처럼 마커를 걸어 첫 SOFn 의 크기를 읽는다 (0xFF 채움, 0xFF00 은 건너뛴다)."""
    position, size = 2, len(data)
    while True:
        while data[position] != 0xFF:  # 마커 사이의 쓰레기 바이트 (libjpeg 는 경고만 한다)
            position += 1
        while data[position] == 0xFF:
            position += 1
        marker = data[position]
        position += 1
        if marker == 0 or marker in _STANDALONE_MARKERS:
            continue
        if marker in (0xD9, 0xDA):
            raise ImageHeaderError("JPEG without a frame header (SOF) before the scan")
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", data[position + 3:position + 7])
            return height, width, 1
        position += struct.unpack(">H", data[position:position + 2])[0]
        if position >= size:
            raise IndexError(position)


def _png_dims(data):
    if len(data) < 24:
        raise IndexError(24)
    if data[12:16] != b"IHDR":
        raise ImageHeaderError("PNG without IHDR as its first chunk")
    width, height = struct.unpack(">II", data[16:24])
    return height, width, 1


def _gif_dims(data):
    """논리 화면 크기와 이미지 서술자 (0x2C) 블록 수. TF 는 모든 프레임을 화면 크기로 디코딩한다."""
    width, height, packed = struct.unpack("<HHB", data[6:11])
    position = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    frames = 0
    while position < len(data) and data[position] in (0x21, 0x2C):
        if data[position] == 0x21:  # 확장: 도입자, 라벨, 하위 블록들
            position += 2
        else:  # 이미지 서술자 10 바이트 (+ 지역 색상표), LZW 최소 코드 크기 1 바이트, 하위 블록들
            frames += 1
            local = data[position + 9]
            position += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
        while position < len(data) and data[position] != 0:
            position += 1 + data[position]
        position += 1
    return height, width, frames


def _bmp_dims(data):
    """TF 의 decode_bmp 처럼 오프셋 18, 22 의 int32 (높이는 음수면 위에서 아래로)."""
    width, height = struct.unpack("<ii", data[18:26])
    return abs(height), max(width, 0), 1


def _webp_dims(data):
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return height & 0x3FFF, width & 0x3FFF, 1
    if chunk == b"VP8L":
        bits = struct.unpack("<I", data[21:25])[0]
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1, 1
    if chunk == b"VP8X":
        if len(data) < 30:
            raise IndexError(30)
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        animated = data[20] & 0x02
        return height, width, max(1, data.count(b"ANMF")) if animated else 1
    raise ImageHeaderError(f"WebP with an unknown first chunk {chunk!r}")


# ---------------------------------------------------------------- 그래프 (TF 연산만; 문자열 연산이라 XLA 불가)

_HEAD_BYTES = 32


def _head(encoded):
    """앞 32 바이트를 uint8 [32] 로 (짧으면 0 으로 채운다) 와 전체 길이 (int64)."""
    head = tf.io.decode_raw(tf.strings.substr(encoded, 0, _HEAD_BYTES), tf.uint8)
    head = tf.pad(head, [[0, _HEAD_BYTES - tf.shape(head)[0]]])
    return tf.cast(head, tf.int64), tf.cast(tf.strings.length(encoded), tf.int64)


def _matches(head, offset, magic):
    return tf.reduce_all(tf.equal(head[offset:offset + len(magic)], list(magic)))


def _uint(head, offset, count, big_endian=False):
    """head[offset:offset+count] 의 부호 없는 정수 (int64)."""
    order = range(count) if big_endian else range(count - 1, -1, -1)
    value = tf.constant(0, tf.int64)
    for index in order:
        value = value * 256 + head[offset + index]
    return value


def _graph_format(head):
    """`image_format` 의 그래프판: 형식 번호 int32 스칼라."""
    checks = [_matches(head, 0, b"\xff\xd8\xff"), _matches(head, 0, _PNG_SIGNATURE),
              _matches(head, 0, b"GIF"), _matches(head, 0, b"BM"),
              tf.logical_and(_matches(head, 0, b"RIFF"), _matches(head, 8, b"WEBP"))]
    return tf.reduce_min(tf.where(tf.stack(checks), tf.range(5), UNKNOWN))


def _dims(height, width, frames, valid):
    """int64 [3]; 머리가 잘렸거나 깨졌으면 [-1, -1, -1]."""
    dims = tf.stack([tf.cast(height, tf.int64), tf.cast(width, tf.int64), tf.cast(frames, tf.int64)])
    return tf.where(valid, dims, tf.constant(-1, tf.int64))


def _graph_jpeg(encoded):
    shape = tf.io.extract_jpeg_shape(encoded)  # 머리만 읽는다; 깨졌으면 InvalidArgumentError
    return _dims(shape[0], shape[1], 1, True)


def _graph_png(head, length):
    valid = tf.logical_and(length >= 24, _matches(head, 12, b"IHDR"))
    return _dims(_uint(head, 20, 4, True), _uint(head, 16, 4, True), 1, valid)


def _graph_bmp(head, length):
    width, height = _uint(head, 18, 4), _uint(head, 22, 4)
    height = tf.abs(tf.where(height >= 2 ** 31, height - 2 ** 32, height))
    width = tf.maximum(tf.where(width >= 2 ** 31, width - 2 ** 32, width), 0)
    return _dims(height, width, 1, length >= 26)


def _graph_webp(encoded, head, length):
    chunk = [_matches(head, 12, name) for name in (b"VP8 ", b"VP8L", b"VP8X")]
    bits = _uint(head, 21, 4)
    animated = tf.logical_and(chunk[2], tf.bitwise.bitwise_and(head[20], 2) > 0)
    anmf = tf.cast(tf.size(tf.strings.split(encoded, "ANMF")), tf.int64) - 1
    height = tf.where(chunk[0], _uint(head, 28, 2) % 16384,
                      tf.where(chunk[1], (bits // 16384) % 16384 + 1, _uint(head, 27, 3) + 1))
    width = tf.where(chunk[0], _uint(head, 26, 2) % 16384,
                     tf.where(chunk[1], bits % 16384 + 1, _uint(head, 24, 3) + 1))
    needed = tf.where(chunk[1], tf.constant(25, tf.int64), 30)
    valid = tf.logical_and(tf.reduce_any(chunk), length >= needed)
    return _dims(height, width, tf.where(animated, tf.maximum(anmf, 1), 1), valid)


def _graph_gif(encoded, head, length):
    """`_gif_dims` 의 그래프판: 블록을 걷는 tf.while_loop (반복마다 위치가 1 바이트 이상 나아간다)."""
    data = tf.cast(tf.io.decode_raw(encoded, tf.uint8), tf.int64)
    data = tf.concat([data, tf.zeros([16], tf.int64)], axis=0)  # 서술자를 읽을 때 끝을 넘지 않게

    def at(position):
        return data[tf.minimum(position, length)]

    def table(packed):  # 색상표 바이트 (플래그 0x80, 크기 2^(k+1) 항목 × 3)
        size = 3 * tf.bitwise.left_shift(tf.constant(2, tf.int64), tf.bitwise.bitwise_and(packed, 7))
        return tf.where(tf.bitwise.bitwise_and(packed, 0x80) > 0, size, 0)

    def body(position, frames, in_blocks, done):
        value = at(position)
        # 하위 블록 안: 길이 바이트 하나와 그만큼 (0 이면 블록 끝)
        sub_next = position + 1 + value
        # 블록 처음: 확장 (0x21) 은 2 바이트, 이미지 서술자 (0x2C) 는 10 + 지역 색상표 + 1 바이트
        is_image = tf.equal(value, 0x2C)
        start_next = tf.where(is_image, position + 11 + table(at(position + 9)), position + 2)
        stop = tf.logical_and(tf.logical_not(in_blocks), tf.logical_not(
            tf.logical_or(is_image, tf.equal(value, 0x21))))
        next_position = tf.where(in_blocks, sub_next, start_next)
        frames += tf.cast(tf.logical_and(tf.logical_not(in_blocks), is_image), tf.int64)
        next_in_blocks = tf.logical_or(tf.logical_not(in_blocks), tf.not_equal(value, 0))
        return next_position, frames, next_in_blocks, stop

    def cond(position, frames, in_blocks, done):
        del frames, in_blocks
        return tf.logical_and(tf.logical_not(done), position < length)

    start = 13 + table(head[10])
    zero = tf.constant(0, tf.int64)
    _, frames, _, _ = tf.while_loop(cond, body, (start, zero, tf.constant(False), tf.constant(False)))
    return _dims(_uint(head, 8, 2), _uint(head, 6, 2), frames, length >= 11)


def header_dims(encoded):
    """`image_dims` 의 그래프판: string 스칼라 → int64 [3] (H, W, 프레임 수).

    모르는 형식은 [0, 0, 0], 잘렸거나 깨진 머리는 [-1, -1, -1] (JPEG 은 `extract_jpeg_shape` 가
    InvalidArgumentError). 디코딩하지 않는다.
    """
    head, length = _head(encoded)
    branches = [lambda: _graph_jpeg(encoded), lambda: _graph_png(head, length),
                lambda: _graph_gif(encoded, head, length), lambda: _graph_bmp(head, length),
                lambda: _graph_webp(encoded, head, length), lambda: tf.zeros([3], tf.int64)]
    return tf.switch_case(_graph_format(head), branches)


def check_pixels_op(encoded, max_pixels, how_to_raise):
    """예산 검사 연산 (`tf.debugging.Assert`): 넘거나 머리가 깨졌으면 InvalidArgumentError.

    Args:
      encoded: string 스칼라 텐서 (인코딩된 이미지 하나).
      max_pixels: int64 스칼라 (텐서나 변수).
      how_to_raise: str, 메시지 끝의 괄호 안 (예산을 올리는 방법).

    Returns:
      검사 연산 (디코딩을 이것의 control_dependencies 안에 둔다).
    """
    dims = header_dims(encoded)
    max_pixels = tf.cast(max_pixels, tf.int64)
    # H × W × 프레임은 int64 를 넘칠 수 있어 (PNG 는 2^31 × 2^31) 비교는 float64 로
    pixels = tf.reduce_prod(tf.cast(dims, tf.float64))
    frames = tf.where(dims[2] > 1, tf.strings.join([" x ", tf.strings.as_string(dims[2]), " frames"]), "")
    too_large = tf.strings.join([
        "image of ", tf.strings.as_string(dims[1]), "x", tf.strings.as_string(dims[0]), " pixels", frames,
        " exceeds the pixel budget of ", tf.strings.as_string(max_pixels), f" pixels ({how_to_raise})"])
    valid = dims[0] >= 0
    message = tf.where(valid, too_large, "invalid or truncated image header")
    ok = tf.logical_and(valid, pixels <= tf.cast(max_pixels, tf.float64))
    return tf.debugging.Assert(ok, [message])


def checked_decode(encoded, max_pixels, how_to_raise="re-export with tools/export --max_image_pixels"):
    """머리로 예산을 검사한 뒤에만 디코딩한다: string 스칼라 → uint8 [H, W, 3] (GIF 는 첫 프레임).

    Raises (실행 때):
      InvalidArgumentError: 예산 초과 (크기와 한도를 밝힌다), 깨진 머리, 디코딩 실패.
    """
    with tf.control_dependencies([check_pixels_op(encoded, max_pixels, how_to_raise)]):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image
