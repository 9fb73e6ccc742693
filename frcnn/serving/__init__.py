"""TF Serving 호환 REST 서빙 (``tools/serve.py`` 가 쓰는 라이브러리).

모듈:
  codec        TF Serving REST JSON ↔ numpy 배열 (행/열 형식, ``{"b64": ...}``, 메타데이터 모양)
  service      불러온 SavedModel 하나의 상태/메타데이터/predict/워밍업
  rest_server  ``http.server`` 기반 스레드 서버, ``make_server``, 우아한 종료 (신호 처리는 ``tools/serve``)

용어: B 배치, N 검출 수; 박스는 ``[ymin, xmin, ymax, xmax]`` 정규화 [0, 1] 좌표.
"""

from frcnn.serving.codec import RequestError
from frcnn.serving.rest_server import DEFAULT_MAX_BODY_BYTES, RestServer, make_server
from frcnn.serving.service import ModelService

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ModelService",
    "RequestError",
    "RestServer",
    "make_server",
]
