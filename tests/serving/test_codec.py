"""codec 테스트: TF Serving REST JSON ↔ numpy 변환 함수를 직접 부른다.

REST 서버를 거치는 전체 흐름(이미지 모델, HTTP 상태)은 test_rest_server.py 가 다루고, 여기서는
입력이 여럿인 시그니처, dtype/모양, b64, 출력 직렬화, 오류 메시지가 입력 이름을 밝히는지를 본다.
기대값은 TF Serving REST API 문서(api_rest.md)와 json_tensor.cc 의 동작을 따른다.

시그니처: 변수를 가진 작은 tf.Module 을 SavedModel 로 저장했다가 불러온 실제 시그니처
  입력 scores float32 [B, 2], tag string [B], count int32 [B];
  출력 zeta float32 [B, 2], alpha_bytes string [B], mid int32 [].

용어: B 배치(인스턴스 수).
"""

import base64
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from frcnn.export import loader
from frcnn.serving import codec

BINARY = b"\x00\xff\xfe\x89PNG"  # UTF-8 이 아닌 바이트
SPECS = {
    "count": tf.TensorSpec([None], tf.int32, name="count"),
    "scores": tf.TensorSpec([None, 2], tf.float32, name="scores"),
    "tag": tf.TensorSpec([None], tf.string, name="tag"),
}


def _b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


class _Scaler(tf.Module):
    """변수 하나를 가진 시그니처 (내보낸 검출기처럼 StatefulPartitionedCall 로 저장된다)."""

    def __init__(self):
        super().__init__()
        self.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="scores"),
                                  tf.TensorSpec([None], tf.string, name="tag"),
                                  tf.TensorSpec([None], tf.int32, name="count")])
    def predict(self, scores, tag, count):
        return {"zeta": scores * self.scale, "alpha_bytes": tag, "mid": tf.reduce_sum(count)}


@pytest.fixture(scope="module")
def saved_signature(tmp_path_factory):
    """(SavedModel 디렉터리, 불러온 "sig" 시그니처)."""
    path = str(tmp_path_factory.mktemp("codec_model"))
    module = _Scaler()
    tf.saved_model.save(module, path, signatures={"sig": module.predict})
    return path, tf.saved_model.load(path).signatures["sig"]


def _raises_400(function, *args):
    """function(*args) 가 상태 400 인 RequestError 를 내는지 확인하고 메시지를 돌려준다."""
    with pytest.raises(codec.RequestError) as caught:
        function(*args)
    assert caught.value.status == 400
    return str(caught.value)


# ---- 시그니처 메타데이터 ----

def test_input_and_output_specs_of_a_loaded_signature(saved_signature):
    _, signature = saved_signature
    inputs, outputs = loader.signature_specs(signature)
    assert list(inputs) == ["count", "scores", "tag"]  # 이름 순
    assert [(spec.dtype, spec.shape.as_list()) for spec in inputs.values()] == [
        (tf.int32, [None]), (tf.float32, [None, 2]), (tf.string, [None])]
    assert list(outputs) == ["alpha_bytes", "mid", "zeta"]
    assert [(spec.dtype, spec.shape.as_list()) for spec in outputs.values()] == [
        (tf.string, [None]), (tf.int32, []), (tf.float32, [None, 2])]


def test_signature_def_json_matches_the_saved_model_proto(saved_signature):
    path, signature = saved_signature
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as stream:
        saved_model.ParseFromString(stream.read())
    # TF Serving 은 SignatureDef 를 기본값 필드까지 찍어 JSON 으로 돌려준다.
    expected = json_format.MessageToDict(saved_model.meta_graphs[0].signature_def["sig"],
                                         preserving_proto_field_name=True,
                                         always_print_fields_with_no_presence=True)
    expected.pop("defaults", None)  # TF Serving 의 SignatureDef 에는 없는 새 필드
    inputs, outputs = loader.signature_specs(signature)
    assert codec.signature_def_json("sig", inputs, outputs) == expected


# ---- 요청 본문 ----

def test_parse_json_body_accepts_objects_with_nan_and_infinity():
    # TF Serving 은 NaN/Infinity 토큰을 받는다 (api_rest.md "JSON conformance").
    document = codec.parse_json_body('{"inputs": [NaN, Infinity, -Infinity, 1.5]}'.encode("utf-8"))
    values = np.array(document["inputs"])
    assert np.isnan(values[0]) and values[1:].tolist() == [np.inf, -np.inf, 1.5]


