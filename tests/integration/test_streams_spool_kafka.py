"""Store-and-forward against a real broker that goes away: the test's own Kafka, stopped and started again
through the project's launcher (never the shared stack), while a camera keeps publishing."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.kafka_topics import ensure_topics
from lineguard.stack.launcher import LocalStack
from lineguard.stack.settings import StackSettings
from lineguard.stack.state import KAFKA
from schemas.records import Frame, ImageEncoding
from schemas.serde import AvroRecordSerializer
from streams.client_logs import librdkafka_logger
from streams.publisher import FramePublisher, PublisherOptions
from streams.spool import DiskSpool
from tests.integration.test_streams_support import consume_frames

pytestmark = pytest.mark.integration

TOPIC = "spool-test.frames"


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[LocalStack]:
    """A Kafka broker of this test's own, in a temporary state directory, on free ports."""
    stack = LocalStack(StackSettings(state_dir=tmp_path / "stack"))
    stack.up([KAFKA])
    try:
        yield stack
    finally:
        stack.down([KAFKA], purge=True)


def _config(stack: LocalStack) -> dict[str, Any]:
    return {"bootstrap.servers": stack.state().services[KAFKA].address}


def _frame(number: int) -> Frame:
    return Frame(
        camera_id="cam-spool",
        line_id="line-1",
        station_id="st-1",
        frame_number=number,
        captured_at=datetime.now(UTC),
        width=8,
        height=8,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=b"\xff\xd8\xff" + number.to_bytes(4, "big") * 100,
    )


def _publisher(config: dict[str, Any], spool_dir: Path) -> FramePublisher:
    return FramePublisher(
        PublisherOptions(topic=TOPIC, drain_window=4, drain_retry_s=0.5),
        {**config, "reconnect.backoff.max.ms": 1000, "logger": librdkafka_logger()},
        AvroRecordSerializer(Frame),
        spool=DiskSpool(spool_dir, max_bytes=50 * 1024 * 1024),
    )


def _poll_until(publisher: FramePublisher, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {publisher.stats}"
        publisher.poll(0.1)


def test_frames_published_while_the_broker_is_down_arrive_once_and_in_order(
    private_kafka: LocalStack, tmp_path: Path
) -> None:
    config = _config(private_kafka)
    ensure_topics(config, [TOPIC], partitions=1)
    spool_dir = tmp_path / "spool"
    first = _publisher(config, spool_dir)

    for number in range(5):  # broker up: sent directly
        first.publish(_frame(number))
    _poll_until(first, lambda: first.stats.delivered == 5, 30, "the first 5 deliveries")
    assert first.stats.spooled == 0

    private_kafka.down([KAFKA])
    _poll_until(first, lambda: first.spooling, 30, "the producer to notice the broker is down")
    for number in range(5, 15):
        first.publish(_frame(number))
        first.poll(0.02)
    assert first.spool_backlog == 10 and first.stats.delivered == 5
    # The camera process stops during the outage: its frames wait on disk...
    report = first.close(1.0)
    assert report.in_spool == 10 and report.clean

    # ...and the next process on the same spool directory queues new frames behind them.
    second = _publisher(config, spool_dir)
    assert second.spool_backlog == 10 and second.spooling
    for number in range(15, 20):
        second.publish(_frame(number))
    assert second.spool_backlog == 15

    private_kafka.up([KAFKA])  # same port, same data
    _poll_until(second, lambda: second.stats.delivered == 15 and not second.spooling, 90, "the drain")
    assert second.stats.drained == 15 and second.stats.failed == 0
    second.publish(_frame(20))  # the spool is empty again: sent directly
    assert second.close(10.0).clean and second.stats.spooled == 5  # the other 10 came from the first

    received = consume_frames(config, TOPIC, 21)
    assert [r.frame.frame_number for r in received] == list(range(21))  # each exactly once, in order
    assert {r.key for r in received} == {b"cam-spool"}
