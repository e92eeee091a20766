"""Default topic names and Kafka header names: part of the wire contract both sides import."""

from __future__ import annotations

from dataclasses import dataclass

FRAMES_TOPIC = "lineguard.frames"
RESULTS_TOPIC = "lineguard.results"
DEFECT_EVENTS_TOPIC = "lineguard.defect-events"
DEAD_LETTER_TOPIC = "lineguard.dead-letters"

# Header names. Values are UTF-8 bytes.
HEADER_CONTENT_TYPE = "content-type"  # e.g. "image/jpeg": the encoding of the image inside the record
HEADER_SCHEMA = "lineguard-schema"  # full name of the Avro record, e.g. "dev.lineguard.v1.Frame"
HEADER_TRACE_ID = "trace-id"  # W3C-style trace id carried from the camera to every output
HEADER_TRACEPARENT = "traceparent"  # W3C Trace Context; a child span per output (schemas/tracecontext.py)
HEADER_DEAD_LETTER_REASON = "lineguard-dlq-reason"

# The largest record lineguard publishes inline. Broker `message.max.bytes`, topic `max.message.bytes`,
# producer `message.max.bytes` and consumer `fetch.max.bytes` are all derived from it, so they agree.
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The four topics of one lineguard deployment; a prefix keeps deployments (and tests) apart."""

    frames: str = FRAMES_TOPIC
    results: str = RESULTS_TOPIC
    defect_events: str = DEFECT_EVENTS_TOPIC
    dead_letters: str = DEAD_LETTER_TOPIC

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        """Topic names for an isolated deployment, e.g. one test: ``<prefix>.frames`` and so on."""
        return cls(
            frames=f"{prefix}.frames",
            results=f"{prefix}.results",
            defect_events=f"{prefix}.defect-events",
            dead_letters=f"{prefix}.dead-letters",
        )
