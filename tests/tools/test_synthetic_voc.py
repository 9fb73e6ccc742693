"""tools.synthetic_voc 와 tools/make_synthetic_voc 테스트.

용어: VOC 박스는 (xmin, ymin, xmax, ymax) 1-based 포함 정수 픽셀.
"""

import subprocess
import sys

import numpy as np
import pytest
import xmltodict
from PIL import Image

from tests.testing import REPO_ROOT
from tools import synthetic_voc


def _changed_pixel_box(before, after):
    """두 배열에서 값이 바뀐 픽셀을 감싸는 VOC 박스(독립 계산)."""
    rows, columns = np.nonzero(np.any(before != after, axis=-1))
    return columns.min() + 1, rows.min() + 1, columns.max() + 1, rows.max() + 1


def _read_annotation(path):
    return xmltodict.parse(path.read_text(), force_list=("object",))["annotation"]


def _tree_bytes(root):
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("class_name", synthetic_voc.CLASSES)
def test_drawn_object_box_matches_changed_pixels(class_name):
    rng = np.random.default_rng(3)
    background = np.full((120, 160, 3), 90.0, np.float32)
    image = background.copy()
    item = synthetic_voc.draw_object(image, class_name, center_x=70, center_y=55, size=40, rng=rng,
                                     angle_degrees=12.0, aspect=1.1)
    assert item.name == class_name
    assert (item.xmin, item.ymin, item.xmax, item.ymax) == _changed_pixel_box(background, image)
    assert not item.truncated and not item.difficult
    # 40 px 도형(늘이기 1.1, 회전 12 도)의 박스는 대략 30..60 px 이다.
    assert 30 <= item.xmax - item.xmin + 1 <= 60
    assert 30 <= item.ymax - item.ymin + 1 <= 60


def test_ring_has_a_hole_of_background():
    image = np.zeros((80, 80, 3), np.float32)
    synthetic_voc.draw_object(image, "ring", 40, 40, 40, np.random.default_rng(0))
    assert np.all(image[40, 40] == 0)
    assert np.any(image[40, 22] != 0)


def test_border_object_is_truncated_and_clipped():
    background = np.full((100, 120, 3), 200.0, np.float32)
    image = background.copy()
    item = synthetic_voc.draw_object(image, "square", center_x=5, center_y=50, size=30,
                                     rng=np.random.default_rng(1))
    assert item.truncated
    assert item.xmin == 1
    assert (item.xmin, item.ymin, item.xmax, item.ymax) == _changed_pixel_box(background, image)
    # 중심 열 5(1-based 6) 에서 오른쪽으로 반 변(15 px) 까지: xmax 는 약 21.
    assert 19 <= item.xmax <= 23


def test_tiny_object_is_difficult():
    image = np.full((60, 60, 3), 30.0, np.float32)
    item = synthetic_voc.draw_object(image, "circle", 30, 30, 6, np.random.default_rng(2))
    assert item.difficult and not item.truncated
    assert max(item.xmax - item.xmin, item.ymax - item.ymin) + 1 < 10
    large = synthetic_voc.draw_object(image, "circle", 30, 30, 20, np.random.default_rng(2))
    assert not large.difficult


def test_object_outside_the_canvas_is_none():
    image = np.zeros((50, 50, 3), np.float32)
    assert synthetic_voc.draw_object(image, "star", -40, 25, 20, np.random.default_rng(0)) is None
    assert not image.any()


def test_rendered_images_have_valid_sizes_and_boxes():
    sizes, num_objects = [], 0
    for index in range(40):
        image, objects = synthetic_voc.render_image(np.random.default_rng([5, index]))
        height, width = image.shape[:2]
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert 0.6 <= min(height, width) / max(height, width) <= 0.82
        assert 160 <= max(height, width) <= 240
        assert len(objects) <= 5
        for item in objects:
            assert item.name in synthetic_voc.CLASSES
            assert 1 <= item.xmin <= item.xmax <= width
            assert 1 <= item.ymin <= item.ymax <= height
        sizes.append((height, width))
        num_objects += len(objects)
    assert len(set(sizes)) > 20
    assert num_objects > 60


