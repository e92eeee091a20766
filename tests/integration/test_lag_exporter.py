"""`lineguard lag` on the real broker: lag in records and seconds from committed offsets, no worker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from lineguard.lag.exporter import LagMetrics, LagReader
from schemas.records import Frame, ImageEncoding
from schemas.serde import AvroRecordSerializer
from schemas.topics import TopicNames


def _frame(line: str, number: int, age_s: float, now: datetime) -> Frame:
    return Frame(
        camera_id=f"{line}-cam",
        line_id=line,
        station_id="st",
        frame_number=number,
        captured_at=now - timedelta(seconds=age_s),
        width=4,
        height=4,
        channels=1,
        encoding=ImageEncoding.PNG,
        image=b"not decoded by the exporter",
    )


def _publish(kafka_config: dict[str, Any], topic: str) -> datetime:
    """Partition 0: line-a, five frames 50..10 s old; partition 1: line-b, three frames 900..700 s old."""
    now = datetime.now(UTC)
    serializer = AvroRecordSerializer(Frame)
    producer = Producer(kafka_config)
    for number, age in enumerate((50, 40, 30, 20, 10)):
        producer.produce(topic, serializer(_frame("line-a", number, age, now)), partition=0)
    for number, age in enumerate((900, 800, 700)):
        producer.produce(topic, serializer(_frame("line-b", number, age, now)), partition=1)
    assert producer.flush(30) == 0
    return now


def _commit(kafka_config: dict[str, Any], group: str, topic: str, partition: int, offset: int) -> None:
    consumer = Consumer({**kafka_config, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def test_lag_in_records_and_seconds_per_partition_and_line(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    published = _publish(kafka_config, topics.frames)
    _commit(kafka_config, group, topics.frames, 0, 2)  # frames 0 and 1 of line-a are done; 1 never committed
    reader = LagReader(kafka_config, group, topics.frames, timeout_s=10)
    try:
        snapshot = reader.read()
    finally:
        reader.close()
    by_partition = {p.partition: p for p in snapshot.partitions}
    assert [by_partition[n].records for n in (0, 1, 2)] == [3, 3, 0]
    assert snapshot.records == 6
    taken = snapshot.taken_at
    late = (taken - published).total_seconds()  # how long after publishing the reading was taken
    # the oldest unprocessed frame of partition 0 is frame 2 (30 s old), of partition 1 frame 0 (900 s old)
    assert 30 + late == pytest.approx(by_partition[0].seconds(taken), abs=0.01)
    assert 900 + late == pytest.approx(by_partition[1].seconds(taken), abs=0.01)
    assert by_partition[2].seconds(taken) == 0
    assert 900 + late == pytest.approx(snapshot.backlog_seconds, abs=0.01)
    assert set(snapshot.line_seconds()) == {"line-a", "line-b"}

    metrics = LagMetrics()
    metrics.update(snapshot, group, topics.frames, silent_after_s=300)
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.registry_text())
        for s in family.samples
    }
    assert (
        values[("lineguard_lag_records", (("group", group), ("partition", "0"), ("topic", topics.frames)))]
        == 3
    )
    assert values[("lineguard_lag_total_records", (("group", group), ("topic", topics.frames)))] == 6
    # line-b's newest frame is 700 s old: silent; line-a published 10 s ago: not
    assert values[("lineguard_lag_line_silent", (("line", "line-b"),))] == 1
    assert values[("lineguard_lag_line_silent", (("line", "line-a"),))] == 0
    assert values[("lineguard_lag_line_seconds", (("group", group), ("line", "line-b")))] >= 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_command_serves_lag_while_no_worker_runs(
    kafka_config: dict[str, Any], topics: TopicNames
) -> None:
    group = f"lag-{uuid.uuid4().hex[:8]}"
    _publish(kafka_config, topics.frames)
    port = _free_port()
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"]}
    command = [sys.executable, "-m", "lineguard.cli", "lag", "--group", group, "--topic", topics.frames]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--interval-s", "0.5"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        body = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "lineguard_lag_total_records{" not in body:
            time.sleep(0.3)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                    body = response.read().decode()
            except OSError:
                continue
        assert f'lineguard_lag_total_records{{group="{group}",topic="{topics.frames}"}} 8.0' in body
        assert "lineguard_lag_up 1.0" in body
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
