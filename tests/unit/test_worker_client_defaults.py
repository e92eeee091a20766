"""The worker's Kafka clients notice a silent (half-open) link in seconds: socket.timeout.ms 5 s by
default instead of librdkafka's 60 s, a configured value wins, and the default stays inside what librdkafka
accepts."""

from __future__ import annotations

import pytest

from workers.clients import SOCKET_TIMEOUT_MS, kafka_consumer, kafka_producer, with_network_defaults


def test_the_default_socket_timeout_is_added() -> None:
    config = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}
    assert with_network_defaults(config) == {**config, "socket.timeout.ms": SOCKET_TIMEOUT_MS}
    assert "socket.timeout.ms" not in config  # the caller's dict is left alone
    assert SOCKET_TIMEOUT_MS == 2_500


def test_a_configured_socket_timeout_wins() -> None:
    config = {"bootstrap.servers": "127.0.0.1:1", "socket.timeout.ms": 30_000}
    assert with_network_defaults(config)["socket.timeout.ms"] == 30_000


def test_the_default_stays_within_librdkafkas_bounds() -> None:
    short_txn = {"transactional.id": "t", "transaction.timeout.ms": 1_000}
    assert with_network_defaults(short_txn)["socket.timeout.ms"] == 1_100
    long_fetch = {"fetch.wait.max.ms": 9_000}
    assert with_network_defaults(long_fetch)["socket.timeout.ms"] == 10_000
    non_txn = {"transaction.timeout.ms": 1_000}  # ignored by librdkafka without a transactional.id
    assert with_network_defaults(non_txn)["socket.timeout.ms"] == SOCKET_TIMEOUT_MS


@pytest.mark.parametrize(
    "extra",
    [{}, {"transactional.id": "t", "transaction.timeout.ms": 1_000}, {"transactional.id": "t"}],
)
def test_librdkafka_accepts_the_producer_configuration(extra: dict[str, object]) -> None:
    # librdkafka validates the configuration when the client is created (no broker is contacted first):
    # a socket.timeout.ms above transaction.timeout.ms + 100 would raise here.
    kafka_producer({"bootstrap.servers": "127.0.0.1:1", **extra}).flush(0)


def test_librdkafka_accepts_the_consumer_configuration() -> None:
    kafka_consumer({"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "fetch.wait.max.ms": 9_000}).close()
