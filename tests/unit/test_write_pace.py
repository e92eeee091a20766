"""The document sink's pacing and patience (workers.sinks.write_pace) on hand-worked sequences."""

from __future__ import annotations

from workers.sinks.write_pace import MAX_CHUNK, ChunkPace, FailureRun


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_timeout_halves_what_was_sent_down_to_one_document() -> None:
    pace = ChunkPace(socket_timeout_s=5.0)
    assert pace.size == MAX_CHUNK  # a batch goes in one request until something times out
    pace.timed_out(attempted=40)
    assert pace.size == 20  # half of the 40 actually sent, not of 1024
    for expected in (10, 5, 2, 1, 1):
        pace.timed_out(attempted=pace.size)
        assert pace.size == expected


def test_the_size_grows_back_only_after_quick_requests() -> None:
    pace = ChunkPace(socket_timeout_s=4.0, size=8, ceiling=32)
    pace.took(1.5)  # over a quarter of the 4 s timeout: no growth
    assert pace.size == 8
    pace.took(0.9)
    assert pace.size == 16
    pace.took(0.1)
    pace.took(0.1)
    assert pace.size == 32  # capped at the ceiling


def test_an_unreachable_store_is_given_up_after_the_attempts() -> None:
    run = FailureRun(attempts=3, clock=_Clock())
    assert [run.failed(store_answers=False) for _ in range(3)] == [False, False, True]


def test_backoff_doubles_from_a_fifth_of_a_second_to_five() -> None:
    run = FailureRun(attempts=99, clock=_Clock())
    delays = []
    for _ in range(7):
        run.failed(store_answers=False)
        delays.append(run.backoff_s())
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]


def test_a_slow_store_is_waited_for_while_it_makes_progress() -> None:
    clock = _Clock()
    run = FailureRun(attempts=2, slow_patience_s=60.0, clock=clock)
    for _ in range(20):  # far more than `attempts` timeouts: a live store is not counted as down
        clock.now += 10.0
        assert not run.failed(store_answers=True)
        run.progressed()  # ...because a smaller request got through each time
    assert run.in_a_row == 0


def test_a_slow_store_that_takes_nothing_is_given_up_after_the_patience() -> None:
    clock = _Clock()
    run = FailureRun(attempts=2, slow_patience_s=60.0, clock=clock)
    assert not run.failed(store_answers=True)  # the run starts at 100
    clock.now += 59.0
    assert not run.failed(store_answers=True)
    clock.now += 1.0
    assert run.failed(store_answers=True)


def test_progress_resets_the_unreachable_count_and_success_ends_the_run() -> None:
    clock = _Clock()
    run = FailureRun(attempts=2, clock=clock)
    assert not run.failed(store_answers=False)
    run.progressed()
    assert not run.failed(store_answers=False)  # one in a row again, not two
    run.succeeded()
    assert run.in_a_row == 0 and run.progress_at is None
