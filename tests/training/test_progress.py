"""frcnn.training.progress 테스트: 진행 콜백은 매 스텝, TensorBoard 스칼라는 log_every 의 배수와 마지막 스텝에만."""

from frcnn.training import events
from frcnn.training import progress


def _scalars(log_dir):
    """이벤트 파일의 (태그, 스텝) → 값."""
    summaries = events.read_summaries(log_dir)
    return {(tag, step): value for tag, values in summaries.items() for step, value in values}


def test_callback_every_step_and_summaries_on_log_steps(tmp_path):
    calls, rate_requests = [], []

    def learning_rate():
        rate_requests.append(True)
        return 0.5

    with progress.ProgressLog(str(tmp_path), total=5, batch_size=4, log_every=2,
                              on_step=lambda *args: calls.append(args)) as log:
        for step in range(1, 6):
            log.log(step, "joint", {"total_loss": float(step)}, learning_rate)
    expected = [(step, 5, "joint") for step in range(1, 6)]
    assert [(step, total, stage) for step, total, stage, _, _ in calls] == expected
    assert all(losses == {"total_loss": float(step)} and rate > 0 for step, _, _, losses, rate in calls)
    assert len(rate_requests) == 3  # 스텝 2, 4 와 마지막 5 에서만 학습률을 읽는다
    scalars = _scalars(str(tmp_path))
    assert sorted(step for tag, step in scalars if tag == "losses/total_loss") == [2, 4, 5]
    assert scalars[("losses/total_loss", 4)] == 4.0
    assert scalars[("learning_rate", 5)] == 0.5
    assert ("images_per_second", 2) in scalars


def test_no_callback_is_fine(tmp_path):
    with progress.ProgressLog(str(tmp_path), total=1, batch_size=1, log_every=10) as log:
        log.log(1, "rpn", {"rpn_loss": 0.25}, lambda: 0.1)
    assert _scalars(str(tmp_path))[("losses/rpn_loss", 1)] == 0.25
