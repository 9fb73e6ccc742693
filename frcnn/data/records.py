"""TFRecord 형식의 유일한 집: 특징 이름·dtype, tf.Example 쓰기, 한 예제 파싱, 앵커 매칭 코드의 바이트 변환.

TF Object Detection API 의 특징 이름을 그대로 써서 기존 TF 도구가 레코드를 읽을 수 있다.
`image/object/is_crowd` (COCO iscrowd) 가 없는 옛 레코드 (VOC) 는 모든 물체가 crowd 가 아닌 것으로 읽는다.
이 프로젝트가 더하는 특징은 미리 계산한 RPN 앵커 매칭 코드 두 벌(원본·좌우 뒤집기, 희소)과 그 지문이다.
스케일 지터 (`input.train_short_sides`) 로 만든 레코드는 min_size 가 아닌 짧은 변 s 마다 같은 형식의 두 벌을
`image/anchor_matches/s{s}/…`, `image/anchor_matches_flipped/s{s}/…` 에 더 담는다 (그 이미지가 s 에서 들어가는
캔버스 `record_spec.scaled_canvas` 의 앵커 번호).
특징 이름 문자열("image/...")은 이 모듈에만 있다. 쓰는 곳:
  쓰기: `build_example` (make_tfrecords), `image_example` (서버 워밍업).
  그래프 안 파싱: `parse_example` (학습 파이프라인), `parse_image_size` (방향 거르기),
    `parse_image_bytes` (SavedModel 의 serve_examples).
  그래프 밖 파싱: `read_example_numpy` (평가기; 다른 도구가 만든 레코드도 읽는다).
  파일 이름: `shard_name`, `shard_glob`, `SHARD_NAME_PATTERN`, `metadata_path` (변환기와 입력 파이프라인).

용어:
  G 한 이미지의 물체 수, A 캔버스 하나의 앵커 수 (`config.num_anchors`).
  박스: 정규화 [0, 1] 좌표. 레코드에는 OD API 관례대로 xmin/ymin/xmax/ymax 네 목록으로 저장하고,
    라이브러리 안에서는 [ymin, xmin, ymax, xmax] 로 다룬다. 정규화 = 연속 픽셀 / (H 또는 W).
  앵커 매칭 코드: −1 무시, 0 음성, k ≥ 1 은 GT k−1 에 매칭된 양성 (`frcnn.modeling.rpn_targets`).
  희소 앵커 라벨 (형식 `ANCHOR_LABEL_FORMAT`): 한 벌마다 int64 목록 세 개 —
    무시 앵커 번호의 차분, 양성 앵커 번호의 차분, 양성 앵커의 코드 k. 번호는 오름차순이고 차분의 첫 값은 첫 번호
    그대로라서 누적합이 번호다. 음성 (0) 은 적지 않는다. 이미지 경계를 넘어 무시되는 앵커 (기하만으로 정해진다)
    도 적지 않고, 읽을 때 이미지 크기로 다시 계산한 마스크 (`boundary_ignored`) 로 −1 을 채운다.
    tf.Example 의 Int64List 는 packed varint 라서 128 미만의 차분·코드는 1 바이트다 (파싱은 C++ 한 번, 그래프 안).
"""

import glob
import os
import re

import numpy as np
import tensorflow as tf

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
IS_CROWD = "image/object/is_crowd"
ANCHOR_FINGERPRINT = "image/anchor_fingerprint"

# 희소 앵커 라벨의 형식 이름 (지문과 `<split>.json` 의 "anchor_labels" 에 들어간다; 바꾸면 옛 레코드는 거부된다).
ANCHOR_LABEL_FORMAT = "sparse-varint-1"
# 희소 라벨 한 벌의 세 목록: parse_example 키 접미사 → 특징 이름 접미사.
_ANCHOR_LABEL_PARTS = (("ignore_deltas", "ignore_index_deltas"),
                       ("positive_deltas", "positive_index_deltas"),
                       ("positive_codes", "positive_codes"))
# 원본·뒤집기 두 벌의 특징 이름 앞부분 (parse_example 키 앞부분과 같다: anchor_matches, anchor_matches_flipped).
ANCHOR_MATCHES = "image/anchor_matches"
ANCHOR_MATCHES_FLIPPED = "image/anchor_matches_flipped"

