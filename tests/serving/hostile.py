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


# ---------------------------------------------------------------- 퍼즈: 정상 요청을 망가뜨려 보낸다

REST_KINDS = ("truncate", "bit_flips", "type_swap", "bomb", "image_bit_flips", "huge_header", "deep",
              "not_utf8", "unknown_keys")
GRPC_KINDS = ("huge_shape", "shape_mismatch", "dtype_swap", "bomb", "raw_bit_flips", "raw_truncate",
              "negative_dim", "image_bit_flips")
SERVER_ERRORS = ("INTERNAL", "UNKNOWN", "DATA_LOSS", "UNIMPLEMENTED")


def _small_png(rng):
    height, width = int(rng.integers(4, 24)), int(rng.integers(4, 24))
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(data):
    import base64
    return {"b64": base64.b64encode(data).decode("ascii")}


def _example(encoded):
    from tensorflow.core.example import example_pb2
    from tensorflow.core.example import feature_pb2
    feature = feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[encoded]))
    return example_pb2.Example(features=feature_pb2.Features(feature={"image/encoded": feature}))


def _valid_document(rng):
    """정상 요청 하나 (네 가지 꼴 중 하나)."""
    choice = int(rng.integers(4))
    if choice == 0:
        return {"signature_name": "serve_bytes", "instances": [_b64(_small_png(rng))]}
    if choice == 1:
        example = _example(_small_png(rng)).SerializeToString()
        return {"signature_name": "serve_examples", "instances": [_b64(example)]}
    image = rng.integers(0, 256, (int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3)).tolist()
    return {"instances": [image]} if choice == 2 else {"inputs": {"images": [image]}}


def _bombs():
    return [png_bomb(20000, 20000), jpeg_claiming(30000, 30000), gif_bomb(4000, 4000, 20)]


def _flip_bits(rng, data, count):
    data = bytearray(data)
    for _ in range(count):
        index = int(rng.integers(len(data)))
        data[index] ^= 1 << int(rng.integers(8))
    return bytes(data)


def _swap_a_value(rng, document):
    """JSON 문서의 값 하나를 다른 종류로 바꾼다 (무작위 경로)."""
    replacements = [None, True, -1, 1e308, "x", [], {}, [[[]]], 2 ** 70, {"b64": "!!"}, -3.5]
    parent, key, node = None, None, document
    while isinstance(node, (dict, list)) and node and (parent is None or rng.random() < 0.8):
        key = str(rng.choice(sorted(node))) if isinstance(node, dict) else int(rng.integers(len(node)))
        parent, node = node, node[key]
    parent[key] = replacements[int(rng.integers(len(replacements)))]
    return document


def rest_body(rng, kind, bombs):
    """kind 대로 망가뜨린 REST predict 본문 (bytes)."""
    import json
    document = _valid_document(rng)
    body = json.dumps(document).encode()
    if kind == "truncate":
        return body[:int(rng.integers(len(body)))]
    if kind == "bit_flips":
        return _flip_bits(rng, body, int(rng.integers(1, 8)))
    if kind == "type_swap":
        return json.dumps(_swap_a_value(rng, document)).encode()
    if kind in ("bomb", "image_bit_flips", "huge_header"):
        image = bombs[int(rng.integers(len(bombs)))] if kind == "bomb" else _small_png(rng)
        if kind == "image_bit_flips":
            image = _flip_bits(rng, image, int(rng.integers(1, 6)))
        if kind == "huge_header":  # IHDR 의 크기만 크게 (CRC 는 틀린 채)
            size = (int(value) for value in rng.integers(1, 2 ** 31, 2))
            image = image[:16] + struct.pack(">II", *size) + image[24:]
        signature = "serve_bytes" if rng.random() < 0.5 else "serve_examples"
        value = image if signature == "serve_bytes" else _example(image).SerializeToString()
        return json.dumps({"signature_name": signature, "instances": [_b64(value)]}).encode()
    if kind == "deep":
        depth = int(rng.integers(30, 3000))
        return b'{"instances": ' + b"[" * depth + b"1" + b"]" * depth + b"}"
    if kind == "not_utf8":
        index = int(rng.integers(len(body)))
        return body[:index] + b"\xff\xfe" + body[index:]
    document[str(rng.integers(1000))] = "unexpected"
    return json.dumps(document).encode()


