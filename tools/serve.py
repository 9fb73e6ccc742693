"""SavedModel 을 TF Serving 호환 REST API 로 서빙한다.

예:
  python -m tools.serve --saved_model=exports/frcnn --port=8501
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

flags.DEFINE_string("saved_model", None, "서빙할 SavedModel 디렉터리 (tools/export 의 --export_dir).")
flags.DEFINE_string("model_name", "frcnn", "URL 의 모델 이름: /v1/models/<model_name>:predict.")
flags.DEFINE_string("host", "127.0.0.1", "바인드할 주소. 외부에 열려면 0.0.0.0.")
flags.DEFINE_integer("port", 8501, "HTTP 포트 (TF Serving REST 기본값 8501). 0 이면 빈 포트.")
flags.DEFINE_integer("max_body_bytes", 32 * 1024 * 1024, "요청 본문 최대 바이트. 넘으면 413 으로 거절.")
flags.DEFINE_integer("model_version", 1, "상태/메타데이터 응답에 알릴 모델 버전 (/versions/N).")
flags.DEFINE_float("drain_timeout", 30.0, "SIGTERM/SIGINT 뒤 처리 중 요청을 기다릴 최대 초.")
flags.DEFINE_boolean("warmup", True, "시작 전에 각 시그니처를 작은 입력으로 한 번 실행해 첫 요청 지연을 없앤다.")
flags.mark_flag_as_required("saved_model")


def serve_until_signal(server, drain_timeout, signals=(signal.SIGTERM, signal.SIGINT)):
    """신호를 받을 때까지 서빙하고, 받으면 우아하게 멈춘다. 메인 스레드에서 불러야 한다.

    신호 처리기는 프로세스 전역 상태라 라이브러리가 아니라 이 바이너리가 설치하고, 끝나면 되돌린다.

    Args:
      server: RestServer.
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
        signatures = ", ".join(sorted(server.service.signatures))
        logger.info("serving model '%s' (signatures: %s) at %s/v1/models/%s",
                    server.service.model_name, signatures, server.url, server.service.model_name)
        server.serve_forever()
        for thread in shutdown_threads:
            thread.join()
    finally:
        for signal_number, handler in previous.items():
            signal.signal(signal_number, handler)
    return result.get("drained", True)


def main(argv):
    """플래그를 검사하고 SavedModel 을 불러와 SIGTERM/SIGINT 까지 서빙한다 (다 끝내지 못하면 종료 코드 1)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not 0 <= FLAGS.port <= 65535:
        raise app.UsageError(f"--port={FLAGS.port}: must be in [0, 65535]")
    if FLAGS.max_body_bytes <= 0:
        raise app.UsageError(f"--max_body_bytes={FLAGS.max_body_bytes}: must be positive")
    logging.getLogger("frcnn.serving").setLevel(logging.INFO)
    # tensorflow 를 늦게 불러 --help 를 빠르게.
    from frcnn.export import loader
    from frcnn.serving import make_server
    try:
        model = loader.load_saved_model(FLAGS.saved_model)
    except ValueError as error:
        raise app.UsageError(f"--saved_model: {error}") from error
    try:
        server = make_server(model, FLAGS.model_name, FLAGS.host, FLAGS.port,
                             FLAGS.max_body_bytes, FLAGS.model_version, FLAGS.warmup)
    except OSError as error:
        print(f"cannot listen on {FLAGS.host}:{FLAGS.port}: {error}", file=sys.stderr)
        sys.exit(1)
    drained = serve_until_signal(server, FLAGS.drain_timeout)
    sys.exit(0 if drained else 1)


def run():
    """콘솔 스크립트 진입점."""
    app.run(main)


if __name__ == "__main__":
    app.run(main)
