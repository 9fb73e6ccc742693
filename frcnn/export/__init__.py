"""내보내기 단계: 학습한 가중치 → 추론 모델 → SavedModel, 그리고 그것을 불러오는 하나의 함수.

모듈:
  inference_model  학습 모델을 바꾸지 않고 새 추론 모델을 만들어 가중치를 옮긴다 (요청하면 절단 SVD 몸통).
  truncated_svd    fc6/fc7 의 절단 SVD (Fast R-CNN 3.1 절).
  saved_model      세 시그니처 (serving_default, serve_bytes, serve_examples) 의 SavedModel 쓰기.
  loader           SavedModel 불러오기 (평가, 그리기, 서빙이 모두 쓴다).
가져오는 것: frcnn.modeling, frcnn.data, frcnn.ops, frcnn.config, frcnn.fileio.
"""
