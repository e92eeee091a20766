"""`lineguard parts` against the real Kafka and MongoDB: N parts x 3 views -> N decisions, a missing view ->
a timeout reject, and a restart mid-stream (state from the changelog) decides no part twice."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from pymongo.database import Database

from infra.kafka_topics import delete_topics
from parts.rules import part_rules_from_dict
from parts.service import PartService, PartTopics
from schemas.parts import PartDecision, PartDecisionReason, PartOutcome
from schemas.records import InspectionResult, KafkaCoordinates, ModelInfo, Task, Verdict
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer

pytestmark = pytest.mark.integration

CAMERAS = ("cam-a", "cam-b", "cam-c")
RULES = part_rules_from_dict(
    {"lines": {"line-1": {"expected_views": list(CAMERAS), "rule": "any-ng", "timeout_ms": 6000}}}
)


def _result(part: str, camera: str, frame: int, verdict: Verdict = Verdict.OK) -> InspectionResult:
    now = datetime.now(UTC)
    return InspectionResult(
        camera_id=camera,
        line_id="line-1",
        station_id="st-1",
        frame_number=frame,
        part_id=part,
        source=KafkaCoordinates(topic="frames", partition=0, offset=frame),
        model=ModelInfo(name="m", version="1", task=Task.CLASSIFICATION),
        verdict=verdict,
        captured_at=now,
        received_at=now,
        inferred_at=now,
        batch_size=1,
        worker_id="w",
    )


def _publish(kafka_config: dict[str, Any], topic: str, results: list[InspectionResult]) -> None:
    producer = Producer(kafka_config)
    serialize = AvroRecordSerializer(InspectionResult)
    for result in results:
        producer.produce(topic, key=result.camera_id.encode(), value=serialize(result))
    assert producer.flush(10) == 0


def _run_until(service: PartService, predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out; counters {service.counters}"
        service.step()


def _decisions(kafka_config: dict[str, Any], topic: str, expected: int) -> list[PartDecision]:
    consumer = Consumer({**kafka_config, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    read = AvroRecordDeserializer(PartDecision)
    found: list[PartDecision] = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(found) < expected:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            found.append(read(message.value(), None))
    time.sleep(0.5)  # anything beyond `expected` (a duplicate) would arrive now
    for message in consumer.consume(100, 1.0):
        if message.error() is None:
            found.append(read(message.value(), None))
    consumer.close()
    return found


def test_parts_are_decided_once_across_a_restart(
    kafka_config: dict[str, Any], mongo_db: Database[dict[str, Any]]
) -> None:
    topics = PartTopics.with_prefix(f"test.parts.{uuid.uuid4().hex[:8]}")
    group = f"parts-{uuid.uuid4().hex[:8]}"
    try:
        first = PartService(kafka_config, mongo_db, RULES, topics, group_id=group, partitions=2)
        first.start()
        # four complete parts (one with a defect) and the first two views of P-4 and P-5
        results = [
            _result(f"P-{n}", camera, n * 10 + i) for n in range(4) for i, camera in enumerate(CAMERAS)
        ]
        results[4] = _result("P-1", "cam-b", 11, Verdict.DEFECT)
        results += [_result("P-4", "cam-a", 40), _result("P-4", "cam-b", 41)]
        results += [_result("P-5", "cam-a", 50), _result("P-5", "cam-b", 51)]
        _publish(kafka_config, topics.results, results)
        _run_until(first, lambda: first.counters.decisions >= 4 and first.counters.forwarded == 16, 30)
        first.close()  # a restart: P-4 and P-5 are pending, their views are only in the changelog

        second = PartService(kafka_config, mongo_db, RULES, topics, group_id=group, partitions=2)
        second.start()
        _publish(kafka_config, topics.results, [_result("P-4", "cam-c", 42), _result("P-0", "cam-a", 0)])
        _run_until(second, lambda: mongo_db.parts.count_documents({}) >= 6, 30)
        second.close()

        decisions = _decisions(kafka_config, topics.decisions, 6)
        by_part = {d.part_id: d for d in decisions}
        assert sorted(d.part_id for d in decisions) == [f"P-{n}" for n in range(6)]  # each exactly once
        assert (
            by_part["P-1"].decision is PartOutcome.REJECT
            and by_part["P-1"].reason is PartDecisionReason.DEFECT
        )
        assert by_part["P-0"].decision is PartOutcome.PASS
        assert by_part["P-4"].decision is PartOutcome.PASS  # joined across the restart
        assert by_part["P-5"].reason is PartDecisionReason.MISSING_VIEWS
        assert by_part["P-5"].missing_views == ("cam-c",)
        assert first.counters.decisions == 4  # P-4 and P-5 were still open at the restart
        documents = {doc["_id"]: doc for doc in mongo_db.parts.find()}
        assert set(documents) == set(by_part)
        assert documents["P-5"]["decision"] == "REJECT"
    finally:
        delete_topics(kafka_config, [topics.results, topics.views, topics.changelog, topics.decisions])
