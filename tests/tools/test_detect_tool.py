"""tools/detect 와 그 파일 작업 모듈 tools/detect_io 의 시험.

시험 안에서 작은 SavedModel 을 만든다: `serve_bytes` 가 디코딩한 이미지의 밝은 픽셀(> 200) 을
감싸는 박스를 "bright" (클래스 1, 점수 0.9) 로, 고정 박스 [0, 0, 0.1, 0.1] 을 "dim" (클래스 2,
점수 0.3) 으로, 그리고 패딩 하나 (클래스 0) 를 돌려준다.

용어: B 배치, N 검출 수 (= 3), H, W 이미지 높이·너비, 박스는 정규화 [ymin, xmin, ymax, xmax].
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from frcnn.viz import draw
from tests.serving import hostile
from tests.testing import REPO_ROOT
from tools import detect_io

DARK, BRIGHT = 20, 255
DIM_BOX = [0.0, 0.0, 0.1, 0.1]
# 이미지 이름 → (H, W, 밝은 영역 행 시작, 행 끝(제외), 열 시작, 열 끝(제외)).
IMAGES = {
    "a.png": (80, 120, 30, 60, 20, 90),
    "b.png": (96, 128, 40, 72, 32, 96),
}


def _bright_box(image_bytes):
    """이미지 한 장의 밝은 픽셀을 감싸는 정규화 박스, float32 [4]."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    # [H, W] 밝은 픽셀
    bright = tf.reduce_max(image, axis=-1) > 200
    rows = tf.where(tf.reduce_any(bright, axis=1))[:, 0]
    columns = tf.where(tf.reduce_any(bright, axis=0))[:, 0]
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    corners = tf.cast(tf.stack([rows[0], columns[0], rows[-1] + 1, columns[-1] + 1]), tf.float32)
    return corners / tf.concat([size, size], axis=0)


