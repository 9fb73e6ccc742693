"""TFRecord 형식: 특징 이름, tf.train.Example 만들기, 파싱 명세, 앵커 매칭 코드의 바이트 변환.

TF Object Detection API 의 특징 이름을 그대로 써서 기존 TF 도구가 레코드를 읽을 수 있다.
이 프로젝트가 더하는 특징은 미리 계산한 RPN 앵커 매칭 코드 두 벌(원본·좌우 뒤집기)과 그 지문이다.

용어:
  G 한 이미지의 물체 수, A 캔버스 하나의 앵커 수 (`config.num_anchors`).
  박스: 정규화 [0, 1] 좌표. 레코드에는 OD API 관례대로 xmin/ymin/xmax/ymax 네 목록으로 저장하고,
    라이브러리 안에서는 [ymin, xmin, ymax, xmax] 로 다룬다. 정규화 = 연속 픽셀 / (H 또는 W).
  앵커 매칭 코드: −1 무시, 0 음성, k ≥ 1 은 GT k−1 에 매칭된 양성 (`frcnn.modeling.rpn_targets`).
    레코드에는 int16 little-endian 바이트열 (길이 2·A 바이트).
"""

import numpy as np
import tensorflow as tf

from frcnn.ops import box_ops
from frcnn.data import resize

ENCODED = "image/encoded"
FORMAT = "image/format"
FILENAME = "image/filename"
SOURCE_ID = "image/source_id"
HEIGHT = "image/height"
WIDTH = "image/width"
BOX_XMIN = "image/object/bbox/xmin"
BOX_YMIN = "image/object/bbox/ymin"
BOX_XMAX = "image/object/bbox/xmax"
BOX_YMAX = "image/object/bbox/ymax"
CLASS_LABEL = "image/object/class/label"
CLASS_TEXT = "image/object/class/text"
DIFFICULT = "image/object/difficult"
TRUNCATED = "image/object/truncated"
ANCHOR_MATCHES = "image/anchor_matches"
ANCHOR_MATCHES_FLIPPED = "image/anchor_matches_flipped"
ANCHOR_FINGERPRINT = "image/anchor_fingerprint"

# 앵커 매칭 코드의 저장 형식: int16 little-endian.
ANCHOR_MATCHES_DTYPE = np.dtype("<i2")


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _int64_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value) for value in values]))


def _float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value) for value in values]))


def encode_anchor_matches(anchor_matches) -> bytes:
    """앵커 매칭 코드 [A] 정수 배열을 int16 little-endian 바이트로 바꾼다."""
    return np.asarray(anchor_matches).astype(ANCHOR_MATCHES_DTYPE).tobytes()


def decode_anchor_matches(encoded, num_anchors):
    """레코드의 앵커 매칭 바이트를 [A] int32 텐서로 푼다.

    Args:
      encoded: string 스칼라 텐서, `encode_anchor_matches` 의 결과.
      num_anchors: int, A.

    Returns:
      [A] int32.
    """
    decoded = tf.io.decode_raw(encoded, tf.int16, little_endian=True)
    return tf.ensure_shape(tf.cast(decoded, tf.int32), [num_anchors])


