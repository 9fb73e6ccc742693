"""데이터 단계: 데이터셋 소스, 클래스 목록, 리사이즈 정책, TFRecord 형식.

모듈:
  voc          PASCAL VOC XML·이미지 읽기와 검사 (바깥 데이터가 들어오는 경계).
  classes      --classes 값과 자동 규칙으로 클래스 목록(id 1..C)을 정하고 이름 → id.
  sources      데이터셋 소스의 공통 형식(`SourceExample`), VOC 디렉터리·TFRecord 소스 (변환기와 평가기).
  tfds_source  tfds `voc/2007` 소스.
  coco         COCO instances JSON 읽기와 검사 (pycocotools), COCO 소스 (평가기도 쓴다).
  resize       리사이즈·캔버스 패딩 정책과 정규화 박스 → 캔버스 픽셀.
  records      TFRecord 특징 이름·쓰기·파싱 (특징 이름 문자열이 있는 유일한 곳).
  tv_transform torchvision GeneralizedRCNNTransform 의 크기 규칙 (float64), 정규화, 32 배수 패딩, 박스 되돌리기.
가져오는 것: frcnn.ops, frcnn.config, frcnn.fileio 만 (modeling·pipelines·tools 는 가져오지 않는다).
"""
