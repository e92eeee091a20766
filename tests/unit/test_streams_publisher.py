"""The publisher's logic (claim-check, size limits, spooling, drain order) against a fake producer.

The fake stands in for librdkafka only where the real one cannot be steered (a broker that is down for
exactly these messages); the integration tests run the same paths against real Kafka.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from infra.kafka_topics import topic_max_message_bytes
from schemas.errors import ConfigurationError, FrameTooLargeError, ServiceUnavailableError
from schemas.records import Frame, ImageEncoding, ImageReference
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer
from schemas.topics import DEFAULT_MAX_MESSAGE_BYTES, HEADER_CONTENT_TYPE, HEADER_SCHEMA, HEADER_TRACE_ID
from streams.publisher import FramePublisher, PublisherOptions, producer_config
from streams.spool import DiskSpool, SpoolPolicy

DeliveryCallback = Callable[[KafkaError | None, Any], None]


@dataclass
class _Message:
    _topic: str
    _value: bytes
    _key: bytes | None

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes | None:
        return self._key


class FakeProducer:
    """Queues produced messages; ``deliver()`` acknowledges them, ``fail()`` fails them with an error code."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.queue: list[tuple[_Message, list[tuple[str, bytes]], DeliveryCallback]] = []
        self.log: list[tuple[bytes, list[tuple[str, bytes]]]] = []  # every delivered (value, headers)
        self.capacity: int | None = None
        self.broker_up = True

    def produce(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]], on_delivery: Any
    ) -> None:
        if self.capacity is not None and len(self.queue) >= self.capacity:
            raise BufferError("queue full")
        self.queue.append((_Message(topic, value, key), headers, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return self.deliver() if self.broker_up else 0

    def deliver(self) -> int:
        served, self.queue = self.queue, []
        for message, headers, callback in served:
            self.log.append((message.value(), headers))
            callback(None, message)
        return len(served)

    def fail(self, code: int) -> None:
        served, self.queue = self.queue, []
        for message, _headers, callback in served:
            callback(KafkaError(code), message)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.fail(KafkaError._PURGE_QUEUE)

    def flush(self, timeout: float = 0) -> int:
        self.poll(timeout)
        return len(self.queue)

    def __len__(self) -> int:
        return len(self.queue)


class FakeStore:
    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}

    def put(
        self, data: bytes, filename: str = "", metadata: Mapping[str, Any] | None = None
    ) -> ImageReference:
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        self.stored[digest] = data
        return ImageReference(uri=f"gridfs://db/frames/{digest}", sha256=digest, size_bytes=len(data))


def _frame(number: int, image: bytes = b"\xff\xd8\xffjpeg") -> Frame:
    return Frame(
        camera_id="cam-1",
        line_id="line-1",
        station_id="st-1",
        frame_number=number,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        width=8,
        height=8,
        channels=3,
        encoding=ImageEncoding.JPEG,
        image=image,
    )


def _publisher(
    tmp_path: Path | None = None,
    store: FakeStore | None = None,
    spool_bytes: int = 1_000_000,
    policy: SpoolPolicy = SpoolPolicy.drop_oldest,
    **options: Any,
) -> tuple[FramePublisher, FakeProducer]:
    producers: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        producers.append(FakeProducer(config))
        return producers[-1]

    spool = DiskSpool(tmp_path, spool_bytes, policy) if tmp_path is not None else None
    publisher = FramePublisher(
        PublisherOptions(topic="frames", **options),
        {"bootstrap.servers": "unused:9092"},
        AvroRecordSerializer(Frame),
        claim_check=store,
        spool=spool,
        producer_factory=factory,
    )
    return publisher, producers[0]


def _numbers(producer: FakeProducer) -> list[int]:
    reader = AvroRecordDeserializer(Frame)
    return [reader(value).frame_number for value, _ in producer.log]


def test_producer_config_is_idempotent_with_limits_that_agree_with_the_topics() -> None:
    config = producer_config({"bootstrap.servers": "b:9092", "linger.ms": 20}, PublisherOptions(topic="t"))
    assert config["enable.idempotence"] is True
    assert config["acks"] == "all"
    assert config["compression.type"] == "none"
    assert config["message.max.bytes"] == topic_max_message_bytes(DEFAULT_MAX_MESSAGE_BYTES)
    assert config["linger.ms"] == 20  # raw librdkafka settings win


def test_publishes_with_key_headers_and_counts_deliveries() -> None:
    publisher, producer = _publisher()
    publisher.publish(_frame(1))
    publisher.publish(_frame(2))
    assert publisher.stats.published == 2 and publisher.stats.delivered == 2  # poll(0) served the callbacks
    (value, headers), (_, second_headers) = producer.log
    names = dict(headers)
    assert names[HEADER_CONTENT_TYPE] == b"image/jpeg"
    assert names[HEADER_SCHEMA] == b"dev.lineguard.v1.Frame"
    assert (
        len(names[HEADER_TRACE_ID]) == 32 and names[HEADER_TRACE_ID] != dict(second_headers)[HEADER_TRACE_ID]
    )
    assert publisher.stats.delivered_bytes == len(value) + len(producer.log[1][0])
    report = publisher.close(1.0)
    assert report.clean and report.delivered == 2


def test_large_image_goes_to_the_claim_check_store() -> None:
    store = FakeStore()
    publisher, producer = _publisher(store=store, inline_limit_bytes=1000)
    image = b"\xff\xd8\xff" + bytes(5000)
    publisher.publish(_frame(1, image))
    sent = AvroRecordDeserializer(Frame)(producer.log[0][0])
    assert sent is not None and sent.image == b"" and sent.image_ref is not None
    assert store.stored[sent.image_ref.sha256] == image
    assert sent.image_ref.size_bytes == len(image)
    assert publisher.stats.claim_checked == 1


def test_large_image_without_claim_check_is_refused_clearly_and_counted() -> None:
    publisher, producer = _publisher(inline_limit_bytes=1000)
    with pytest.raises(
        FrameTooLargeError, match=r"above the inline limit of 1000 bytes.*claim-check is disabled"
    ):
        publisher.publish(_frame(1, bytes(5000)))
    assert publisher.stats.too_large == 1
    assert producer.log == [] and len(producer) == 0
    publisher.publish(_frame(2))  # the publisher carries on with the next frame
    assert publisher.stats.delivered == 1


def test_record_above_the_kafka_limit_is_refused_even_with_claim_check() -> None:
    publisher, _ = _publisher(store=FakeStore(), inline_limit_bytes=1000, max_message_bytes=300_000)
    big_metadata = _frame(1)
    big = dataclasses.replace(big_metadata, metadata={"notes": "x" * 400_000})
    with pytest.raises(FrameTooLargeError, match="Kafka record limit"):
        publisher.publish(big)


def test_inline_limit_must_fit_inside_the_message_limit() -> None:
    with pytest.raises(ConfigurationError, match="inline limit"):
        PublisherOptions(topic="t", inline_limit_bytes=DEFAULT_MAX_MESSAGE_BYTES)


def test_broker_down_spools_new_frames_then_drains_them_in_order(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path, drain_window=2)
    publisher.publish(_frame(0))
    producer.broker_up = False
    publisher._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))  # what librdkafka reports
    for number in range(1, 6):
        publisher.publish(_frame(number))
    assert publisher.spool_backlog == 5
    assert len(producer) <= 2  # only the drain window is handed to librdkafka while the broker is down
    producer.broker_up = True
    for _ in range(5):
        publisher.poll()
    assert _numbers(producer) == [0, 1, 2, 3, 4, 5]
    assert publisher.spool_backlog == 0
    assert publisher.stats.spooled == 5 and publisher.stats.drained == 5 and publisher.stats.delivered == 6
    publisher.publish(_frame(6))  # back to sending directly
    assert _numbers(producer)[-1] == 6 and publisher.stats.spooled == 5


