"""What a network-fault run measured, and how it is judged (:mod:`chaos.netfaults` runs it).

Recovery per fault: ``stall_s`` is the longest stretch without progress of the faulted side (a new
committed result for the Kafka link, a new document for MongoDB's) from the fault's start to the next
fault; ``recovery_s`` runs from the fault's end (its injection, for a reset or a half-open) to the end of
that stall (0 when no stretch was longer than a healthy run's pace). The first result after a reset is no
proof of recovery: one already in flight lands at once, and the stall can follow it.

Routing (``routing``): the proxies' byte counters and the workers' TCP connections sampled from ``/proc``
every second; ``around_proxies`` counts sampled connections to the broker's or MongoDB's own ports.

``passed``: nothing lost, no duplicate document, no duplicate result under exactly-once, no dead letter, no
unplanned worker exit, all worker traffic through the proxies, every fault recovered within
``recovery_bound_s`` of its end.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

from chaos.audit import AuditFigures
from chaos.netproxy import FaultProxy
from chaos.peer_ports import PeerSampler
from chaos.private_kafka import ProxiedKafka


@dataclass(slots=True)
class FaultOutcome:
    link: str
    kind: str
    duration_s: float
    connections_hit: int = 0  # connections reset or silenced, or open when latency/bandwidth/partition began
    recovery_s: float | None = None  # from the fault's end to the faulted side's first progress
    stall_s: float | None = None
    started: float = 0.0
    ended: float = 0.0
    traffic: bool = True  # frames were still being sent once the fault had settled: it was measured


@dataclass(frozen=True, slots=True)
class Routing:
    """Proof that the workers talked to their servers only through the proxies: the byte counters of each
    proxy, and the workers' sampled TCP connections (``/proc``) by where they lead."""

    kafka_proxy_bytes: tuple[int, int]  # (up, down)
    mongodb_proxy_bytes: tuple[int, int]
    through_proxies: int  # sampled worker connections to a proxy port
    around_proxies: int  # ... to the broker's or MongoDB's own ports: the proxy bypassed
    samples: int

    @classmethod
    def of(cls, peers: PeerSampler, kafka: ProxiedKafka, mongo: FaultProxy, mongo_port: int) -> Routing:
        proxy_ports = {kafka.proxy.port, mongo.port}
        server_ports = {kafka.broker_port, kafka.proxied_port, mongo_port}
        return cls(
            (kafka.proxy.stats.bytes_up, kafka.proxy.stats.bytes_down),
            (mongo.stats.bytes_up, mongo.stats.bytes_down),
            sum(n for port, n in peers.seen.items() if port in proxy_ports),
            sum(n for port, n in peers.seen.items() if port in server_ports),
            peers.samples,
        )

    @property
    def failures(self) -> list[str]:
        found = []
        if self.around_proxies:
            found.append(f"{self.around_proxies} sampled worker connections went around the proxies")
        if self.through_proxies == 0 or self.samples == 0:
            found.append("no worker connection was seen through the proxies")
        for name, (up, down) in (("kafka", self.kafka_proxy_bytes), ("mongodb", self.mongodb_proxy_bytes)):
            if up == 0 or down == 0:
                found.append(f"no traffic through the {name} proxy")
        return found


@dataclass(slots=True)
class NetReport:
    mode: str
    figures: AuditFigures
    faults: list[FaultOutcome]
    worker_unplanned_exits: int
    recovery_bound_s: float
    finished: bool
    seconds: float
    routing: Routing

    @property
    def failures(self) -> list[str]:
        f = self.figures
        exactly_once = self.mode == "exactly-once"
        found = [
            text
            for ok, text in (
                (self.finished, "the run stopped making progress before every frame was done"),
                (f.lost == 0, f"{f.lost} frames lost"),
                (f.duplicate_documents == 0, f"{f.duplicate_documents} duplicate documents"),
                (f.duplicate_results == 0 or not exactly_once, f"{f.duplicate_results} duplicate results"),
                (f.unexpected_results == 0, f"{f.unexpected_results} unexpected results"),
                (f.spurious_dead_letters == 0, f"{f.spurious_dead_letters} dead letters"),
                (self.worker_unplanned_exits == 0, f"{self.worker_unplanned_exits} unplanned worker exits"),
            )
            if not ok
        ]
        found.extend(self.routing.failures)
        for fault in self.faults:
            name = f"{fault.link} {fault.kind}"
            if not fault.traffic:
                found.append(
                    f"{name}: the last frame was sent before it settled (not measured: more --frames)"
                )
            elif fault.recovery_s is None:
                found.append(f"{name}: never recovered")
            elif fault.recovery_s > self.recovery_bound_s:
                found.append(
                    f"{name}: recovered {fault.recovery_s:.1f} s after its end"
                    f" (> {self.recovery_bound_s:.0f})"
                )
        return found

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        def r(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "mode": self.mode,
            **{k: v for k, v in asdict(self.figures).items() if k in _AUDIT_KEYS},
            "faults": [
                {
                    "fault": f"{o.link} {o.kind}",
                    "duration_s": o.duration_s,
                    "connections_hit": o.connections_hit,
                    "recovery_s": r(o.recovery_s),
                    "stall_s": r(o.stall_s),
                    "traffic": o.traffic,
                }
                for o in self.faults
            ],
            "worker_unplanned_exits": self.worker_unplanned_exits,
            "routing": asdict(self.routing),
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
            "failures": self.failures,
        }


_AUDIT_KEYS = ("frames", "lost", "duplicate_documents", "duplicate_results", "spurious_dead_letters")


def stall_and_recovery(
    progress: list[float], started: float, ended: float, until: float, normal_gap_s: float = 2.0
) -> tuple[float | None, float | None]:
    """The longest stretch without progress in [started, until] (the stall a reader saw), and the
    recovery: from the fault's end to the end of that stall, 0 when no stretch was longer than
    ``normal_gap_s`` (the pace of a healthy run) or the stall ended before the fault did (pure).
    (None, None) when nothing progressed after the fault's end: it never recovered."""
    if not any(t > ended for t in progress):
        return None, None
    inside = sorted(t for t in progress if started <= t <= until)
    edges = [started, *inside, until]
    a, b = max(itertools.pairwise(edges), key=lambda gap: gap[1] - gap[0])
    if b - a <= normal_gap_s:
        return b - a, 0.0
    return b - a, max(0.0, b - ended)


def settled(
    progress: list[float], now: float, since: float, window_s: float, normal_gap_s: float = 2.0
) -> bool:
    """Whether the last ``window_s`` (all of it after ``since``, a fault's end) saw progress at a healthy
    pace: no stretch longer than ``normal_gap_s`` without any (pure). The next fault waits for this, not for
    the first progress: a result in flight lands at once after a half-open, and the damage (a consumer
    session lost, a silenced connection timing out) shows seconds later."""
    start = now - window_s
    if start < since:
        return False
    edges = [start, *sorted(t for t in progress if start <= t <= now), now]
    return all(b - a <= normal_gap_s for a, b in itertools.pairwise(edges))
