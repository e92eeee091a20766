"""Read a lineguard topic and turn each record into a JSON-ready dict, in either wire format.

The record type comes from the ``lineguard-schema`` header when a record has one, else from the topic name's
suffix (``.frames``, ``.results``, ``.defect-events``, ``.dead-letters``). Image and mask bytes are shown as
their length and SHA-256 prefix, not dumped. A record that does not decode is printed as an ``error`` line
(never skipped in silence).
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, TopicPartition

from schemas.errors import LineguardError
from schemas.records import DeadLetter, DefectEvent, Frame, InspectionResult
from schemas.serde import AvroRecord, AvroRecordDeserializer
from schemas.topics import HEADER_SCHEMA, HEADER_TRACEPARENT
from schemas.tracecontext import HeaderValue
from schemas.tracecontext import parse as parse_traceparent

if TYPE_CHECKING:
    from confluent_kafka.schema_registry import SchemaRegistryClient

RECORD_TYPES: dict[str, type[AvroRecord]] = {
    cls.avro_name: cls for cls in (Frame, InspectionResult, DefectEvent, DeadLetter)
}
_BY_SUFFIX: dict[str, type[AvroRecord]] = {
    ".frames": Frame,
    ".results": InspectionResult,
    ".defect-events": DefectEvent,
    ".dead-letters": DeadLetter,
}
_SHOWN_BYTES = 64  # small byte fields (keys of dead letters, ids) are shown in full, as base64


@dataclass(frozen=True, slots=True)
class Filters:
    """Keep a record only if each given field matches (records without the field are left out)."""

    camera: str | None = None
    line: str | None = None
    verdict: str | None = None

    def keep(self, record: Mapping[str, Any]) -> bool:
        if self.camera is not None and record.get("camera_id") != self.camera:
            return False
        if self.line is not None and record.get("line_id") != self.line:
            return False
        return self.verdict is None or str(record.get("verdict", "")).upper() == self.verdict.upper()


def record_type(topic: str, headers: Mapping[str, bytes]) -> type[AvroRecord] | None:
    named = headers.get(HEADER_SCHEMA)
    if named is not None and named.decode("utf-8", "replace") in RECORD_TYPES:
        return RECORD_TYPES[named.decode()]
    return next((cls for suffix, cls in _BY_SUFFIX.items() if topic.endswith(suffix)), None)


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601, enums as their value, large bytes as a summary."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes | bytearray):
        if len(value) <= _SHOWN_BYTES:
            return {"base64": base64.b64encode(value).decode()}
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()[:16]}
    return value


class TopicReader:
    """Reads one topic (all partitions) without a consumer group's commits."""

    def __init__(self, client_config: dict[str, Any], registry: SchemaRegistryClient | None = None) -> None:
        self._config = {
            **client_config,
            "group.id": f"lineguard-tail-{uuid.uuid4().hex[:8]}",  # never committed: no trace in the cluster
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        self._registry = registry
        self._deserializers: dict[type[AvroRecord], AvroRecordDeserializer[AvroRecord]] = {}

    def _decode(self, cls: type[AvroRecord], value: bytes) -> dict[str, Any]:
        deserializer = self._deserializers.get(cls)
        if deserializer is None:
            deserializer = self._deserializers[cls] = AvroRecordDeserializer(cls, self._registry)
        return deserializer.decode_dict(value)

    def describe(self, message: Message) -> dict[str, Any]:
        headers: dict[str, bytes] = {}
        raw_headers = message.headers() or []  # a list of pairs when consumed (the stub allows a dict)
        pairs: list[tuple[str, HeaderValue]] = (
            list(raw_headers.items()) if isinstance(raw_headers, dict) else list(raw_headers)
        )
        for name, raw in pairs:
            headers[name] = raw.encode() if isinstance(raw, str) else (raw or b"")
        topic = message.topic() or ""
        line: dict[str, Any] = {
            "topic": topic,
            "partition": message.partition(),
            "offset": message.offset(),
            "key": (message.key() or b"").decode("utf-8", "replace") or None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in headers.items()},
        }
        trace = parse_traceparent(headers.get(HEADER_TRACEPARENT))
        if trace is not None:  # the W3C trace context, split, for `jq .trace.trace_id` across topics
            line["trace"] = {"trace_id": trace.trace_id, "span_id": trace.span_id, "sampled": trace.sampled}
        cls = record_type(topic, headers)
        value = message.value()
        if cls is None or value is None:
            line["error"] = "not a lineguard record type" if value is not None else "no value (tombstone)"
            return line
        line["type"] = cls.__name__
        try:
            line["record"] = jsonable(self._decode(cls, value))
        except LineguardError as exc:
            line["error"] = str(exc)
        return line

    def read(
        self, topic: str, from_beginning: bool, follow: bool, timeout_s: float = 10.0
    ) -> Iterator[Message]:
        """Records of every partition; without ``follow``, up to the end offsets seen at the start."""
        consumer = Consumer(self._config)
        try:
            metadata = consumer.list_topics(topic, timeout=timeout_s)
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                raise LineguardError(f"topic {topic} does not exist")
            partitions = sorted(described.partitions)
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
                for p in partitions
            }
            start = OFFSET_BEGINNING if from_beginning else OFFSET_END
            consumer.assign([TopicPartition(topic, p, start) for p in partitions])
            remaining = {p for p, (low, high) in ends.items() if high > low} if from_beginning else set()
            if not follow and not remaining:
                return
            idle_deadline = time.monotonic() + timeout_s
            while follow or remaining:
                message = consumer.poll(0.5)
                if message is None:
                    if not follow and time.monotonic() > idle_deadline:
                        raise LineguardError(f"{topic}: no records arrived within {timeout_s:.0f} s")
                    continue
                if message.error() is not None:
                    continue
                idle_deadline = time.monotonic() + timeout_s
                partition, offset = message.partition() or 0, message.offset() or 0
                end = ends[partition][1]
                if not follow and offset >= end - 1:
                    remaining.discard(partition)
                if follow or offset < end:
                    yield message
        finally:
            consumer.close()
