"""How long a consumer group spent rebalancing, seen from outside: the group's state sampled from the broker.

A thread asks the group coordinator for the group's state (``describe_consumer_groups``) every ``every_s``;
a sample in ``PreparingRebalance`` or ``CompletingRebalance`` counts as rebalancing until the next sample.
So the figure has the sampling period as its resolution: a rebalance shorter than ``every_s`` may be missed
or counted as one period. The arithmetic is :func:`rebalancing_spans` (pure).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupState

log = logging.getLogger(__name__)

# Taken from the client's own enum (what describe_consumer_groups returns), not spelled by hand: the names
# written here first (PREPARING_REBALANCE) were not its names (PREPARING_REBALANCING), so the 10-minute
# storm reported 0 s of rebalancing over 80 membership changes.
REBALANCING = frozenset(
    {ConsumerGroupState.PREPARING_REBALANCING.name, ConsumerGroupState.COMPLETING_REBALANCING.name}
)


@dataclass(frozen=True, slots=True)
class RebalanceFigures:
    seconds: float  # total time the group spent rebalancing
    episodes: int  # stretches of consecutive rebalancing samples
    longest_s: float
    samples: int
    failed_samples: int  # the coordinator did not answer in time (counted, not guessed)
    sampled_s: float  # from the first sample to the end: what ``seconds`` is a share of

    def to_json(self) -> dict[str, Any]:
        return {
            "rebalancing_s": round(self.seconds, 1),
            "rebalances_seen": self.episodes,
            "longest_rebalance_s": round(self.longest_s, 1),
            "rebalancing_share": round(self.seconds / self.sampled_s, 3) if self.sampled_s > 0 else None,
            "group_state_samples": self.samples,
            "group_state_failed_samples": self.failed_samples,
        }


def rebalancing_spans(samples: list[tuple[float, str]], end: float) -> list[tuple[float, float]]:
    """The (start, end) stretches during which the sampled state was a rebalancing one: each sample holds
    until the next one (the last until ``end``); consecutive rebalancing samples form one stretch (pure)."""
    spans: list[tuple[float, float]] = []
    ordered = sorted(samples)
    for index, (at, state) in enumerate(ordered):
        until = ordered[index + 1][0] if index + 1 < len(ordered) else max(end, at)
        if state not in REBALANCING:
            continue
        if spans and spans[-1][1] == at:
            spans[-1] = (spans[-1][0], until)
        else:
            spans.append((at, until))
    return spans


def figures_of(samples: list[tuple[float, str]], end: float, failed: int = 0) -> RebalanceFigures:
    """Total, count and longest of :func:`rebalancing_spans` (pure)."""
    spans = rebalancing_spans(samples, end)
    lengths = [b - a for a, b in spans]
    sampled = max(0.0, end - min(at for at, _ in samples)) if samples else 0.0
    return RebalanceFigures(
        sum(lengths), len(spans), max(lengths, default=0.0), len(samples), failed, sampled
    )


def _state_name(state: Any) -> str:
    """``ConsumerGroupState.STABLE`` -> ``"STABLE"`` (also plain strings)."""
    return str(getattr(state, "name", state)).upper()


class GroupStateSampler:
    """Samples one group's state every ``every_s`` on a thread, until :meth:`close`; ``describe`` (the
    group id -> state name) is injectable, the default asks the broker with an AdminClient."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        group_id: str,
        every_s: float = 0.5,
        describe: Callable[[str], str] | None = None,
    ) -> None:
        self.group_id = group_id
        self.every_s = every_s
        self.samples: list[tuple[float, str]] = []
        self.failed = 0
        self._admin: Any = None
        if describe is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient(dict(kafka_config))
            describe = self._describe
        self._call = describe
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-group-state", daemon=True)

    def _describe(self, group_id: str) -> str:
        futures = self._admin.describe_consumer_groups([group_id], request_timeout=max(1.0, self.every_s * 4))
        return _state_name(futures[group_id].result(timeout=max(2.0, self.every_s * 6)).state)

    def start(self) -> GroupStateSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                self.samples.append((at, self._call(self.group_id)))
            except Exception as exc:  # the coordinator may be moving: count it and sample again
                self.failed += 1
                log.debug("group state of %s not read: %s", self.group_id, exc)
            self._stop.wait(max(0.0, at + self.every_s - time.monotonic()))

    def close(self) -> RebalanceFigures:
        self._stop.set()
        self._thread.join(10)
        return figures_of(list(self.samples), time.monotonic(), self.failed)
