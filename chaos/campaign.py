"""The bad-input campaign: thousands of poison records through a live worker (real Kafka and MongoDB).

1. Fresh topics and a fresh database; the claim-check target image is stored in GridFS.
2. A worker subprocess starts with small bounds (64 KiB images, 4 Mpixel), so that every size limit is
   crossed by records the topic still accepts.
3. The corpus is produced; the campaign reads the dead-letter topic until every case has its dead letter (or
   nothing new arrives for ``idle_timeout_s``). A worker that exits on its own is a crash: it is counted,
   its log kept, and it is restarted so the campaign can go on and show everything that is wrong.
4. Good frames follow (some with hostile headers): the worker must still inspect every one of them.
5. SIGTERM: the worker must drain and exit 0.

The worker runs under an address-space limit (``RLIMIT_AS``, set with ``prlimit`` as it starts): a record
that made it allocate a decompression bomb's pixels would fail the allocation and crash it, instead of
passing unnoticed on a large machine. Its peak RSS (``VmHWM``, sampled every second and before it stops) is
reported and must stay below ``max_peak_rss_mb``.
"""

from __future__ import annotations

import logging
import resource
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.corpus import BadInputCorpus, ClaimCheckTarget, CorpusLimits, hostile_headers
from chaos.frames import good_frames
from chaos.kafka_io import Consumed, Landed, TopicReader, produce_all
from chaos.worker_process import WorkerOptions, WorkerProcess
from infra.claimcheck import GridFSClaimCheckStore
from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import Endpoints
from schemas.errors import LineguardError, SerializationError
from schemas.records import DeadLetter, Frame, InspectionResult
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from schemas.topics import HEADER_TRACE_ID, TopicNames

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CampaignConfig:
    cases: int
    model: Path
    work_dir: Path
    seed: int = 2026
    good_frames: int = 200
    max_image_bytes: int = 64 * 1024
    max_image_pixels: int = 4_000_000
    idle_timeout_s: float = 120.0
    keep: bool = False  # keep topics and database for inspection
    # Address space of the worker: onnxruntime, librdkafka and glibc's per-thread arenas reserve far more
    # than they touch, so this is well above the RSS goal; a 16000x16000 decode (768 MB of pixels, 1.5-1.75
    # GB peak) on top of it fails.
    memory_limit_mb: int | None = 2560
    max_peak_rss_mb: int = 1024


@dataclass(slots=True)
class CampaignReport:
    cases: int
    crashes: int = 0
    dead_lettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    wrong_reason: int = 0
    wrong_reason_examples: list[str] = field(default_factory=list)
    missing: int = 0
    missing_by_kind: dict[str, int] = field(default_factory=dict)
    accepted_as_frames: int = 0
    duplicate_dead_letters: int = 0
    good_frames_sent: int = 0
    good_frames_inspected: int = 0
    worker_exit_code: int | None = None
    seconds: float = 0.0
    crash_logs: list[str] = field(default_factory=list)
    memory_limit_mb: int | None = None
    peak_rss_mb: float = 0.0  # the worker's largest VmHWM over all its runs
    peak_vm_mb: float = 0.0  # and VmPeak (address space), to size memory_limit_mb
    max_peak_rss_mb: int = 1024

    @property
    def passed(self) -> bool:
        return (
            self.crashes == 0
            and self.dead_lettered == self.cases
            and self.wrong_reason == 0
            and self.accepted_as_frames == 0
            and self.good_frames_inspected == self.good_frames_sent
            and self.worker_exit_code == 0
            and 0 < self.peak_rss_mb < self.max_peak_rss_mb
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "crashes": self.crashes,
            "dead_lettered": self.dead_lettered,
            "reasons": self.reasons,
            "wrong_reason": self.wrong_reason,
            "wrong_reason_examples": self.wrong_reason_examples,
            "missing": self.missing,
            "missing_by_kind": self.missing_by_kind,
            "accepted_as_frames": self.accepted_as_frames,
            "duplicate_dead_letters": self.duplicate_dead_letters,
            "good_frames_sent": self.good_frames_sent,
            "good_frames_inspected": self.good_frames_inspected,
            "worker_exit_code": self.worker_exit_code,
            "seconds": round(self.seconds, 1),
            "memory_limit_mb": self.memory_limit_mb,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "peak_vm_mb": round(self.peak_vm_mb, 1),
            "passed": self.passed,
        }


