"""Which records a shadow worker inspects: the replay's end per partition, the camera (record key), the line
(the frame itself), one record in n; and the shadow worker's settings kept apart from production's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Message

from schemas.errors import ConfigurationError
from schemas.records import Frame, ImageEncoding
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from workers.settings import WorkerSettings
from workers.shadow.config import shadow_settings, shadow_topics
from workers.shadow.replay import RangeRequest, RecordFilter


def _record(partition: int, offset: int, camera: str = "cam-1", line: str = "L1") -> Message:
    frame = Frame(
        camera_id=camera,
        line_id=line,
        station_id="s",
        frame_number=offset,
        captured_at=datetime(2026, 12, 3, tzinfo=UTC),
        width=1,
        height=1,
        channels=1,
        encoding=ImageEncoding.JPEG,
        image=b"\x00",
    )
    value = AvroRecordSerializer(Frame)(frame)
    return Message(topic="f", partition=partition, offset=offset, key=camera.encode(), value=value)


def test_range_ends_camera_line_and_sampling() -> None:
    ends = RecordFilter(ends={0: 10, 1: 0})
    assert ends(_record(0, 9)) and not ends(_record(0, 10)) and not ends(_record(1, 0))
    assert not ends(_record(2, 0))  # a partition outside the range
    camera = RecordFilter(camera="cam-2")
    assert camera(_record(0, 1, camera="cam-2")) and not camera(_record(0, 1, camera="cam-1"))
    line = RecordFilter(line="L2", deserializer=AvroRecordDeserializer(Frame))
    assert line(_record(0, 1, line="L2")) and not line(_record(0, 1, line="L1"))
    garbage = Message(topic="f", partition=0, offset=1, key=b"cam-1", value=b"not avro")
    assert line(garbage)  # the decoder dead-letters it, with its reason
    sampled = RecordFilter(sample_every=4)
    assert [o for o in range(12) if sampled(_record(0, o))] == [0, 4, 8]
    with pytest.raises(ConfigurationError):
        RecordFilter(sample_every=0)


def test_range_requests_refuse_empty_and_mixed_ranges() -> None:
    at = datetime(2026, 12, 3, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="empty range"):
        RangeRequest(since=at, until=at)
    with pytest.raises(ConfigurationError, match="empty range"):
        RangeRequest(start_offset=5, end_offset=5)
    with pytest.raises(ConfigurationError, match="not both"):
        RangeRequest(since=at, start_offset=1)


def test_shadow_settings_are_apart_from_production(tmp_path: Path) -> None:
    production = WorkerSettings(frames_topic="plant.frames", results_topic="plant.results")
    shadow = shadow_settings(production, tmp_path, "lineguard-shadow-cls-2")
    assert shadow.role == "shadow" and shadow.model == tmp_path
    assert (shadow.results_topic, shadow.defect_events_topic, shadow.dead_letter_topic) == (
        "plant.shadow.results",
        "plant.shadow.defect-events",
        "plant.shadow.dead-letters",
    )
    assert shadow.mongo_collection == "shadow_inspections" and shadow.frames_topic == "plant.frames"
    assert shadow_topics("lineguard.frames").results == "lineguard.shadow.results"
    with pytest.raises(ConfigurationError, match=r"results topic must be a shadow one, not 'plant\.results'"):
        shadow_settings(production, tmp_path, "lineguard-shadow-x", results_topic="plant.results")
    with pytest.raises(ValueError, match="defect events topic"):  # pydantic's ValidationError
        WorkerSettings(role="shadow", group_id="lineguard-shadow-x", results_topic="x.shadow.results")


def test_shadow_metrics_carry_the_role_label_and_production_metrics_do_not() -> None:
    from workers.metrics import WorkerMetrics

    shadow, production = WorkerMetrics(role="shadow"), WorkerMetrics()
    for metrics in (shadow, production):
        metrics.frames_in.inc(3)
        metrics.verdicts.labels("OK").inc()
    shadow_text, production_text = shadow.render().decode(), production.render().decode()
    assert 'lineguard_worker_frames_in_total{role="shadow"} 3.0' in shadow_text
    assert 'lineguard_worker_verdicts_total{role="shadow",verdict="OK"} 1.0' in shadow_text
    assert "lineguard_worker_frames_in_total 3.0" in production_text and "role=" not in production_text
