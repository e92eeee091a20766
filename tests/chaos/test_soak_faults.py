"""The soak's periodic faults (chaos.soak_faults): which samples count as fault samples, the kinds in turn,
and each kind doing its thing on the proxy and clearing it afterwards."""

from __future__ import annotations

import time
from typing import Any, cast

from chaos.netproxy import FaultProxy
from chaos.soak_faults import KINDS, FaultWindow, PeriodicFaults, kind_at, overlaps


def test_a_sample_overlapping_a_fault_or_its_grace_is_a_fault_sample() -> None:
    windows = [FaultWindow("partition", 100.0, 120.0), FaultWindow("reset", 300.0, 300.0)]
    assert overlaps(60.0, 120.0, windows, grace_s=30.0)  # holds the fault's start
    assert overlaps(140.0, 200.0, windows, grace_s=30.0)  # inside the recovery grace
    assert not overlaps(151.0, 211.0, windows, grace_s=30.0)  # after it
    assert not overlaps(0.0, 60.0, windows, grace_s=30.0)  # before
    assert overlaps(250.0, 310.0, windows, grace_s=0.0)  # an instant fault inside the minute
    assert not overlaps(0.0, 1000.0, [], grace_s=30.0)


def test_kinds_take_turns() -> None:
    assert [kind_at(i) for i in range(6)] == [*KINDS, KINDS[0], KINDS[1]]


class _RecordingProxy:
    """Records what the fault thread asked of the proxy (the proxy itself is tested in test_netproxy)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def partition(self, on: bool) -> None:
        self.calls.append(("partition", on))

    def latency(self, ms: float) -> None:
        self.calls.append(("latency", ms))

    def reset(self) -> int:
        self.calls.append(("reset", None))
        return 0

    def half_open(self) -> int:
        self.calls.append(("half_open", None))
        return 0

    def clear(self) -> None:
        self.calls.append(("clear", None))


def test_every_kind_is_injected_in_turn_and_cleared() -> None:
    proxy = _RecordingProxy()
    faults = PeriodicFaults(cast(FaultProxy, proxy), every_s=0.01, fault_s=0.01, latency_ms=250).start()
    deadline = time.monotonic() + 10
    while len(faults.windows) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    faults.close()
    assert [w.kind for w in faults.windows[:4]] == list(KINDS)
    assert all(w.ended >= w.started for w in faults.windows)
    assert proxy.calls[:6] == [
        ("partition", True),
        ("clear", None),
        ("reset", None),
        ("latency", 250),
        ("clear", None),
        ("half_open", None),
    ]
    assert proxy.calls[-1] == ("clear", None)  # close leaves the link clean


def test_no_faults_when_the_period_is_zero() -> None:
    proxy = _RecordingProxy()
    faults = PeriodicFaults(cast(FaultProxy, proxy), every_s=0, fault_s=1).start()
    faults.close()
    assert faults.windows == [] and proxy.calls == [("clear", None)]
