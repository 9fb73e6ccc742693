"""픽셀 예산 검사의 비용: 이 체크아웃과 옛 체크아웃 (``--old_repo``, 예: issue 24 이전 커밋의 git worktree) 이
같은 가중치의 cpu_small 을 내보내고, 두 SavedModel 의 ``serve_bytes`` 지연을 번갈아 잰다 (한 프로세스, 한 번의 실행).

가중치는 두 체크아웃에서 같은 씨앗 (``keras.utils.set_random_seed(0)``) 으로 만든 무작위 가중치다 (모델 코드는
같다). 요청: 500×375 JPEG 1 장, 그리고 크기가 다른 JPEG 8 장 (serve_bytes 가 그래프 안에서 한 장씩 검출).

예:
  git worktree add /tmp/old_24 612c0cd
  python -m benchmarks.bench_budget_overhead --old_repo=/tmp/old_24
"""

import io
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("old_repo", None, "비교할 옛 체크아웃 (issue 24 이전).")
flags.DEFINE_integer("num_runs", 15, "요청 꼴마다 잴 횟수 (중앙값).")
flags.mark_flag_as_required("old_repo")

EXPORT_SCRIPT = """
import sys
import keras
from frcnn import config as config_lib
from frcnn.export import saved_model
from frcnn.modeling import model as model_lib
try:  # 캔버스 기하의 집이 옮겨졌다 (record_spec); 옛 커밋은 config 에 있다
    from frcnn.data.record_spec import largest_canvas
except ImportError:
    largest_canvas = config_lib.largest_canvas
keras.utils.set_random_seed(0)
config = config_lib.build_config("cpu_small", "")
model = model_lib.FasterRCNN(config, 20)
model.build_all(largest_canvas(config))
saved_model.export_saved_model(model, config, [f"c{index}" for index in range(20)], sys.argv[1])
"""


def _export(repo, export_dir):
    env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, export_dir], cwd=repo, env=env, check=True,
                   capture_output=True, timeout=600)


def _jpeg(height, width, seed):
    from PIL import Image
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main(argv):
    del argv
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(1)  # tools/serve 의 기본값
    requests = {"1 JPEG 500x375": [_jpeg(375, 500, 0)],
                "8 JPEGs 300..500 px": [_jpeg(300 + 25 * index, 500 - 20 * index, index)
                                        for index in range(8)]}
    with tempfile.TemporaryDirectory() as scratch:
        models = {}
        for name, repo in (("old", os.path.abspath(FLAGS.old_repo)), ("new", os.getcwd())):
            _export(repo, os.path.join(scratch, name))
            models[name] = tf.saved_model.load(os.path.join(scratch, name)).signatures["serve_bytes"]
        for label, images in requests.items():
            tensor = tf.constant(images)
            times = {name: [] for name in models}
            outputs = {name: function(image_bytes=tensor) for name, function in models.items()}  # 워밍업
            same = all(np.allclose(outputs["old"][key].numpy(), outputs["new"][key].numpy(), atol=1e-5)
                       for key in ("detection_boxes", "detection_scores"))
            for _ in range(FLAGS.num_runs):
                for name, function in models.items():
                    start = time.perf_counter()
                    function(image_bytes=tensor)
                    times[name].append(time.perf_counter() - start)
            old, new = (1000 * np.median(times[name]) for name in ("old", "new"))
            print(f"{label}: old {old:.1f} ms, new {new:.1f} ms (new/old {new / old:.3f}), "
                  f"same detections: {same}")


if __name__ == "__main__":
    app.run(main)