@pytest.mark.parametrize("body, message", [
    (b"{\"instances\": [1,", "JSON Parse error"),
    (b"\xff\xfe{}", "JSON Parse error"),
    (b"", "JSON Parse error"),
    (b"\"instances\"", "JSON object"),
])
def test_parse_json_body_rejects_malformed_bodies(body, message):
    assert message in _raises_400(codec.parse_json_body, body)


# ---- 행(row) 형식 ----

def test_instances_single_input_plain_and_named_give_the_same_batch():
    specs = {"scores": SPECS["scores"]}
    plain = codec.instances_to_inputs([[1, 2], [3.5, -4]], specs)
    named = codec.instances_to_inputs([{"scores": [1, 2]}, {"scores": [3.5, -4]}], specs)
    for inputs in (plain, named):
        assert list(inputs) == ["scores"]
        assert inputs["scores"].dtype == np.float32  # JSON 정수도 float 입력으로 받는다
        np.testing.assert_array_equal(inputs["scores"], np.array([[1, 2], [3.5, -4]], np.float32))


def test_instances_multiple_inputs_are_stacked_per_input():
    instances = [
        {"scores": [0.25, 1], "tag": "héllo", "count": 7},
        {"scores": [-2, 3e-3], "tag": _b64(BINARY), "count": -1},
    ]
    inputs = codec.instances_to_inputs(instances, SPECS)
    assert sorted(inputs) == ["count", "scores", "tag"]
    assert inputs["count"].dtype == np.int32 and inputs["count"].tolist() == [7, -1]
    assert inputs["scores"].dtype == np.float32 and inputs["scores"].shape == (2, 2)
    np.testing.assert_array_equal(inputs["scores"], np.array([[0.25, 1], [-2, 3e-3]], np.float32))
    assert inputs["tag"].dtype == object and inputs["tag"].shape == (2,)
    assert inputs["tag"].tolist() == ["héllo".encode("utf-8"), BINARY]


def test_b64_instance_is_the_value_of_a_single_string_input():
    specs = {"image_bytes": tf.TensorSpec([None], tf.string)}
    bare = codec.instances_to_inputs([_b64(BINARY), _b64(b"")], specs)
    named = codec.instances_to_inputs([{"image_bytes": _b64(BINARY)}, {"image_bytes": _b64(b"")}], specs)
    for inputs in (bare, named):
        assert inputs["image_bytes"].tolist() == [BINARY, b""]
        assert all(isinstance(value, bytes) for value in inputs["image_bytes"])


def test_nested_string_instances_keep_their_shape():
    specs = {"words": tf.TensorSpec([None, 2, 2], tf.string)}
    instance = [["a", _b64(b"\x01")], [_b64(BINARY), ""]]
    inputs = codec.instances_to_inputs([instance, instance], specs)
    assert inputs["words"].shape == (2, 2, 2) and inputs["words"].dtype == object
    assert inputs["words"][1].tolist() == [[b"a", b"\x01"], [BINARY, b""]]


def test_bool_and_uint8_inputs():
    specs = {"flags": tf.TensorSpec([None, 3], tf.bool), "pixels": tf.TensorSpec([None, 2], tf.uint8)}
    inputs = codec.instances_to_inputs([{"flags": [True, False, True], "pixels": [0, 255]}], specs)
    assert inputs["flags"].dtype == np.bool_ and inputs["flags"].tolist() == [[True, False, True]]
    assert inputs["pixels"].dtype == np.uint8 and inputs["pixels"].tolist() == [[0, 255]]


# ---- 열(columnar) 형식 ----

def test_columnar_inputs_need_not_share_a_batch_size():
    # api_rest.md: 열 형식의 입력들은 0 번째 차원이 같을 필요가 없다.
    columns = {"scores": [[1, 2], [3, 4], [5, 6]], "tag": [_b64(BINARY)], "count": [1, 2]}
    inputs = codec.columnar_to_inputs(columns, SPECS)
    assert inputs["scores"].shape == (3, 2) and inputs["scores"].dtype == np.float32
    assert inputs["tag"].tolist() == [BINARY]
    assert inputs["count"].dtype == np.int32 and inputs["count"].tolist() == [1, 2]


def test_columnar_single_input_bare_named_and_scalar():
    specs = {"tag": SPECS["tag"]}
    bare = codec.columnar_to_inputs(["x", _b64(BINARY)], specs)
    named = codec.columnar_to_inputs({"tag": ["x", _b64(BINARY)]}, specs)
    assert bare["tag"].tolist() == named["tag"].tolist() == [b"x", BINARY]
    scalar = codec.columnar_to_inputs(_b64(BINARY), {"blob": tf.TensorSpec([], tf.string)})
    assert scalar["blob"].shape == () and scalar["blob"].item() == BINARY
    count = codec.columnar_to_inputs(5, {"count": tf.TensorSpec([], tf.int64)})
    assert count["count"].dtype == np.int64 and count["count"].shape == () and count["count"] == 5