# 샤드 파일 이름 `<split>-NNNNN-of-MMMMM.tfrecord` 의 정규식 (split 그룹).
SHARD_NAME_PATTERN = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.tfrecord$")


def shard_name(split: str, index: int, num_shards: int) -> str:
    """`num_shards` 개 중 `index` 번째 (0부터) 샤드의 파일 이름."""
    return f"{split}-{index:05d}-of-{num_shards:05d}.tfrecord"


def shard_glob(directory: str, split: str) -> str:
    """`directory` 안 `split` 분할의 모든 샤드에 맞는 glob (디렉터리·분할 이름의 특수 문자는 이스케이프)."""
    return os.path.join(glob.escape(directory), f"{glob.escape(split)}-*-of-*.tfrecord")


def metadata_path(directory: str, split: str) -> str:
    """샤드 옆의 메타데이터 json 경로 `<directory>/<split>.json`."""
    return os.path.join(directory, f"{split}.json")


def _bytes_feature(values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _int64_feature(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value) for value in values]))


def _float_feature(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value) for value in values]))


def anchor_label_keys(flipped: bool, short_side=None):
    """희소 라벨 한 벌의 parse_example 키 세 개 (무시 차분, 양성 차분, 양성 코드).

    short_side: None 이면 min_size 의 라벨, 정수 s 면 스케일 지터의 짧은 변 s 의 라벨 (키에 `_s{s}` 가 붙는다).
    """
    prefix = "anchor_matches_flipped" if flipped else "anchor_matches"
    if short_side is not None:
        prefix = f"{prefix}_s{int(short_side)}"
    return tuple(f"{prefix}_{key}" for key, _ in _ANCHOR_LABEL_PARTS)


def _anchor_label_features(flipped: bool, short_side=None):
    """희소 라벨 한 벌의 특징 이름 세 개 (`anchor_label_keys` 와 같은 순서; s 면 `…/s{s}/…`)."""
    prefix = ANCHOR_MATCHES_FLIPPED if flipped else ANCHOR_MATCHES
    if short_side is not None:
        prefix = f"{prefix}/s{int(short_side)}"
    return tuple(f"{prefix}/{name}" for _, name in _ANCHOR_LABEL_PARTS)


def _deltas(indices):
    """오름차순 번호 → 차분 (첫 값은 첫 번호)."""
    return np.diff(indices, prepend=0)


def encode_anchor_matches(anchor_matches, boundary_ignored=None):
    """[A] 밀집 매칭 코드를 희소 라벨 세 목록으로 바꾼다 (모듈 설명의 형식).

    Args:
      anchor_matches: [A] 정수, −1 무시 / 0 음성 / k ≥ 1 양성.
      boundary_ignored: 선택, [A] bool — 이미지 경계를 넘어 무시되는 앵커 (적지 않는다). None 이면 없음.

    Returns:
      (무시 번호 차분, 양성 번호 차분, 양성 코드): int64 numpy 배열 세 개.

    Raises:
      ValueError: 경계 밖 앵커의 코드가 −1 이 아닐 때 (읽는 쪽이 같은 코드를 되살릴 수 없다).
    """
    matches = np.asarray(anchor_matches).astype(np.int64).reshape(-1)
    stored = np.ones(matches.shape, bool)
    if boundary_ignored is not None:
        stored = ~np.asarray(boundary_ignored, bool).reshape(-1)
        if np.any(matches[~stored] != -1):
            raise ValueError("an anchor crossing the image boundary has a match code other than -1")
    ignored = np.flatnonzero(stored & (matches < 0))
    positive = np.flatnonzero(stored & (matches > 0))
    return _deltas(ignored), _deltas(positive), matches[positive]