def build_example(example, anchor_matches, anchor_matches_flipped, fingerprint):
    """변환 소스의 한 이미지와 앵커 코드로 tf.train.Example 을 만든다.

    Args:
      example: `convert.SourceExample` (image_bytes, image_format, filename, image_id, height,
        width, normalized_boxes [G, 4] float32 [ymin, xmin, ymax, xmax], class_ids [G],
        class_names [G], difficult [G] bool, truncated [G] bool).
      anchor_matches: [A] 정수, 원본 이미지의 앵커 매칭 코드.
      anchor_matches_flipped: [A] 정수, 좌우 뒤집은 이미지의 앵커 매칭 코드.
      fingerprint: str, `config.anchor_fingerprint`.

    Returns:
      tf.train.Example.
    """
    boxes = np.asarray(example.normalized_boxes, np.float32).reshape(-1, 4)
    feature = {
        ENCODED: _bytes_feature([example.image_bytes]),
        FORMAT: _bytes_feature([example.image_format.encode()]),
        FILENAME: _bytes_feature([example.filename.encode()]),
        SOURCE_ID: _bytes_feature([example.image_id.encode()]),
        HEIGHT: _int64_feature([example.height]),
        WIDTH: _int64_feature([example.width]),
        BOX_YMIN: _float_feature(boxes[:, 0]),
        BOX_XMIN: _float_feature(boxes[:, 1]),
        BOX_YMAX: _float_feature(boxes[:, 2]),
        BOX_XMAX: _float_feature(boxes[:, 3]),
        CLASS_LABEL: _int64_feature(example.class_ids),
        CLASS_TEXT: _bytes_feature([name.encode() for name in example.class_names]),
        DIFFICULT: _int64_feature(np.asarray(example.difficult, bool)),
        TRUNCATED: _int64_feature(np.asarray(example.truncated, bool)),
        ANCHOR_MATCHES: _bytes_feature([encode_anchor_matches(anchor_matches)]),
        ANCHOR_MATCHES_FLIPPED: _bytes_feature([encode_anchor_matches(anchor_matches_flipped)]),
        ANCHOR_FINGERPRINT: _bytes_feature([fingerprint.encode()]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parsing_spec():
    """`tf.io.parse_single_example` 용 특징 명세."""
    scalar_string = tf.io.FixedLenFeature([], tf.string)
    scalar_int = tf.io.FixedLenFeature([], tf.int64)
    return {
        ENCODED: scalar_string,
        FORMAT: scalar_string,
        FILENAME: scalar_string,
        SOURCE_ID: scalar_string,
        HEIGHT: scalar_int,
        WIDTH: scalar_int,
        BOX_XMIN: tf.io.VarLenFeature(tf.float32),
        BOX_YMIN: tf.io.VarLenFeature(tf.float32),
        BOX_XMAX: tf.io.VarLenFeature(tf.float32),
        BOX_YMAX: tf.io.VarLenFeature(tf.float32),
        CLASS_LABEL: tf.io.VarLenFeature(tf.int64),
        CLASS_TEXT: tf.io.VarLenFeature(tf.string),
        DIFFICULT: tf.io.VarLenFeature(tf.int64),
        TRUNCATED: tf.io.VarLenFeature(tf.int64),
        ANCHOR_MATCHES: scalar_string,
        ANCHOR_MATCHES_FLIPPED: scalar_string,
        ANCHOR_FINGERPRINT: scalar_string,
    }


def parse_example(serialized):
    """직렬화된 Example 하나를 밀집 텐서 dict 로 푼다.

    Args:
      serialized: string 스칼라 텐서.

    Returns:
      dict: 'image_bytes', 'format', 'filename', 'source_id', 'anchor_fingerprint' (string 스칼라),
        'anchor_matches_bytes', 'anchor_matches_flipped_bytes' (string 스칼라),
        'height', 'width' (int32 스칼라), 'boxes' [G, 4] float32 정규화 [ymin, xmin, ymax, xmax],
        'classes' [G] int32 (1부터), 'class_names' [G] string, 'difficult' [G] bool,
        'truncated' [G] bool.
    """
    features = tf.io.parse_single_example(serialized, parsing_spec())
    dense = {key: tf.sparse.to_dense(value) if isinstance(value, tf.sparse.SparseTensor) else value
             for key, value in features.items()}
    # [G, 4] 정규화 박스
    boxes = tf.stack([dense[BOX_YMIN], dense[BOX_XMIN], dense[BOX_YMAX], dense[BOX_XMAX]], axis=-1)
    return {
        "image_bytes": dense[ENCODED],
        "format": dense[FORMAT],
        "filename": dense[FILENAME],
        "source_id": dense[SOURCE_ID],
        "height": tf.cast(dense[HEIGHT], tf.int32),
        "width": tf.cast(dense[WIDTH], tf.int32),
        "boxes": boxes,
        "classes": tf.cast(dense[CLASS_LABEL], tf.int32),
        "class_names": dense[CLASS_TEXT],
        "difficult": dense[DIFFICULT] > 0,
        "truncated": dense[TRUNCATED] > 0,
        "anchor_matches_bytes": dense[ANCHOR_MATCHES],
        "anchor_matches_flipped_bytes": dense[ANCHOR_MATCHES_FLIPPED],
        "anchor_fingerprint": dense[ANCHOR_FINGERPRINT],
    }


def canvas_boxes(normalized_boxes, heights, widths, config):
    """정규화 GT 를 캔버스 픽셀로 바꾼다 (학습 파이프라인과 같은 float32 연산).

    Args:
      normalized_boxes: [..., G, 4] float32 정규화 [ymin, xmin, ymax, xmax], −1 패딩.
      heights: [...] 정수 원본 높이 H.
      widths: [...] 정수 원본 너비 W.
      config: `ExperimentConfig`.

    Returns:
      gt_boxes: [..., G, 4] float32 캔버스 픽셀 (패딩은 −1 그대로).
      image_sizes: [..., 2] float32 리사이즈된 (h, w).
    """
    _, resized = resize.resize_scale(heights, widths, config.input.min_size, config.input.max_size)
    image_sizes = tf.cast(resized, tf.float32)
    # [..., 1, 4] (h, w, h, w)
    scale = tf.concat([image_sizes, image_sizes], axis=-1)[..., None, :]
    return box_ops.scale_boxes(normalized_boxes, scale), image_sizes
