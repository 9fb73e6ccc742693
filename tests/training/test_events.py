"""frcnn.training.events 테스트: tf.summary 로 쓴 스칼라·이미지를 태그별 (스텝, 값) 으로 되읽고, 플러그인으로
거르며, 이어 학습처럼 파일이 둘이면 파일 순서대로 (같은 스텝도 둘 다) 내는지 확인한다."""

import time

import numpy as np
import tensorflow as tf

from frcnn.training import events


def _write(log_dir, step, value, image=None):
    with tf.summary.create_file_writer(log_dir).as_default(step=step):
        tf.summary.scalar("eval/voc07_map", value)
        if image is not None:
            tf.summary.image("eval/detections/0", image[None])


def test_reads_scalars_and_images_in_file_order(tmp_path):
    log_dir = str(tmp_path)
    image = np.zeros((3, 5, 3), np.uint8)  # 높이 3, 너비 5
    _write(log_dir, 2, 0.25, image)
    time.sleep(1.1)  # 이벤트 파일 이름에 초 단위 시각이 들어간다: 두 번째 파일이 뒤에 오도록
    _write(log_dir, 2, 0.5)
    summaries = events.read_summaries(log_dir)
    assert summaries["eval/voc07_map"] == [(2, 0.25), (2, 0.5)]
    (step, encoded), = summaries["eval/detections/0"]
    assert step == 2 and encoded[:2] == [b"5", b"3"] and encoded[2].startswith(b"\x89PNG")
    assert set(events.read_summaries(log_dir, "scalars")) == {"eval/voc07_map"}
    assert events.read_summaries(str(tmp_path / "empty")) == {}