def test_generate_layout_splits_and_xml(tmp_path):
    voc_dir = synthetic_voc.generate(tmp_path, num_trainval=6, num_test=4, seed=7, progress=False)
    assert voc_dir == tmp_path / "VOC2007"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["VOC2007"]
    main_dir = voc_dir / "ImageSets" / "Main"
    splits = {name: (main_dir / f"{name}.txt").read_text().split()
              for name in ("trainval", "train", "val", "test")}
    all_ids = [f"{index:06d}" for index in range(1, 11)]
    assert sorted(splits["trainval"] + splits["test"]) == all_ids
    assert len(splits["trainval"]) == 6 and len(splits["test"]) == 4
    assert sorted(splits["train"] + splits["val"]) == splits["trainval"]
    assert len(splits["train"]) == 3 and len(splits["val"]) == 3
    assert sorted(path.stem for path in (voc_dir / "JPEGImages").glob("*.jpg")) == all_ids
    assert sorted(path.stem for path in (voc_dir / "Annotations").glob("*.xml")) == all_ids
    for image_id in all_ids:
        annotation = _read_annotation(voc_dir / "Annotations" / f"{image_id}.xml")
        with Image.open(voc_dir / "JPEGImages" / f"{image_id}.jpg") as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            width, height = image.size
        assert annotation["folder"] == "VOC2007"
        assert annotation["filename"] == f"{image_id}.jpg"
        assert annotation["size"] == {"width": str(width), "height": str(height), "depth": "3"}
        assert annotation["segmented"] == "0"
        for item in annotation.get("object", []):
            assert list(item) == ["name", "pose", "truncated", "difficult", "bndbox"]
            assert item["name"] in synthetic_voc.CLASSES
            assert item["truncated"] in ("0", "1") and item["difficult"] in ("0", "1")
            box = {key: int(value) for key, value in item["bndbox"].items()}
            assert 1 <= box["xmin"] <= box["xmax"] <= width
            assert 1 <= box["ymin"] <= box["ymax"] <= height


def test_annotation_matches_render_image(tmp_path):
    voc_dir = synthetic_voc.generate(tmp_path, num_trainval=2, num_test=1, seed=3, progress=False)
    image, objects = synthetic_voc.render_image(np.random.default_rng([3, 1, 2]))
    annotation = _read_annotation(voc_dir / "Annotations" / "000002.xml")
    corners = ("xmin", "ymin", "xmax", "ymax")
    written = [(item["name"], *(int(item["bndbox"][key]) for key in corners))
               for item in annotation.get("object", [])]
    assert written == [(item.name, item.xmin, item.ymin, item.xmax, item.ymax) for item in objects]
    with Image.open(voc_dir / "JPEGImages" / "000002.jpg") as decoded:
        decoded_pixels = np.asarray(decoded, np.float32)
    # JPEG(품질 90)은 원본 배열과 평균적으로 몇 단계 안쪽으로만 다르다.
    assert decoded_pixels.shape == image.shape
    assert np.abs(decoded_pixels - image).mean() < 6


def test_generate_is_deterministic_per_seed(tmp_path):
    first = synthetic_voc.generate(tmp_path / "a", 4, 2, seed=11, progress=False)
    second = synthetic_voc.generate(tmp_path / "b", 4, 2, seed=11, progress=False)
    other = synthetic_voc.generate(tmp_path / "c", 4, 2, seed=12, progress=False)
    first_files = _tree_bytes(first)
    assert first_files == _tree_bytes(second)
    other_files = _tree_bytes(other)
    assert first_files.keys() == other_files.keys()
    differing = [name for name in first_files if first_files[name] != other_files[name]]
    assert any(name.startswith("JPEGImages") for name in differing)


