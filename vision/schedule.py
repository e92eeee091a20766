"""The learning-rate schedule of a training run, planned for its step count or its wall-clock budget.

A cosine schedule over a fixed number of epochs that a time budget cuts short ends with the learning rate
still high, so the last weights are the noisy ones. Here the schedule's progress is whichever is further
along: the steps done out of the steps planned, or the time spent out of the budget. With a budget the rate
reaches its floor when the budget ends, however fast the machine is, and training stops before an epoch
that would overrun it (its length estimated from the slowest epoch so far). Without one it is the usual
cosine decay over all planned steps (and runs repeat exactly: nothing depends on the clock).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import keras

logger = logging.getLogger(__name__)


def cosine_rate(base: float, progress: float, floor: float = 0.05) -> float:
    """``base`` at progress 0 down to ``floor * base`` at progress 1 (and after), along half a cosine."""
    p = min(max(progress, 0.0), 1.0)
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p)))


class PlannedSchedule(keras.callbacks.Callback):
    """Sets the optimizer's learning rate before every batch; stops at the budget (see module docstring)."""

    def __init__(
        self,
        base_rate: float,
        total_steps: int,
        budget_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__()
        self._base = base_rate
        self._total = max(1, total_steps)
        self._budget = budget_s
        self._clock = clock
        self._step = 0
        self._started = clock()
        self._epoch_started = self._started
        self._slowest_epoch = 0.0
        self.stopped_by_budget = False

    def progress(self) -> float:
        by_steps = self._step / self._total
        if self._budget is None:
            return by_steps
        return max(by_steps, (self._clock() - self._started) / self._budget)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._started = self._clock()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_started = self._clock()

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.model.optimizer.learning_rate.assign(cosine_rate(self._base, self.progress()))
        self._step += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        now = self._clock()
        self._slowest_epoch = max(self._slowest_epoch, now - self._epoch_started)
        if self._budget is None:
            return
        if now - self._started + self._slowest_epoch > self._budget:
            logger.info(
                "time budget of %.0f s: stopping after epoch %d (another would end past it)",
                self._budget,
                epoch + 1,
            )
            self.stopped_by_budget = True
            self.model.stop_training = True
