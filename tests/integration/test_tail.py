"""`lineguard tail` on the real broker: JSON lines in either wire format, filters, --from-beginning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.serialization import MessageField, SerializationContext

from lineguard.tail.reader import TopicReader
from schemas.records import Frame, ImageEncoding
from schemas.serde import AvroRecordSerializer, schema_registry_client
from schemas.topics import HEADER_SCHEMA, TopicNames


def _frame(camera: str, line: str, number: int) -> Frame:
    return Frame(
        camera_id=camera,
        line_id=line,
        station_id="st",
        frame_number=number,
        captured_at=datetime.now(UTC),
        width=4,
        height=4,
        channels=1,
        encoding=ImageEncoding.PNG,
        image=bytes(200),
    )


def test_tail_prints_both_wire_formats_as_json(kafka_config: dict[str, Any], topics: TopicNames) -> None:
    registry = schema_registry_client("mock://tail")
    confluent = AvroRecordSerializer(Frame, registry)
    single = AvroRecordSerializer(Frame)
    producer = Producer(kafka_config)
    producer.produce(topics.frames, single(_frame("cam-1", "line-1", 1)), key=b"cam-1", partition=0)
    framed = confluent(_frame("cam-2", "line-2", 2), SerializationContext(topics.frames, MessageField.VALUE))
    producer.produce(
        topics.frames, framed, key=b"cam-2", partition=1, headers={HEADER_SCHEMA: Frame.avro_name}
    )
    producer.produce(topics.frames, b"garbage", key=b"cam-3", partition=2)
    assert producer.flush(30) == 0

    reader = TopicReader(kafka_config, registry)
    lines = [reader.describe(m) for m in reader.read(topics.frames, from_beginning=True, follow=False)]
    by_key = {line["key"]: line for line in lines}
    assert set(by_key) == {"cam-1", "cam-2", "cam-3"}
    assert by_key["cam-1"]["record"]["line_id"] == "line-1"
    assert by_key["cam-2"]["record"]["frame_number"] == 2  # Confluent framing, through the registry
    assert by_key["cam-2"]["record"]["image"] == {
        "bytes": 200,
        "sha256": by_key["cam-1"]["record"]["image"]["sha256"],
    }
    assert "error" in by_key["cam-3"] and "record" not in by_key["cam-3"]  # shown, not dropped
    json.dumps(lines)  # every line is JSON

    # the command: single-object records need no registry; a filter keeps one line
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"]}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lineguard.cli",
            "tail",
            topics.frames,
            "--from-beginning",
            "--line",
            "line-1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert [p["record"]["camera_id"] for p in printed] == ["cam-1"]
    assert printed[0]["type"] == "Frame" and printed[0]["partition"] == 0