def test_dataset_statistics_cover_the_spec():
    objects, empty_images, portrait_images = [], 0, 0
    for index in range(300):
        image, image_objects = synthetic_voc.render_image(np.random.default_rng([0, 1, index]))
        objects += image_objects
        empty_images += not image_objects
        portrait_images += image.shape[0] > image.shape[1]
    assert 1 <= empty_images <= 25
    assert 30 <= portrait_images <= 95
    assert {item.name for item in objects} == set(synthetic_voc.CLASSES)
    assert 0.03 <= np.mean([item.truncated for item in objects]) <= 0.3
    assert 0.01 <= np.mean([item.difficult for item in objects]) <= 0.12
    longer_sides = np.array([max(item.xmax - item.xmin, item.ymax - item.ymin) + 1
                             for item in objects])
    assert np.mean((longer_sides >= 12) & (longer_sides <= 100)) > 0.8


def test_generate_rejects_bad_counts(tmp_path):
    with pytest.raises(ValueError, match="num_trainval"):
        synthetic_voc.generate(tmp_path, num_trainval=1, num_test=1, seed=0, progress=False)
    with pytest.raises(ValueError, match="num_test"):
        synthetic_voc.generate(tmp_path, num_trainval=2, num_test=0, seed=0, progress=False)
    assert not any(tmp_path.iterdir())


def test_generate_refuses_existing_dir_and_overwrites_on_request(tmp_path):
    voc_dir = tmp_path / "VOC2007"
    voc_dir.mkdir()
    (voc_dir / "keep.txt").write_text("old")
    with pytest.raises(FileExistsError, match="VOC2007"):
        synthetic_voc.generate(tmp_path, 2, 1, seed=0, progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["VOC2007"]
    assert (voc_dir / "keep.txt").read_text() == "old"
    synthetic_voc.generate(tmp_path, 2, 1, seed=0, progress=False, overwrite=True)
    assert not (voc_dir / "keep.txt").exists()
    assert (voc_dir / "ImageSets" / "Main" / "test.txt").read_text().split() != []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["VOC2007"]


def test_generate_accepts_existing_empty_dir(tmp_path):
    (tmp_path / "VOC2007").mkdir()
    synthetic_voc.generate(tmp_path, 2, 1, seed=0, progress=False)
    assert len(list((tmp_path / "VOC2007" / "Annotations").iterdir())) == 3


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_render(rng):
        raise RuntimeError("그리기 실패")

    monkeypatch.setattr(synthetic_voc, "render_image", broken_render)
    with pytest.raises(RuntimeError):
        synthetic_voc.generate(tmp_path, 2, 1, seed=0, progress=False)
    assert not any(tmp_path.iterdir())


def _run_tool(argv):
    """도구를 하위 프로세스로 실행한다 (다른 도구의 absl 플래그와 한 프로세스에서 겹치지 않게)."""
    return subprocess.run([sys.executable, "-m", "tools.make_synthetic_voc", *argv[1:]], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_tool_main_writes_dataset_and_refuses_existing(tmp_path):
    output_dir = tmp_path / "data"
    argv = ["make_synthetic_voc", f"--output_dir={output_dir}", "--num_trainval=3", "--num_test=2",
            "--seed=4"]
    assert _run_tool(argv).returncode == 0
    voc_dir = output_dir / "VOC2007"
    assert len((voc_dir / "ImageSets" / "Main" / "test.txt").read_text().split()) == 2
    before = _tree_bytes(voc_dir)
    refused = _run_tool(argv)
    assert refused.returncode == 1
    assert "--overwrite" in refused.stderr
    assert _tree_bytes(voc_dir) == before
    assert _run_tool(argv[:-1] + ["--seed=5", "--overwrite"]).returncode == 0
    assert _tree_bytes(voc_dir) != before


@pytest.mark.slow
def test_tool_main_rejects_bad_flags(tmp_path):
    bad_count = _run_tool(["make_synthetic_voc", f"--output_dir={tmp_path}", "--num_test=0"])
    assert bad_count.returncode != 0 and "num_test" in bad_count.stderr
    bad_seed = _run_tool(["make_synthetic_voc", f"--output_dir={tmp_path}", "--seed=-1"])
    assert bad_seed.returncode != 0 and "seed" in bad_seed.stderr
    assert not any(tmp_path.iterdir())
