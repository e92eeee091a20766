"""The seeded fault schedule (pure): which fault happens when, relative to the start of production.

Long faults (a broker restart, a MongoDB outage) get windows of their own so that the recovery measured
after each one is its own; worker kills and producer restarts fall anywhere, a few seconds apart at least.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    worker_kill = "worker_kill"
    broker_restart = "broker_restart"
    mongo_outage = "mongo_outage"
    producer_restart = "producer_restart"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    worker_kills: int = 20
    broker_restarts: int = 1
    mongo_outages: int = 1
    mongo_outage_s: float = 30.0
    producer_restarts: int = 2
    recovery_window_s: float = 45.0  # time given to each long fault (plus the outage) before the next one
    recovery_bound_s: float = 60.0  # a fault must be recovered this soon after its repair to pass
    # SIGKILL MongoDB (a crash: what it acknowledged must already be durable); False = a clean stop.
    mongo_sigkill: bool = True
    # Production time kept after the last worker kill, so the restarted worker has frames of its own to
    # show its recovery with (its start, a rebalance, its first batch).
    worker_start_allowance_s: float = 20.0


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    at_s: float  # seconds after production started
    kind: FaultKind
    target: int = 0  # which worker, for a worker kill
    restart_after_s: float = 0.0  # how long a killed worker stays down


_MIN_GAP_S = 2.0
_MAX_RESTART_S = 3.0


def schedule(plan: FaultPlan, duration_s: float, workers: int, seed: int) -> list[ScheduledFault]:
    """Faults spread over ``duration_s`` (the production time), in time order."""
    rng = random.Random(seed)
    faults: list[ScheduledFault] = []
    long_kinds = [FaultKind.broker_restart] * plan.broker_restarts + [
        FaultKind.mongo_outage
    ] * plan.mongo_outages
    rng.shuffle(long_kinds)
    if long_kinds:
        # Equal slices of the run, one long fault each, at a random point of its slice's first half.
        slice_s = duration_s / len(long_kinds)
        for number, kind in enumerate(long_kinds):
            faults.append(ScheduledFault(number * slice_s + rng.uniform(0.05, 0.5) * slice_s, kind))
    for _ in range(plan.producer_restarts):
        faults.append(ScheduledFault(rng.uniform(0.1, 0.9) * duration_s, FaultKind.producer_restart))
    # Kills (and their restarts) end early enough that the restarted worker still gets frames to inspect.
    kill_window_s = max(0.0, duration_s - plan.worker_start_allowance_s - _MAX_RESTART_S)
    kill_times = sorted(rng.uniform(0.02, 1.0) * kill_window_s for _ in range(plan.worker_kills))
    last = -_MIN_GAP_S
    for at in kill_times:
        at = max(at, last + _MIN_GAP_S)
        last = at
        faults.append(
            ScheduledFault(
                at,
                FaultKind.worker_kill,
                target=rng.randrange(workers),
                restart_after_s=rng.uniform(0.5, _MAX_RESTART_S),
            )
        )
    return sorted(faults, key=lambda fault: fault.at_s)


def planned_duration_s(frames: int, fps: float, plan: FaultPlan) -> float:
    """How long production should last so that every fault fits: at least the frames at ``fps``, and long
    enough that long faults do not overlap and kills are a couple of seconds apart."""
    long_faults = plan.broker_restarts + plan.mongo_outages
    kills_s = plan.worker_kills * _MIN_GAP_S * 1.2
    if plan.worker_kills:
        kills_s += plan.worker_start_allowance_s + _MAX_RESTART_S
    needed = max(long_faults * (plan.recovery_window_s + plan.mongo_outage_s), kills_s)
    return max(frames / fps, needed)
