"""적대적 입력 측정 (issue 24 의 "must show"): 압축 폭탄 네 개를 동시에 보내도 tools.serve 가 디코딩 전에 거절하고
메모리가 늘지 않는지, 그리고 우리 코드 없이 tf.saved_model.load 로 불러도 그래프가 같은 폭탄을 거절하는지.

1. cpu_small SavedModel (``--saved_model`` 이 없으면 무작위 가중치로 내보낸다: 거절은 가중치와 무관하다) 을
   ``tools.serve`` 하위 프로세스로 띄운다 (127.0.0.1 의 빈 포트만).
2. 정상 요청 (640×480 JPEG, serve_bytes) 하나 → 서버 RSS (/proc/PID/status) → 폭탄 네 개 동시에 ``--rounds`` 번
   (REST serve_bytes 의 20000×20000 PNG, 30000×30000 이라 말하는 JPEG, gRPC serve_bytes 의 PNG 폭탄, gRPC 의
   값 없는 [1, 100000, 100000, 3] TensorProto) → 같은 프로세스의 RSS → 같은 정상 요청 (답이 같은지).
3. 새 하위 프로세스에서 frcnn 을 막고 ``tf.saved_model.load`` 만으로 같은 폭탄을 serve_bytes 에 넣는다.
4. 퍼즈 (tests/serving/hostile.fuzz) 를 같은 서버에 돌려 상태별 수와 RSS 를 낸다.

예:
  python -m benchmarks.bench_hostile
  python -m benchmarks.bench_hostile --saved_model=workspace/exports/cpu_small
"""

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
from absl import app, flags

from tests.serving import hostile

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "잴 SavedModel (없으면 cpu_small 을 무작위 가중치로 임시 디렉터리에 내보낸다).")
flags.DEFINE_integer("rounds", 5, "폭탄 네 개를 동시에 보내는 횟수.")
flags.DEFINE_integer("fuzz_rest", 2000, "퍼즈 REST 요청 수.")
flags.DEFINE_integer("fuzz_grpc", 1000, "퍼즈 gRPC 요청 수.")

MODEL_NAME = "frcnn"
ADDRESS_PATTERN = re.compile(r"at http://[^:]+:(\d+)/v1/models/\S+, gRPC on port (\d+)")
PLAIN_LOAD_SCRIPT = textwrap.dedent("""
    import sys, time
    for blocked in ("frcnn", "pipelines", "keras", "tf_keras"):
        sys.modules[blocked] = None
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    bombs = np.load(sys.argv[2])
    start = time.monotonic()  # 첫 호출 (함수 준비) 은 따로 잰다
    png = tf.io.encode_png(tf.zeros([48, 64, 3], tf.uint8)).numpy()
    model.signatures["serve_bytes"](image_bytes=tf.constant([png]))
    print(f"normal 64x48 PNG (first call): {time.monotonic() - start:.3f} s")
    for name in bombs.files:
        start = time.monotonic()
        try:
            model.signatures["serve_bytes"](image_bytes=tf.constant([bombs[name].tobytes()]))
            print(f"{name}: NOT refused")
        except tf.errors.InvalidArgumentError as error:
            line = [part for part in str(error).splitlines() if "assertion failed" in part][0]
            print(f"{name}: {type(error).__name__} in {time.monotonic() - start:.3f} s: {line.strip()}")
""")


def _export_random_cpu_small(export_dir):
    """cpu_small 을 무작위 가중치로 내보낸다 (기본 --max_image_pixels)."""
    from frcnn import config as config_lib
    from frcnn.data import record_spec
    from frcnn.export import saved_model
    from frcnn.modeling import model as model_lib
    config = config_lib.build_config("cpu_small", "")
    model = model_lib.FasterRCNN(config, 20)
    model.build_all(record_spec.largest_canvas(config))
    saved_model.export_saved_model(model, config, [f"class{index}" for index in range(1, 21)], export_dir)


