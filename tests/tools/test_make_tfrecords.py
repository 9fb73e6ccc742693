"""tools/make_tfrecords 테스트: 잘못된 입력마다 종료 코드 1, 파일을 밝히는 한 줄, 출력 디렉터리에 아무것도
남지 않음; --skip_invalid; --classes; tfds 소스 (mock); 하위 프로세스 실행 한 번.

도구는 빠르게 같은 프로세스에서 돌린다 (`flags.FLAGS(argv)` 뒤 `main`).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from frcnn.data import record_spec
from tests.serving import hostile
from tests.testing import REPO_ROOT, VOC_IMAGES, jpeg_bytes, read_records, write_voc_dir
from tools import make_tfrecords

FLAGS = flags.FLAGS


def run_tool(argv):
    """도구를 같은 프로세스에서 실행하고 종료 코드를 돌려준다 (도구가 바꾸는 PIL 의 폭탄 한도는 되돌린다)."""
    FLAGS.unparse_flags()
    FLAGS(["make_tfrecords", "--noprogress"] + argv)
    pil_limit = Image.MAX_IMAGE_PIXELS
    try:
        make_tfrecords.main(["make_tfrecords"])
    except SystemExit as exit_error:
        return exit_error.code
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    return 0


def _annotation_path(voc_dir, image_id):
    return os.path.join(voc_dir, "Annotations", f"{image_id}.xml")


def _replace_in_xml(voc_dir, image_id, old, new):
    path = _annotation_path(voc_dir, image_id)
    with open(path) as handle:
        text = handle.read()
    assert old in text
    with open(path, "w") as handle:
        handle.write(text.replace(old, new))


def _truncate_xml(voc_dir):
    with open(_annotation_path(voc_dir, "000002"), "w") as handle:
        handle.write("<annotation><size><width>24</width>")


def _truncate_jpeg(voc_dir):
    path = os.path.join(voc_dir, "JPEGImages", "000004.jpg")
    with open(path, "rb") as handle:
        data = handle.read()
    with open(path, "wb") as handle:
        handle.write(data[:len(data) // 2])


def _bomb_jpeg(voc_dir):
    with open(os.path.join(voc_dir, "JPEGImages", "000004.jpg"), "wb") as handle:
        handle.write(hostile.jpeg_claiming(30000, 30000))


BAD_INPUTS = {
    # 이름: (VOC 디렉터리를 망가뜨리는 함수, 오류 줄에 나와야 할 파일, 문제 설명의 일부, 추가 플래그)
    "truncated_xml": (_truncate_xml, "Annotations/000002.xml", "XML parse error", []),
    "missing_bndbox": (lambda d: _replace_in_xml(d, "000001", "<bndbox><xmin>5</xmin><ymin>4</ymin>"
                                                 "<xmax>20</xmax><ymax>25</ymax></bndbox>", ""),
                       "Annotations/000001.xml", "no <bndbox>", []),
    "missing_size": (lambda d: _replace_in_xml(d, "000004", "<size><width>48</width><height>32</height>"
                                               "<depth>3</depth></size>", ""),
                     "Annotations/000004.xml", "missing <size>", []),
    # 라이브러리 오류는 원인 (float() 의 ValueError) 을 지니지만 도구는 메시지 한 줄만 (tests/pipelines/test_convert.py)
    "not_a_number": (lambda d: _replace_in_xml(d, "000002", "<xmax>20</xmax>", "<xmax>twenty</xmax>"),
                     "Annotations/000002.xml", "is not a number: 'twenty'", []),
    "inverted_box": (lambda d: _replace_in_xml(d, "000002", "<xmax>20</xmax>", "<xmax>2</xmax>"),
                     "Annotations/000002.xml", "inverted", []),
    "box_outside": (lambda d: _replace_in_xml(d, "000002", "<ymax>34</ymax>", "<ymax>40</ymax>"),
                    "Annotations/000002.xml", "outside", []),
    "unknown_class": (lambda d: None, "Annotations/000002.xml", "unknown class 'person'",
                      ["--classes=dog,cat"]),
    "missing_jpeg": (lambda d: os.remove(os.path.join(d, "JPEGImages", "000003.jpg")),
                     "JPEGImages/000003.jpg", "not found", []),
    "corrupt_jpeg": (_truncate_jpeg, "JPEGImages/000004.jpg", "corrupt or truncated", []),
    "bomb_jpeg": (_bomb_jpeg, "JPEGImages/000004.jpg", "image of 30000x30000 pixels exceeds the pixel budget "
                  "of 67108864 pixels (--max_image_pixels)", []),
    "over_budget_flag": (lambda d: None, "JPEGImages/000001.jpg", "image of 40x30 pixels exceeds the pixel "
                         "budget of 1000 pixels", ["--max_image_pixels=1000"]),
    "size_mismatch": (lambda d: _replace_in_xml(d, "000003", "<width>32</width>", "<width>33</width>"),
                      "JPEGImages/000003.jpg", "differs from the XML <size>", []),
    "too_many_objects": (lambda d: None, "Annotations/000004.xml", "input.max_gt_boxes=3",
                         ["--params_override=input.max_gt_boxes=2"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_cleanly(tmp_path, capsys, case):
    break_voc, bad_file, problem, extra_flags = BAD_INPUTS[case]
    voc_dir = write_voc_dir(tmp_path)
    break_voc(voc_dir)
    output_dir = tmp_path / "out"
    code = run_tool([f"--voc_dir={voc_dir}", f"--output_dir={output_dir}"] + extra_flags)
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("make_tfrecords: error: ") and bad_file in lines[0] and problem in lines[0]
    assert not output_dir.exists() or os.listdir(output_dir) == []


def test_failure_leaves_existing_directory_clean(tmp_path, capsys):
    voc_dir = write_voc_dir(tmp_path)
    _truncate_jpeg(voc_dir)
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "test.json").write_text("{}")  # 다른 분할의 파일은 그대로 둔다.
    assert run_tool([f"--voc_dir={voc_dir}", f"--output_dir={output_dir}", "--num_shards=2"]) == 1
    assert os.listdir(output_dir) == ["test.json"]


def test_skip_invalid_lists_skipped_files(tmp_path, capsys):
    voc_dir = write_voc_dir(tmp_path)
    _truncate_jpeg(voc_dir)
    _truncate_xml(voc_dir)
    output_dir = tmp_path / "out"
    assert run_tool([f"--voc_dir={voc_dir}", f"--output_dir={output_dir}", "--skip_invalid"]) == 0
    assert "2 images" in capsys.readouterr().out
    metadata = json.loads((output_dir / "trainval.json").read_text())
    assert metadata["num_images"] == 2
    skipped = {os.path.relpath(item["file"], voc_dir): item["reason"] for item in metadata["skipped"]}
    assert sorted(skipped) == [os.path.join("Annotations", "000002.xml"),
                               os.path.join("JPEGImages", "000004.jpg")]
    assert [example["source_id"] for example in read_records(str(output_dir / "*.tfrecord"))] == \
        [b"000001", b"000003"]


def test_existing_outputs_need_overwrite(tmp_path, capsys):
    voc_dir = write_voc_dir(tmp_path)
    argv = [f"--voc_dir={voc_dir}", f"--output_dir={tmp_path / 'out'}", "--config=vgg16_seed"]
    assert run_tool(argv) == 0
    assert run_tool(argv) == 1
    assert "already exist" in capsys.readouterr().err
    assert run_tool(argv + ["--overwrite", "--classes=dog,cat,person"]) == 0
    metadata = json.loads((tmp_path / "out" / "trainval.json").read_text())
    assert metadata["classes"] == ["dog", "cat", "person"] and metadata["preset"] == "vgg16_seed"
    examples = read_records(str(tmp_path / "out" / "trainval-*.tfrecord"))
    assert examples[0]["classes"].tolist() == [1, 2]


@pytest.mark.slow
def test_subprocess_run_prints_summary(tmp_path):
    voc_dir = write_voc_dir(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "tools.make_tfrecords", f"--voc_dir={voc_dir}",
         f"--output_dir={tmp_path / 'out'}", "--num_shards=2", "--noprogress"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "4 images, 6 objects (1 difficult, keep), 0 skipped, 2 shards" in result.stdout
    assert record_spec.read_metadata(str(tmp_path / "out" / "trainval-*.tfrecord"))["num_images"] == 4


def _mock_voc_as_dataset(self, *args, **kwargs):
    """tfds 의 무작위 mock 은 voc 의 objects 시퀀스 길이를 서로 다르게 만들어 실패하므로
    (Sequence 'objects' length mismatch), 손으로 만든 JPEG 바이트와 정규화 박스로 원소를 만든다.
    SkipDecoding 이라 'image' 는 원래 인코딩된 바이트다."""
    del self, args, kwargs
    elements = []
    for seed, (image_id, (width, height, objects)) in enumerate(VOC_IMAGES.items()):
        voc_boxes = np.array([[float(value) for value in obj[1]] for obj in objects],
                             np.float64).reshape(-1, 4)
        bbox = np.stack([(voc_boxes[:, 1] - 1) / height, (voc_boxes[:, 0] - 1) / width,
                         voc_boxes[:, 3] / height, voc_boxes[:, 2] / width], axis=1).astype(np.float32)
        labels = {"cat": 7, "dog": 11, "person": 14}
        elements.append({
            "image": jpeg_bytes(width, height, seed), "image/filename": f"{image_id}.jpg",
            "objects": {"bbox": bbox, "label": np.array([labels[obj[0]] for obj in objects], np.int64),
                        "is_difficult": np.array([obj[2] == "1" for obj in objects]),
                        "is_truncated": np.array([obj[3] == "1" for obj in objects])}})
    signature = {"image": tf.TensorSpec([], tf.string), "image/filename": tf.TensorSpec([], tf.string),
                 "objects": {"bbox": tf.TensorSpec([None, 4], tf.float32),
                             "label": tf.TensorSpec([None], tf.int64),
                             "is_difficult": tf.TensorSpec([None], tf.bool),
                             "is_truncated": tf.TensorSpec([None], tf.bool)}}
    return tf.data.Dataset.from_generator(lambda: iter(elements), output_signature=signature)


def test_tfds_source_with_mock_data(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    output_dir = tmp_path / "out"
    with tfds.testing.mock_data(as_dataset_fn=_mock_voc_as_dataset):
        code = run_tool(["--source=tfds", "--split=train", f"--output_dir={output_dir}"])
    assert code == 0, capsys.readouterr().err
    metadata = json.loads((output_dir / "train.json").read_text())
    assert metadata["num_images"] == 4 and metadata["num_objects"] == 6 and len(metadata["classes"]) == 20
    examples = read_records(str(output_dir / "train-*.tfrecord"))
    assert [example["source_id"] for example in examples] == [image_id.encode() for image_id in VOC_IMAGES]
    first = examples[0]
    assert (first["height"], first["width"]) == (30, 40) and first["classes"].tolist() == [12, 8]
    assert first["image_bytes"] == jpeg_bytes(40, 30, 0)
    assert first["difficult"].tolist() == [True, False] and first["truncated"].tolist() == [False, True]
    np.testing.assert_allclose(first["boxes"][0], [3 / 30, 4 / 40, 25 / 30, 20 / 40], rtol=1e-6)


def test_progress_bar_on_stderr(tmp_path, capsys):
    voc_dir = write_voc_dir(tmp_path)
    assert run_tool([f"--voc_dir={voc_dir}", f"--output_dir={tmp_path / 'out'}", "--progress"]) == 0
    stderr = capsys.readouterr().err
    assert "make_tfrecords trainval: 100%" in stderr and f"{len(VOC_IMAGES)}/{len(VOC_IMAGES)}" in stderr
    assert run_tool([f"--voc_dir={voc_dir}", f"--output_dir={tmp_path / 'quiet'}"]) == 0
    assert "make_tfrecords trainval" not in capsys.readouterr().err