def run_campaign(config: CampaignConfig, endpoints: Endpoints) -> CampaignReport:
    from pymongo import MongoClient

    started = time.monotonic()
    suffix = uuid.uuid4().hex[:10]
    topics = TopicNames.with_prefix(f"chaos-bad.{suffix}")
    names = [topics.frames, topics.results, topics.defect_events, topics.dead_letters]
    kafka_config = endpoints.kafka_config()
    ensure_topics(kafka_config, names, partitions=3)
    database = f"chaos_bad_{suffix}"
    client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=10_000)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    process = WorkerProcess(
        WorkerOptions(
            topics=topics,
            group_id=f"chaos-bad-{suffix}",
            model=config.model,
            mongo_database=database,
            worker_id=f"chaos-bad-{suffix}",
            max_message_bytes=config.max_image_bytes,
            max_image_pixels=config.max_image_pixels,
        ),
        endpoints,
        config.work_dir / f"worker-{suffix}.log",
    )
    report = CampaignReport(
        cases=config.cases, memory_limit_mb=config.memory_limit_mb, max_peak_rss_mb=config.max_peak_rss_mb
    )
    worker = _LimitedWorker(process, config.memory_limit_mb, report)
    try:
        target = _store_target(GridFSClaimCheckStore(client, database), database)
        corpus = BadInputCorpus(
            seed=config.seed,
            limits=CorpusLimits(config.max_image_bytes, config.max_image_pixels),
            target=target,
        )
        worker.start()
        expected = _produce_corpus(kafka_config, topics.frames, corpus, config.cases)
        try:
            _collect_dead_letters(kafka_config, topics, expected, worker, config, report)
            _check_good_frames(kafka_config, topics, worker, config, report)
            worker.sample()
            report.worker_exit_code = worker.terminate()
        except CrashLoop as exc:
            log.error("campaign stopped early: %s", exc)
    finally:
        if worker.running():
            worker.kill()
        report.crashes = len(worker.unplanned_exits)
        report.seconds = time.monotonic() - started
        if not config.keep:
            delete_topics(kafka_config, names)
            client.drop_database(database)
        client.close()
    return report


def _store_target(store: Any, database: str) -> ClaimCheckTarget:
    import cv2
    import numpy as np

    image = cv2.imencode(".jpg", np.full((128, 128, 3), 90, np.uint8))[1].tobytes()
    reference = store.put(image, filename="chaos-target")
    target = ClaimCheckTarget(database=database, bucket=store.bucket, data=image)
    assert reference.uri == target.uri, (reference.uri, target.uri)
    return target


def _produce_corpus(
    kafka_config: dict[str, Any], topic: str, corpus: BadInputCorpus, count: int
) -> dict[tuple[int, int], tuple[str, str]]:
    """Produce the cases; returns (partition, offset) -> (kind, expected reason)."""
    expected: dict[tuple[int, int], tuple[str, str]] = {}
    chunk = 1000
    for start in range(0, count, chunk):
        cases = list(corpus.cases(min(chunk, count - start), start=start))
        landed = produce_all(kafka_config, topic, ((c.key, c.value, c.headers) for c in cases))
        for case, where in zip(cases, landed, strict=True):
            expected[(where.partition, where.offset)] = (case.kind, case.expected.value)
        log.info("produced %d of %d bad cases", start + len(cases), count)
    return expected


_MAX_CRASHES = 25  # beyond this the worker is crash-looping: stop, the report already says enough


class CrashLoop(LineguardError):
    """The worker keeps exiting on its own; going on would only repeat it."""


class _LimitedWorker:
    """A :class:`WorkerProcess` started under ``RLIMIT_AS`` whose peak memory is sampled into the report."""

    def __init__(self, worker: WorkerProcess, limit_mb: int | None, report: CampaignReport) -> None:
        self._worker = worker
        self._limit_mb = limit_mb
        self._report = report

    def start(self) -> None:
        self._worker.start()
        pid = self._worker.pid
        if self._limit_mb is not None and pid is not None:
            limit = self._limit_mb * 1024 * 1024
            resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))

    def sample(self) -> None:
        pid = self._worker.pid
        if pid is None:
            return
        memory = process_memory_mb(pid)
        self._report.peak_rss_mb = max(self._report.peak_rss_mb, memory.get("VmHWM", 0.0))
        self._report.peak_vm_mb = max(self._report.peak_vm_mb, memory.get("VmPeak", 0.0))

    def check(self) -> int | None:
        self.sample()
        return self._worker.check()

    def __getattr__(self, name: str) -> Any:  # running, kill, terminate, log_tail, unplanned_exits...
        return getattr(self._worker, name)