# ---- 오류: 상태 400, 메시지는 입력 이름을 밝힌다 ----

GOOD = {"scores": [1, 2], "tag": "t", "count": 1}
INSTANCE_ERRORS = [
    ("float_for_int", [dict(GOOD, count=1.5)], ["count", "expected integers"]),
    ("string_for_float", [dict(GOOD, scores=["1", "2"])], ["scores", "expected numbers"]),
    ("null_for_float", [dict(GOOD, scores=[1, None])], ["scores", "expected numbers"]),
    ("number_for_string", [dict(GOOD, tag=3)], ["tag", "DT_STRING"]),
    ("object_for_string", [dict(GOOD, tag={"b64": "AA==", "x": 1})], ["tag", "DT_STRING"]),
    ("out_of_range_int32", [dict(GOOD, count=2 ** 31)], ["count", "out of range"]),
    ("ragged_numbers", [dict(GOOD, scores=[[1, 2], [3]])], ["scores", "different lengths"]),
    ("ragged_strings", [dict(GOOD, tag=[["a"], ["b", "c"]])], ["tag", "different lengths"]),
    ("different_shapes", [GOOD, dict(GOOD, scores=[1, 2, 3])], ["scores", "different shapes"]),
    ("wrong_shape", [dict(GOOD, scores=[1, 2, 3])], ["scores", "shape"]),
    ("missing_input", [{"scores": [1, 2], "count": 1}], ["instance 0", "tag"]),
    ("unknown_input", [dict(GOOD, pictures=[1])], ["instance 0", "pictures"]),
    ("bad_base64", [GOOD, dict(GOOD, tag={"b64": "@@ not base64 @@"})], ["instance 1", "tag", "base64"]),
    ("bare_value_for_many_inputs", [[1, 2]], ["instance 0", "count", "scores", "tag"]),
    ("not_a_list", {"scores": [1, 2]}, ["non-empty list"]),
    ("empty", [], ["non-empty list"]),
]


@pytest.mark.parametrize("instances, expected", [case[1:] for case in INSTANCE_ERRORS],
                         ids=[case[0] for case in INSTANCE_ERRORS])
def test_instance_errors_are_400_and_name_the_input(instances, expected):
    message = _raises_400(codec.instances_to_inputs, instances, SPECS)
    for part in expected:
        assert part in message


COLUMNAR_ERRORS = [
    ("missing_input", {"scores": [[1, 2]], "tag": ["t"]}, ["count"]),
    ("unknown_input", {"scores": [[1, 2]], "tag": ["t"], "count": [1], "extra": [0]}, ["extra"]),
    ("bare_list_for_many_inputs", [[1, 2]], ["count", "scores", "tag"]),
    ("float_for_int", {"scores": [[1, 2]], "tag": ["t"], "count": [0.5]}, ["count", "expected integers"]),
    ("ragged", {"scores": [[1, 2], [3]], "tag": ["t"], "count": [1]}, ["scores", "different lengths"]),
    ("wrong_rank", {"scores": [1, 2], "tag": ["t"], "count": [1]}, ["scores", "shape"]),
    ("bad_base64", {"scores": [[1, 2]], "tag": [{"b64": "A"}], "count": [1]}, ["tag", "base64"]),
    ("int_for_bool", {"flags": [1, 0]}, ["flags", "true/false"]),
    ("bools_for_float", {"scores": [[True, False]], "tag": ["t"], "count": [1]},
     ["scores", "expected numbers"]),
    ("float32_overflow", {"scores": [[1e39, 0]], "tag": ["t"], "count": [1]}, ["scores", "out of range"]),
]


@pytest.mark.parametrize("dtype", [tf.int32, tf.bool, tf.float32, tf.uint8])
def test_empty_list_is_an_empty_tensor(dtype):
    # TF Serving 은 빈 리스트를 빈 텐서로 받는다 (json_tensor.cc).
    inputs = codec.columnar_to_inputs({"values": []}, {"values": tf.TensorSpec([None], dtype)})
    assert inputs["values"].shape == (0,) and inputs["values"].dtype == dtype.as_numpy_dtype


@pytest.mark.parametrize("columns, expected", [case[1:] for case in COLUMNAR_ERRORS],
                         ids=[case[0] for case in COLUMNAR_ERRORS])
def test_columnar_errors_are_400_and_name_the_input(columns, expected):
    specs = {"flags": tf.TensorSpec([None], tf.bool)} if "flags" in columns else SPECS
    message = _raises_400(codec.columnar_to_inputs, columns, specs)
    for part in expected:
        assert part in message


