"""Which offsets may be committed: per partition, only up to the last contiguous record whose outputs are all
acknowledged.

Records complete out of order (a dead letter overtakes a batch still in the model; a Mongo write returns
before a delivery report), so the tracker keeps, per partition, the records received and the acknowledgements
each still waits for. A record is *done* once it has been settled (every output it needs has been issued) and
every one of those outputs was acknowledged. The commit position of a partition is the offset after the
longest done prefix: committing it can never skip a record without outputs.

Each received record gets a :class:`Ticket` carrying the partition's *epoch*. Revoking a partition bumps
nothing in flight; it forgets the partition, and a later assignment starts a new epoch, so a late
acknowledgement from work done before the revoke cannot mark a record of the new assignment as done.

Thread-safe: the poll thread tracks and commits, the sink thread settles, delivery callbacks acknowledge.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

PartitionKey = tuple[str, int]  # (topic, partition)

_epochs = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Identifies one received record for the tracker."""

    topic: str
    partition: int
    offset: int
    epoch: int

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)


@dataclass(slots=True)
class _PartitionState:
    epoch: int
    order: deque[int] = field(default_factory=deque)  # offsets in the order received (increasing)
    remaining: dict[int, int | None] = field(
        default_factory=dict
    )  # offset -> acks still due; None = unsettled
    committable: int | None = None  # offset after the longest done prefix
    committed: int | None = None  # last position handed to Kafka


class OffsetTracker:
    """Per-partition completion tracking for at-least-once (and transactional) commits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[PartitionKey, _PartitionState] = {}
        self._done = threading.Condition(self._lock)

    def track(self, topic: str, partition: int, offset: int) -> Ticket:
        """Record that ``offset`` was received; its outputs are not issued yet."""
        key = (topic, partition)
        with self._lock:
            state = self._partitions.get(key)
            if state is None:
                state = self._partitions[key] = _PartitionState(epoch=next(_epochs))
            if offset in state.remaining:
                raise ValueError(f"offset {offset} of {topic}[{partition}] is already tracked")
            if state.order and offset < state.order[-1]:
                raise ValueError(
                    f"offset {offset} of {topic}[{partition}] arrived after {state.order[-1]}; "
                    "release the partition before seeking back"
                )
            state.order.append(offset)
            state.remaining[offset] = None
            return Ticket(topic, partition, offset, state.epoch)

    def settle(self, ticket: Ticket, outstanding: int) -> bool:
        """All outputs of the record are about to be issued; ``outstanding`` acknowledgements will follow.

        Call it before issuing the outputs, so an acknowledgement can never arrive first. Returns False when
        the record's partition was revoked since (the caller should not write its outputs).
        """
        if outstanding < 0:
            raise ValueError("outstanding must be >= 0")
        with self._lock:
            state = self._live_state(ticket)
            if state is None:
                return False
            if state.remaining.get(ticket.offset, 0) is not None:
                raise ValueError(f"{ticket} settled twice")
            state.remaining[ticket.offset] = outstanding
            if outstanding == 0:
                self._advance(state)
            return True

    def ack(self, ticket: Ticket, count: int = 1) -> None:
        """``count`` outputs of the record were acknowledged (delivery report, Mongo write)."""
        with self._lock:
            state = self._live_state(ticket)
            if state is None:
                return  # revoked meanwhile: the new owner reprocesses it
            remaining = state.remaining.get(ticket.offset)
            if remaining is None:
                raise ValueError(f"{ticket} acknowledged before it was settled")
            if count > remaining:
                raise ValueError(f"{ticket} acknowledged {count} times but only {remaining} outputs were due")
            state.remaining[ticket.offset] = remaining - count
            if remaining == count:
                self._advance(state)

    def is_live(self, ticket: Ticket) -> bool:
        """False once the ticket's partition was released (revoked) or reassigned."""
        with self._lock:
            return self._live_state(ticket) is not None

    def commit_positions(self) -> dict[PartitionKey, int]:
        """Partitions whose commit position advanced since the last :meth:`mark_committed`: key -> offset to
        commit (the offset of the next record to read, as Kafka expects)."""
        with self._lock:
            return {
                key: state.committable
                for key, state in self._partitions.items()
                if state.committable is not None and state.committable != state.committed
            }

    def positions_if_done(self, tickets: Iterable[Ticket]) -> dict[PartitionKey, int]:
        """The commit positions there would be if ``tickets`` were done, without changing anything.

        A transaction needs its offsets *before* it commits, and its records only count as done once it
        has committed; live tickets only.
        """
        with self._lock:
            done: dict[PartitionKey, set[int]] = {}
            for ticket in tickets:
                if self._live_state(ticket) is not None:
                    done.setdefault(ticket.key, set()).add(ticket.offset)
            positions: dict[PartitionKey, int] = {}
            for key, offsets in done.items():
                state = self._partitions[key]
                position = state.committable
                for offset in state.order:
                    if state.remaining[offset] != 0 and offset not in offsets:
                        break
                    position = offset + 1
                if position is not None and position != state.committed:
                    positions[key] = position
            return positions

    def mark_committed(self, positions: dict[PartitionKey, int]) -> None:
        """Kafka accepted these positions."""
        with self._lock:
            for key, position in positions.items():
                state = self._partitions.get(key)
                if state is not None:
                    state.committed = position

    def in_flight(self, keys: Iterable[PartitionKey] | None = None) -> int:
        """Records received but not done, in ``keys`` (default: all partitions)."""
        with self._lock:
            return self._in_flight_locked(keys)

    def wait_until_done(self, keys: Iterable[PartitionKey] | None, timeout_s: float) -> bool:
        """Block until no record in ``keys`` is in flight, at most ``timeout_s``. True when drained."""
        wanted = None if keys is None else list(keys)
        with self._done:
            return self._done.wait_for(lambda: self._in_flight_locked(wanted) == 0, timeout=timeout_s)

    def release(self, keys: Iterable[PartitionKey]) -> int:
        """Forget the partitions (revoked or lost); returns how many in-flight records were dropped."""
        dropped = 0
        with self._lock:
            for key in keys:
                state = self._partitions.pop(key, None)
                if state is not None:
                    dropped += len(state.order)
            self._done.notify_all()
        return dropped

    def partitions(self) -> list[PartitionKey]:
        with self._lock:
            return list(self._partitions)

    def _live_state(self, ticket: Ticket) -> _PartitionState | None:
        state = self._partitions.get(ticket.key)
        if state is None or state.epoch != ticket.epoch or ticket.offset not in state.remaining:
            return None
        return state

    def _in_flight_locked(self, keys: Iterable[PartitionKey] | None) -> int:
        selected = self._partitions.values() if keys is None else (self._partitions.get(k) for k in keys)
        return sum(len(state.order) for state in selected if state is not None)

    def _advance(self, state: _PartitionState) -> None:
        while state.order and state.remaining[state.order[0]] == 0:
            offset = state.order.popleft()
            del state.remaining[offset]
            state.committable = offset + 1
        self._done.notify_all()