def decode_anchor_matches(sparse_labels, boundary_ignored):
    """희소 라벨 세 목록과 경계 마스크를 [A] int32 밀집 매칭 코드로 푼다 (그래프 안, 정적 모양).

    Args:
      sparse_labels: (무시 차분 [n], 양성 차분 [p], 양성 코드 [p]) 정수 텐서 — `parse_example` 의
        `anchor_label_keys(flipped)` 값.
      boundary_ignored: [A] bool 텐서, 이미지 경계를 넘어 무시되는 앵커 (A 가 정적이면 결과도 정적).

    Returns:
      [A] int32: 적힌 번호는 그 코드, 경계 밖은 −1, 나머지는 0 (음성).
    """
    ignore_deltas, positive_deltas, positive_codes = (tf.cast(part, tf.int32) for part in sparse_labels)
    # [n + p, 1] 무시·양성 앵커 번호 (차분의 누적합)
    indices = tf.concat([tf.cumsum(ignore_deltas), tf.cumsum(positive_deltas)], axis=0)[:, None]
    updates = tf.concat([tf.fill(tf.shape(ignore_deltas), -1), positive_codes], axis=0)
    dense = tf.scatter_nd(indices, updates, tf.shape(boundary_ignored, out_type=tf.int32))
    dense = tf.where(boundary_ignored, -1, dense)
    return tf.ensure_shape(dense, boundary_ignored.shape)


def _image_features(image_bytes, image_format, height, width):
    """이미지 부분의 특징 네 개 (encoded, format, height, width)."""
    if isinstance(image_format, str):
        image_format = image_format.encode()
    return {
        ENCODED: _bytes_feature([image_bytes]),
        FORMAT: _bytes_feature([image_format]),
        HEIGHT: _int64_feature([height]),
        WIDTH: _int64_feature([width]),
    }


def image_example(image_bytes, image_format, height, width):
    """이미지 하나만 담은 최소 tf.train.Example (`serve_examples` 입력·서버 워밍업용).

    Args:
      image_bytes: bytes, 인코딩된 JPEG/PNG.
      image_format: str 또는 bytes, 예 'png'.
      height: int, 이미지 높이 H.
      width: int, 이미지 너비 W.

    Returns:
      tf.train.Example (encoded, format, height, width 특징만).
    """
    feature = _image_features(image_bytes, image_format, height, width)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _anchor_label_feature_dict(anchor_matches, anchor_matches_flipped, boundary_ignored, short_side=None):
    """두 벌의 희소 라벨 특징 여섯 개 (short_side: None 이면 min_size 의 것, s 면 지터 스케일 s 의 것)."""
    features = {}
    for flipped, matches in ((False, anchor_matches), (True, anchor_matches_flipped)):
        parts = encode_anchor_matches(matches, boundary_ignored)
        names = _anchor_label_features(flipped, short_side)
        features.update({name: _int64_feature(part) for name, part in zip(names, parts)})
    return features


def build_example(example, anchor_matches, anchor_matches_flipped, fingerprint, boundary_ignored=None,
                  scale_labels=None):
    """변환 소스의 한 이미지와 앵커 코드로 tf.train.Example 을 만든다 (앵커 코드는 희소하게 적는다).

    Args:
      example: `frcnn.data.sources.SourceExample` (image_bytes, image_format, filename, image_id, height,
        width, normalized_boxes [G, 4] float32 [ymin, xmin, ymax, xmax], class_ids [G],
        class_names [G], difficult [G] bool, truncated [G] bool, is_crowd [G] bool 또는 None = 모두 False).
      anchor_matches: [A] 정수, 원본 이미지의 앵커 매칭 코드.
      anchor_matches_flipped: [A] 정수, 좌우 뒤집은 이미지의 앵커 매칭 코드.
      fingerprint: str, `config.anchor_fingerprint`.
      boundary_ignored: 선택, [A] bool — 이미지 경계를 넘어 무시되는 앵커 (두 벌이 같다; 적지 않는다).
      scale_labels: 선택, {짧은 변 s: (matches [A_s], matches_flipped [A_s], boundary_ignored [A_s])} — 스케일
        지터 (`input.train_short_sides`) 의 스케일마다 그 스케일 캔버스의 라벨 (`…/s{s}/…` 특징; 형식은 같다).

    Returns:
      tf.train.Example.
    """
    boxes = np.asarray(example.normalized_boxes, np.float32).reshape(-1, 4)
    feature = {
        **_image_features(example.image_bytes, example.image_format, example.height, example.width),
        FILENAME: _bytes_feature([example.filename.encode()]),
        SOURCE_ID: _bytes_feature([example.image_id.encode()]),
        BOX_YMIN: _float_feature(boxes[:, 0]),
        BOX_XMIN: _float_feature(boxes[:, 1]),
        BOX_YMAX: _float_feature(boxes[:, 2]),
        BOX_XMAX: _float_feature(boxes[:, 3]),
        CLASS_LABEL: _int64_feature(example.class_ids),
        CLASS_TEXT: _bytes_feature([name.encode() for name in example.class_names]),
        DIFFICULT: _int64_feature(np.asarray(example.difficult, bool)),
        TRUNCATED: _int64_feature(np.asarray(example.truncated, bool)),
        IS_CROWD: _int64_feature(crowd_flags(example)),
        **_anchor_label_feature_dict(anchor_matches, anchor_matches_flipped, boundary_ignored),
        **{name: value for side, labels in sorted((scale_labels or {}).items())
           for name, value in _anchor_label_feature_dict(*labels, short_side=side).items()},
        ANCHOR_FINGERPRINT: _bytes_feature([fingerprint.encode()]),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def crowd_flags(example):
    """SourceExample 의 [G] bool crowd 표시 (is_crowd 가 None 이면 모두 False)."""
    if example.is_crowd is None:
        return np.zeros(len(example.class_ids), bool)
    return np.asarray(example.is_crowd, bool)


def parsing_spec(short_sides=()):
    """`tf.io.parse_single_example` 용 특징 명세 (short_sides: 함께 읽을 지터 스케일 라벨의 짧은 변들)."""
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
        IS_CROWD: tf.io.VarLenFeature(tf.int64),
        **{name: tf.io.VarLenFeature(tf.int64) for side in (None, *short_sides)
           for flipped in (False, True) for name in _anchor_label_features(flipped, side)},
        ANCHOR_FINGERPRINT: scalar_string,
    }