def process_memory_mb(pid: int) -> dict[str, float]:
    """``Vm*`` lines of /proc/<pid>/status in MB (empty once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    memory: dict[str, float] = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name.startswith("Vm") and value.strip().endswith("kB"):
            memory[name] = int(value.split()[0]) / 1024
    return memory


def _restart_if_crashed(worker: Any, report: CampaignReport) -> None:
    code = worker.check()
    if code is not None:
        log.error("worker exited on its own (code %s); restarting it", code)
        report.crash_logs.append(worker.log_tail())
        if len(worker.unplanned_exits) >= _MAX_CRASHES:
            raise CrashLoop(f"the worker exited {len(worker.unplanned_exits)} times on its own")
        worker.start()


def _collect_dead_letters(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    expected: dict[tuple[int, int], tuple[str, str]],
    worker: Any,
    config: CampaignConfig,
    report: CampaignReport,
) -> None:
    decode = AvroRecordDeserializer(DeadLetter)
    letters = TopicReader(kafka_config, topics.dead_letters)
    seen: dict[tuple[int, int], str] = {}
    unreadable = 0
    last_progress = time.monotonic()
    try:
        while len(seen) < len(expected) and time.monotonic() - last_progress < config.idle_timeout_s:
            _restart_if_crashed(worker, report)
            before = len(letters.records)
            letters.poll(1.0)
            for record in letters.records[before:]:
                try:
                    letter = decode(record.payload)
                except SerializationError:
                    unreadable += 1
                    continue
                coordinates = (letter.source.partition, letter.source.offset)
                if coordinates in seen:
                    report.duplicate_dead_letters += 1
                seen[coordinates] = letter.reason.value
            if len(letters.records) > before:
                last_progress = time.monotonic()
    finally:
        letters.close()
    reasons: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for coordinates, (kind, reason) in expected.items():
        actual = seen.get(coordinates)
        if actual is None:
            missing[kind] += 1
            continue
        report.dead_lettered += 1
        reasons[actual] += 1
        if actual != reason:
            report.wrong_reason += 1
            if len(report.wrong_reason_examples) < 20:
                report.wrong_reason_examples.append(f"{kind}: expected {reason}, got {actual}")
    report.reasons = dict(reasons.most_common())
    report.missing = sum(missing.values())
    report.missing_by_kind = dict(missing.most_common())
    report.accepted_as_frames = _bad_cases_with_results(kafka_config, topics.results, expected)
    if unreadable:
        log.error("%d records on the dead-letter topic are not dead letters", unreadable)


def _bad_cases_with_results(
    kafka_config: dict[str, Any], topic: str, expected: dict[tuple[int, int], tuple[str, str]]
) -> int:
    """Bad records that got an InspectionResult instead of a dead letter (silently accepted)."""
    decode = AvroRecordDeserializer(InspectionResult)
    reader = TopicReader(kafka_config, topic)
    try:
        reader.poll(3.0)
        sources = {_source(decode, record) for record in reader.records}
    finally:
        reader.close()
    return len(sources & set(expected))


def _source(decode: AvroRecordDeserializer[InspectionResult], record: Consumed) -> tuple[int, int]:
    result = decode(record.payload)
    return (result.source.partition, result.source.offset)


def _check_good_frames(
    kafka_config: dict[str, Any],
    topics: TopicNames,
    worker: Any,
    config: CampaignConfig,
    report: CampaignReport,
) -> None:
    """After the corpus, good frames (a third with hostile headers) must all be inspected."""
    import random

    rng = random.Random(config.seed)
    serialize = AvroRecordSerializer(Frame)
    frames = list(good_frames(0, config.good_frames, seed=config.seed))
    records = []
    for index, frame in enumerate(frames):
        headers: tuple[tuple[str, bytes], ...] = ((HEADER_TRACE_ID, f"{index:032x}".encode()),)
        if index % 3 == 0:
            headers = hostile_headers(rng)
        records.append((frame.camera_id.encode(), serialize(frame), headers))
    landed: list[Landed] = produce_all(kafka_config, topics.frames, records)
    report.good_frames_sent = len(landed)
    wanted = {frame.identity for frame in frames}
    decode = AvroRecordDeserializer(InspectionResult)
    results = TopicReader(kafka_config, topics.results)
    inspected: set[tuple[str, int]] = set()
    last_progress = time.monotonic()
    try:
        while inspected < wanted and time.monotonic() - last_progress < config.idle_timeout_s:
            _restart_if_crashed(worker, report)
            before = len(results.records)
            results.poll(1.0)
            for record in results.records[before:]:
                identity = decode(record.payload).identity
                if identity in wanted:
                    inspected.add(identity)
            if len(results.records) > before:
                last_progress = time.monotonic()
    finally:
        results.close()
    report.good_frames_inspected = len(inspected)