def test_timed_out_deliveries_are_spooled_and_resent_before_newer_frames(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path, drain_retry_s=0.0)
    producer.broker_up = False
    publisher.publish(_frame(0))
    publisher.publish(_frame(1))
    producer.fail(KafkaError._MSG_TIMED_OUT)  # both time out inside librdkafka: spooled with their order
    publisher.publish(_frame(2))
    assert publisher.spool_backlog == 3
    producer.broker_up = True
    for _ in range(3):
        publisher.poll()
    assert _numbers(producer) == [0, 1, 2]
    assert publisher.stats.failed == 0 and publisher.stats.delivered == 3


def test_queue_full_waits_for_room_while_the_broker_keeps_up(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path)
    producer.capacity = 1
    producer.broker_up = False  # nothing delivered by the poll(0) after produce: the queue stays full...
    publisher.publish(_frame(0))
    producer.broker_up = True  # ...until the next wait, which delivers and frees room
    publisher.publish(_frame(1))
    assert _numbers(producer) == [0, 1]
    assert publisher.stats.spooled == 0


def test_queue_full_beyond_the_grace_period_goes_to_the_spool(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path, queue_full_grace_s=0.0)
    producer.broker_up = False
    producer.capacity = 1
    publisher.publish(_frame(0))
    publisher.publish(_frame(1))  # BufferError -> spooled
    assert publisher.spool_backlog == 1
    producer.broker_up = True
    producer.capacity = None
    publisher.poll()
    publisher.poll()
    assert _numbers(producer) == [0, 1]


