"""학습 중 검증: 학습 프로세스 안에서 지금 가중치로 검증 레코드를 검출해 VOC07 mAP·COCO AP 를 계산하고
TensorBoard 에 쓴다 (`tools/train --eval_records`).

용어:
  검증기(`Validator`): 학습 모델 (같은 변수, 같은 전략) 을 내보내기와 같은 추론 그래프
    (`detection.DetectionModule.detect_encoded`: 디코딩 → 자기 크기로 리사이즈 → 검출 → 입력 이미지 기준 정규화
    박스) 로 감싼 검출 함수. 한 번 추적해 두고 평가마다 다시 쓴다. 학습 모델의 dtype 정책 (혼합 정밀도면
    bfloat16·float16 계산) 을 그대로 쓰므로, float32 로 내보낸 모델의 값과 아주 조금 다를 수 있다; 절단 SVD
    (`detection.fc_svd_ranks`) 는 내보낼 때만 쓴다.
  지표: `runner.collect` (`sources.open_records_source`: 레코드의 GT 박스·라벨·difficult·crowd) →
    `runner.compute_metrics` 의 voc07 과 coco
    — `tools/evaluate` 와 같은 구현. 결과 dict: voc07_map, coco_ap, coco_ap50 (정의되지 않으면 NaN), seconds
    (검출 + 지표 계산에 걸린 초: `tools/evaluate` 보고서의 wall_time_s 와 같은 범위).
  TensorBoard (`log_dir`, 보통 model_dir/eval): 스칼라 `eval/voc07_map`, `eval/coco_ap`, `eval/coco_ap50`,
    `eval/seconds` 와, 앞쪽 검증 이미지 몇 장에 검출을 그린 `eval/detections/<k>` 이미지.
  그리기 함수: `frcnn.viz.draw.draw_detections` 모양의 함수를 부르는 쪽이 넘긴다 (eval 은 viz 를 가져오지 않는다).
"""

import time

import tensorflow as tf

from frcnn.data import records
from frcnn.data import sources
from frcnn.eval import runner
from frcnn.export import detection
from frcnn.export import signature

NUM_IMAGES = 3  # 검출을 그려 TensorBoard 에 보일 검증 이미지 수
DRAW_SCORE_THRESHOLD = 0.5  # 그릴 검출의 최소 점수 (tools/detect 의 기본값과 같다)
METRICS = ("voc07", "coco")


class Validator:
    """`validator(step)` 이 지금 가중치를 평가하고 TensorBoard 에 쓴 뒤 지표 dict 를 돌려준다.

    Attributes:
      detect_fn: image_bytes [B] tf.string → SavedModel `serve_bytes` 와 같은 출력 dict (학습 중인 가중치로).

    Args:
      model: 학습 중인 `FasterRCNN` (변수가 만들어진 것; 바꾸지 않는다).
      config: `ExperimentConfig` (리사이즈·검출 설정).
      classes: 클래스 이름들 (1..C).
      record_paths: 검증 TFRecord 파일 경로 목록 (`make_tfrecords` 출력).
      log_dir: TensorBoard 이벤트 디렉터리.
      draw: None 또는 `draw_detections(image, boxes, scores, class_names, num_detections, score_threshold)`
        모양의 함수; None 이면 이미지를 쓰지 않는다.
      num_images: 그릴 검증 이미지 수.
      batch_size: 한 번에 검출할 이미지 수.
    """

    def __init__(self, model, config, classes, record_paths, log_dir, draw=None, num_images=NUM_IMAGES,
                 batch_size=8):
        self._module = detection.DetectionModule(model, config, classes)
        self.detect_fn = tf.function(self._module.detect_encoded,
                                     input_signature=[tf.TensorSpec([None], tf.string)])
        self._record_paths = list(record_paths)
        self._writer = tf.summary.create_file_writer(log_dir)
        self._draw = draw
        self._batch_size = batch_size
        self._image_bytes = _first_images(self._record_paths, num_images) if draw else []

    def __call__(self, step):
        """지금 가중치로 검증한다.

        Args:
          step: 전역 스텝 (TensorBoard 의 x 축).

        Returns:
          {"voc07_map", "coco_ap", "coco_ap50", "seconds"} Python float (정의되지 않은 값은 NaN).
        """
        start = time.perf_counter()
        inputs = runner.collect(sources.open_records_source(self._record_paths), self.detect_fn,
                                self._batch_size)
        voc_results, coco_result = runner.compute_metrics(inputs, METRICS)
        metrics = {"voc07_map": voc_results["voc07"].mean_ap, "coco_ap": _defined(coco_result.stats["AP"]),
                   "coco_ap50": _defined(coco_result.stats["AP50"]), "seconds": time.perf_counter() - start}
        with self._writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(f"eval/{name}", value)
            for index, image in enumerate(self._drawn_images()):
                tf.summary.image(f"eval/detections/{index}", image[None])
        self._writer.flush()
        return metrics

    def _drawn_images(self):
        """앞쪽 검증 이미지들에 지금 가중치의 검출을 그린 uint8 [H, W, 3] 목록."""
        if not self._image_bytes:
            return []
        outputs = self.detect_fn(tf.constant(self._image_bytes))
        outputs = {key: value.numpy() for key, value in outputs.items()}
        drawn = []
        for index, encoded in enumerate(self._image_bytes):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False).numpy()
            detections = [outputs[key][index] for key in (signature.BOXES, signature.SCORES,
                                                          signature.CLASS_NAMES, signature.NUM_DETECTIONS)]
            drawn.append(self._draw(image, *detections, DRAW_SCORE_THRESHOLD))
        return drawn


def _first_images(record_paths, count):
    """레코드 앞쪽 count 장의 이미지 바이트 (평가마다 같은 이미지를 그린다)."""
    images = []
    for serialized in tf.data.TFRecordDataset(record_paths).take(count).as_numpy_iterator():
        images.append(records.read_example_numpy(serialized)["image_bytes"])
    return images


def _defined(value):
    """None (정의되지 않음) 을 NaN 으로."""
    return float("nan") if value is None else float(value)
