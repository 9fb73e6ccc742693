"""REST 서버 처리량/지연 벤치마크: 동시 클라이언트들이 ``serve_bytes`` 로 JPEG 를 보낸다.

서버는 이 프로세스 안에서 127.0.0.1 의 빈 포트로 띄우고(루프백만 사용), 클라이언트 스레드마다
keep-alive 연결 하나로 요청을 보낸다. 요청 수와 시간 모두 상한이 있어 스스로 멈춘다.

예:
  python -m benchmarks.bench_serve --saved_model=exports/frcnn --images='data/VOC2007/JPEGImages/*.jpg'

용어: B 요청 하나의 인스턴스 수(--batch_size), H/W 합성 이미지 크기.
"""

import base64
import glob
import http.client
import json
import logging
import threading
import time

import numpy as np
from absl import app, flags
from tqdm import tqdm

FLAGS = flags.FLAGS

flags.DEFINE_string("saved_model", None, "벤치마크할 SavedModel 디렉터리.")
flags.DEFINE_string("images", None, "보낼 JPEG 파일 glob. 없으면 --image_size 크기의 무작위 JPEG 를 만든다.")
flags.DEFINE_integer("image_size", 320, "합성 JPEG 의 한 변 픽셀 수 (--images 가 없을 때).")
flags.DEFINE_integer("num_images", 16, "합성하거나 glob 에서 쓸 이미지 수의 상한.")
flags.DEFINE_integer("num_clients", 8, "동시 클라이언트 스레드 수.")
flags.DEFINE_integer("num_requests", 200, "보낼 총 요청 수의 상한.")
flags.DEFINE_float("max_seconds", 60.0, "측정 시간의 상한 (초). 넘으면 남은 요청은 보내지 않는다.")
flags.DEFINE_integer("batch_size", 1, "요청 하나에 담을 이미지(인스턴스) 수.")
flags.DEFINE_string("signature_name", "serve_bytes", "호출할 시그니처 (문자열 입력 하나를 받아야 한다).")
flags.mark_flag_as_required("saved_model")

MODEL_NAME = "bench"


def load_images():
    """보낼 JPEG 바이트 목록을 만든다 (파일 또는 합성)."""
    if FLAGS.images:
        paths = sorted(glob.glob(FLAGS.images))[:FLAGS.num_images]
        if not paths:
            raise app.UsageError(f"--images={FLAGS.images}: no file matches")
        images = []
        for path in paths:
            with open(path, "rb") as handle:
                images.append(handle.read())
        return images
    import tensorflow as tf
    generator = np.random.default_rng(0)
    shape = [FLAGS.image_size, FLAGS.image_size, 3]
    return [tf.io.encode_jpeg(generator.integers(0, 256, shape, dtype=np.uint8)).numpy()
            for _ in range(FLAGS.num_images)]


def request_bodies(images):
    """이미지들을 --batch_size 개씩 묶은 predict 요청 본문들."""
    bodies = []
    for start in range(len(images)):
        batch = [images[(start + offset) % len(images)] for offset in range(FLAGS.batch_size)]
        instances = [{"b64": base64.b64encode(data).decode("ascii")} for data in batch]
        bodies.append(json.dumps({"signature_name": FLAGS.signature_name, "instances": instances}).encode())
    return bodies


def client_loop(address, bodies, tickets, deadline, latencies, failures, progress):
    """요청표가 남고 시간 안이면 요청을 보내 지연을 기록한다."""
    connection = http.client.HTTPConnection(*address, timeout=120)
    headers = {"Content-Type": "application/json"}
    while time.monotonic() < deadline:
        try:
            ticket = tickets.pop()
        except IndexError:
            break
        start = time.monotonic()
        connection.request("POST", f"/v1/models/{MODEL_NAME}:predict", body=bodies[ticket % len(bodies)],
                           headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.monotonic() - start)
        if response.status != 200:
            failures.append(response.status)
        progress.update(1)
    connection.close()


def run_clients(address, bodies):
    """클라이언트 스레드들을 돌리고 (지연 목록, 실패 목록, 걸린 초) 를 돌려준다."""
    tickets = list(range(FLAGS.num_requests))
    latencies, failures = [], []
    deadline = time.monotonic() + FLAGS.max_seconds
    with tqdm(total=FLAGS.num_requests, desc="requests", unit="req") as progress:
        threads = [threading.Thread(target=client_loop,
                                    args=(address, bodies, tickets, deadline, latencies, failures, progress))
                   for _ in range(FLAGS.num_clients)]
        start = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return latencies, failures, time.monotonic() - start


def main(argv):
    """플래그를 검사하고 서버를 띄워 클라이언트들을 돌린 뒤 처리량·지연을 출력한다."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    for name in ("num_clients", "num_requests", "batch_size", "num_images", "image_size"):
        if getattr(FLAGS, name) <= 0:
            raise app.UsageError(f"--{name} must be positive")
    from frcnn.serving import make_server
    logging.getLogger("frcnn.serving").setLevel(logging.WARNING)  # 요청마다의 로그 줄은 끈다.
    try:
        server = make_server(FLAGS.saved_model, MODEL_NAME, "127.0.0.1", 0)
    except ValueError as error:
        raise app.UsageError(f"--saved_model: {error}") from error
    serve_thread = threading.Thread(target=server.serve_forever, daemon=True)
    serve_thread.start()
    try:
        latencies, failures, seconds = run_clients(server.server_address[:2], request_bodies(load_images()))
    finally:
        server.graceful_shutdown(drain_timeout=30)
    latency_ms = 1000 * np.array(latencies)
    print(f"clients={FLAGS.num_clients} batch_size={FLAGS.batch_size} requests={len(latencies)} "
          f"failures={len(failures)} seconds={seconds:.2f}")
    images_per_second = len(latencies) * FLAGS.batch_size / seconds
    print(f"requests/s={len(latencies) / seconds:.2f} images/s={images_per_second:.2f}")
    if latencies:
        print(f"latency_ms p50={np.percentile(latency_ms, 50):.1f} p99={np.percentile(latency_ms, 99):.1f} "
              f"max={latency_ms.max():.1f}")
    if failures:
        raise SystemExit(f"{len(failures)} requests failed with statuses {sorted(set(failures))}")


if __name__ == "__main__":
    app.run(main)