def parse_example(serialized, short_sides=()):
    """직렬화된 Example 하나를 밀집 텐서 dict 로 푼다.

    Args:
      serialized: string 스칼라 텐서.
      short_sides: 함께 읽을 스케일 지터 라벨의 짧은 변들 (없는 특징은 빈 목록으로 읽힌다: 레코드가 그 스케일을
        담는지는 지문이 보장한다, `RecordSpec.read`).

    Returns:
      dict: 'image_bytes', 'format', 'filename', 'source_id', 'anchor_fingerprint' (string 스칼라),
        `anchor_label_keys(False)`, `anchor_label_keys(True)` 의 키 (원본·뒤집기 희소 라벨, int64 [n]),
        short_sides 의 s 마다 `anchor_label_keys(False, s)`, `anchor_label_keys(True, s)` 의 키,
        'height', 'width' (int32 스칼라), 'boxes' [G, 4] float32 정규화 [ymin, xmin, ymax, xmax],
        'classes' [G] int32 (1부터), 'class_names' [G] string, 'difficult' [G] bool,
        'truncated' [G] bool, 'is_crowd' [G] bool (특징이 없는 레코드는 모두 False).
    """
    features = tf.io.parse_single_example(serialized, parsing_spec(short_sides))
    # VarLen 특징 하나의 SparseTensor 값은 순서대로라 .values 가 밀집 목록이다
    dense = {key: value.values if isinstance(value, tf.sparse.SparseTensor) else value
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
        "is_crowd": _pad_to(dense[IS_CROWD] > 0, tf.shape(boxes)[0]),
        **{key: dense[name] for side in (None, *short_sides) for flipped in (False, True)
           for key, name in zip(anchor_label_keys(flipped, side), _anchor_label_features(flipped, side))},
        "anchor_fingerprint": dense[ANCHOR_FINGERPRINT],
    }


def _pad_to(flags, num_objects):
    """[G'] bool 표시를 [G] 로 뒤를 False 로 채운다 (특징이 없는 옛 레코드: G' = 0)."""
    return tf.pad(flags, [[0, num_objects - tf.shape(flags)[0]]], constant_values=False)


def parse_image_bytes(serialized_examples):
    """직렬화된 Example 배치에서 인코딩된 이미지 바이트만 꺼낸다 (그래프 안, `serve_examples`).

    Args:
      serialized_examples: [B] string 텐서.

    Returns:
      [B] string, 각 예제의 image/encoded.
    """
    features = tf.io.parse_example(serialized_examples, {ENCODED: tf.io.FixedLenFeature([], tf.string)})
    return features[ENCODED]


