"""학습 진행 기록: 처리량, TensorBoard 스칼라, 그리고 부르는 쪽의 진행 콜백.

용어:
  처리량(images_per_second): 루프의 이미지 수 (전역 배치 × 스텝) / 루프 사이 시간의 지수 이동 평균 (가중치 0.1).
  기록 주기(log_every): 루프가 이 배수의 스텝을 지나거나 마지막 스텝에 닿으면 그 루프 끝 스텝에 TensorBoard
    `losses/<이름>` (루프 평균), `learning_rate`, `images_per_second`, `data/skipped_records` 를 쓴다.
  진행 콜백: 루프마다 부르는 함수 (step, total, stage, losses, images_per_second). 진행 막대 (tqdm) 는
    라이브러리가 아니라 부르는 쪽 (`tools/train`) 이 이 콜백으로 그린다.
"""

import time

import tensorflow as tf


class ProgressLog:
    """TensorBoard 기록기와 진행 콜백. `with` 로 쓰면 끝날 때 (예외여도) 기록을 비운다.

    Args:
      log_dir: TensorBoard 이벤트 디렉터리.
      total: 마지막 전역 스텝.
      batch_size: 전역 배치 크기 (처리량 계산).
      log_every: TensorBoard 기록 주기 (스텝).
      on_step: None 또는 진행 콜백 (step, total, stage, losses, images_per_second).
      start: 이 프로세스가 시작한 전역 스텝 (이어 학습이면 체크포인트의 스텝).
    """

    def __init__(self, log_dir, total, batch_size, log_every, on_step=None, start=0):
        self._writer = tf.summary.create_file_writer(log_dir)
        self._on_step = on_step
        self._total = total
        self._batch_size = batch_size
        self._log_every = log_every
        self._images_per_second = 0.0
        self._last_time = time.perf_counter()
        self._last_step = start

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def close(self):
        self._writer.flush()

    def restart_clock(self):
        """지금부터 다음 루프의 시간을 잰다 (루프 사이의 검증 시간을 처리량에 넣지 않는다)."""
        self._last_time = time.perf_counter()

    def _update_throughput(self, steps):
        now = time.perf_counter()
        rate = self._batch_size * steps / max(now - self._last_time, 1e-9)
        previous = self._images_per_second
        self._images_per_second = rate if previous == 0 else 0.9 * previous + 0.1 * rate
        self._last_time = now

    def log(self, step, stage, losses, learning_rate, skipped_records=0, warm_up=False):
        """루프 (스텝 하나 이상) 를 마친 뒤 부른다.

        Args:
          step: 마친 스텝 수 (1부터).
          stage: 단계 이름.
          losses: {이름: float} 이 루프의 평균 손실.
          learning_rate: 인자 없는 함수 → 현재 학습률 (기록하는 스텝에서만 부른다).
          skipped_records: 지금까지 건너뛴 디코딩 불가 레코드 수.
          warm_up: 이 루프가 추적·컴파일을 치렀으면 True (처리량 평균에 넣지 않는다).
        """
        previous, self._last_step = self._last_step, step
        if warm_up:
            self._last_time = time.perf_counter()
        else:
            self._update_throughput(step - previous)
        if self._on_step:
            self._on_step(step, self._total, stage, losses, self._images_per_second)
        if step // self._log_every > previous // self._log_every or step == self._total:
            self._write_summaries(step, losses, learning_rate(), skipped_records)

    def _write_summaries(self, step, losses, learning_rate, skipped_records):
        with self._writer.as_default(step=step):
            for name, value in losses.items():
                tf.summary.scalar(f"losses/{name}", value)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("images_per_second", self._images_per_second)
            tf.summary.scalar("data/skipped_records", skipped_records)
