"""서버 처리량/지연 벤치마크: REST 와 gRPC, 배칭 끔/켬, 동시 클라이언트 수마다; 옛 서버와 나란히.

서버는 ``tools.serve`` 를 하위 프로세스로 띄운다 (클라이언트 스레드와 GIL 을 나누지 않게; 127.0.0.1 의 빈 포트만).
``--old_repo`` 를 주면 그 체크아웃 (예: ``git worktree add /tmp/old_serve aef26f2``, http.server 기반의 옛 서버) 의
``tools.serve`` 도 같은 모델·같은 요청으로 잰다. 클라이언트마다 keep-alive 연결 (gRPC 는 채널) 하나로 JPEG 한 장
(``--batch_size``) 의 ``serve_bytes`` 요청을 보낸다. 요청 수와 시간 모두 상한이 있어 스스로 멈춘다.
``--memory_requests`` 만큼 좋은 요청과 잘못된 요청을 섞어 보낸 뒤 서버 RSS 가 워밍업 뒤보다 얼마나 늘었는지도 잰다.

예:
  git worktree add /tmp/old_serve aef26f2
  python -m benchmarks.bench_serve --saved_model=workspace/exports/cpu_small \\
      --images='workspace/data/VOC2007/JPEGImages/*.jpg' --old_repo=/tmp/old_serve \\
      --output=benchmarks/serve.md

용어: B 요청 하나의 이미지 수 (--batch_size); 서버 변형: old (옛 서버), new (배칭 끔), new+batching.
"""

import base64
import glob
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS

flags.DEFINE_string("saved_model", None, "벤치마크할 SavedModel 디렉터리.")
flags.DEFINE_string("images", None, "보낼 JPEG 파일 glob. 없으면 --image_size 크기의 무작위 JPEG 를 만든다.")
flags.DEFINE_list("server_flags", [], "새 서버 (new, new+batching) 에 더 줄 tools.serve 플래그 "
                  "(예: --tensorflow_intra_op_parallelism=0).")
flags.DEFINE_integer("image_size", 320, "합성 JPEG 의 한 변 픽셀 수 (--images 가 없을 때).")
flags.DEFINE_integer("num_images", 16, "합성하거나 glob 에서 쓸 이미지 수의 상한.")
flags.DEFINE_list("clients", ["1", "8", "32"], "동시 클라이언트 수들.")
flags.DEFINE_list("protocols", ["rest", "grpc"], "잴 프로토콜 (rest, grpc; 옛 서버는 rest 만).")
flags.DEFINE_list("servers", ["old", "new", "new+batching"], "잴 서버 변형 (old 는 --old_repo 가 있을 때만).")
flags.DEFINE_string("old_repo", None, "옛 서버의 체크아웃 (git worktree add /tmp/old_serve aef26f2).")
flags.DEFINE_integer("num_requests", 400, "측정 하나에서 보낼 요청 수의 상한.")
flags.DEFINE_float("max_seconds", 60.0, "측정 하나의 시간 상한 (초).")
flags.DEFINE_integer("warmup_requests", 16, "측정마다 앞서 보내고 버리는 요청 수.")
flags.DEFINE_integer("batch_size", 1, "요청 하나에 담을 이미지 수.")
flags.DEFINE_integer("max_batch_size", 8, "new+batching: --max_batch_size.")
flags.DEFINE_integer("batch_timeout_micros", 0, "new+batching: --batch_timeout_micros.")
flags.DEFINE_integer("num_batch_threads", 2, "new+batching: --num_batch_threads.")
flags.DEFINE_integer("memory_requests", 2000, "메모리 점검에 보낼 좋은·잘못된 요청 수 (0 이면 건너뜀).")
flags.DEFINE_string("output", None, "결과 표 (Markdown) 를 쓸 파일.")
flags.DEFINE_float("start_timeout", 180.0, "서버가 포트를 열기까지 기다릴 최대 초 (큰 모델의 워밍업 포함).")
flags.mark_flag_as_required("saved_model")

MODEL_NAME = "bench"
ADDRESS_PATTERN = re.compile(r"at http://127\.0\.0\.1:(\d+)/v1/models/\S+?(?:, gRPC on port (\d+))?$")
MALFORMED_BODIES = [
    b"{not json",
    json.dumps({"signature_name": "serve_bytes", "instances": [{"b64": "@@"}]}).encode(),
    json.dumps({"signature_name": "serve_bytes",
                "instances": [{"b64": base64.b64encode(b"not an image").decode()}]}).encode(),
    json.dumps({"signature_name": "nope", "instances": [1]}).encode(),
]


