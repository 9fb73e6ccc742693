"""퍼즈 테스트: 정상 REST·gRPC 요청을 정해진 씨앗으로 망가뜨려 (잘라내기, 비트 뒤집기, 값의 종류 바꾸기, 거대한
차원, 압축 폭탄, 깊은 JSON, UTF-8 이 아닌 본문, 깨진 직렬화 바이트) 수천 개 보낸다. 5xx (gRPC INTERNAL 등) 는
하나도 없고, 서버는 계속 답하고, 프로세스의 RSS 는 한도 안에 머문다. 연결은 127.0.0.1 로만.

횟수는 테스트 출력 (-s) 과 benchmarks/RESULTS.md 에 남긴다.
"""

import json

from frcnn.serving import make_server
from tests.serving import hostile
from tests.serving.harness import http_call, running

MODEL_NAME = "tiny"
REST_REQUESTS = 2000
GRPC_REQUESTS = 1000
RSS_GROWTH_LIMIT_MIB = 200


def test_fuzzed_requests_get_4xx_never_5xx_and_memory_stays_bounded(saved_model_dir):
    with running(make_server(saved_model_dir, MODEL_NAME, "127.0.0.1", 0, grpc_port=0)) as server:
        host, port = server.server_address[:2]
        hostile.fuzz(host, port, server.grpc_port, MODEL_NAME, 1, 50, 50)  # 워밍업 (첫 호출의 할당)
        before = hostile.rss_mib()
        counts = hostile.fuzz(host, port, server.grpc_port, MODEL_NAME, 0, REST_REQUESTS, GRPC_REQUESTS)
        after = hostile.rss_mib()
        status, text, _ = http_call(server, "GET", "/healthz")
        assert status == 200 and json.loads(text) == {"status": "ok"}
    print(json.dumps({"counts": counts, "rss_mib": [round(before), round(after)]}, default=str, indent=1))
    assert hostile.server_errors(counts) == 0, counts
    assert sum(sum(by.values()) for by in counts["rest"].values()) == REST_REQUESTS
    assert sum(sum(by.values()) for by in counts["grpc"].values()) == GRPC_REQUESTS
    assert set(counts["rest"]) == set(hostile.REST_KINDS) and set(counts["grpc"]) == set(hostile.GRPC_KINDS)
    assert counts["rest"]["bomb"] == {400: counts["rest"]["bomb"][400]}  # 폭탄은 모두 400
    assert after - before < RSS_GROWTH_LIMIT_MIB, (before, after)