class BrightBoxDetector(tf.Module):
    """계약과 같은 키·dtype 을 돌려주는 `serve_bytes` 만 가진 작은 검출기."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve_bytes(self, image_bytes):
        batch_size = tf.shape(image_bytes)[0]
        # [B, 4]
        bright_boxes = tf.map_fn(_bright_box, image_bytes,
                                 fn_output_signature=tf.TensorSpec([4], tf.float32))
        dim_boxes = tf.broadcast_to(tf.constant(DIM_BOX, tf.float32), [batch_size, 4])
        # [B, N=3, 4]
        boxes = tf.stack([bright_boxes, dim_boxes, tf.zeros([batch_size, 4])], axis=1)
        return {
            "detection_boxes": boxes,
            "detection_scores": tf.tile([[0.9, 0.3, 0.0]], [batch_size, 1]),
            "detection_classes": tf.tile(tf.constant([[1, 2, 0]], tf.int32), [batch_size, 1]),
            "detection_class_names": tf.tile([[b"bright", b"dim", b""]], [batch_size, 1]),
            "num_detections": tf.fill([batch_size], 2),
        }


@pytest.fixture(scope="module")
def saved_model_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "bright_box")
    module = BrightBoxDetector()
    tf.saved_model.save(module, path, signatures={"serve_bytes": module.serve_bytes})
    return path


def write_image(path, height, width, row_start, row_end, column_start, column_end):
    pixels = np.full((height, width, 3), DARK, dtype=np.uint8)
    pixels[row_start:row_end, column_start:column_end] = BRIGHT
    Image.fromarray(pixels).save(path)
    return pixels


@pytest.fixture
def image_dir(tmp_path):
    directory = tmp_path / "images"
    directory.mkdir()
    for name, geometry in IMAGES.items():
        write_image(directory / name, *geometry)
    (directory / "notes.txt").write_text("not an image")
    return directory


def run_tool(*arguments):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "tools.detect", *arguments], cwd=REPO_ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)


def assert_outline(drawn, geometry, color):
    """밝은 영역의 바깥 끝 행/열 (두께 1) 이 정확히 `color` 인지, 안팎은 그대로인지 확인한다."""
    height, width, row_start, row_end, column_start, column_end = geometry
    bottom, right = row_end - 1, column_end - 1
    for edge in (drawn[row_start, column_start:column_end], drawn[bottom, column_start:column_end],
                 drawn[row_start:row_end, column_start], drawn[row_start:row_end, right]):
        assert np.all(edge == color)
    assert np.all(drawn[row_start + 1:bottom, column_start + 1:right] == BRIGHT)
    assert np.all(drawn[row_end:] == DARK)
    # "dim" (점수 0.3 < 0.5) 박스 자리 (행 0..7, 열 0..11) 는 그려지지 않는다.
    assert np.all(drawn[:height // 10, :width // 10] == DARK)


@pytest.mark.slow
def test_detect_directory_writes_drawn_pngs_and_json(saved_model_dir, image_dir, tmp_path):
    output_dir = tmp_path / "drawn"
    result = run_tool(f"--saved_model={saved_model_dir}", f"--images={image_dir}",
                      f"--output_dir={output_dir}", "--format=png")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(output_dir)) == ["a_detections.png", "b_detections.png",
                                              "detections.json"]
    # 임시 파일에서 이름을 바꾼 출력도 보통 파일과 같은 권한 (umask) 을 갖는다.
    input_mode = os.stat(image_dir / "a.png").st_mode & 0o777
    for name in os.listdir(output_dir):
        assert os.stat(output_dir / name).st_mode & 0o777 == input_mode
    color = np.array(draw.class_color("bright"), dtype=np.uint8)
    for name, geometry in IMAGES.items():
        with Image.open(output_dir / name.replace(".png", "_detections.png")) as drawn_image:
            assert drawn_image.format == "PNG"
            drawn = np.asarray(drawn_image.convert("RGB"))
        assert drawn.shape == (geometry[0], geometry[1], 3)
        assert_outline(drawn, geometry, color)
        assert f"{image_dir / name}: 1 detection (bright 0.90)" in result.stdout

    report = json.loads((output_dir / "detections.json").read_text())
    assert [entry["image"] for entry in report["images"]] == [str(image_dir / name)
                                                              for name in IMAGES]
    for entry, (height, width, top, bottom, left, right) in zip(report["images"],
                                                                IMAGES.values()):
        assert (entry["height"], entry["width"], entry["num_detections"]) == (height, width, 1)
        detection = entry["detections"][0]
        assert (detection["class_id"], detection["class_name"]) == (1, "bright")
        assert detection["score"] == pytest.approx(0.9)
        assert detection["box_pixels"] == pytest.approx([top, left, bottom, right])
        assert detection["box_normalized"] == pytest.approx(
            [top / height, left / width, bottom / height, right / width], abs=1e-6)


@pytest.mark.slow
def test_detect_glob_jpg_threshold_and_max_images(saved_model_dir, image_dir, tmp_path):
    output_dir = tmp_path / "drawn"
    result = run_tool(f"--saved_model={saved_model_dir}", f"--images={image_dir}/*.png",
                      f"--output_dir={output_dir}", "--score_threshold=0.2", "--max_images=1")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(output_dir)) == ["a_detections.jpg", "detections.json"]
    height, width, top, bottom, left, right = IMAGES["a.png"]
    with Image.open(output_dir / "a_detections.jpg") as drawn_image:
        assert drawn_image.format == "JPEG" and drawn_image.size == (width, height)
        drawn = np.asarray(drawn_image.convert("RGB")).astype(np.float64)
    # JPEG 는 손실 압축: 아래쪽 테두리 행은 원래 밝기보다 클래스 색에 가깝다.
    bottom_edge = drawn[bottom - 1, left + 5:right - 5]
    color = np.array(draw.class_color("bright"), dtype=np.float64)
    assert np.abs(bottom_edge - color).mean() < np.abs(bottom_edge - BRIGHT).mean()
    report = json.loads((output_dir / "detections.json").read_text())
    (entry,) = report["images"]
    assert [item["class_name"] for item in entry["detections"]] == ["bright", "dim"]
    # DIM_BOX × [H, W, H, W] = [0, 0, 8, 12].
    assert entry["detections"][1]["box_pixels"] == pytest.approx([0, 0, 8, 12])
    assert f"{image_dir / 'a.png'}: 2 detections (bright 0.90, dim 0.30)" in result.stdout


@pytest.mark.slow
def test_missing_image_exits_with_message_and_writes_nothing(saved_model_dir, tmp_path):
    missing = tmp_path / "missing.jpg"
    output_dir = tmp_path / "drawn"
    result = run_tool(f"--saved_model={saved_model_dir}", f"--images={missing}",
                      f"--output_dir={output_dir}")
    assert result.returncode != 0
    assert f"{missing}: image file not found" in result.stderr
    assert not output_dir.exists()


@pytest.mark.slow
def test_unreadable_image_exits_and_leaves_no_partial_output(saved_model_dir, image_dir,
                                                             tmp_path):
    (image_dir / "c.png").write_bytes(b"this is not a png")
    output_dir = tmp_path / "drawn"
    result = run_tool(f"--saved_model={saved_model_dir}", f"--images={image_dir}",
                      f"--output_dir={output_dir}")
    assert result.returncode != 0
    assert f"{image_dir / 'c.png'}: cannot read image" in result.stderr
    # a.png, b.png 는 처리되었지만 임시 파일은 모두 지워지고 아무것도 남지 않는다.
    assert os.listdir(output_dir) == []


@pytest.mark.slow
def test_help_explains_every_flag():
    # absl 의 --help 는 사용법을 stdout 에 쓰고 종료 코드 1 로 끝난다.
    result = run_tool("--help")
    for flag in ("saved_model", "images", "output_dir", "score_threshold", "format",
                 "max_images"):
        assert f"--{flag}:" in result.stdout


def test_resolve_image_paths_file_list_directory_and_glob(tmp_path):
    for name in ("b.png", "a.JPG", "c.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()
    assert detect_io.resolve_image_paths(str(tmp_path)) == [
        str(tmp_path / name) for name in ("a.JPG", "b.png", "c.jpeg")]
    listed = f"{tmp_path / 'c.jpeg'}, {tmp_path / 'b.png'},{tmp_path / 'c.jpeg'}"
    assert detect_io.resolve_image_paths(listed) == [str(tmp_path / "c.jpeg"),
                                                     str(tmp_path / "b.png")]
    assert detect_io.resolve_image_paths(str(tmp_path / "*.png")) == [str(tmp_path / "b.png")]


def test_resolve_image_paths_errors_name_the_input(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    cases = {
        str(empty): f"{empty}: directory has no .jpg/.jpeg/.png images",
        str(tmp_path / "nothing*.png"): "glob pattern matched no files",
        str(tmp_path / "gone.png"): f"{tmp_path / 'gone.png'}: image file not found",
        " , ": "no images matched",
    }
    for images_spec, message in cases.items():
        with pytest.raises(detect_io.DetectionInputError) as error:
            detect_io.resolve_image_paths(images_spec)
        assert message in str(error.value)


def test_detect_images_rejects_bad_model_and_duplicate_stems(saved_model_dir, image_dir,
                                                             tmp_path):
    output_dir = tmp_path / "drawn"
    image_path = str(image_dir / "a.png")
    with pytest.raises(detect_io.DetectionInputError, match="SavedModel directory not found"):
        detect_io.detect_images(str(tmp_path / "no_model"), [image_path], str(output_dir), 0.5, "png")
    with pytest.raises(detect_io.DetectionInputError, match="not a SavedModel directory"):
        detect_io.detect_images(str(image_dir), [image_path], str(output_dir), 0.5, "png")
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(detect_io.DetectionInputError, match=f"{broken}: cannot load SavedModel"):
        detect_io.detect_images(str(broken), [image_path], str(output_dir), 0.5, "png")
    other = tmp_path / "other"
    other.mkdir()
    write_image(other / "a.png", *IMAGES["a.png"])
    with pytest.raises(detect_io.DetectionInputError, match="would both be written to a_detections"):
        detect_io.detect_images(saved_model_dir, [image_path, str(other / "a.png")],
                                str(output_dir), 0.5, "png")
    assert not output_dir.exists()


def test_read_image_rejects_formats_other_than_jpeg_and_png(tmp_path):
    path = tmp_path / "picture.png"
    Image.new("RGB", (8, 8)).save(path, format="GIF")
    with pytest.raises(detect_io.DetectionInputError, match=r"picture.png: unsupported image format"):
        detect_io.read_image(str(path))


def test_detect_images_writes_everything_or_nothing(saved_model_dir, image_dir, tmp_path):
    output_dir = tmp_path / "drawn"
    paths = [str(image_dir / name) for name in IMAGES]
    report = detect_io.detect_images(saved_model_dir, paths, str(output_dir), 0.5, "png")
    assert sorted(os.listdir(output_dir)) == ["a_detections.png", "b_detections.png",
                                              "detections.json"]
    assert json.loads((output_dir / "detections.json").read_text()) == report
    assert [entry["output"] for entry in report["images"]] == ["a_detections.png", "b_detections.png"]
    # 두 번째 이미지가 깨졌으면 첫 번째 것도 쓰지 않는다 (스테이징도 남지 않는다).
    (image_dir / "c.png").write_bytes(b"this is not a png")
    failed_dir = tmp_path / "failed"
    with pytest.raises(detect_io.DetectionInputError, match=r"c.png: cannot read image"):
        detect_io.detect_images(saved_model_dir, [paths[0], str(image_dir / "c.png")],
                                str(failed_dir), 0.5, "png")
    assert os.listdir(failed_dir) == []


def test_detect_images_reports_an_output_path_that_is_a_file(saved_model_dir, image_dir, tmp_path):
    output_file = tmp_path / "drawn"
    output_file.write_text("a file, not a directory")
    with pytest.raises(detect_io.DetectionInputError,
                       match=f"{output_file}: cannot create output directory"):
        detect_io.detect_images(saved_model_dir, [str(image_dir / "a.png")], str(output_file),
                                0.5, "png")
    assert output_file.read_text() == "a file, not a directory"


def test_read_image_refuses_a_bomb_before_decoding_naming_the_file(tmp_path, monkeypatch):
    """PIL 의 한도 (tools/detect --max_image_pixels 가 정한다) 를 머리로 검사한다: 디코딩 없이 한 줄."""
    path = tmp_path / "bomb.png"
    path.write_bytes(hostile.png_bomb(20000, 20000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 1024 * 1024)
    message = f"^{path}: image of 20000x20000 pixels exceeds the pixel budget of 67108864 pixels"
    with pytest.raises(detect_io.DetectionInputError, match=message):
        detect_io.read_image(str(path))
    small = tmp_path / "small.png"
    small.write_bytes(hostile.png_bomb(40, 30))
    assert detect_io.read_image(str(small))[1].shape == (30, 40, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(detect_io.DetectionInputError, match="40x30 pixels exceeds the pixel budget of 1000"):
        detect_io.read_image(str(small))
