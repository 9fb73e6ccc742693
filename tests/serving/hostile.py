"""적대적 입력 만들기: 압축 폭탄 (PNG, JPEG, GIF) 과 거대한 모양의 TensorProto. 테스트와 benchmarks/ 가 함께 쓴다.

모두 진짜 디코더 (PIL, TF) 가 읽는 파일이다: PNG 는 0 으로 된 행들을 zlib 으로 흘려 압축하고 (메모리에 다 풀지
않는다), JPEG 은 PIL 이 만든 작은 JPEG 의 SOF 크기만 바꾸고, GIF 는 1×1 프레임을 큰 논리 화면에 여러 번 넣는다.
"""

import io
import struct
import zlib

import numpy as np
from PIL import Image
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _zeros_zlib(size, chunk=1 << 20):
    """size 바이트의 0 을 zlib 스트림으로. 조각마다 Z_FULL_FLUSH 로 사전을 비우면 조각의 압축 결과가 늘 같아,
    한 번만 압축해 되풀이한다 (400 MB 가 1 초 안에). 체크섬 (adler32) 은 전체 데이터로 따로 센다."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    count, remainder = divmod(size, chunk)
    checksum = 1
    for _ in range(count):
        checksum = zlib.adler32(zeros, checksum)
    tail_compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_compressor.compress(bytes(remainder)) + tail_compressor.flush()
    checksum = zlib.adler32(bytes(remainder), checksum)
    return b"\x78\xda" + block * count + tail + struct.pack(">I", checksum)


def png_bomb(width, height):
    """width × height 검은 회색조 PNG (행마다 필터 0 + 0 들). 20000×20000 은 ≈ 390 KB 로, TF 가 RGB 로 풀면
    1.2 GB 가 된다."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", _zeros_zlib(height * (1 + width))) + _png_chunk(b"IEND", b""))


def jpeg_claiming(width, height):
    """PIL 이 만든 16×16 JPEG 의 SOF0 크기만 width × height 로 바꾼 것 (머리는 그 크기를 말한다)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros([16, 16, 3], np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb(width, height, frames):
    """width × height 논리 화면에 1×1 프레임 frames 개 (TF 는 프레임마다 화면 전체를 디코딩한다)."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros([1, 1, 3], np.uint8)).save(buffer, format="GIF")
    data = bytearray(buffer.getvalue())
    packed = data[10]
    start = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    end = data.rindex(b"\x3b")
    blocks = bytes(data[start:end])  # (확장 +) 이미지 서술자 + 데이터
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data[:start]) + blocks * frames + b"\x3b"


def huge_tensor_proto(shape, dtype=types_pb2.DT_UINT8):
    """값 없이 모양만 큰 TensorProto (tf.make_ndarray 는 모양대로 0 으로 채운다)."""
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape]))


def rss_mib(pid="self"):
    """프로세스의 상주 메모리 (MiB, /proc/PID/status 의 VmRSS)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")
