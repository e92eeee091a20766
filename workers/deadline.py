"""Capture -> verdict deadlines per line: which frames can still be inspected in time, and the fail-safe rest.

Pure logic (no Kafka, no threads of its own; clocks injected so tests drive time by hand):

* :class:`DeadlinePolicy`: the budget of each line (a default and a per-line map, in ms) and the fail-safe
  decision (``reject``: verdict DEFECT, the part is ejected; ``pass``: verdict OK, flagged) given to a frame
  whose verdict cannot be given in time.
* :class:`ServiceEstimate`: how long the model and the outputs take from the moment a batch starts,
  a running mean plus three mean deviations (EWMA) so an inspected frame stays inside its budget.
* :class:`AdmissionWindow`: the frames admitted but not yet handed to the model; it says when the poll loop
  must *hold* (pause the partitions) because the oldest has waited inside the worker half of what the
  tightest budget leaves after the model and the outputs. The backlog then stays in Kafka, where consumer lag
  (and an autoscaler) sees it, instead of inside the worker; frames read after a hold that can no longer make
  it are decided fail-safe at once.

Time bases: a frame's deadline is ``captured_at + budget`` on the camera's wall clock (UTC); the worker
compares it with its own wall clock, so camera and worker clocks must agree (NTP/PTP) to within a small part
of the budget.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

FailSafe = Literal["reject", "pass"]
Clock = Callable[[], float]

_EWMA_ALPHA = 0.1  # weight of the newest sample: ~20 batches of memory
_DEVIATIONS = 3.0  # estimate = mean + 3 mean deviations: covers the tail of a steady batch time


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """Budgets in milliseconds: ``lines`` overrides ``default_ms``; no budget (0 or None) = no deadline."""

    default_ms: float | None = None
    lines: Mapping[str, float] = field(default_factory=dict)
    fail_safe: FailSafe = "reject"

    def __post_init__(self) -> None:
        for name, value in [("default", self.default_ms), *self.lines.items()]:
            if value is not None and value < 0:
                raise ValueError(f"deadline of {name} must be >= 0 ms, got {value}")
        if self.fail_safe not in ("reject", "pass"):
            raise ValueError(f"fail-safe decision must be 'reject' or 'pass', got {self.fail_safe!r}")

    @property
    def enabled(self) -> bool:
        return bool(self.default_ms) or any(self.lines.values())

    def budget_s(self, line_id: str) -> float | None:
        """The line's capture -> verdict budget in seconds, or None when the line has no deadline."""
        ms = self.lines.get(line_id, self.default_ms)
        return ms / 1000.0 if ms else None

    def tightest_s(self) -> float | None:
        """The smallest budget of any line: what the admission window uses before a frame's line is known."""
        budgets = [ms for ms in (self.default_ms, *self.lines.values()) if ms]
        return min(budgets) / 1000.0 if budgets else None

    def remaining_s(self, line_id: str, captured_at: datetime, now: datetime) -> float | None:
        """Seconds left until the frame's deadline (negative: missed), or None when its line has none."""
        budget = self.budget_s(line_id)
        if budget is None:
            return None
        return budget - (now - captured_at).total_seconds()


class Ewma:
    """A running mean and mean absolute deviation; :meth:`upper` is mean + k deviations."""

    def __init__(self, initial: float, alpha: float = _EWMA_ALPHA) -> None:
        self.mean = initial
        self.deviation = initial / 2  # unsure until samples arrive: keep the first estimates generous
        self._alpha = alpha
        self.samples = 0

    def add(self, value: float) -> None:
        self.samples += 1
        if self.samples == 1:
            self.mean, self.deviation = value, value / 2
            return
        error = value - self.mean
        self.mean += self._alpha * error
        self.deviation += self._alpha * (abs(error) - self.deviation)

    def upper(self, deviations: float = _DEVIATIONS) -> float:
        return self.mean + deviations * self.deviation


