"""What a chaos run's workers wrote, read back for the audit: the MongoDB documents' identities, the
committed results and the sources of the committed dead letters (``read_committed``, so an aborted
transaction's outputs never count)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.kafka_io import TopicReader
from schemas.records import DeadLetter, InspectionResult
from schemas.serde import AvroRecordDeserializer
from schemas.topics import TopicNames


@dataclass(frozen=True)
class RunOutputs:
    documents: list[tuple[str, int, str]]  # (camera, frame number, model version) per inspection document
    results: list[InspectionResult]
    dead_letter_sources: list[tuple[int, int]]  # (partition, offset) of the frame each letter is about


def read_outputs(kafka_config: dict[str, Any], topics: TopicNames, collection: Any) -> RunOutputs:
    """Everything the workers wrote once they are idle: each topic is read until nothing came for a while."""
    decode_result = AvroRecordDeserializer(InspectionResult)
    decode_letter = AvroRecordDeserializer(DeadLetter)
    results = TopicReader(kafka_config, topics.results, read_committed=True)
    letters = TopicReader(kafka_config, topics.dead_letters, read_committed=True)
    try:
        results.read_until(lambda records: False, idle_timeout_s=5.0)
        letters.read_until(lambda records: False, idle_timeout_s=3.0)
    finally:
        results.close()
        letters.close()
    documents = [
        (doc["camera_id"], doc["frame_number"], doc["model"]["version"])
        for doc in collection.find({}, {"camera_id": 1, "frame_number": 1, "model.version": 1})
    ]
    sources = []
    for record in letters.records:
        letter = decode_letter(record.payload)
        sources.append((letter.source.partition, letter.source.offset))
    return RunOutputs(documents, [decode_result(record.payload) for record in results.records], sources)
