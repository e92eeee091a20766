"""Network faults between the workers and their servers, through fault proxies (:mod:`chaos.netproxy`).

Two workers inspect frames from a broker of their own whose every address they know is the Kafka proxy's
(:mod:`chaos.private_kafka`), and write to the shared MongoDB through a second proxy
(``directConnection=true``: the driver never looks for other members). The camera side, the progress clock
and the audit talk to both servers directly, so they measure the fault without suffering it. Faults run one
after the other, each on one link; the next one starts once the last has settled (``gap_s`` of clean
network and healthy progress after its end, :func:`chaos.netfault_report.settled`):

latency (every chunk ``latency_ms`` late, both ways), bandwidth (``bandwidth_bytes_per_s`` per direction of
each connection), reset (RST of every open connection), partition (nothing forwarded for ``partition_s``),
half-open (every open connection silent for good: only client timeouts notice).

What each fault cost, and the verdict: :mod:`chaos.netfault_report`.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from chaos.frames import good_frames
from chaos.live_run import WorkerGroup, audit_outputs, wait_until_done
from chaos.netfault_report import FaultOutcome, NetReport, Routing, settled, stall_and_recovery
from chaos.netproxy import FaultProxy
from chaos.peer_ports import PeerSampler
from chaos.private_kafka import ProxiedKafka
from chaos.producer import ProducerThread
from chaos.recovery import ProgressClock
from chaos.worker_process import WorkerOptions, WorkerProcess
from infra.kafka_topics import ensure_topics
from lineguard.stack.endpoints import Endpoints, resolve_endpoints
from schemas.errors import ConfigurationError
from schemas.topics import TopicNames

log = logging.getLogger(__name__)

_RECOVERY_ALLOWANCE_S = 20.0  # per fault, in the producer's rate (see _run)

Link = Literal["kafka", "mongodb"]
Kind = Literal["latency", "bandwidth", "reset", "partition", "half_open"]
KINDS: tuple[Kind, ...] = ("latency", "bandwidth", "reset", "partition", "half_open")
LINKS: tuple[Link, ...] = ("kafka", "mongodb")


@dataclass(frozen=True, slots=True)
class NetFault:
    link: Link
    kind: Kind
    duration_s: float = 0.0  # 0 for reset and half-open: instantaneous, their damage stays


def plan(
    links: tuple[Link, ...], kinds: tuple[Kind, ...], fault_s: float, partition_s: float
) -> list[NetFault]:
    """Every kind on every link, in a fixed order (pure)."""
    lengths = {
        "latency": fault_s,
        "bandwidth": fault_s,
        "partition": partition_s,
        "reset": 0.0,
        "half_open": 0.0,
    }
    return [NetFault(link, kind, lengths[kind]) for link in links for kind in kinds]


def parse_plan(links: str, kinds: str, fault_s: float, partition_s: float) -> list[NetFault]:
    """The plan from comma lists (the CLI's); an unknown name is a ConfigurationError (pure)."""
    link_names = tuple(name.strip() for name in links.split(",") if name.strip())
    kind_names = tuple(name.strip() for name in kinds.split(",") if name.strip())
    for name in link_names:
        if name not in LINKS:
            raise ConfigurationError(f"unknown link {name!r}: choose from {', '.join(LINKS)}")
    for name in kind_names:
        if name not in KINDS:
            raise ConfigurationError(f"unknown fault {name!r}: choose from {', '.join(KINDS)}")
    if not link_names or not kind_names:
        raise ConfigurationError("give at least one link and one fault")
    return plan(cast(tuple[Link, ...], link_names), cast(tuple[Kind, ...], kind_names), fault_s, partition_s)


@dataclass(frozen=True, slots=True)
class NetConfig:
    exactly_once: bool
    frames: int
    model: Path
    work_dir: Path
    faults: list[NetFault] = field(default_factory=lambda: plan(("kafka", "mongodb"), KINDS, 10.0, 30.0))
    fps: float = 10.0
    seed: int = 11
    gap_s: float = 8.0
    warmup_results: int = 20
    latency_ms: float = 300.0
    bandwidth_bytes_per_s: float = 64 * 1024
    recovery_bound_s: float = 10.0
    recovery_wait_s: float = 120.0  # the longest wait for one fault's recovery before the next fault
    # librdkafka settings of the workers (LINEGUARD_KAFKA_EXTRA), e.g. {"socket.timeout.ms": 10000}; and
    # MongoDB URI options for their driver, e.g. {"socketTimeoutMS": "10000"}. Empty: the defaults.
    kafka_extra: dict[str, Any] = field(default_factory=dict)
    mongodb_options: dict[str, str] = field(default_factory=dict)
    idle_timeout_s: float = 120.0
    workers: int = 2
    cameras: int = 6


def proxied_mongodb_uri(uri: str, proxy_port: int, options: dict[str, str] | None = None) -> str:
    """The URI with its host replaced by the proxy, as a direct connection (pure; credentials kept)."""
    parts = urlsplit(uri)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy_port}" if userinfo else f"127.0.0.1:{proxy_port}"
    extra = [f"{key}={value}" for key, value in (options or {}).items()]
    query = "&".join(q for q in (parts.query, "directConnection=true", *extra) if q)
    return urlunsplit((parts.scheme, netloc, parts.path or "/", query, parts.fragment))