def load_images():
    """보낼 JPEG 바이트 목록 (파일 또는 합성)."""
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


def _batches(images):
    """이미지들을 --batch_size 장씩 묶은 목록 (돌아가며)."""
    return [[images[(start + offset) % len(images)] for offset in range(FLAGS.batch_size)]
            for start in range(len(images))]


def rest_payloads(images):
    bodies = []
    for batch in _batches(images):
        instances = [{"b64": base64.b64encode(data).decode("ascii")} for data in batch]
        bodies.append(json.dumps({"signature_name": "serve_bytes", "instances": instances}).encode())
    return bodies


def grpc_payloads(images):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    requests = []
    for batch in _batches(images):
        request = predict_pb2.PredictRequest(inputs={"image_bytes": tf.make_tensor_proto(batch)})
        request.model_spec.name, request.model_spec.signature_name = MODEL_NAME, "serve_bytes"
        requests.append(request)
    return requests


# ---- 서버 ----

class ServerProcess:
    """하위 프로세스로 띄운 tools.serve (로그는 임시 파일로: 파이프가 차서 서버가 멈추지 않게)."""

    def __init__(self, variant):
        self.variant = variant
        repo = FLAGS.old_repo if variant == "old" else os.getcwd()
        command = [sys.executable, "-m", "tools.serve", f"--saved_model={os.path.abspath(FLAGS.saved_model)}",
                   "--port=0", f"--model_name={MODEL_NAME}"]
        if variant != "old":
            command += ["--grpc_port=0"] + FLAGS.server_flags
        if variant == "new+batching":
            command += ["--enable_batching", f"--max_batch_size={FLAGS.max_batch_size}",
                        f"--batch_timeout_micros={FLAGS.batch_timeout_micros}",
                        f"--num_batch_threads={FLAGS.num_batch_threads}"]
        env = dict(os.environ, PYTHONPATH=repo, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log")
        self.process = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.DEVNULL,
                                        stderr=self.log)
        self.port, self.grpc_port = self._wait_for_ports(timeout=FLAGS.start_timeout)

    def _wait_for_ports(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.log.seek(0)
            for line in self.log.read().splitlines():
                found = ADDRESS_PATTERN.search(line)
                if found:
                    return int(found.group(1)), int(found.group(2)) if found.group(2) else None
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        self.log.seek(0)
        self.stop()
        raise RuntimeError(f"{self.variant} server did not start:\n{self.log.read()[-3000:]}")

    def rss_mib(self):
        """서버 프로세스의 상주 메모리 (MiB, /proc)."""
        with open(f"/proc/{self.process.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ---- 클라이언트 ----

class _NoDelayConnection(http.client.HTTPConnection):
    """TCP_NODELAY 를 켠 연결 (requests/urllib3 처럼): http.client 는 머리와 본문을 따로 보낸다."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _drain(tickets, deadline, send, latencies, failures):
    """요청표가 남고 시간 안이면 send(ticket) 을 불러 지연과 실패 (send 가 돌려준 상태, None 이면 성공) 를 적는다."""
    while time.monotonic() < deadline:
        try:
            ticket = tickets.pop()
        except IndexError:
            break
        start = time.monotonic()
        failure = send(ticket)
        latencies.append(time.monotonic() - start)
        if failure is not None:
            failures.append(failure)


def rest_client(port, bodies, tickets, deadline, latencies, failures):
    """REST 요청을 보내 지연을 기록한다 (keep-alive 연결 하나; 끊기면 새로 연다)."""
    headers = {"Content-Type": "application/json"}
    connections = [_NoDelayConnection("127.0.0.1", port, timeout=120)]

    def send(ticket):
        try:
            connections[0].request("POST", f"/v1/models/{MODEL_NAME}:predict",
                                   body=bodies[ticket % len(bodies)], headers=headers)
            response = connections[0].getresponse()
            response.read()
            return None if response.status == 200 else response.status
        except (OSError, http.client.HTTPException) as error:
            connections[0].close()
            connections[0] = _NoDelayConnection("127.0.0.1", port, timeout=120)
            return type(error).__name__

    _drain(tickets, deadline, send, latencies, failures)
    connections[0].close()


def grpc_client(port, requests, tickets, deadline, latencies, failures):
    """gRPC Predict 를 보내 지연을 기록한다 (채널 하나)."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def send(ticket):
            try:
                stub.Predict(requests[ticket % len(requests)], timeout=120)
                return None
            except grpc.RpcError as error:
                return error.code().name

        _drain(tickets, deadline, send, latencies, failures)


def run_clients(client, port, payloads, num_clients, num_requests):
    """클라이언트 스레드들을 돌리고 (지연 목록, 실패 목록, 걸린 초) 를 돌려준다."""
    tickets = list(range(num_requests))
    latencies, failures = [], []
    deadline = time.monotonic() + FLAGS.max_seconds
    threads = [threading.Thread(target=client, args=(port, payloads, tickets, deadline, latencies, failures))
               for _ in range(num_clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, failures, time.monotonic() - start


def measure(server, protocol, payloads, num_clients):
    """측정 하나: 워밍업 뒤 요청들을 보내고 처리량·지연을 돌려준다."""
    client, port = (rest_client, server.port) if protocol == "rest" else (grpc_client, server.grpc_port)
    run_clients(client, port, payloads, num_clients, FLAGS.warmup_requests)
    latencies, failures, seconds = run_clients(client, port, payloads, num_clients, FLAGS.num_requests)
    latency_ms = 1000 * np.array(latencies or [np.nan])
    return {"server": server.variant, "protocol": protocol, "clients": num_clients,
            "requests": len(latencies), "failures": len(failures),
            "requests_per_second": len(latencies) / seconds,
            "p50_ms": float(np.percentile(latency_ms, 50)), "p99_ms": float(np.percentile(latency_ms, 99))}


def memory_check(server, good_bodies):
    """좋은 요청과 잘못된 요청을 섞어 보내고 (워밍업 뒤 RSS, 뒤 RSS) MiB 를 돌려준다."""
    bodies = [body for pair in zip(good_bodies, MALFORMED_BODIES * len(good_bodies)) for body in pair]
    run_clients(rest_client, server.port, bodies, 8, 200)
    before = server.rss_mib()
    latencies, _, _ = run_clients(rest_client, server.port, bodies, 8, FLAGS.memory_requests)
    return before, server.rss_mib(), len(latencies)


def table(rows):
    lines = ["| server | protocol | clients | requests | failures | requests/s | p50 ms | p99 ms |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(f"| {row['server']} | {row['protocol']} | {row['clients']} | {row['requests']} | "
                     f"{row['failures']} | {row['requests_per_second']:.1f} | {row['p50_ms']:.0f} | "
                     f"{row['p99_ms']:.0f} |")
    return "\n".join(lines)


def _check_flags():
    for name in ("num_requests", "batch_size", "num_images", "image_size"):
        if getattr(FLAGS, name) <= 0:
            raise app.UsageError(f"--{name} must be positive")
    if "old" in FLAGS.servers and FLAGS.old_repo and not os.path.isfile(os.path.join(FLAGS.old_repo, "tools",
                                                                                     "serve.py")):
        raise app.UsageError(f"--old_repo={FLAGS.old_repo}: no tools/serve.py there")
    unknown = set(FLAGS.servers) - {"old", "new", "new+batching"} or set(FLAGS.protocols) - {"rest", "grpc"}
    if unknown:
        raise app.UsageError(f"unknown --servers/--protocols value(s): {sorted(unknown)}")


def main(argv):
    """서버 변형마다 띄워 프로토콜·클라이언트 수마다 재고 표를 출력한다."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _check_flags()
    images = load_images()
    payloads = {"rest": rest_payloads(images), "grpc": grpc_payloads(images)}
    rows, memory_lines = [], []
    for variant in FLAGS.servers:
        if variant == "old" and not FLAGS.old_repo:
            continue
        server = ServerProcess(variant)
        try:
            for protocol in FLAGS.protocols:
                if protocol == "grpc" and server.grpc_port is None:
                    continue
                for num_clients in map(int, FLAGS.clients):
                    rows.append(measure(server, protocol, payloads[protocol], num_clients))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
            if FLAGS.memory_requests:
                before, after, sent = memory_check(server, payloads["rest"])
                growth = 100 * (after / before - 1)
                memory_lines.append(f"- {variant}: RSS after warm-up {before:.0f} MiB, after {sent} mixed "
                                    f"good and malformed REST requests {after:.0f} MiB ({growth:+.1f} %)")
                print(memory_lines[-1], flush=True)
        finally:
            server.stop()
    report = table(rows) + ("\n\n" + "\n".join(memory_lines) if memory_lines else "")
    print(report)
    if FLAGS.output:
        with open(FLAGS.output, "w") as handle:
            handle.write(report + "\n")


if __name__ == "__main__":
    app.run(main)
