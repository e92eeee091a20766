"""Claim-check retention: a stored image lives as long as the frames topic keeps the records that point at it.

The rule (pure, see :func:`prune_cutoff`): an object may go once its last reference time (the upload, or the
latest re-upload of the same SHA-256, which refreshes ``metadata.referenced_at``) is older than both

* ``now - retention.ms - margin`` (``retention.ms`` read from the broker, never configured twice), and
* ``oldest retained record timestamp - margin`` over every partition of every frames topic.

The second bound is what makes "never delete an object a retained record still references" hold: Kafka
deletes whole segments, late, so records older than ``retention.ms`` are often still there; a record's
timestamp is taken after its image was stored, so every retained record's object has a reference time no
older than the oldest retained record (minus clock skew, which the margin covers). A topic with
``retention.ms=-1`` keeps records for ever, so nothing is pruned. Frames that waited in a camera's spool for
longer than the margin can still outlive their image; the worker then dead-letters them as
``CLAIM_CHECK_FAILED`` (counted), which is why the default margin is generous (one hour).

Deletion is conditional on the reference time (one ``delete_one`` on the files document with the cutoff in the
filter), so a producer that re-uploads the same bytes while the pruner runs either refreshes the time first
(the delete no longer matches) or finds the file gone and uploads it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError, ServiceUnavailableError

if TYPE_CHECKING:
    from pymongo.database import Database

logger = logging.getLogger(__name__)

REFERENCED_AT = "metadata.referenced_at"
DEFAULT_MARGIN_S = 3600.0
_BATCH = 500  # files documents deleted per round trip (the chunks follow by files_id)


# -- the pure decision --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicRetention:
    """What the broker says about one frames topic: ``retention_ms`` (-1 = for ever) and, per partition, the
    timestamp (ms) of its oldest retained record, or None for an empty partition."""

    topic: str
    retention_ms: int
    oldest_ms: Mapping[int, int | None] = field(default_factory=dict)


def prune_cutoff(now: datetime, topics: Sequence[TopicRetention], margin_s: float) -> datetime | None:
    """The reference time before which an object is no longer referenced by any retained record; None = keep
    everything (no topic known, or a topic that never deletes)."""
    if margin_s < 0:
        raise ConfigurationError(f"the retention margin must be >= 0 s, got {margin_s}")
    if not topics or any(topic.retention_ms < 0 for topic in topics):
        return None
    margin = timedelta(seconds=margin_s)
    bounds = [now - timedelta(milliseconds=max(topic.retention_ms for topic in topics)) - margin]
    for topic in topics:
        for oldest in topic.oldest_ms.values():
            if oldest is not None:
                bounds.append(datetime.fromtimestamp(oldest / 1000, UTC) - margin)
    return min(bounds)


def reference_time(files_document: Mapping[str, Any]) -> datetime | None:
    """When an object was last referenced: the later of its upload and its latest re-upload (aware, UTC)."""
    times = [files_document.get("uploadDate"), (files_document.get("metadata") or {}).get("referenced_at")]
    aware = [_aware(moment) for moment in times if isinstance(moment, datetime)]
    return max(aware) if aware else None


def is_expired(files_document: Mapping[str, Any], cutoff: datetime | None) -> bool:
    """Whether the pruner may delete this object; no cutoff or no time on record: keep it."""
    moment = reference_time(files_document)
    return cutoff is not None and moment is not None and moment < cutoff


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment  # pymongo returns naive UTC


# -- reading the broker -------------------------------------------------------------------------------------


def read_topic_retention(
    kafka_config: Mapping[str, Any], topics: Iterable[str], timeout_s: float = 10.0
) -> list[TopicRetention]:
    """``retention.ms`` of each topic (describe_configs) and each partition's oldest record timestamp."""
    from confluent_kafka import Consumer, KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    names = list(topics)
    admin = AdminClient(dict(kafka_config))
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    retention: dict[str, int] = {}
    try:
        for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
            entry = future.result(timeout=timeout_s).get("retention.ms")
            retention[resource.name] = int(entry.value) if entry is not None and entry.value else -1
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args and getattr(exc.args[0], "code", lambda: None)() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise ConfigurationError(f"no such frames topic on the broker: {', '.join(names)}") from exc
        raise ServiceUnavailableError(f"cannot read the frames topics' retention from Kafka: {exc}") from exc
    consumer = Consumer(
        {
            **{k: v for k, v in kafka_config.items() if k not in ("on_delivery",)},
            "group.id": "lineguard-claimcheck-pruner",  # never commits: assign() only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        return [
            TopicRetention(name, retention[name], _oldest_timestamps(consumer, name, metadata, timeout_s))
            for name in names
        ]
    except KafkaException as exc:
        raise ServiceUnavailableError(f"cannot read the oldest retained frames: {exc}") from exc
    finally:
        consumer.close()


def _oldest_timestamps(consumer: Any, topic: str, metadata: Any, timeout_s: float) -> dict[int, int | None]:
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        raise ConfigurationError(f"frames topic {topic!r} does not exist on the broker")
    oldest: dict[int, int | None] = {}
    for partition in sorted(described.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
        if high <= low:
            oldest[partition] = None
            continue
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout_s
        found: int | None = None
        while found is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF:
                    break  # aborted transactions only, or the log was just emptied
                continue
            found = int(message.timestamp()[1])
        if found is None and time.monotonic() >= deadline:
            raise ServiceUnavailableError(f"no answer for the oldest record of {topic}[{partition}]")
        oldest[partition] = found
    consumer.unassign()
    return oldest


# -- pruning the store --------------------------------------------------------------------------------------


@dataclass(slots=True)
class PruneReport:
    """One pass: objects looked at, deleted (or that would be, under ``dry_run``), bytes freed, kept."""

    cutoff: datetime | None
    scanned: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    kept: int = 0
    dry_run: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        if self.cutoff is None:
            return f"kept all {self.scanned} objects: a frames topic keeps records for ever (retention.ms=-1)"
        return (
            f"{verb} {self.deleted} of {self.scanned} objects ({self.deleted_bytes / 1e6:.1f} MB) last "
            f"referenced before {self.cutoff.isoformat(timespec='seconds')}; kept {self.kept}; "
            f"{self.seconds:.1f} s"
        )


def prune_bucket(
    database: Database[dict[str, Any]],
    bucket: str,
    cutoff: datetime | None,
    *,
    dry_run: bool = False,
    on_progress: Callable[[PruneReport], None] | None = None,
) -> PruneReport:
    """Delete the objects of ``bucket`` last referenced before ``cutoff`` (files document, then chunks)."""
    started = time.monotonic()
    report = PruneReport(cutoff=cutoff, dry_run=dry_run)
    files = database[f"{bucket}.files"]
    chunks = database[f"{bucket}.chunks"]
    batch: list[tuple[Any, int]] = []

    def flush() -> None:
        if batch and dry_run:
            report.deleted += len(batch)
            report.deleted_bytes += sum(length for _, length in batch)
        elif batch:
            # One conditional delete per batch (each write waits for the journal: per-object deletes run at
            # tens per second). The cutoff is in the filter: a re-upload that refreshed an object since the
            # scan wins, and the objects still there afterwards are exactly those.
            lengths = dict(batch)
            files.delete_many(
                {
                    "_id": {"$in": list(lengths)},
                    "uploadDate": {"$lt": cutoff},
                    "$or": [{REFERENCED_AT: {"$exists": False}}, {REFERENCED_AT: {"$lt": cutoff}}],
                }
            )
            survivors = {doc["_id"] for doc in files.find({"_id": {"$in": list(lengths)}}, {"_id": 1})}
            gone = [file_id for file_id in lengths if file_id not in survivors]
            if gone:
                chunks.delete_many({"files_id": {"$in": gone}})
            report.deleted += len(gone)
            report.deleted_bytes += sum(lengths[file_id] for file_id in gone)
            report.kept += len(survivors)
        batch.clear()
        if on_progress is not None:
            on_progress(report)

    for document in files.find({}, {"uploadDate": 1, "metadata.referenced_at": 1, "length": 1}):
        report.scanned += 1
        if is_expired(document, cutoff):
            batch.append((document["_id"], int(document.get("length") or 0)))
            if len(batch) >= _BATCH:
                flush()
        else:
            report.kept += 1
    flush()
    report.seconds = time.monotonic() - started
    return report