def tensor_request(model_name, signature, name, proto):
    from tensorflow_serving.apis import predict_pb2
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs[name].CopyFrom(proto)
    return request


def grpc_request(rng, kind, bombs, model_name):
    """kind 대로 망가뜨린 gRPC PredictRequest 의 직렬화 바이트."""
    import tensorflow as tf
    if kind in ("bomb", "image_bit_flips"):
        if kind == "bomb":
            image = bombs[int(rng.integers(len(bombs)))]
        else:
            image = _flip_bits(rng, _small_png(rng), 3)
        proto = tf.make_tensor_proto(np.array([image], dtype=object))
        return tensor_request(model_name, "serve_bytes", "image_bytes", proto).SerializeToString()
    image = rng.integers(0, 256, (1, int(rng.integers(2, 9)), int(rng.integers(2, 9)), 3)).astype(np.uint8)
    proto = tf.make_tensor_proto(image)
    if kind == "huge_shape":
        proto = huge_tensor_proto([int(v) for v in 2 ** rng.integers(0, 40, 4)],
                                  types_pb2.DT_STRING if rng.random() < 0.3 else types_pb2.DT_UINT8)
    elif kind == "shape_mismatch":
        proto.tensor_shape.dim[int(rng.integers(4))].size += int(rng.integers(1, 1000))
    elif kind == "dtype_swap":
        proto.dtype = int(rng.choice([types_pb2.DT_FLOAT, types_pb2.DT_STRING, types_pb2.DT_INT64,
                                      types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, 999, 0]))
    elif kind == "negative_dim":
        proto.tensor_shape.dim[int(rng.integers(4))].size = -int(rng.integers(1, 10))
    serialized = tensor_request(model_name, "", "images", proto).SerializeToString()
    if kind == "raw_bit_flips":
        return _flip_bits(rng, serialized, int(rng.integers(1, 8)))
    if kind == "raw_truncate":
        return serialized[:int(rng.integers(len(serialized)))]
    return serialized


def fuzz(host, rest_port, grpc_port, model_name, seed, rest_requests, grpc_requests):
    """정해진 씨앗으로 망가뜨린 REST·gRPC 요청들을 보내고 답을 센다.

    Returns:
      {"rest": {kind: {HTTP 상태: 수}}, "grpc": {kind: {상태 코드 이름: 수}}}.
    """
    import grpc
    import http.client
    rng = np.random.default_rng(seed)
    bombs = _bombs()
    counts = {"rest": {}, "grpc": {}}
    connection = http.client.HTTPConnection(host, rest_port, timeout=30)
    for _ in range(rest_requests):
        kind = REST_KINDS[int(rng.integers(len(REST_KINDS)))]
        body = rest_body(rng, kind, bombs)
        try:
            connection.request("POST", f"/v1/models/{model_name}:predict", body=body)
            response = connection.getresponse()
            response.read()
            status = response.status
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
        except (http.client.HTTPException, OSError):
            connection.close()
            status = "connection closed"
        by_status = counts["rest"].setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + 1
    connection.close()
    with grpc.insecure_channel(f"{host}:{grpc_port}") as channel:
        predict = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
        for _ in range(grpc_requests):
            kind = GRPC_KINDS[int(rng.integers(len(GRPC_KINDS)))]
            try:
                predict(grpc_request(rng, kind, bombs, model_name), timeout=30)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            by_code = counts["grpc"].setdefault(kind, {})
            by_code[code] = by_code.get(code, 0) + 1
    return counts


def server_errors(counts):
    """5xx (REST) 와 서버 탓 상태 (gRPC INTERNAL, UNKNOWN, …) 의 수."""
    rest = sum(count for by_status in counts["rest"].values() for status, count in by_status.items()
               if not isinstance(status, int) or status >= 500)
    grpc_errors = sum(count for by_code in counts["grpc"].values() for code, count in by_code.items()
                      if code in SERVER_ERRORS)
    return rest + grpc_errors