def test_permanent_delivery_errors_are_counted_as_failed_not_spooled(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path)
    producer.broker_up = False
    publisher.publish(_frame(0))
    producer.fail(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    assert publisher.stats.failed == 1 and publisher.spool_backlog == 0


def test_without_a_spool_close_reports_what_was_not_delivered() -> None:
    publisher, producer = _publisher(None)
    producer.broker_up = False
    publisher.publish(_frame(0))
    publisher.publish(_frame(1))
    report = publisher.close(0.05)
    assert report.undelivered == 2 and report.delivered == 0 and not report.clean


def test_close_moves_undelivered_frames_into_the_spool(tmp_path: Path) -> None:
    publisher, producer = _publisher(tmp_path)
    producer.broker_up = False
    publisher.publish(_frame(0))
    report = publisher.close(0.05)
    assert report.in_spool == 1 and report.undelivered == 0 and report.clean
    assert [m.seq for m in DiskSpool(tmp_path, 1_000_000).oldest(5)] == [0]


def test_drop_oldest_counts_dropped_frames(tmp_path: Path) -> None:
    record = len(AvroRecordSerializer(Frame)(_frame(0))) + 400  # value plus headers and spool file framing
    publisher, producer = _publisher(tmp_path, spool_bytes=3 * record, drain_window=1)
    producer.broker_up = False
    publisher._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    for number in range(6):
        publisher.publish(_frame(number))
    assert publisher.stats.spool_dropped >= 2
    assert publisher.spool_backlog <= 3


def test_block_policy_gives_up_when_stop_is_requested(tmp_path: Path) -> None:
    # Room for one spooled frame (value plus ~340 bytes of headers and spool file framing), not two.
    room = len(AvroRecordSerializer(Frame)(_frame(0))) + 450
    publisher, producer = _publisher(tmp_path, spool_bytes=room, policy=SpoolPolicy.block, drain_window=1)
    producer.broker_up = False
    publisher._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    publisher.publish(_frame(0))
    publisher.request_stop()
    publisher.publish(_frame(1))  # would block forever without the stop request
    assert publisher.stats.failed == 1 and publisher.spool_backlog == 1


def test_block_policy_waits_for_room_and_loses_nothing(tmp_path: Path) -> None:
    room = len(AvroRecordSerializer(Frame)(_frame(0))) + 450  # one spooled frame fits, two do not
    publisher, producer = _publisher(tmp_path, spool_bytes=room, policy=SpoolPolicy.block, drain_window=1)
    producer.broker_up = False
    publisher._on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN))
    publisher.publish(_frame(0))  # spooled, and handed to librdkafka as the drain window
    producer.broker_up = True  # frame 0 is acknowledged while publish(1) waits for room
    publisher.publish(_frame(1))
    for _ in range(3):
        publisher.poll()
    assert _numbers(producer) == [0, 1]
    assert publisher.stats.failed == 0 and publisher.stats.spooled == 2
    assert publisher.stats.blocked_s >= 0.0 and publisher.spool_backlog == 0


def test_unreachable_claim_check_store_loses_only_that_frame_and_counts_it() -> None:
    class DownStore(FakeStore):
        def put(
            self, data: bytes, filename: str = "", metadata: Mapping[str, Any] | None = None
        ) -> ImageReference:
            raise ServiceUnavailableError("GridFS unreachable")

    publisher, producer = _publisher(store=DownStore(), inline_limit_bytes=1000)
    with pytest.raises(ServiceUnavailableError):
        publisher.publish(_frame(0, bytes(5000)))
    publisher.publish(_frame(1))  # small frames keep flowing
    assert publisher.stats.claim_check_failed == 1 and _numbers(producer) == [1]
