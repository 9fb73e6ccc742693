"""frcnn.viz.draw 의 그리기 함수 시험 (배열만): 손으로 계산한 테두리 픽셀 위치, 라벨 위치, 거르기 규칙.

파일 단위 동작 (경로 풀기, SavedModel 실행, 출력 쓰기) 은 tests/tools/test_detect_tool.py 에서 시험한다.

용어: H, W 이미지 높이·너비, N 검출 수, 박스는 정규화 [ymin, xmin, ymax, xmax].
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from frcnn.viz import draw
from tests.testing import REPO_ROOT

GREY = 128
HEIGHT, WIDTH = 200, 400
# (200 + 400) / 400 = 1.5 → 반올림 2 픽셀.
LINE_WIDTH = 2


def grey_image(height=HEIGHT, width=WIDTH):
    return np.full((height, width, 3), GREY, dtype=np.uint8)


def outline_mask(top, left, bottom, right, line_width, height=HEIGHT, width=WIDTH):
    """손으로 정한 바깥 끝 행/열 (양끝 포함) 에서 안쪽으로 `line_width` 두께의 테두리 마스크."""
    mask = np.zeros((height, width), dtype=bool)
    mask[top:top + line_width, left:right + 1] = True
    mask[bottom - line_width + 1:bottom + 1, left:right + 1] = True
    mask[top:bottom + 1, left:left + line_width] = True
    mask[top:bottom + 1, right - line_width + 1:right + 1] = True
    return mask


def changed_mask(drawn, original):
    return np.any(drawn != original, axis=-1)


def two_names_with_different_colors():
    names = ["dog", "cat", "person", "car", "bus", "bird"]
    first = names[0]
    second = next(name for name in names[1:] if draw.class_color(name) != draw.class_color(first))
    return first, second


def test_line_width_and_font_size_scale_with_image_size():
    # (375 + 500) / 400 = 2.19 → 2, (750 + 1000) / 400 = 4.375 → 4, (64 + 64) / 400 → 0 → 최소 1.
    assert draw.line_width_for(375, 500) == 2
    assert draw.line_width_for(750, 1000) == 4
    assert draw.line_width_for(64, 64) == 1
    assert draw.line_width_for(HEIGHT, WIDTH) == LINE_WIDTH
    # (200 + 400) / 60 = 10, (600 + 1200) / 60 = 30, 작은 이미지는 최소 10.
    assert draw.font_size_for(200, 400) == 10
    assert draw.font_size_for(600, 1200) == 30
    assert draw.font_size_for(32, 32) == 10


def test_class_color_is_deterministic_palette_entry():
    assert draw.class_color("dog") in draw.PALETTE
    assert draw.class_color("dog") == draw.class_color(b"dog")
    assert (GREY, GREY, GREY) not in draw.PALETTE
    colors = {draw.class_color(name) for name in ["dog", "cat", "person", "car", "bus", "bird"]}
    assert len(colors) >= 3


@pytest.mark.slow
def test_class_color_does_not_depend_on_python_hash_seed():
    # 다른 PYTHONHASHSEED 의 새 프로세스에서도 같은 색이어야 한다 (hash() 를 쓰면 달라진다).
    command = [sys.executable, "-c", "from frcnn.viz import draw; print(draw.class_color('dog'))"]
    environment = dict(os.environ, PYTHONHASHSEED="12345", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == str(draw.class_color("dog"))


def test_box_outline_pixels_are_exactly_on_box_edges():
    image = grey_image()
    # 연속 좌표: y 0.5*200=100 .. 0.9*200=180, x 0.25*400=100 .. 0.75*400=300
    # → 바깥 끝 행 100..179, 열 100..299, 두께 2 로 안쪽.
    drawn = draw.draw_detections(image, [[0.5, 0.25, 0.9, 0.75]], [0.87], ["dog"])
    color = np.array(draw.class_color("dog"), dtype=np.uint8)
    edges = outline_mask(100, 100, 179, 299, LINE_WIDTH)
    assert np.all(drawn[edges] == color)
    # 라벨은 박스 위쪽 바깥 (행 < 100, 열 >= 100) 에만 있을 수 있다.
    label_area = np.zeros((HEIGHT, WIDTH), dtype=bool)
    label_area[:100, 100:] = True
    assert np.all(drawn[~edges & ~label_area] == GREY)
    # 바로 안쪽과 바로 바깥은 그대로.
    assert np.all(drawn[102:178, 102:298] == GREY)
    assert np.all(drawn[180, :] == GREY)
    assert np.all(drawn[100:180, 99] == GREY)
    assert np.all(drawn[100:180, 300] == GREY)
    # 원본은 바뀌지 않는다.
    assert np.all(image == GREY)
    assert drawn.dtype == np.uint8 and drawn.shape == image.shape


def test_label_sits_above_the_box_with_fill_and_text_pixels():
    drawn = draw.draw_detections(grey_image(), [[0.5, 0.25, 0.9, 0.75]], [0.87], ["dog"])
    color = np.array(draw.class_color("dog"), dtype=np.uint8)
    label_rows = drawn[80:100, 100:200]
    is_fill = np.all(label_rows == color, axis=-1)
    is_text = ~is_fill & np.any(label_rows != GREY, axis=-1)
    assert is_fill.sum() > 100
    assert is_text.sum() > 20
    # 라벨 상자는 박스 왼쪽 열에서 시작하고, 바로 위 행 (99) 에 붙어 있다.
    assert np.all(drawn[99, 100:110] == color)
    assert np.all(drawn[80:100, 99] == GREY)
    # 라벨은 위로 40 픽셀보다 높지 않다 (글자 크기 10).
    assert np.all(drawn[:60] == GREY)


def test_label_goes_inside_the_box_when_box_touches_top_border():
    # 행 0..99, 열 100..299.
    drawn = draw.draw_detections(grey_image(), [[0.0, 0.25, 0.5, 0.75]], [0.87], ["dog"])
    color = np.array(draw.class_color("dog"), dtype=np.uint8)
    edges = outline_mask(0, 100, 99, 299, LINE_WIDTH)
    assert np.all(drawn[edges] == color)
    inside_label = drawn[2:16, 102:160]
    is_fill = np.all(inside_label == color, axis=-1)
    is_text = ~is_fill & np.any(inside_label != GREY, axis=-1)
    assert is_fill.sum() > 100 and is_text.sum() > 20
    box_area = np.zeros((HEIGHT, WIDTH), dtype=bool)
    box_area[0:100, 100:300] = True
    assert np.all(drawn[~box_area] == GREY)


def test_label_goes_inside_the_box_when_there_is_no_room_above():
    # 위쪽 끝 행 0.05*200 = 10: 라벨 높이 (글자 크기 10 → 10 + 3 + 2*2 = 17) 보다 작다.
    drawn = draw.draw_detections(grey_image(), [[0.05, 0.25, 0.5, 0.75]], [0.87], ["dog"])
    color = np.array(draw.class_color("dog"), dtype=np.uint8)
    assert np.all(drawn[:10] == GREY)
    assert np.all(drawn[10:12, 100:140] == color)
    inside_label = drawn[12:26, 102:160]
    is_fill = np.all(inside_label == color, axis=-1)
    assert is_fill.sum() > 100 and (~is_fill & np.any(inside_label != GREY, axis=-1)).sum() > 20


def test_box_outside_the_image_is_clipped_to_the_border():
    height, width = 40, 60
    drawn = draw.draw_detections(grey_image(height, width), [[-0.2, -0.1, 1.3, 1.5]], [0.9],
                                 ["dog"], score_threshold=0.5)
    color = np.array(draw.class_color("dog"), dtype=np.uint8)
    # (40 + 60) / 400 = 0.25 → 최소 두께 1: 이미지 가장자리 한 줄.
    edges = outline_mask(0, 0, height - 1, width - 1, 1, height, width)
    assert np.all(drawn[edges] == color)


def test_nothing_drawn_below_threshold_or_for_padding():
    image = grey_image()
    box = [[0.5, 0.25, 0.9, 0.75]]
    assert np.array_equal(draw.draw_detections(image, box, [0.3], ["dog"], score_threshold=0.5),
                          image)
    assert np.array_equal(draw.draw_detections(image, box, [0.9], [""]), image)
    assert np.array_equal(draw.draw_detections(image, box, [0.9], ["dog"], classes=[0]), image)
    assert np.array_equal(draw.draw_detections(image, box, [0.9], ["dog"], num_detections=0),
                          image)
    # 점수가 문턱값과 같으면 그린다.
    at_threshold = draw.draw_detections(image, box, [0.5], ["dog"], score_threshold=0.5)
    assert changed_mask(at_threshold, image).any()


def test_detections_beyond_num_detections_are_not_drawn():
    image = grey_image()
    boxes = [[0.5, 0.25, 0.9, 0.75], [0.05, 0.8, 0.3, 0.95]]
    drawn = draw.draw_detections(image, boxes, [0.9, 0.8], ["dog", "cat"], num_detections=1)
    alone = draw.draw_detections(image, boxes[:1], [0.9], ["dog"])
    assert np.array_equal(drawn, alone)
    both = draw.draw_detections(image, boxes, [0.9, 0.8], ["dog", "cat"], num_detections=2)
    # 두 번째 박스: 행 10..59, 열 320..379.
    assert changed_mask(both, image)[10:60, 320:380].any()
    assert not changed_mask(drawn, image)[10:60, 320:380].any()


def test_bytes_class_names_draw_like_strings():
    image = grey_image()
    box = [[0.5, 0.25, 0.9, 0.75]]
    from_bytes = draw.draw_detections(image, box, np.array([0.87], np.float32),
                                      np.array([b"dog"], dtype=object))
    from_text = draw.draw_detections(image, box, [0.87], ["dog"])
    assert np.array_equal(from_bytes, from_text)


def test_higher_score_is_drawn_on_top():
    first, second = two_names_with_different_colors()
    box = [0.5, 0.25, 0.9, 0.75]
    # 같은 박스, 목록 순서와 무관하게 점수가 높은 쪽의 색이 테두리에 남는다.
    for names, scores in (((first, second), (0.9, 0.6)), ((second, first), (0.6, 0.9))):
        drawn = draw.draw_detections(grey_image(), [box, box], list(scores), list(names))
        assert tuple(drawn[179, 200]) == draw.class_color(first)


def test_select_detections_indices():
    boxes = np.array([[0, 0, 1, 1]] * 5, dtype=np.float32)
    boxes[3, 0] = np.nan
    indices = draw.select_detections(boxes, [0.9, 0.2, 0.8, 0.95, 0.7], ["a", "b", "", "d", "e"],
                                     num_detections=4, score_threshold=0.5)
    # 1: 점수 미달, 2: 빈 이름, 3: NaN 박스, 4: num_detections 밖.
    assert indices.tolist() == [0]


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="uint8"):
        draw.draw_detections(np.zeros((4, 4, 3), np.float32), [[0, 0, 1, 1]], [1.0], ["a"])
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        draw.draw_detections(np.zeros((4, 4), np.uint8), [[0, 0, 1, 1]], [1.0], ["a"])
    with pytest.raises(ValueError, match="boxes"):
        draw.draw_detections(grey_image(), [[0, 0, 1]], [1.0], ["a"])
    with pytest.raises(ValueError, match="scores"):
        draw.draw_detections(grey_image(), [[0, 0, 1, 1]], [1.0, 0.5], ["a"])
