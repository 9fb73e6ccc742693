"""tf.data 파이프라인: 소스 → 앵커 라벨을 미리 계산한 TFRecord (convert), TFRecord → 정적 모양 배치 (input_pipeline)."""