def _start_server(saved_model_dir, log):
    command = [sys.executable, "-m", "tools.serve", f"--saved_model={saved_model_dir}", "--port=0",
               "--grpc_port=0", f"--model_name={MODEL_NAME}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        log.seek(0)
        found = ADDRESS_PATTERN.search(log.read())
        if found:
            return process, int(found.group(1)), int(found.group(2))
        time.sleep(0.2)
    process.kill()
    log.seek(0)
    raise RuntimeError(f"tools.serve did not start:\n{log.read()[-3000:]}")


def _rest(port, document):
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", f"/v1/models/{MODEL_NAME}:predict", body=json.dumps(document))
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    return response.status, time.monotonic() - start, text


def _grpc(port, request):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc
    start = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
            return "OK", time.monotonic() - start, ""
        except grpc.RpcError as error:
            return error.code().name, time.monotonic() - start, error.details()


def _bomb_calls(rest_port, grpc_port):
    """동시에 보낼 폭탄 네 개: (이름, 부를 함수)."""
    import tensorflow as tf
    png, jpeg = hostile.png_bomb(20000, 20000), hostile.jpeg_claiming(30000, 30000)

    def rest(data):
        document = {"signature_name": "serve_bytes",
                    "instances": [{"b64": base64.b64encode(data).decode("ascii")}]}
        return lambda: _rest(rest_port, document)

    png_request = hostile.tensor_request(MODEL_NAME, "serve_bytes", "image_bytes",
                                         tf.make_tensor_proto(np.array([png], dtype=object)))
    huge_request = hostile.tensor_request(MODEL_NAME, "", "images",
                                          hostile.huge_tensor_proto([1, 100000, 100000, 3]))
    return [("REST serve_bytes PNG 20000x20000 (%d B)" % len(png), rest(png)),
            ("REST serve_bytes JPEG header 30000x30000 (%d B)" % len(jpeg), rest(jpeg)),
            ("gRPC serve_bytes PNG 20000x20000", lambda: _grpc(grpc_port, png_request)),
            ("gRPC images TensorProto [1,100000,100000,3], no values",
             lambda: _grpc(grpc_port, huge_request))]


def _concurrently(calls):
    results = [None] * len(calls)

    def run(index, call):
        results[index] = call()

    threads = [threading.Thread(target=run, args=(index, call)) for index, (_, call) in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _normal_document():
    import io
    from PIL import Image
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), np.uint8)).save(buffer, format="JPEG")
    return {"signature_name": "serve_bytes",
            "instances": [{"b64": base64.b64encode(buffer.getvalue()).decode("ascii")}]}


def _measure_server(saved_model_dir):
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        process, rest_port, grpc_port = _start_server(saved_model_dir, log)
        try:
            normal = _normal_document()
            status, seconds, first = _rest(rest_port, normal)
            print(f"normal request before: {status} in {seconds:.3f} s")
            before = hostile.rss_mib(process.pid)
            calls = _bomb_calls(rest_port, grpc_port)
            for round_index in range(FLAGS.rounds):
                for (name, _), (code, seconds, message) in zip(calls, _concurrently(calls)):
                    print(f"round {round_index}: {name}: {code} in {seconds:.3f} s: {message[:150]}")
            after = hostile.rss_mib(process.pid)
            print(f"server RSS before {before:.0f} MiB, after {FLAGS.rounds} x 4 concurrent bombs "
                  f"{after:.0f} MiB (+{after - before:.0f} MiB)")
            status, seconds, second = _rest(rest_port, normal)
            print(f"normal request after: {status} in {seconds:.3f} s, same answer: {first == second}")
            counts = hostile.fuzz("127.0.0.1", rest_port, grpc_port, MODEL_NAME, 0, FLAGS.fuzz_rest,
                                  FLAGS.fuzz_grpc)
            fuzzed = hostile.rss_mib(process.pid)
            print(f"fuzz: {json.dumps(counts, default=str)}")
            print(f"fuzz: {hostile.server_errors(counts)} server errors (5xx/INTERNAL); server RSS "
                  f"{after:.0f} → {fuzzed:.0f} MiB; alive: {_rest(rest_port, normal)[0] == 200}")
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def _measure_plain_load(saved_model_dir):
    with tempfile.TemporaryDirectory() as scratch:
        bombs = os.path.join(scratch, "bombs.npz")
        np.savez(bombs, png_20000x20000=np.frombuffer(hostile.png_bomb(20000, 20000), np.uint8),
                 jpeg_30000x30000=np.frombuffer(hostile.jpeg_claiming(30000, 30000), np.uint8),
                 gif_4000x4000x20=np.frombuffer(hostile.gif_bomb(4000, 4000, 20), np.uint8))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        result = subprocess.run([sys.executable, "-c", PLAIN_LOAD_SCRIPT, saved_model_dir, bombs], env=env,
                                capture_output=True, text=True, timeout=600, cwd=scratch)
        print("plain tf.saved_model.load (frcnn blocked):")
        print(result.stdout.strip() or result.stderr[-3000:])


def main(argv):
    del argv
    with tempfile.TemporaryDirectory() as scratch:
        saved_model_dir = FLAGS.saved_model
        if saved_model_dir is None:
            saved_model_dir = os.path.join(scratch, "cpu_small")
            _export_random_cpu_small(saved_model_dir)
        saved_model_dir = os.path.abspath(saved_model_dir)
        _measure_server(saved_model_dir)
        _measure_plain_load(saved_model_dir)


if __name__ == "__main__":
    app.run(main)
