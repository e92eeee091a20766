"""The loop of a Kafka consumer that writes each batch to a store before it commits: read batches, skip
consumer errors, pause through the store's outages without leaving the group.

Shared by the live counters (``quality/counters``, Redis) and the MES sink (``mes/``, PostgreSQL): siblings
on one floor, so the loop they share lives here; what a batch is written as stays with each of them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_DELAY_S = 0.2
_MAX_DELAY_S = 2.0


class Interrupted(Exception):
    """Asked to stop while the store was down: the batch in flight was neither written nor committed."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a record stands in its topic."""

    topic: str
    partition: int
    offset: int


def manual_commit_config(kafka_config: dict[str, Any], group_id: str) -> dict[str, Any]:
    """A consumer configuration for a group that commits by hand, after its store took the batch."""
    return {
        **kafka_config,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
    }


def run_batches(
    consumer: Consumer,
    stop: threading.Event,
    handle: Callable[[list[Message]], None],
    batch_size: int,
    max_wait_s: float,
    what: str,
) -> None:
    """Hand every non-empty batch to ``handle`` until ``stop`` is set, then close the consumer.

    ``what`` names the store for the log line when an outage is interrupted (:class:`Interrupted`)."""
    try:
        while not stop.is_set():
            messages = consumer.consume(batch_size, timeout=max_wait_s)
            if messages:
                handle(messages)
    except Interrupted:
        log.info("stopped during a %s outage; the batch in flight was not written", what)
    finally:
        consumer.close()


def records(messages: Iterable[Message]) -> Iterator[tuple[Position, Message]]:
    """The batch's records with their positions; consumer errors are logged (partition EOF silently) and
    skipped."""
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            continue
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        yield Position(topic, partition, offset), message


def keep_membership(consumer: Consumer) -> None:
    """Poll once so the group does not evict a paused consumer; a record from a partition assigned meanwhile
    (not paused) is put back (seek) rather than skipped."""
    message = consumer.poll(0)
    if message is not None and message.error() is None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is not None and partition is not None and offset is not None:
            consumer.seek(TopicPartition(topic, partition, offset))


def through_outages(
    consumer: Consumer,
    step: Callable[[], T],
    outage_errors: tuple[type[Exception], ...],
    *,
    stop: threading.Event,
    timeout_s: float,
    what: str,
    on_outage: Callable[[], None],
    recover: Callable[[], None] | None = None,
    describe: Callable[[Exception], str] = str,
) -> T:
    """Run ``step`` until it succeeds, pausing the partitions while it fails with an outage error.

    The consumer keeps polling (:func:`keep_membership`), so it stays in its group; ``on_outage`` runs once
    when an outage starts, ``recover`` (e.g. reconnect) after each wait. Raises the last error after
    ``timeout_s`` and :class:`Interrupted` when ``stop`` is set meanwhile."""
    paused: list[TopicPartition] = []
    started = time.monotonic()
    delay = _FIRST_DELAY_S
    while True:
        try:
            value = step()
            break
        except outage_errors as exc:
            if not paused:
                on_outage()
                paused = consumer.assignment()
                consumer.pause(paused)
                log.warning("%s unavailable (%s); pausing until it is back", what, describe(exc))
            if time.monotonic() - started > timeout_s:
                raise
            if stop.is_set():  # leave without committing: the batch is replayed on the next start
                raise Interrupted from None
            keep_membership(consumer)
            time.sleep(delay)
            if recover is not None:
                recover()
            delay = min(delay * 2, _MAX_DELAY_S)
    if paused:
        log.info("%s back after %.1f s; resuming", what, time.monotonic() - started)
        # a rebalance meanwhile may have changed the assignment
        consumer.resume(consumer.assignment())
    return value