@pytest.mark.xfail(strict=True, reason="codec 가 JSON true/false 를 숫자 입력으로 받는다 (TF Serving 은 거절)")
def test_booleans_are_not_numbers():
    # json_tensor.cc: DT_FLOAT/DT_INT32 에 true 를 주면 "is not of expected type" 오류.
    _raises_400(codec.columnar_to_inputs, {"scores": [[True, 1.0]], "tag": ["t"], "count": [1]}, SPECS)


# ---- 출력 ----

def test_outputs_to_predictions_gives_one_object_per_instance():
    # 출력 배치 B=2: float32, int64, bool, UTF-8 문자열, _bytes 문자열, UTF-8 이 아닌 문자열
    outputs = {
        "detection_scores": np.array([[0.5, 0.25], [1.0, 0.0]], np.float32),
        "num_detections": np.array([2, 0], np.int64),
        "is_crowd": np.array([True, False]),
        "detection_class_names": np.array([[b"cat", "개".encode("utf-8")], [b"", b"dog"]], dtype=object),
        "image_bytes": np.array([b"abc", BINARY], dtype=object),
        "raw": np.array([BINARY, b"ok"], dtype=object),
    }
    predictions = json.loads(json.dumps(codec.outputs_to_predictions(outputs)))
    assert predictions == [
        {"detection_scores": [0.5, 0.25], "num_detections": 2, "is_crowd": True,
         "detection_class_names": ["cat", "개"], "image_bytes": _b64(b"abc"), "raw": _b64(BINARY)},
        {"detection_scores": [1.0, 0.0], "num_detections": 0, "is_crowd": False,
         "detection_class_names": ["", "dog"], "image_bytes": _b64(BINARY), "raw": "ok"},
    ]


def test_single_output_predictions_and_columns_omit_the_name():
    # api_rest.md: 출력이 하나면 이름 없이 값 목록만 돌려준다.
    outputs = {"probabilities": np.array([[0.75, 0.25], [0.5, 0.5]], np.float32)}
    assert codec.outputs_to_predictions(outputs) == [[0.75, 0.25], [0.5, 0.5]]
    assert codec.outputs_to_columnar(outputs) == [[0.75, 0.25], [0.5, 0.5]]


def test_outputs_to_columnar_keeps_columns_and_scalars():
    outputs = {"boxes": np.arange(6, dtype=np.float32).reshape(1, 3, 2), "count": np.array(3, np.int32),
               "score": np.float32(0.5), "label_bytes": np.array(b"\x00", dtype=object),
               "nan": np.array([np.nan], np.float32)}
    text = json.dumps(codec.outputs_to_columnar(outputs))
    assert "NaN" in text  # TF Serving 처럼 NaN 토큰으로 쓴다
    columns = json.loads(text)
    assert sorted(columns) == ["boxes", "count", "label_bytes", "nan", "score"]
    assert columns["boxes"] == [[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]
    assert columns["count"] == 3 and type(columns["count"]) is int  # numpy 스칼라 → JSON 숫자
    assert columns["score"] == 0.5 and type(columns["score"]) is float
    assert columns["label_bytes"] == _b64(b"\x00")
    assert np.isnan(columns["nan"][0])


def test_float32_outputs_roundtrip_exactly():
    values = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    served = json.loads(json.dumps(codec.outputs_to_columnar({"values": values})))
    np.testing.assert_array_equal(np.array(served, np.float32), values)


def test_bytes_outputs_roundtrip_through_string_inputs():
    data = np.array([BINARY, b"", "한글".encode("utf-8")], dtype=object)
    served = json.loads(json.dumps(codec.outputs_to_columnar({"payload_bytes": data})))
    assert all(set(value) == {"b64"} for value in served)
    parsed = codec.columnar_to_inputs(served, {"payload": tf.TensorSpec([None], tf.string)})
    assert parsed["payload"].tolist() == data.tolist()


def test_outputs_without_a_shared_batch_dimension_cannot_be_rows():
    with pytest.raises(ValueError, match="batch dimension"):
        codec.outputs_to_predictions({"a": np.zeros([2, 3]), "b": np.zeros([3])})
    with pytest.raises(ValueError, match="batch dimension"):
        codec.outputs_to_predictions({"a": np.zeros([2]), "total": np.array(5)})
    # 열 형식은 배치 차원이 달라도 된다.
    assert codec.outputs_to_columnar({"a": np.zeros([2], np.int32), "total": np.array(5)}) == {
        "a": [0, 0], "total": 5}
