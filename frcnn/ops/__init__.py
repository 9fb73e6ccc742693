"""상태 없는 텐서 연산: 한 파일에 한 연산 계열 (Model Garden 의 `official/vision/ops` 처럼).

모듈:
  box_ops    박스 넓이·IoU·자르기·뒤집기·이미지 안 검사 (박스 [ymin, xmin, ymax, xmax], −1 패딩).
  box_coder  박스 ↔ 델타 인코딩 (가중치, log(1000/16) 로 자른 dh/dw).
  anchors    셀 앵커와 캔버스 격자 앵커 (순서: 행, 열, 크기, 종횡비).
  matcher    IoU 행렬 → 매칭 (임계값, 저품질 최선 매칭).
  sampler    균형 표본 추출 (RPN 256 앵커와 RoI 128 개가 함께 쓰는 하나).
  nms        NMS 변형 (학습 padded·XLA, 추론 이미지별 V5, 클래스별 combined·클래스 오프셋).
  roi_ops    RoI max pooling (bin 의 모든 칸 최댓값, 희소 표) / RoIAlign (학습: matmul 쌍선형, 추론: crop_and_resize).
  fpn_anchors  torchvision 의 FPN 앵커 (P2–P6, 32…512 × 0.5/1/2, 반올림·보폭 규칙 그대로).
  multiscale_roi_align  torchvision `MultiScaleRoIAlign` (aligned=False, P2–P5 수준 배정, gather 표본기).
가져오는 것: frcnn.config 만.
"""
