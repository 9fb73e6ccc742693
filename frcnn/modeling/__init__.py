"""신경망: 논문의 그림 순서대로 백본 → RPN → 제안 → RoI 타깃 → RoI 풀링 → 헤드 → 손실·후처리.

모듈:
  backbones    정규화 + 공유 합성곱 특징 (Keras 모델), 검출기 몸통 (fc6/fc7 또는 conv5).
  rpn          RPN 헤드와 제안 생성 (top-k, 디코드, 자르기, 작은 박스 버리기, NMS, 고정 개수).
  rpn_targets  앵커 라벨 (레코드에 미리 계산) 과 학습 시 박스 타깃.
  roi_targets  RoI 표본 (전경 비율, GT 덧붙이기) 과 클래스·박스 타깃.
  difficult    difficult 물체를 학습 타깃에서 빼기·무시하기·남기기 (`input.difficult`; 앵커 라벨과 RoI 타깃).
  heads        검출기 헤드: 몸통 → 클래스 로짓, 클래스별 박스 델타.
  losses       RPN·검출기 손실 (smooth L1, 교차 엔트로피).
  postprocess  클래스별 디코드와 NMS.
  model        `FasterRCNN`: 위를 한 화면에 잇는 모델.
  resnet_tv    torchvision 의 ResNet v1.5 (PyTorch 대칭 패딩, FrozenBN/BN, trainable_backbone_layers).
  fpn          torchvision 의 FPN (C2–C5 → P2–P6, v1·v2).
  fpn_proposals  FPN RPN 제안 (수준별 top-k·NMS, 전체 top-k; torchvision RegionProposalNetwork).
  fpn_box_heads  TwoMLPHead (v1) 와 4×conv-BN + fc (v2) 박스 헤드.
  (resnet_tv … fpn_box_heads 는 FPN 프리셋의 부품: torchvision 과 단계별로 같음을 시험했고, 아직 프리셋에 잇지 않았다.)
가져오는 것: frcnn.ops, frcnn.config (데이터·학습·내보내기는 가져오지 않는다).
"""
