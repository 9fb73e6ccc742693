"""모델을 TF Serving 호환 REST (와 gRPC) API 로 서빙한다.

모델은 SavedModel 디렉터리, tools/export 의 .tflite/.onnx 파일 (--saved_model, 별칭 --model), 또는 번호 붙은
버전 디렉터리들의 부모 (--model_base_path: 최신 버전, 새 버전을 --file_system_poll_wait_seconds 마다 찾아 바꿔
끼운다). --grpc_port 를 주면 gRPC (tensorflow-serving-api 의 PredictionService·ModelService) 도 같은 모델과
배처로 답한다. 지표: GET /monitoring/prometheus/metrics.

예:
  python -m tools.serve --saved_model=exports/frcnn --port=8501 --grpc_port=8500
  python -m tools.serve --model_base_path=models/frcnn --enable_batching
  curl http://127.0.0.1:8501/v1/models/frcnn/metadata

용어: B 배치, N 검출 수; 박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표.
"""

import logging
import signal
import sys
import threading

from absl import app, flags

FLAGS = flags.FLAGS
logger = logging.getLogger("frcnn.serving")

flags.DEFINE_string("saved_model", None, "서빙할 SavedModel 디렉터리 (tools/export 의 --export_dir), 또는 "
                    "tools/export --formats=tflite,onnx 의 .tflite/.onnx 파일. 버전 하나.")
