"""The planned learning-rate schedule (vision.schedule): hand-computed rates, a fake clock for the budget."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vision.schedule import PlannedSchedule, cosine_rate


class _Rate:
    def __init__(self) -> None:
        self.value = -1.0

    def assign(self, value: float) -> None:
        self.value = value


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _callback(
    total_steps: int, budget_s: float | None, clock: _Clock
) -> tuple[PlannedSchedule, _Rate, SimpleNamespace]:
    schedule = PlannedSchedule(1.0, total_steps, budget_s, clock=clock)
    rate = _Rate()
    model = SimpleNamespace(optimizer=SimpleNamespace(learning_rate=rate), stop_training=False)
    schedule.set_model(model)
    schedule.on_train_begin()
    return schedule, rate, model


def test_cosine_rate_runs_from_base_to_the_floor() -> None:
    assert cosine_rate(2.0, 0.0) == pytest.approx(2.0)
    # Half way: floor + (1 - floor) / 2 = 0.05 + 0.475.
    assert cosine_rate(2.0, 0.5) == pytest.approx(2.0 * 0.525)
    assert cosine_rate(2.0, 1.0) == pytest.approx(0.1)
    assert cosine_rate(2.0, 3.0) == pytest.approx(0.1)


def test_without_a_budget_progress_is_the_steps_done() -> None:
    clock = _Clock()
    schedule, rate, _ = _callback(4, None, clock)
    seen = []
    for batch in range(4):
        clock.now += 1000.0  # the clock does not matter without a budget
        schedule.on_train_batch_begin(batch)
        seen.append(rate.value)
    assert seen == pytest.approx([cosine_rate(1.0, p) for p in (0.0, 0.25, 0.5, 0.75)])


def test_with_a_budget_the_rate_follows_the_time_spent_when_that_is_further_along() -> None:
    clock = _Clock()
    schedule, rate, _ = _callback(1000, 100.0, clock)
    clock.now = 50.0  # 1 step of 1000 planned, half the budget spent
    schedule.on_train_batch_begin(0)
    assert rate.value == pytest.approx(cosine_rate(1.0, 0.5))


def test_the_budget_stops_before_an_epoch_that_would_overrun_it() -> None:
    clock = _Clock()
    schedule, _, model = _callback(1000, 100.0, clock)
    for epoch, end in enumerate((30.0, 60.0)):
        schedule.on_epoch_begin(epoch)
        clock.now = end
        schedule.on_epoch_end(epoch)
    # 60 s spent, epochs take 30 s: a third one ends at 90 s, inside the budget.
    assert not model.stop_training
    schedule.on_epoch_begin(2)
    clock.now = 90.0
    schedule.on_epoch_end(2)
    # A fourth would end at 120 s.
    assert model.stop_training and schedule.stopped_by_budget
