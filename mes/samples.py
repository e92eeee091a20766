"""Inspection results with known counts on a results topic: for the sink's tests, benchmark, chaos fault."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer

from schemas.records import Box, Detection, InspectionResult, KafkaCoordinates, ModelInfo, Task, Verdict
from schemas.serde import AvroRecordSerializer

START = datetime(2026, 1, 31, 23, 50, tzinfo=UTC)  # spans a month boundary: two partitions


def sample_results(
    count: int, start: datetime = START, lines: int = 2, every_s: float = 0.5
) -> list[InspectionResult]:
    """``count`` results, every 10th DEFECT (a scratch) and every 25th UNCERTAIN, ``every_s`` apart."""
    model = ModelInfo(name="sample", version="v1", task=Task.DETECTION)
    box = Box(label="scratch", x_min=0.1, y_min=0.1, x_max=0.2, y_max=0.2)
    results = []
    for i in range(count):
        at = start + timedelta(seconds=i * every_s)
        verdict = Verdict.DEFECT if i % 10 == 0 else Verdict.UNCERTAIN if i % 25 == 1 else Verdict.OK
        line = f"L{i % lines + 1}"
        results.append(
            InspectionResult(
                camera_id=f"cam-{line}",
                line_id=line,
                station_id=f"{line}-S1",
                frame_number=i,
                part_id=f"P{i}",
                source=KafkaCoordinates(topic="frames", partition=0, offset=i),
                model=model,
                verdict=verdict,
                detections=(Detection(label="scratch", score=0.9, box=box),)
                if verdict is Verdict.DEFECT
                else (),
                captured_at=at,
                received_at=at,
                inferred_at=at,
                batch_size=8,
                worker_id="sample",
                metadata={"defect_score": "0.9000" if verdict is Verdict.DEFECT else "0.1000"},
            )
        )
    return results


def produce(kafka_config: dict[str, Any], topic: str, results: Sequence[InspectionResult]) -> None:
    producer = Producer({**kafka_config, "linger.ms": 20, "enable.idempotence": True})
    serialize = AvroRecordSerializer(InspectionResult)
    for result in results:
        producer.produce(topic, key=result.camera_id.encode(), value=serialize(result))
        producer.poll(0)
    if producer.flush(30) != 0:
        raise RuntimeError("results were not all delivered")
