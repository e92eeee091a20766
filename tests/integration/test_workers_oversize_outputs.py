"""Issue 19, item 3: an output the producer would refuse becomes an OVERSIZE dead letter (the sink thread
lives on and the record's offset is committed), librdkafka's synchronous MSG_SIZE_TOO_LARGE is caught, and a
dead letter's size counts its headers' encoding overhead. Real Kafka and MongoDB."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer
from pymongo.database import Database

from schemas.records import DeadLetter, DeadLetterReason, InspectionResult
from schemas.topics import TopicNames
from tests.integration.test_workers_support import committed_offsets, decoder, read_topic, wait_for
from tests.integration.test_workers_transactions import _sole_member
from tests.worker_batches import inferred_batch
from workers.metrics import WorkerMetrics
from workers.offsets import OffsetTracker
from workers.settings import WorkerSettings
from workers.sinks.dead_letters import RawRecord, build_dead_letter, dead_letter_bytes
from workers.sinks.kafka import KafkaOutputs, Output, OutputTooLarge
from workers.sinks.mongo import MongoInspectionSink
from workers.sinks.writer import InferredBatch, OutputWriter

pytestmark = pytest.mark.integration

LIMIT = 1_000_000  # the producer's message.max.bytes in these tests


def _producer_config(kafka_config: dict[str, Any], limit: int = LIMIT) -> dict[str, Any]:
    return {**kafka_config, **WorkerSettings().producer_config(), "message.max.bytes": limit}


def _outputs_config(kafka_config: dict[str, Any], group: str) -> dict[str, Any]:
    settings = WorkerSettings(group_id=group, exactly_once=True, transaction_timeout_ms=15_000)
    return {**kafka_config, **settings.producer_config()}


def _with_a_huge_camera_id(batch: InferredBatch, index: int) -> InferredBatch:
    # Past the decoder's string bounds (a bug or another producer path): the sink must still not die.
    frames = list(batch.frames)
    huge = dataclasses.replace(frames[index].frame, camera_id="c" * (LIMIT + 1000))
    frames[index] = dataclasses.replace(frames[index], frame=huge)
    return dataclasses.replace(batch, frames=frames)


def test_librdkafka_refusing_a_record_is_an_output_too_large_error(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    outputs = KafkaOutputs(_producer_config(kafka_config), topics)
    with pytest.raises(OutputTooLarge):  # the synchronous MSG_SIZE_TOO_LARGE, past the size check
        outputs.send(Output(topics.results, None, bytes(LIMIT + 10), []), ack=None)
    assert outputs.flush(10) == 0


def test_an_oversize_result_is_dead_lettered_and_the_others_are_written_at_least_once(
    kafka_config: dict[str, Any], topics: TopicNames, mongo_db: Database[dict[str, Any]]
) -> None:
    tracker = OffsetTracker()
    writer = OutputWriter(
        tracker,
        KafkaOutputs(_producer_config(kafka_config), topics),
        MongoInspectionSink(mongo_db, "inspections"),
        WorkerMetrics(),
        worker_id="w1",
        max_message_bytes=LIMIT - 64 * 1024,
        group_metadata=lambda: None,
    )
    done = threading.Event()
    mongo = threading.Thread(target=writer.mongo_loop, args=(done,), daemon=True)
    mongo.start()
    writer.write(_with_a_huge_camera_id(inferred_batch(tracker, topics.frames, 3), 1), give_up=lambda: False)
    letters = read_topic(kafka_config, topics.dead_letters, decoder(DeadLetter), expected=1)
    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=2)
    wait_for(
        lambda: (writer._outputs.serve(0.1), tracker.commit_positions())[1].get((topics.frames, 0)) == 3,
        30,
        "every offset committable",
    )
    done.set()
    mongo.join(30)
    assert [r.frame_number for r in sorted(results, key=lambda r: r.frame_number)] == [0, 2]
    (letter,) = letters
    assert letter.reason is DeadLetterReason.OVERSIZE and letter.error_class == "OutputTooLarge"
    assert (letter.source.partition, letter.source.offset) == (0, 1)
    assert "above the producer's" in letter.error_message
    assert mongo_db["inspections"].count_documents({}) == 2  # no document for the dead-lettered frame


def test_an_oversize_result_is_dead_lettered_inside_the_transaction(
    kafka_config: dict[str, Any], topics: TopicNames, mongo_db: Database[dict[str, Any]]
) -> None:
    group = f"oversize-{uuid.uuid4().hex[:8]}"
    members: list[Consumer] = []
    try:
        member = _sole_member(kafka_config, group, topics.frames, members)
        tracker = OffsetTracker()
        writer = OutputWriter(
            tracker,
            KafkaOutputs(
                {**_outputs_config(kafka_config, group), "message.max.bytes": LIMIT},
                topics,
                transactional=True,
            ),
            MongoInspectionSink(mongo_db, "inspections"),
            WorkerMetrics(),
            worker_id="w1",
            max_message_bytes=LIMIT - 64 * 1024,
            group_metadata=member.consumer_group_metadata,
        )
        batch = _with_a_huge_camera_id(inferred_batch(tracker, topics.frames, 4), 2)
        writer.write_transaction([batch], threading.Lock(), give_up=lambda: False)
    finally:
        for consumer in members:
            consumer.close()
    letters = read_topic(kafka_config, topics.dead_letters, decoder(DeadLetter), expected=1)
    results = read_topic(kafka_config, topics.results, decoder(InspectionResult), expected=3)
    assert sorted(r.frame_number for r in results) == [0, 1, 3]
    assert [letter.source.offset for letter in letters] == [2]
    assert committed_offsets(kafka_config, group, topics.frames)[0] == 4  # the dead-lettered one too


def test_header_overhead_is_counted_so_a_dead_letter_of_many_empty_headers_is_deliverable(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    bound = 320 * 1024
    headers = tuple((f"h{i}", b"") for i in range(120_000))  # ~360 KB of record, most of it overhead
    record = RawRecord(topics.frames, 0, 7, None, b"k", b"\x01" * 1000, headers)
    letter = build_dead_letter(record, DeadLetterReason.UNDECODABLE_RECORD, "E", "bad", "w", max_bytes=bound)
    assert dead_letter_bytes(letter) <= bound
    assert "headers left out" in letter.error_message and letter.original_value is None
    # A producer limited to the bound delivers it (the old sizing made a 480 KB record here).
    outputs = KafkaOutputs(_producer_config(kafka_config, limit=bound), topics)
    delivered: list[bool] = []
    outputs.dead_letter(letter, ack=lambda: delivered.append(True))
    assert outputs.flush(30) == 0 and delivered == [True] and outputs.failure is None
    (read,) = read_topic(kafka_config, topics.dead_letters, decoder(DeadLetter), expected=1)
    assert read.source.offset == 7
