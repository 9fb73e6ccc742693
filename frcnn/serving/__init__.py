"""TF Serving 호환 서빙: REST (Starlette + uvicorn) 와 gRPC (tensorflow-serving-api), ``tools/serve.py`` 가 쓴다.

모듈:
  codec        TF Serving 요청·응답 ↔ numpy (REST JSON 행/열 형식, gRPC TensorProto, SignatureDef, 상태 코드)
  servable     모델 한 버전: SavedModel 또는 .tflite/.onnx (시그니처, run, 워밍업)
  versions     번호 버전 디렉터리의 최신 버전 서빙, 폴링, 바꿔 끼우기, 버전 상태
  batching     요청들을 한 배치로 (max_batch_size, batch_timeout_micros, 묶인 큐)
  gate         배칭이 없을 때 모델을 동시에 도는 요청 수를 묶는 FIFO 관문
  limits       모델 전의 크기 검사: 픽셀 예산 (이미지 머리에서), 요청당 이미지 수, TensorProto 의 모양·내용
  metrics      Prometheus 지표
  service      모델 하나의 TF Serving 동작 (상태, 메타데이터, predict) — REST 와 gRPC 가 함께 쓴다
  rest_server  Starlette 앱과 uvicorn 서버
  grpc_server  PredictionService, ModelService 서비서와 grpc 서버
  server       둘을 한 벌로: ``make_server``, 우아한 종료 (신호 처리는 ``tools/serve``)

용어: B 배치, N 검출 수; 박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표.
"""

from frcnn.serving.batching import BatchingOptions
from frcnn.serving.codec import RequestError
from frcnn.serving.rest_server import DEFAULT_MAX_BODY_BYTES
from frcnn.serving.server import ServingServer, make_server
from frcnn.serving.service import ModelService

__all__ = [
    "BatchingOptions",
    "DEFAULT_MAX_BODY_BYTES",
    "ModelService",
    "RequestError",
    "ServingServer",
    "make_server",
]
