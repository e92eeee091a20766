"""W3C traceparent end to end on the real broker: the camera's publisher starts a trace per frame, a worker
writes the result and defect event of a frame with its own span for that frame (a child: same trace id, new
span id) and a dead letter likewise, and `lineguard tail` shows the trace of what it reads."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, Producer, TopicPartition
from pymongo.database import Database

from infra.settings import MongoSettings
from lineguard.stack.endpoints import Endpoints
from lineguard.tail.reader import TopicReader
from schemas.records import DeadLetter, DefectEvent, Frame, InspectionResult
from schemas.serde import AvroRecordSerializer
from schemas.topics import HEADER_TRACE_ID, HEADER_TRACEPARENT, TopicNames
from schemas.tracecontext import TraceParent, new_trace, parse
from streams.publisher import FramePublisher, PublisherOptions
from tests.integration.test_workers_pipeline import RunningWorker, _settings
from tests.integration.test_workers_support import decoder, make_frames
from workers.pipeline import Worker

pytestmark = pytest.mark.integration


def _read_all(
    kafka_config: dict[str, Any], topic: str, expected: int, timeout_s: float = 60.0
) -> list[Message]:
    consumer = Consumer(
        {
            **kafka_config,
            "group.id": f"trace-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    found: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected and time.monotonic() < deadline:
            found.extend(m for m in consumer.consume(100, timeout=0.5) if m.error() is None)
    finally:
        consumer.close()
    return found


def _trace(message: Message) -> TraceParent:
    headers = dict(message.headers() or [])
    trace = parse(headers.get(HEADER_TRACEPARENT))
    assert trace is not None, headers
    assert headers[HEADER_TRACE_ID] == trace.trace_id.encode()  # the old header agrees
    return trace


def test_results_events_and_dead_letters_are_child_spans_of_their_frame(
    kafka_config: dict[str, Any],
    endpoints: Endpoints,
    topics: TopicNames,
    mongo_db: Database[dict[str, Any]],
    model_dir: Path,
) -> None:
    frames = make_frames(12, seed=5)
    publisher = FramePublisher(
        PublisherOptions(topic=topics.frames), kafka_config, AvroRecordSerializer(Frame)
    )
    for frame in frames:
        publisher.publish(frame)
    assert publisher.close(30.0).clean
    # a poison record from another producer with its own traceparent, unsampled: it becomes a dead letter
    poison_parent = new_trace()
    poison_parent = TraceParent(poison_parent.trace_id, poison_parent.span_id, flags=0)
    producer = Producer(kafka_config)
    producer.produce(
        topics.frames, b"not avro", key=b"cam-x", headers=[(HEADER_TRACEPARENT, poison_parent.header())]
    )
    assert producer.flush(30) == 0

    sent = {
        (m.key(), _frame_number(m)): _trace(m)
        for m in _read_all(kafka_config, topics.frames, 13)
        if m.key() != b"cam-x"
    }
    assert len(sent) == len(frames) and len({t.trace_id for t in sent.values()}) == len(frames)

    worker = Worker(
        _settings(topics, model_dir), endpoints=endpoints, mongo=MongoSettings(database=mongo_db.name)
    )
    running = RunningWorker(worker)
    assert worker.wait_started(120)
    try:
        results = _read_all(kafka_config, topics.results, len(frames))
        letters = _read_all(kafka_config, topics.dead_letters, 1)
    finally:
        assert running.stop() == 0
    from tests.integration.test_workers_support import decoder

    read_result = decoder(InspectionResult)
    assert len(results) == len(frames)
    worker_spans = {}
    for message in results:
        result = read_result(_value(message))
        parent = sent[(result.camera_id.encode(), result.frame_number)]
        child = _trace(message)
        assert child.trace_id == parent.trace_id and child.span_id != parent.span_id and child.sampled
        worker_spans[(result.camera_id, result.frame_number)] = child.span_id

    flagged = len([m for m in results if read_result(_value(m)).verdict.value != "OK"])
    events = _read_all(kafka_config, topics.defect_events, flagged)
    read_event = decoder(DefectEvent)
    assert len(events) == flagged > 0
    for message in events:
        event = read_event(_value(message))
        parent = sent[(event.camera_id.encode(), event.frame_number)]
        span = _trace(message)
        # the worker's one span for the frame: the same on its result and its defect event
        assert span.trace_id == parent.trace_id
        assert span.span_id == worker_spans[(event.camera_id, event.frame_number)]

    assert len(letters) == 1
    letter_trace = _trace(letters[0])
    assert letter_trace.trace_id == poison_parent.trace_id and not letter_trace.sampled
    assert letter_trace.span_id != poison_parent.span_id
    assert decoder(DeadLetter)(_value(letters[0])).original_key == b"cam-x"

    # `lineguard tail` shows the same trace, split
    shown = TopicReader(kafka_config).describe(letters[0])
    assert shown["trace"]["trace_id"] == poison_parent.trace_id and shown["trace"]["sampled"] is False


def _value(message: Message) -> bytes:
    value = message.value()
    assert value is not None
    return value


def _frame_number(message: Message) -> int:
    return decoder(Frame)(_value(message)).frame_number
