"""평가: PASCAL VOC devkit AP (VOC07 11점, VOC2010+ 전 점), pycocotools COCO AP, 보고서, 실행기.

모듈:
  voc_ap: devkit 규칙의 매칭과 AP (numpy). 박스는 VOC 1-based 포함 픽셀 (xmin, ymin, xmax, ymax).
  coco_ap: COCO AP@[.5:.95] / AP50 / AP75 / APs·APm·APl (pycocotools, 메모리 안 dict).
  report: 콘솔 표, JSON 보고서, 클래스별 precision–recall PNG.
  runner: VOC 디렉터리 또는 TFRecord → 검출 함수 (SavedModel serve_bytes) → 지표 → 보고서.
  validation: 학습 중 검증 — 학습 모델을 내보내기와 같은 그래프로 검출 → runner 의 지표 → TensorBoard eval/.

용어:
  C: 클래스 수 (id 1..C, 0 = 배경/패딩). G: 이미지당 GT 수. N: 이미지당 검출 수.
"""

from frcnn.eval.coco_ap import CocoResult, evaluate_coco
from frcnn.eval.voc_ap import ImageDetections, ImageGroundTruth, VocApResult, evaluate_voc

__all__ = [
    "CocoResult", "ImageDetections", "ImageGroundTruth", "VocApResult", "evaluate_coco", "evaluate_voc",
]