flags.DEFINE_alias("model", "saved_model")
flags.DEFINE_string("model_base_path", None, "번호 붙은 버전 디렉터리 (1/, 2/, …) 들의 부모 (TF Serving 과 같음): "
                    "가장 큰 번호를 서빙하고 새 버전을 찾아 바꿔 끼운다. --saved_model 과 하나만.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "--model_base_path 에서 새 버전을 찾는 간격 (초).")
flags.DEFINE_string("model_name", "frcnn", "모델 이름: /v1/models/<model_name>:predict, gRPC model_spec.name.")
flags.DEFINE_string("host", "127.0.0.1", "바인드할 주소. 외부에 열려면 0.0.0.0.")
flags.DEFINE_integer("port", 8501, "REST 포트 (TF Serving REST 기본값 8501). 0 이면 빈 포트.")
flags.DEFINE_integer("grpc_port", None, "gRPC 포트 (TF Serving 기본값 8500). 주지 않으면 gRPC 없이, 0 이면 빈 포트.")
flags.DEFINE_integer("max_body_bytes", 32 * 1024 * 1024,
                     "REST 본문·gRPC 메시지 최대 바이트. 넘으면 413 / RESOURCE_EXHAUSTED.")
flags.DEFINE_list("version_labels", [], "버전 라벨 LABEL=N 들 (TF Serving 모델 설정의 version_labels): "
                  "/v1/models/NAME/labels/LABEL, gRPC model_spec.version_label 이 버전 N 을 고른다. 예: "
                  "stable=3. 한 번에 한 버전 (최신) 만 서빙하므로 그 버전이 서빙 중일 때만 답한다 (아니면 404 / "
                  "NOT_FOUND); 모르는 라벨은 400 / INVALID_ARGUMENT.")
flags.DEFINE_integer("model_version", 1, "--saved_model 로 서빙할 때 알릴 버전 (/versions/N).")
flags.DEFINE_boolean("enable_batching", False, "요청들을 한 배치로 모아 모델에 넣는다 (같은 시그니처·같은 입력 모양).")
flags.DEFINE_integer("max_batch_size", 8, "배칭: 한 배치의 최대 인스턴스 수.")
flags.DEFINE_integer("batch_timeout_micros", 0, "배칭: 가장 오래된 요청이 배치를 기다리는 최대 마이크로초 "
                     "(0: 모델이 빌 때마다 모인 만큼 곧바로).")
flags.DEFINE_integer("max_enqueued_batches", 16, "배칭: 큐의 최대 배치 수. 차면 503 / UNAVAILABLE.")
flags.DEFINE_integer("num_batch_threads", 2, "배칭: 배치를 동시에 돌리는 스레드 수.")
flags.DEFINE_float("request_timeout_seconds", 30.0, "요청 머리·본문을 기다리는 최대 초 (본문이 늦으면 408).")
flags.DEFINE_integer("keep_alive_seconds", 15, "쉬는 HTTP keep-alive 연결을 닫기까지의 초.")
flags.DEFINE_integer("grpc_max_threads", 64, "동시에 처리할 gRPC 호출 수.")
flags.DEFINE_float("drain_timeout", 30.0, "SIGTERM/SIGINT 뒤 처리 중 요청을 기다릴 최대 초.")
# 스레드 기본값은 기계에만 달려 있다 (TF 의 스레드 풀은 모델을 싣기 전, 프로세스가 시작할 때 정해진다): TF 가
# 코어 수만큼의 스레드를 쓰고 (TF Serving 의 기본값과 같다), 모델을 동시에 도는 요청은 쓸 수 있는 코어 수까지.
# 큰 모델 (vgg16_paper) 의 한 요청이 모든 코어를 쓰고, 작은 모델 (cpu_small) 의 동시 요청들은 코어를 나눠 쓴다
# (benchmarks/RESULTS.md "Issue 23").
flags.DEFINE_integer("tensorflow_intra_op_parallelism", 0,
                     "한 TF 연산 안에서 쓸 스레드 수 (TF Serving 과 같은 이름). 0 이면 TF 가 정한다 (쓸 수 있는 "
                     "코어 수). SavedModel 만 (.tflite/.onnx 는 쓸 수 있는 코어 수).")
flags.DEFINE_integer("tensorflow_inter_op_parallelism", 0,
                     "서로 다른 TF 연산 (동시 요청들) 을 함께 돌릴 스레드 수 (TF Serving 과 같은 이름; 0 이면 TF 가 "
                     "정한다: 코어 수). SavedModel 만.")
flags.DEFINE_integer("max_concurrent_predictions", 0,
                     "배칭이 없을 때 모델을 동시에 도는 요청 수; 넘는 요청은 온 순서대로 기다린다 (꼬리 지연이 "
                     "짧아진다). 0 이면 쓸 수 있는 코어 수 (cgroup 할당 포함).")
flags.DEFINE_integer("max_image_pixels", None,
                     "픽셀 예산: 요청 하나의 이미지들이 함께 가질 수 있는 픽셀 (H × W × 프레임). serve_bytes·"
                     "serve_examples 는 이미지 머리에서 읽어 디코딩 전에, images 배열은 모양으로 검사하고, 넘으면 "
                     "400 / INVALID_ARGUMENT (압축 폭탄 방어). 기본: 모델이 품은 값 (tools/export "
                     "--max_image_pixels), 없으면 64 M 픽셀. 이 변경 뒤에 내보낸 SavedModel 은 그래프도 자기 예산을 "
                     "검사하므로, 그보다 올리려면 tools/export --max_image_pixels 로 다시 내보낸다.")
flags.DEFINE_integer("max_images_per_request", 64, "요청 하나의 인스턴스 (이미지) 수 상한. 넘으면 400.")
flags.DEFINE_boolean("warmup", True, "버전마다 서빙 전에 각 시그니처를 작은 입력으로 한 번 실행해 첫 요청 지연을 없앤다.")


def serve_until_signal(server, drain_timeout, signals=(signal.SIGTERM, signal.SIGINT)):
    """신호를 받을 때까지 서빙하고, 받으면 우아하게 멈춘다. 메인 스레드에서 불러야 한다.

    신호 처리기는 프로세스 전역 상태라 라이브러리가 아니라 이 바이너리가 설치하고, 끝나면 되돌린다.

    Args:
      server: frcnn.serving.ServingServer.
      drain_timeout: float, 처리 중 요청을 기다릴 최대 초.
      signals: 종료를 시작할 신호들.

    Returns:
      bool, 처리 중이던 요청이 모두 끝났으면 True.
    """
    shutdown_threads = []
    result = {}

    def on_signal(signal_number, frame):
        del frame
        if shutdown_threads:
            return
        logger.info("received %s, shutting down", signal.Signals(signal_number).name)
        thread = threading.Thread(
            target=lambda: result.update(drained=server.graceful_shutdown(drain_timeout)), name="shutdown")
        shutdown_threads.append(thread)
        thread.start()

    previous = {signal_number: signal.signal(signal_number, on_signal) for signal_number in signals}
    try:
        signatures = ", ".join(server.service.signatures)
        logger.info("serving model '%s' (signatures: %s) at %s/v1/models/%s%s",
                    server.service.model_name, signatures, server.url, server.service.model_name,
                    f", gRPC on port {server.grpc_port}" if server.grpc_port is not None else "")
        server.serve_forever()
        for thread in shutdown_threads:
            thread.join()
    finally:
        for signal_number, handler in previous.items():
            signal.signal(signal_number, handler)
    return result.get("drained", True)


def _check_flags():
    """플래그 값을 검사한다 (틀리면 app.UsageError)."""
    if (FLAGS.saved_model is None) == (FLAGS.model_base_path is None):
        raise app.UsageError("give exactly one of --saved_model (--model) or --model_base_path")
    for name in ("port", "grpc_port"):
        value = getattr(FLAGS, name)
        if value is not None and not 0 <= value <= 65535:
            raise app.UsageError(f"--{name}={value}: must be in [0, 65535]")
    for name in ("max_body_bytes", "max_batch_size", "max_enqueued_batches", "num_batch_threads",
                 "file_system_poll_wait_seconds", "request_timeout_seconds", "keep_alive_seconds",
                 "grpc_max_threads", "max_images_per_request"):
        if getattr(FLAGS, name) <= 0:
            raise app.UsageError(f"--{name}={getattr(FLAGS, name)}: must be positive")
    for name, zero in (("tensorflow_intra_op_parallelism", "TensorFlow decides"),
                       ("tensorflow_inter_op_parallelism", "TensorFlow decides"),
                       ("max_concurrent_predictions", "the usable CPU cores")):
        if getattr(FLAGS, name) < 0:
            raise app.UsageError(f"--{name}={getattr(FLAGS, name)}: must be >= 0 (0: {zero})")
    if FLAGS.max_image_pixels is not None and FLAGS.max_image_pixels <= 0:
        raise app.UsageError(f"--max_image_pixels={FLAGS.max_image_pixels}: must be positive")
    if FLAGS.batch_timeout_micros < 0:
        raise app.UsageError(f"--batch_timeout_micros={FLAGS.batch_timeout_micros}: must be >= 0")


def parse_version_labels(items):
    """["stable=1", …] → {"stable": 1, …}.

    Raises:
      app.UsageError: LABEL=N 꼴이 아니거나, N 이 음이 아닌 정수가 아니거나, 라벨이 겹칠 때.
    """
    labels = {}
    for item in items:
        label, separator, version = item.partition("=")
        if not separator or not label or not (version.isascii() and version.isdigit()):
            raise app.UsageError(f"--version_labels: '{item}' is not LABEL=N with N a version number")
        if label in labels:
            raise app.UsageError(f"--version_labels: label '{label}' given twice")
        labels[label] = int(version)
    return labels


def main(argv):
    """플래그를 검사하고 모델을 불러와 SIGTERM/SIGINT 까지 서빙한다 (다 끝내지 못하면 종료 코드 1)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    _check_flags()
    version_labels = parse_version_labels(FLAGS.version_labels)
    logging.getLogger("frcnn.serving").setLevel(logging.INFO)
    # tensorflow 를 늦게 불러 --help 를 빠르게.
    import tensorflow as tf
    from frcnn.export.runtimes import usable_cores
    from frcnn.serving import BatchingOptions, make_server
    cores = usable_cores()
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.tensorflow_intra_op_parallelism)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.tensorflow_inter_op_parallelism)
    batching = None
    if FLAGS.enable_batching:
        batching = BatchingOptions(FLAGS.max_batch_size, FLAGS.batch_timeout_micros,
                                   FLAGS.max_enqueued_batches, FLAGS.num_batch_threads)
    source = "--model_base_path" if FLAGS.model_base_path else "--saved_model"
    try:
        server = make_server(FLAGS.saved_model, FLAGS.model_name, FLAGS.host, FLAGS.port,
                             FLAGS.max_body_bytes, FLAGS.model_version, FLAGS.warmup,
                             model_base_path=FLAGS.model_base_path,
                             poll_seconds=FLAGS.file_system_poll_wait_seconds, grpc_port=FLAGS.grpc_port,
                             batching=batching, request_timeout=FLAGS.request_timeout_seconds,
                             keep_alive_seconds=FLAGS.keep_alive_seconds,
                             grpc_max_threads=FLAGS.grpc_max_threads,
                             max_concurrent_predictions=FLAGS.max_concurrent_predictions or cores,
                             version_labels=version_labels, max_image_pixels=FLAGS.max_image_pixels,
                             max_images_per_request=FLAGS.max_images_per_request)
    except (ValueError, ImportError) as error:
        raise app.UsageError(f"{source}: {error}") from error
    except OSError as error:
        print(f"cannot listen on {FLAGS.host}:{FLAGS.port} (gRPC port {FLAGS.grpc_port}): {error}",
              file=sys.stderr)
        sys.exit(1)
    drained = serve_until_signal(server, FLAGS.drain_timeout)
    sys.exit(0 if drained else 1)


def run():
    """콘솔 스크립트 진입점."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
