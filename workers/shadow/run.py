"""Running a shadow worker: live (until stopped) or over a recorded range (until every record in it is
inspected). Either way it is :class:`workers.pipeline.Worker`, configured by :mod:`workers.shadow.config`."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from infra.endpoints import Endpoints, resolve_endpoints
from infra.settings import KafkaSettings, MongoSettings
from schemas.errors import LineguardError
from workers.pipeline import Worker
from workers.serving import frame_deserializer
from workers.settings import WorkerSettings
from workers.shadow.replay import (
    PartitionRange,
    RangeRequest,
    RecordFilter,
    commit_start,
    resolve_range,
    wait_replayed,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShadowTarget:
    """Which frames the candidate sees."""

    line: str | None = None
    camera: str | None = None
    replay: RangeRequest | None = None  # None: live
    sample_every: int = 1  # inspect one record in n (by offset)


@dataclass(slots=True)
class ReplayOutcome:
    group: str
    ranges: list[PartitionRange]
    complete: bool
    results: int
    exit_code: int
    seconds: float = 0.0
    partitions: list[dict[str, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "complete": self.complete,
            "records_in_range": sum(r.size for r in self.ranges),
            "results_written": self.results,
            "seconds": round(self.seconds, 3),
            "partitions": [{"partition": r.partition, "start": r.start, "end": r.end} for r in self.ranges],
        }


def _record_filter(target: ShadowTarget, ends: dict[int, int] | None) -> RecordFilter | None:
    if ends is None and target.line is None and target.camera is None and target.sample_every == 1:
        return None
    deserializer = None
    if target.line is not None:
        deserializer = frame_deserializer()
    return RecordFilter(
        ends=ends,
        line=target.line,
        camera=target.camera,
        deserializer=deserializer,
        sample_every=target.sample_every,
    )


def _endpoints(endpoints: Endpoints | None) -> Endpoints:
    return endpoints if endpoints is not None else resolve_endpoints()


def shadow_worker(
    settings: WorkerSettings,
    target: ShadowTarget,
    *,
    endpoints: Endpoints | None = None,
    mongo: MongoSettings | None = None,
    ends: dict[int, int] | None = None,
) -> Worker:
    """A live shadow worker (run it, stop it) - what tests and the CLI start."""
    return Worker(settings, endpoints=endpoints, mongo=mongo, accept=_record_filter(target, ends))


def run_live(settings: WorkerSettings, target: ShadowTarget) -> int:
    """Until SIGTERM/SIGINT, like ``lineguard worker``."""
    worker = shadow_worker(settings, target)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: draining", signal.Signals(signum).name)
        worker.stop()
        signal.signal(signum, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return worker.run()


def run_replay(
    settings: WorkerSettings,
    target: ShadowTarget,
    *,
    endpoints: Endpoints | None = None,
    mongo: MongoSettings | None = None,
    timeout_s: float = 3600.0,
) -> ReplayOutcome:
    """Replay the range through a fresh shadow group; returns once it is inspected (or failed)."""
    import time

    assert target.replay is not None
    where = _endpoints(endpoints)
    kafka_config = KafkaSettings().client_config(where.kafka_bootstrap)
    ranges = resolve_range(kafka_config, settings.frames_topic, target.replay)
    ends = {r.partition: r.end for r in ranges}
    # Partitions outside the request have no committed start: begin them at their end (nothing to read).
    settings = settings.model_copy(update={"auto_offset_reset": "latest"})
    commit_start(kafka_config, settings.group_id, settings.frames_topic, ranges)
    worker = shadow_worker(settings, target, endpoints=where, mongo=mongo, ends=ends)
    exit_code: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            exit_code.append(worker.run())
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, name="shadow-replay", daemon=True)
    thread.start()
    complete = False
    try:
        complete = wait_replayed(
            kafka_config, settings.group_id, settings.frames_topic, ranges, thread.is_alive, timeout_s
        )
    finally:
        worker.stop()
        thread.join(settings.drain_timeout_s + 30.0)
    if errors:
        raise errors[0]
    value = worker.metrics.registry.get_sample_value("lineguard_worker_results_out_total") or 0.0
    code = exit_code[0] if exit_code else 1
    if not complete and code == 0:
        raise LineguardError(f"replay did not finish within {timeout_s:.0f} s")
    return ReplayOutcome(
        group=settings.group_id,
        ranges=ranges,
        complete=complete,
        results=int(value),
        exit_code=code,
        seconds=time.monotonic() - started,
    )
