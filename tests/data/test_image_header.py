"""frcnn.data.image_header 테스트: 머리에서 읽은 크기를 진짜 디코더 (PIL, TF) 와 비교한다.

파이썬판 (`image_dims`) 과 그래프판 (`header_dims`, tf.function 안) 을 같은 파일들로 본다: PIL 이 인코딩한
JPEG (기본·프로그레시브·EXIF), PNG (RGB·회색조), GIF (한 장·애니메이션), BMP, WebP (손실·무손실·애니메이션),
여러 크기. 잘린 머리는 파이썬은 ImageHeaderError, 그래프는 -1 (JPEG 은 InvalidArgumentError) 이고, 절대 틀린
크기를 내지 않는다. 그래프 코드는 문자열 연산 (substr, decode_raw, extract_jpeg_shape) 이라 XLA 로 컴파일되지
않으므로 jit_compile 없이 tf.function 으로만 돈다.
"""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from frcnn.data import image_header
from tests.serving import hostile

SIZES = [(1, 1), (17, 33), (240, 320), (301, 97)]
FORMATS = [("JPEG", {}), ("JPEG", {"progressive": True, "exif": b"Exif\x00\x00" + bytes(40)}),
           ("PNG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {}), ("WEBP", {"lossless": True})]


def _encode(height, width, fmt, options, seed=0, mode="RGB"):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _animated(fmt, frames, height=20, width=30):
    images = [Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8))
              for seed in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:])
    return buffer.getvalue()


def _pil_dims(data):
    """진짜 디코더의 답: (H, W, 프레임 수)."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size[1], image.size[0], getattr(image, "n_frames", 1)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _graph_dims(encoded):
    return image_header.header_dims(encoded)


def _graph(data):
    try:
        return tuple(int(value) for value in _graph_dims(tf.constant(data)).numpy())
    except tf.errors.InvalidArgumentError:
        return None


def _samples():
    for fmt, options in FORMATS:
        for height, width in SIZES:
            yield f"{fmt}{'+' if options else ''}-{height}x{width}", _encode(height, width, fmt, options)
    yield "PNG-gray", _encode(45, 70, "PNG", {}, mode="L")
    yield "GIF-anim", _animated("GIF", 4)
    yield "WEBP-anim", _animated("WEBP", 3)
    yield "GIF-bomb", hostile.gif_bomb(5000, 4000, 25)
    yield "PNG-bomb", hostile.png_bomb(9000, 8000)
    yield "JPEG-claims", hostile.jpeg_claiming(30000, 30000)


SAMPLES = dict(_samples())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_python_and_graph_dims_match_the_real_decoder(name, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL 이 폭탄의 머리도 읽게 (디코딩은 하지 않는다)
    data = SAMPLES[name]
    expected = _pil_dims(data)
    assert image_header.image_dims(data) == expected
    assert _graph(data) == expected


def test_tf_decodes_every_gif_frame_at_the_screen_size():
    """TF 는 GIF 의 모든 프레임을 논리 화면 크기로 푼다: 그래서 프레임 수를 센다."""
    data = _animated("GIF", 4)
    assert tuple(tf.io.decode_gif(data).shape[:3]) == (4, 20, 30)
    assert image_header.image_dims(data)[2] == 4


@pytest.mark.parametrize("name", ["JPEG-240x320", "PNG-240x320", "GIF-240x320", "BMP-240x320", "WEBP-240x320",
                                  "WEBP+-240x320", "GIF-anim"])
def test_truncated_headers_never_give_a_wrong_size(name):
    data = SAMPLES[name]
    full = _pil_dims(data)
    for length in range(0, 64):
        prefix = data[:length]
        try:
            python = image_header.image_dims(prefix)
        except image_header.ImageHeaderError:
            python = None
        graph = _graph(prefix)
        if python is None:
            assert graph in (None, (-1, -1, -1)), (length, graph)
        else:
            # 형식을 알아보지 못한 앞부분은 0 (디코더가 거절), 알아보면 진짜 크기 (GIF 는 그때까지의 프레임)
            assert python == graph, (length, python, graph)
            assert python == (0, 0, 0) or (python[:2] == full[:2] and python[2] <= full[2]), (length, python)


def test_garbage_after_the_magic_is_an_error_or_a_size_never_a_crash():
    rng = np.random.default_rng(7)
    magics = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8X"]
    for trial in range(200):
        data = magics[trial % len(magics)] + rng.integers(0, 256, rng.integers(0, 80), np.uint8).tobytes()
        try:
            python = image_header.image_dims(data)
        except image_header.ImageHeaderError:
            python = None
        graph = _graph(data)
        if python is not None and not data.startswith(b"\xff\xd8"):
            assert graph == python, (data, python, graph)
        if python is None and not data.startswith(b"\xff\xd8"):
            assert graph == (-1, -1, -1), (data, graph)


def test_check_pixels_names_the_size_and_the_budget():
    data = SAMPLES["PNG-bomb"]
    assert image_header.check_pixels(data, 9000 * 8000) == 9000 * 8000
    with pytest.raises(image_header.PixelBudgetError, match=r"9000x8000 pixels exceeds the pixel budget of "
                                                            r"1000 pixels \(--flag\)"):
        image_header.check_pixels(data, 1000, "--flag")
    with pytest.raises(image_header.PixelBudgetError, match=r"5000x4000 pixels x 25 frames"):
        image_header.check_pixels(SAMPLES["GIF-bomb"], image_header.DEFAULT_MAX_IMAGE_PIXELS)


@tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int64)])
def _checked(encoded, budget):
    return tf.shape(image_header.checked_decode(encoded, budget))


def test_checked_decode_decodes_within_the_budget_and_refuses_before_decoding_over_it():
    data = SAMPLES["PNG-240x320"]
    assert _checked(data, 240 * 320).numpy().tolist() == [240, 320, 3]
    message = "image of 320x240 pixels exceeds the pixel budget of 76799 pixels"
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _checked(data, 240 * 320 - 1)
    # 20000×20000 (TF 는 1.2 GB 로 풀 것) 도 머리만 읽고 곧바로 거절한다
    with pytest.raises(tf.errors.InvalidArgumentError, match="20000x20000 pixels exceeds"):
        _checked(hostile.png_bomb(20000, 20000), image_header.DEFAULT_MAX_IMAGE_PIXELS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="5000x4000 pixels x 25 frames"):
        _checked(SAMPLES["GIF-bomb"], image_header.DEFAULT_MAX_IMAGE_PIXELS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="invalid or truncated image header"):
        _checked(data[:20], image_header.DEFAULT_MAX_IMAGE_PIXELS)


@pytest.mark.parametrize("name", ["PNG-bomb", "GIF-bomb", "JPEG-claims"])
def test_graph_and_python_refuse_with_the_same_message(name):
    data = SAMPLES[name]
    with pytest.raises(image_header.PixelBudgetError) as python:
        image_header.check_pixels(data, 1000, "how")

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def check(encoded):
        image_header.check_pixels_op(encoded, 1000, "how")

    with pytest.raises(tf.errors.InvalidArgumentError) as graph:
        check(tf.constant(data))
    assert f"[{python.value}]" in str(graph.value)
