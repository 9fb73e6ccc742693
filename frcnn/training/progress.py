"""학습 진행 기록: 진행 막대(tqdm), 처리량, TensorBoard 스칼라.

용어:
  처리량(images_per_second): 전역 배치 크기 / 스텝 사이 시간의 지수 이동 평균 (가중치 0.1).
  기록 주기(log_every): 이 배수의 스텝과 마지막 스텝에서 TensorBoard 에 `losses/<이름>`,
    `learning_rate`, `images_per_second` 를 쓴다. 진행 막대는 매 스텝 갱신한다.
"""

import time

import tensorflow as tf
from tqdm import tqdm

# 진행 막대에 보일 손실과 그 짧은 이름.
SHORT_LOSS_NAMES = {"rpn_objectness_loss": "rpn_cls", "rpn_box_loss": "rpn_box",
                    "detector_class_loss": "det_cls", "detector_box_loss": "det_box", "total_loss": "total"}


def short_losses(losses):
    """진행 막대용 {짧은 이름: '0.123'}."""
    return {SHORT_LOSS_NAMES[name]: f"{value:.3f}"
            for name, value in losses.items() if name in SHORT_LOSS_NAMES}


class ProgressLog:
    """진행 막대와 TensorBoard 기록기. `with` 로 쓰면 끝날 때 (예외여도) 막대를 닫고 기록을 비운다.

    Args:
      log_dir: TensorBoard 이벤트 디렉터리.
      start: 시작 전역 스텝.
      total: 마지막 전역 스텝.
      batch_size: 전역 배치 크기 (처리량 계산).
      log_every: TensorBoard 기록 주기 (스텝).
      show: 진행 막대를 보일지.
    """

    def __init__(self, log_dir, start, total, batch_size, log_every, show):
        self._writer = tf.summary.create_file_writer(log_dir)
        self._bar = tqdm(total=total, initial=start, disable=not show, unit="step", dynamic_ncols=True)
        self._total = total
        self._batch_size = batch_size
        self._log_every = log_every
        self._images_per_second = 0.0
        self._last_time = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def close(self):
        self._bar.close()
        self._writer.flush()

    def _update_throughput(self):
        now = time.perf_counter()
        rate = self._batch_size / max(now - self._last_time, 1e-9)
        previous = self._images_per_second
        self._images_per_second = rate if previous == 0 else 0.9 * previous + 0.1 * rate
        self._last_time = now

    def log(self, step, stage, losses, learning_rate):
        """전역 스텝 `step` 을 마친 뒤 부른다.

        Args:
          step: 마친 스텝 수 (1부터).
          stage: 단계 이름.
          losses: {이름: float} 이 스텝의 손실.
          learning_rate: 인자 없는 함수 → 현재 학습률 (기록하는 스텝에서만 부른다).
        """
        self._update_throughput()
        self._bar.set_postfix(stage=stage, img_s=f"{self._images_per_second:.1f}", **short_losses(losses))
        self._bar.update(1)
        if step % self._log_every == 0 or step == self._total:
            self._write_summaries(step, losses, learning_rate())

    def _write_summaries(self, step, losses, learning_rate):
        with self._writer.as_default(step=step):
            for name, value in losses.items():
                tf.summary.scalar(f"losses/{name}", value)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("images_per_second", self._images_per_second)