def _mongodb_upstream(uri: str) -> tuple[str, int]:
    host = urlsplit(uri).netloc.rpartition("@")[2].split(",")[0]
    name, _, port = host.rpartition(":")
    return (name.strip("[]") or "127.0.0.1", int(port or 27017))


def run_net_faults(config: NetConfig, shared: Endpoints | None = None) -> NetReport:
    """The run (see the module docstring); ``shared``: the MongoDB to use (default: resolved)."""
    from pymongo import MongoClient

    started = time.monotonic()
    config.work_dir.mkdir(parents=True, exist_ok=True)
    shared = resolve_endpoints() if shared is None else shared
    kafka = ProxiedKafka(config.work_dir).start()
    mongo_proxy = FaultProxy(*_mongodb_upstream(shared.mongodb_uri), name="mongodb").start()
    database = f"chaosnet_{uuid.uuid4().hex[:10]}"
    client: MongoClient[dict[str, Any]] = MongoClient(shared.mongodb_uri, serverSelectionTimeoutMS=10_000)
    try:
        return _run(config, kafka, mongo_proxy, shared, client, database, started)
    finally:
        client.drop_database(database)
        client.close()
        mongo_proxy.close()
        kafka.stop()


def _progress(clock: ProgressClock, link: str) -> list[float]:
    """The faulted side's progress: committed results for the Kafka link, new documents for MongoDB's."""
    return [t for t, _ in list(clock.results)] if link == "kafka" else list(clock.documents)


