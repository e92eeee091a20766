"""The counter store's contract, and the in-process implementation the benchmark compares Redis with.

A store applies a batch of tallies *and* the batch's next offsets as one atomic step, so the offsets it keeps
always describe exactly the records its counters hold: a consumer that resumes from the store's offsets
after any crash neither skips nor re-counts. Tallies are counted once per (line, window, result id), so a
record that reaches the topic twice (an at-least-once worker) or a rebalance that hands a partition over
mid-batch does not double count either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from quality.counters.tally import Tally, WindowCounts


class CounterStore(Protocol):
    window_s: int

    def apply(self, tallies: Sequence[Tally], offsets: Mapping[int, int], stream: str) -> int:
        """Count the tallies not counted yet and raise ``stream``'s partition offsets (next offset to read)
        to ``offsets``, atomically; returns how many tallies were new."""
        ...

    def offsets(self, stream: str, partitions: Iterable[int]) -> dict[int, int]:
        """The stored next offset of each partition that has one."""
        ...

    def lines(self) -> list[str]: ...

    def recent(self, line_id: str, windows: int) -> list[WindowCounts]:
        """The line's last ``windows`` windows that have counts, newest first."""
        ...


class InProcessStore:
    """Dicts and sets in this process: the fastest store, but only this process sees it, it covers only
    the partitions this consumer is assigned, and a restart loses it (rebuilt by replaying the topic)."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._seen: dict[tuple[str, int], set[str]] = {}
        self._counts: dict[tuple[str, int], Counter[str]] = {}
        self._offsets: dict[str, dict[int, int]] = {}

    def apply(self, tallies: Sequence[Tally], offsets: Mapping[int, int], stream: str) -> int:
        new = 0
        for item in tallies:
            key = (item.line_id, item.window_start)
            seen = self._seen.setdefault(key, set())
            if item.result_id in seen:
                continue
            seen.add(item.result_id)
            self._counts.setdefault(key, Counter()).update(item.fields)
            new += 1
        stored = self._offsets.setdefault(stream, {})
        for partition, offset in offsets.items():
            stored[partition] = max(stored.get(partition, -1), offset)
        return new

    def offsets(self, stream: str, partitions: Iterable[int]) -> dict[int, int]:
        stored = self._offsets.get(stream, {})
        return {p: stored[p] for p in partitions if p in stored}

    def lines(self) -> list[str]:
        return sorted({line for line, _ in self._counts})

    def recent(self, line_id: str, windows: int) -> list[WindowCounts]:
        starts = sorted((s for line, s in self._counts if line == line_id), reverse=True)[:windows]
        return [
            WindowCounts(line_id, start, self.window_s, dict(self._counts[(line_id, start)]))
            for start in starts
        ]
