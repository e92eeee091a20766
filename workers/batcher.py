"""A dynamic batcher in the manner of Triton's: a batch closes when it holds ``max_batch_size`` items or
``max_wait_ms`` after its first item arrived, whichever comes first. Items from any partition share a batch.

Pure: no threads, no queues, no I/O. The clock is injected so tests drive time by hand. Arrival times are
taken from the item (when it was decoded) rather than from when the batcher sees it, so frames that piled up
while the model was busy close their batch at once instead of waiting another ``max_wait_ms``: the model is
never idle while decoded frames wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Batch(Generic[T]):
    """Items closed together, with why the batch closed (for the batch-size histogram and the logs)."""

    items: tuple[T, ...]
    opened_at: float
    closed_at: float
    full: bool  # True: closed by max_batch_size; False: closed by max_wait_ms or a flush

    def __len__(self) -> int:
        return len(self.items)


@dataclass(slots=True)
class DynamicBatcher(Generic[T]):
    """Collects items into batches; call :meth:`add` per item and :meth:`due` when the deadline passes."""

    max_batch_size: int
    max_wait_ms: float
    clock: Clock = field(default=time.monotonic)
    _items: list[T] = field(default_factory=list, init=False)
    _opened_at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, arrived_at: float | None = None) -> Batch[T] | None:
        """Add one item; return the batch it completed, if any.

        ``arrived_at`` (same time base as the clock) is when the item became ready; it defaults to now.
        The open batch's deadline is measured from its first item's arrival.
        """
        if self._opened_at is None:
            self._opened_at = self.clock() if arrived_at is None else arrived_at
        self._items.append(item)
        if len(self._items) >= self.max_batch_size:
            return self._close(full=True)
        return None

    def deadline(self) -> float | None:
        """When the open batch must close (clock time), or None when nothing is waiting."""
        if self._opened_at is None:
            return None
        return self._opened_at + self.max_wait_ms / 1000.0

    def time_until_due(self) -> float | None:
        """Seconds until the open batch is due (0 when overdue), or None when nothing is waiting."""
        deadline = self.deadline()
        if deadline is None:
            return None
        return max(0.0, deadline - self.clock())

    def due(self) -> Batch[T] | None:
        """The open batch if its ``max_wait_ms`` has passed, else None."""
        deadline = self.deadline()
        if deadline is None or self.clock() < deadline:
            return None
        return self._close(full=False)

    def flush(self) -> Batch[T] | None:
        """Close whatever is open now (shutdown, revoke), or None when empty."""
        if not self._items:
            return None
        return self._close(full=False)

    def remove_if(self, predicate: Callable[[T], bool]) -> list[T]:
        """Drop the waiting items for which ``predicate`` holds (partitions revoked); return them."""
        dropped = [item for item in self._items if predicate(item)]
        if dropped:
            self._items = [item for item in self._items if not predicate(item)]
            if not self._items:
                self._opened_at = None
        return dropped

    def _close(self, full: bool) -> Batch[T]:
        assert self._opened_at is not None
        batch = Batch(tuple(self._items), opened_at=self._opened_at, closed_at=self.clock(), full=full)
        self._items = []
        self._opened_at = None
        return batch