def _run(
    config: NetConfig,
    kafka: ProxiedKafka,
    mongo_proxy: FaultProxy,
    shared: Endpoints,
    client: Any,
    database: str,
    started: float,
) -> NetReport:
    direct = {"bootstrap.servers": kafka.direct}
    topics = TopicNames.with_prefix("chaosnet")
    ensure_topics(direct, [topics.frames, topics.results, topics.defect_events, topics.dead_letters])
    proxied = Endpoints(
        kafka.proxy.address, proxied_mongodb_uri(shared.mongodb_uri, mongo_proxy.port, config.mongodb_options)
    )
    proxies: dict[str, FaultProxy] = {"kafka": kafka.proxy, "mongodb": mongo_proxy}
    frames = list(good_frames(0, config.frames, cameras=config.cameras, seed=config.seed))
    # The rate that keeps frames flowing until the last fault has settled: each fault, its settling (the
    # gap) and an allowance for its recovery, plus the warm-up. A fault that outlives the frames is flagged.
    faults_s = sum(f.duration_s + config.gap_s + _RECOVERY_ALLOWANCE_S for f in config.faults) + 20.0
    producer = ProducerThread(
        kafka_config=direct,
        topic=topics.frames,
        frames=frames,
        fps=min(config.fps, config.frames / faults_s),
        spool_dir=config.work_dir / "spool",
        spool_max_bytes=128 * 1024 * 1024,
        bad_cases={},
    )
    extra = {"LINEGUARD_KAFKA_EXTRA": json.dumps(config.kafka_extra)} if config.kafka_extra else {}
    group = WorkerGroup(
        [
            WorkerProcess(
                WorkerOptions(
                    topics=topics,
                    group_id="chaosnet-workers",
                    model=config.model,
                    mongo_database=database,
                    worker_id=f"chaosnet-worker-{slot}",
                    exactly_once=config.exactly_once,
                    extra=extra,
                ),
                proxied,
                config.work_dir / f"worker-{slot}.log",
            )
            for slot in range(config.workers)
        ]
    )
    collection = client[database]["inspections"]
    clock = ProgressClock(direct, topics.results, collection)
    peers = PeerSampler(group.pids).start()
    outcomes: list[FaultOutcome] = []
    try:
        group.start()
        producer.start()
        deadline = time.monotonic() + 180
        while len(clock.results) < config.warmup_results and time.monotonic() < deadline:
            time.sleep(0.2)
        for fault in config.faults:
            outcome = _inject(fault, proxies[fault.link], config)
            outcomes.append(outcome)
            # The next fault waits until this one has settled: gap_s of healthy progress after its end (or
            # recovery_wait_s, giving up on it), so each figure is its own and no damage spills over.
            until = time.monotonic() + config.recovery_wait_s
            while time.monotonic() < until and not settled(
                _progress(clock, fault.link)[-500:], time.monotonic(), outcome.ended, config.gap_s
            ):
                time.sleep(0.2)
            outcome.traffic = producer.alive
        finished = wait_until_done(
            config.frames, clock, collection, lambda: producer.alive, config.idle_timeout_s
        )
        group.stop_all()
    finally:
        peers.close()
        clock.close()
        for proxy in proxies.values():
            proxy.clear()
    finished_at = time.monotonic()
    for index, outcome in enumerate(outcomes):
        until = outcomes[index + 1].started if index + 1 < len(outcomes) else finished_at
        outcome.stall_s, outcome.recovery_s = stall_and_recovery(
            _progress(clock, outcome.link), outcome.started, outcome.ended, until
        )
    # No latency figure: the frames' capture times are stamped when the list is built, not when sent.
    figures, _latencies = audit_outputs(direct, topics, collection, frames)
    return NetReport(
        mode="exactly-once" if config.exactly_once else "at-least-once",
        figures=figures,
        faults=outcomes,
        worker_unplanned_exits=group.unplanned_exits,
        recovery_bound_s=config.recovery_bound_s,
        finished=finished,
        seconds=time.monotonic() - started,
        routing=Routing.of(peers, kafka, mongo_proxy, _mongodb_upstream(shared.mongodb_uri)[1]),
    )


def _inject(fault: NetFault, proxy: FaultProxy, config: NetConfig) -> FaultOutcome:
    outcome = FaultOutcome(fault.link, fault.kind, fault.duration_s, started=time.monotonic())
    log.info("network fault: %s %s for %.0f s", fault.link, fault.kind, fault.duration_s)
    outcome.connections_hit = proxy.open_connections
    if fault.kind == "reset":
        outcome.connections_hit = proxy.reset()
    elif fault.kind == "half_open":
        outcome.connections_hit = proxy.half_open()
    else:
        if fault.kind == "latency":
            proxy.latency(config.latency_ms)
        elif fault.kind == "bandwidth":
            proxy.bandwidth(config.bandwidth_bytes_per_s)
        else:
            proxy.partition(True)
        time.sleep(fault.duration_s)
        proxy.clear()
    outcome.ended = time.monotonic()
    return outcome
