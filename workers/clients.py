"""The Kafka client surface the worker uses, as Protocols, and the factories that make the clients.

The worker never calls ``Consumer(...)`` or ``Producer(...)`` itself: :mod:`workers.assemble` passes a factory
(by default the confluent-kafka class) to :class:`~workers.consumer.FrameConsumer` and
:class:`~workers.sinks.kafka.KafkaOutputs`. So the delivery logic (which offsets get committed, when a
transaction is committed or aborted) can be exercised with stand-in clients as well as against a real
broker (tests/integration/). Only the methods the worker calls are listed.

The real factories also give both clients network timeouts that notice a dead link in seconds
(:func:`with_network_defaults`); a value the configuration sets (``LINEGUARD_KAFKA_EXTRA``) wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

ClientConfig = dict[str, Any]
Headers = list[tuple[str, str | bytes | None]]
RebalanceCallback = Callable[[Any, list[TopicPartition]], None]
DeliveryCallback = Callable[[KafkaError | None, Message], None]


class ConsumerClient(Protocol):
    """What :class:`~workers.consumer.FrameConsumer` calls on its consumer (confluent_kafka.Consumer)."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None: ...

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Message]: ...

    def consumer_group_metadata(self) -> Any: ...

    def commit(
        self, *, offsets: list[TopicPartition], asynchronous: Literal[False]
    ) -> list[TopicPartition]: ...

    def pause(self, partitions: list[TopicPartition]) -> None: ...

    def resume(self, partitions: list[TopicPartition]) -> None: ...

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]: ...

    def close(self) -> None: ...


class ProducerClient(Protocol):
    """What :class:`~workers.sinks.kafka.KafkaOutputs` calls on its producer (confluent_kafka.Producer)."""

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: str | bytes | None = None,
        *,
        on_delivery: DeliveryCallback | None = None,
        headers: Headers | None = None,
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...

    def init_transactions(self, timeout: float = -1) -> None: ...

    def begin_transaction(self) -> None: ...

    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float = -1
    ) -> None: ...

    def commit_transaction(self, timeout: float = -1) -> None: ...

    def abort_transaction(self, timeout: float = -1) -> None: ...


# librdkafka gives an unanswered request socket.timeout.ms (default 60 s) before it drops the connection and
# retries on a new one. Against a half-open link (a NAT or firewall dropped the connection's state: no RST, no
# FIN) that is a minute of silence: the network-fault campaign (chaos net-faults) saw both workers' consumers
# lose their session 6 s after a half-open of the Kafka link and get their partitions back only 55 s later,
# when the silenced GroupCoordinator connection finally timed out. A half-open costs two such timeouts in a
# row (AddOffsetsToTxn, then TxnOffsetCommit on the new connection's first try) before the transaction is
# rewritten: measured with `chaos net-faults --links kafka --kinds reset,half_open`, recovery after the
# half-open was 17.6-17.8 s at 5 s and 6.4 s at 2.5 s (target 10 s). 2.5 s is ample for any request the worker
# makes on a plant LAN (a fetch waits fetch.wait.max.ms, 500 ms, on top of it; a JoinGroup has its own,
# longer bound in librdkafka); a request cut short is retried on a new connection, the producer is
# idempotent, and a transactional step that times out is retried or rewritten, never lost.
SOCKET_TIMEOUT_MS = 2_500
_FETCH_WAIT_MAX_MS = 500  # librdkafka's default fetch.wait.max.ms


def with_network_defaults(config: ClientConfig) -> ClientConfig:
    """``config`` with ``socket.timeout.ms`` (:data:`SOCKET_TIMEOUT_MS`) unless it sets one; kept within what
    librdkafka accepts: at most ``transaction.timeout.ms`` + 100 for a transactional producer, and at least
    ``fetch.wait.max.ms`` + 1000 (pure)."""
    if "socket.timeout.ms" in config:
        return dict(config)
    timeout = SOCKET_TIMEOUT_MS
    fetch_wait = int(config.get("fetch.wait.max.ms", _FETCH_WAIT_MAX_MS))
    timeout = max(timeout, fetch_wait + 1_000)
    if "transactional.id" in config and "transaction.timeout.ms" in config:
        timeout = min(timeout, int(config["transaction.timeout.ms"]) + 100)
    return {**config, "socket.timeout.ms": timeout}


ConsumerFactory = Callable[[ClientConfig], ConsumerClient]
ProducerFactory = Callable[[ClientConfig], ProducerClient]


def kafka_consumer(config: ClientConfig) -> ConsumerClient:
    """The real consumer (the default :data:`ConsumerFactory`)."""
    client: ConsumerClient = Consumer(with_network_defaults(config))
    return client


def kafka_producer(config: ClientConfig) -> ProducerClient:
    """The real producer (the default :data:`ProducerFactory`)."""
    client: ProducerClient = Producer(with_network_defaults(config))
    return client
