"""TensorBoard 이벤트 파일 읽기: `progress` (train/) 와 `frcnn.eval.validation` (eval/) 이 쓴 요약을 값으로 읽는
하나뿐인 곳 (`tools/plot_validation` 과 테스트가 쓴다).

용어:
  이벤트 파일: log_dir 의 `events.out.tfevents.*` (이름 = 시간 순서; 이어 학습은 새 파일을 더한다).
  값: 스칼라 요약은 Python float, 이미지 요약 (문자열 텐서 [2 + k]: 너비, 높이, PNG 바이트들) 은 bytes 목록.
  플러그인: 요약의 metadata.plugin_data.plugin_name ("scalars", "images").
"""

import glob
import os

import tensorflow as tf


def read_summaries(log_dir, plugin_name=None):
    """log_dir 의 이벤트 파일들을 읽어 요약 값을 태그별로 모은다.

    Args:
      log_dir: TensorBoard 디렉터리 (예: model_dir/eval).
      plugin_name: None (모든 요약) 또는 이 플러그인의 요약만 ("scalars", "images").

    Returns:
      {태그: [(스텝, 값)]} — 파일 순서, 파일 안에서는 쓴 순서 (같은 스텝이 다시 나올 수 있다).
    """
    values = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(log_dir), "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if plugin_name is not None and value.metadata.plugin_data.plugin_name != plugin_name:
                    continue
                array = tf.make_ndarray(value.tensor)
                content = array.tolist() if array.dtype == object else float(array)
                values.setdefault(value.tag, []).append((event.step, content))
    return values