class ServiceEstimate:
    """Seconds from a batch's start to its results being acknowledged: model time per batch (scaled by the
    batch's size against the sizes seen) plus the output stage (produce, broker acknowledgement)."""

    def __init__(
        self,
        initial_batch_s: float = 0.05,
        initial_output_s: float = 0.02,
        usual_size: int = 1,
        clock: Clock = time.monotonic,
    ) -> None:
        self._batch = Ewma(initial_batch_s)
        self._size = Ewma(float(usual_size))
        self._output = Ewma(initial_output_s)
        self._lock = threading.Lock()
        self._clock = clock
        self._last_batch_at = clock()

    def observe_batch(self, size: int, seconds: float) -> None:
        with self._lock:
            self._batch.add(seconds)
            self._size.add(float(size))
            self._last_batch_at = self._clock()

    def trust(self, after_s: float = 1.0) -> float:
        """How much of the estimate to believe: 1 while batches are observed; halved for every ``after_s``
        without one (a slow batch, a cold start, a line sent fail-safe), so the estimate is probed and learns
        again instead of sending every frame fail-safe for ever on a figure nothing corrects, while under
        overload (batches still run now and then) it stays close to what they take."""
        with self._lock:
            idle = self._clock() - self._last_batch_at
        return 0.5 ** int(idle // after_s)

    def observe_output(self, seconds: float) -> None:
        """Inferred -> result acknowledged, per result (called from the producer's delivery callbacks)."""
        with self._lock:
            self._output.add(max(0.0, seconds))

    def model_s(self, size: int) -> float:
        """Estimated model time for a batch of ``size``: never below half the usual batch time (fixed
        costs), growing with the size beyond the usual one."""
        with self._lock:
            usual = max(1.0, self._size.mean)
            return self._batch.upper() * max(0.5, size / usual)

    def usual_size(self) -> int:
        """The batch size seen lately (the admission window's yardstick: not every batch is full)."""
        with self._lock:
            return max(1, round(self._size.mean))

    def output_s(self) -> float:
        with self._lock:
            return self._output.upper()

    def total_s(self, size: int) -> float:
        """Model plus outputs for a batch of ``size``."""
        return self.model_s(size) + self.output_s()

    def needed_s(self, size: int) -> float:
        """What a batch of ``size`` needs from now, as far as the estimate is trusted: the model part only
        inspected batches confirm (see :meth:`trust`); the output part every result does, fail-safe ones
        included, so it stays current."""
        return self.trust() * self.model_s(size) + self.output_s()


class AdmissionWindow:
    """Frames admitted by the poll loop and not yet given to the model (or decided), oldest first.

    Bounds by *time* what waits inside the worker before the model: ``hold(service_s)`` is True once the
    oldest waiting frame has waited half of what the tightest budget leaves after ``service_s`` (the model
    and the outputs), and stays True until the oldest has waited less than half of that again, or nothing
    waits. Only the wait inside the worker counts: a frame that arrives late from upstream is decided
    fail-safe, and pausing would not have helped it. Thread-safe: the poll thread enters frames, the decode
    pool and the inference thread let them leave.
    """

    def __init__(self, tightest_s: float, clock: Clock = time.monotonic) -> None:
        self._tightest_s = tightest_s
        self._clock = clock
        self._waiting: OrderedDict[Hashable, float] = OrderedDict()  # key -> admitted at (clock time)
        self._lock = threading.Lock()
        self.held = False

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def tightest_s(self) -> float:
        return self._tightest_s

    def enter(self, key: Hashable) -> None:
        with self._lock:
            self._waiting[key] = self._clock()

    def leave(self, key: Hashable) -> None:
        with self._lock:
            self._waiting.pop(key, None)

    def oldest_wait(self) -> float | None:
        """How long the oldest waiting frame has waited; None when none waits."""
        now = self._clock()
        with self._lock:
            # A frame waiting two budgets is no longer one the window controls (decided fail-safe meanwhile,
            # or its record lost to a revoke): never let it hold the partitions for ever.
            while self._waiting and next(iter(self._waiting.values())) < now - 2 * self._tightest_s:
                self._waiting.popitem(last=False)
            if not self._waiting:
                return None
            return now - next(iter(self._waiting.values()))

    def wait_limit(self, service_s: float) -> float:
        return max(0.0, self._tightest_s - service_s) / 2

    def hold(self, service_s: float) -> bool:
        waited = self.oldest_wait()
        limit = self.wait_limit(service_s)
        if waited is None:
            self.held = False
        elif not self.held and waited >= limit:
            self.held = True
        elif self.held and waited < limit / 2:
            self.held = False
        return self.held
