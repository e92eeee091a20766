"""Where an export reads from: results from MongoDB, corrected labels from the ``labels`` collection, and
a topic (results or frames) from its beginning to the end it had when the export started.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ConfigurationError, SerializationError, ServiceUnavailableError
from schemas.records import InspectionResult
from vision.export_dataset_labels import Correction, ExportFilter, Identity
from vision.samples import BoxLabel

logger = logging.getLogger(__name__)


def results_from_mongodb(
    collection: Any, selection: ExportFilter, skipped: Counter[str]
) -> Iterator[InspectionResult]:
    """Inspection documents written by the workers (``workers.sinks.mongo``), as records; malformed ones are
    counted in ``skipped["malformed_result"]``."""
    from pymongo.errors import PyMongoError

    try:
        for document in collection.find(selection.mongo_query(), {"_id": 0}):
            for name in ("captured_at", "received_at", "inferred_at"):
                # BSON dates are UTC; a client without tz_aware=True hands them back naive.
                moment = document.get(name)
                if isinstance(moment, datetime) and moment.tzinfo is None:
                    document[name] = moment.replace(tzinfo=UTC)
            try:
                yield InspectionResult.from_dict(document)
            except (KeyError, ValueError, SerializationError) as exc:
                skipped["malformed_result"] += 1
                logger.debug("malformed inspection document: %s", exc)
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read inspection results from MongoDB: {exc}") from exc


def _box_labels(raw: Any) -> tuple[BoxLabel, ...] | None:
    if not isinstance(raw, list):
        return None
    return tuple(
        BoxLabel(str(b["label"]), float(b["x_min"]), float(b["y_min"]), float(b["x_max"]), float(b["y_max"]))
        for b in raw
    )


def corrections_from_mongodb(collection: Any) -> dict[Identity, Correction]:
    """Corrected labels by frame identity (the latest ``labelled_at`` wins when a frame has several)."""
    from pymongo import ASCENDING
    from pymongo.errors import PyMongoError

    corrections: dict[Identity, Correction] = {}
    fields = {"camera_id": 1, "frame_number": 1, "label": 1, "boxes": 1}
    try:
        for doc in collection.find({}, fields).sort("labelled_at", ASCENDING):
            if not isinstance(doc.get("label"), str) or not doc["label"]:
                continue
            try:
                boxes = _box_labels(doc.get("boxes"))
            except (KeyError, TypeError, ValueError):
                logger.warning(
                    "ignoring malformed boxes of the correction of %s#%s",
                    doc["camera_id"],
                    doc["frame_number"],
                )
                boxes = None
            corrections[(str(doc["camera_id"]), int(doc["frame_number"]))] = Correction(doc["label"], boxes)
    except PyMongoError as exc:
        raise ServiceUnavailableError(f"cannot read corrected labels from MongoDB: {exc}") from exc
    return corrections


def read_topic(
    kafka_config: dict[str, Any], topic: str, deserialize: Callable[[bytes, Any], Any], skipped: Counter[str]
) -> Iterator[Any]:
    """Every record of ``topic`` from the beginning up to its end at the time of the call, deserialized.

    Reads with its own throwaway consumer group and commits nothing, so it disturbs no worker. Records that
    do not deserialize are counted in ``skipped["undecodable"]`` and passed over.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.serialization import MessageField, SerializationContext

    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"lineguard-export-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=15)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ConfigurationError(f"topic {topic} does not exist")
        pending: set[int] = set()
        for partition in info.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)
            if high > low:
                pending.add(partition)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        while pending:
            for message in consumer.consume(num_messages=500, timeout=1.0):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                        continue
                    raise ServiceUnavailableError(f"reading {topic}: {error}")
                value = message.value()
                if value is None:
                    continue  # a tombstone: nothing to export
                context = SerializationContext(topic, MessageField.VALUE, message.headers())
                try:
                    yield deserialize(value, context)
                except SerializationError as exc:
                    skipped["undecodable"] += 1
                    logger.debug(
                        "undecodable record at %s[%d]@%d: %s",
                        topic,
                        message.partition(),
                        message.offset(),
                        exc,
                    )
    except KafkaException as exc:
        raise ServiceUnavailableError(f"cannot read topic {topic}: {exc}") from exc
    finally:
        consumer.close()