def parse_image_size(serialized):
    """직렬화된 Example 하나에서 원본 크기만 읽는다 (디코딩 없이, 그래프 안).

    Args:
      serialized: string 스칼라 텐서.

    Returns:
      (height, width): int64 스칼라 텐서 두 개 (H, W).
    """
    sizes = tf.io.parse_single_example(serialized, {HEIGHT: tf.io.FixedLenFeature([], tf.int64),
                                                    WIDTH: tf.io.FixedLenFeature([], tf.int64)})
    return sizes[HEIGHT], sizes[WIDTH]


# ---------------------------------------------------------------- 그래프 밖 (numpy) 읽기


def _values(features, key):
    """tf.train.Example 특징 하나의 값 목록 (없거나 비었으면 [])."""
    if key not in features:
        return []
    feature = features[key]
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _boxes_numpy(features):
    """네 좌표 목록을 [G, 4] float32 정규화 [ymin, xmin, ymax, xmax] 로 묶는다."""
    columns = [_values(features, key) for key in (BOX_YMIN, BOX_XMIN, BOX_YMAX, BOX_XMAX)]
    lengths = {len(column) for column in columns}
    if len(lengths) != 1:
        raise ValueError("example whose box coordinate lists differ in length "
                         f"(ymin, xmin, ymax, xmax: {[len(column) for column in columns]})")
    return np.array(columns, np.float32).reshape(4, -1).T.copy()


def _per_object(values, num_objects, fill):
    """물체별 목록의 길이가 G 가 아니면 (없는 특징 등) fill 로 채운 목록."""
    return list(values) if len(values) == num_objects else [fill] * num_objects


def read_example_numpy(serialized: bytes) -> dict:
    """직렬화된 tf.Example 하나를 numpy·파이썬 값으로 읽는다 (그래프 밖, 평가기용).

    다른 도구가 만든 TF OD API 레코드도 받는다: 앵커 특징은 읽지 않고, 클래스 이름·difficult·
    truncated·is_crowd·source_id·filename·format 이 없으면 빈 값으로 채운다.

    Args:
      serialized: bytes, 직렬화된 tf.train.Example.

    Returns:
      dict:
        'image_bytes': bytes, image/encoded.
        'format': str, image/format ('' 이면 없음).
        'height', 'width': int, 원본 H, W.
        'boxes': [G, 4] float32 정규화 [ymin, xmin, ymax, xmax].
        'classes': [G] int64, image/object/class/label (레코드 그대로, 보통 1부터).
        'class_names': 길이 G 의 str 목록 (없거나 개수가 다르면 모두 '').
        'difficult', 'truncated', 'is_crowd': [G] bool (없거나 개수가 다르면 모두 False).
        'source_id', 'filename': str ('' 이면 없음).

    Raises:
      ValueError: image/encoded·image/height·image/width 가 없을 때, 좌표 목록 길이가 서로 다르거나
        라벨 수가 박스 수와 다를 때 (메시지에 파일 경로는 없다: 부르는 쪽이 붙인다).
    """
    features = tf.train.Example.FromString(serialized).features.feature
    encoded, height, width = (_values(features, key) for key in (ENCODED, HEIGHT, WIDTH))
    if not encoded or not height or not width:
        raise ValueError(f"example without {ENCODED}, {HEIGHT} or {WIDTH}")
    boxes = _boxes_numpy(features)
    num_objects = len(boxes)
    labels = np.asarray(_values(features, CLASS_LABEL), np.int64)
    if len(labels) != num_objects:
        raise ValueError(f"{num_objects} boxes but {len(labels)} class labels in one example")
    texts = [_text(text) for text in _values(features, CLASS_TEXT)]
    return {
        "image_bytes": encoded[0],
        "format": _text((_values(features, FORMAT) or [b""])[0]),
        "height": int(height[0]),
        "width": int(width[0]),
        "boxes": boxes,
        "classes": labels,
        "class_names": _per_object(texts, num_objects, ""),
        "difficult": np.array(_per_object(_values(features, DIFFICULT), num_objects, 0), bool),
        "truncated": np.array(_per_object(_values(features, TRUNCATED), num_objects, 0), bool),
        "is_crowd": np.array(_per_object(_values(features, IS_CROWD), num_objects, 0), bool),
        "source_id": _text((_values(features, SOURCE_ID) or [b""])[0]),
        "filename": _text((_values(features, FILENAME) or [b""])[0]),
    }
