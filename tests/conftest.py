"""테스트 공통 설정과 픽스처: 로그를 줄이고 CPU 만 쓴다.

픽스처만 여기 둔다; 테스트가 함께 쓰는 도우미 함수·상수는 가져올 수 있는 모듈 `tests/testing.py` 에 있다
(테스트 파일은 conftest 를 가져오지 않는다).
  - `saved_model_dir`: `testing.TinyDetector` 를 세 시그니처로 저장한 SavedModel (세션에 한 번).
  - `loaded_model`: 그것을 tf.saved_model.load 로 불러온 객체.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402  (환경 변수를 먼저 정해야 한다)
import tensorflow as tf  # noqa: E402

from tests.testing import TinyDetector  # noqa: E402


@pytest.fixture(scope="session")
def saved_model_dir(tmp_path_factory):
    """TinyDetector 를 세 시그니처로 저장한 디렉터리."""
    path = str(tmp_path_factory.mktemp("tiny_model"))
    module = TinyDetector()
    signatures = {"serving_default": module.serve_images, "serve_bytes": module.serve_bytes,
                  "serve_examples": module.serve_examples}
    tf.saved_model.save(module, path, signatures=signatures)
    return path


@pytest.fixture(scope="session")
def loaded_model(saved_model_dir):
    """saved_model_dir 를 tf.saved_model.load 로 불러온 객체."""
    return tf.saved_model.load(saved_model_dir)
