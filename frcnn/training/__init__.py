"""학습 단계: 체크포인트에서 이어 가는 그래프 모드 학습.

모듈 (위가 아래를 쓴다):
  loop        `train`: 만들기 → 복원 → 스텝 돌리기 (기록, 체크포인트) → 마무리.
  trainer     `Trainer` (모델, 단계별 옵티마이저, 분산 학습 스텝, 체크포인트), `load_trained_model` (내보내기용).
  progress    진행 막대·처리량·TensorBoard 기록.
  events      TensorBoard 이벤트 파일을 값으로 읽기 (plot_validation·테스트).
  run_file    model_dir/run.json 쓰기·읽기·이어 학습 검사, 최고 기록 ("best").
  best_checkpoint  검증 VOC07 mAP 가 가장 높은 가중치를 checkpoints/best/ 에 따로 둔다.
  schedule    단계 구간(joint, 4단계 교대)과 학습률 스케줄.
  distribute  tf.distribute 전략과 워커별 디렉터리.
  precision   혼합 정밀도 정책 이름과 손실 스케일 여부 (전역 정책은 바이너리가 정한다).
"""
