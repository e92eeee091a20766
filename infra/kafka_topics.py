"""Create and delete Kafka topics with the admin client, and wait until the cluster agrees.

``create_topics`` returns as soon as the controller accepted the request; a producer that starts right
after can still see "unknown topic" for a moment. Both functions therefore wait until the metadata shows
the topics (with a leader for every partition) or no longer shows them.

Replication: lineguard's producers use ``acks=all``, which only protects a record if the topic has replicas
to wait for. Topics are created with a replication factor of ``min(3, brokers)`` and ``min.insync.replicas``
of 2 when there are 3 replicas (1 below that), unless told otherwise: RF 3 / min ISR 2 on a production
cluster, RF 1 / min ISR 1 on the single-node local stack. A topic lineguard uses that already exists with a
single replica on a multi-broker cluster is logged as a warning (one broker's disk away from losing it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.errors import ConfigurationError, LineguardError, ServiceUnavailableError
from schemas.topics import DEFAULT_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

# A record of `max_message_bytes` travels inside a record batch with its own header and the record's key,
# headers and varints; the topic limit applies to the whole batch, so it gets this much on top.
BATCH_OVERHEAD_BYTES = 64 * 1024


def topic_max_message_bytes(max_record_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> int:
    """The topic-level ``max.message.bytes`` that admits a record of ``max_record_bytes``."""
    return max_record_bytes + BATCH_OVERHEAD_BYTES


def _admin(kafka_config: Mapping[str, Any]) -> AdminClient:
    return AdminClient(dict(kafka_config))


def replication_plan(
    brokers: int, replication_factor: int | None = None, min_insync_replicas: int | None = None
) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) for a cluster of ``brokers``: the given values, checked, or
    the production defaults (RF ``min(3, brokers)``, min ISR 2 with 3+ replicas, else 1)."""
    if brokers < 1:
        raise ServiceUnavailableError("Kafka metadata lists no brokers")
    factor = replication_factor if replication_factor is not None else min(3, brokers)
    if not 1 <= factor <= brokers:
        raise ConfigurationError(
            f"replication factor {factor} needs 1..{brokers} brokers (the cluster has {brokers})"
        )
    insync = min_insync_replicas if min_insync_replicas is not None else (2 if factor >= 3 else 1)
    if not 1 <= insync <= factor:
        raise ConfigurationError(f"min.insync.replicas {insync} must be between 1 and the replication factor")
    return factor, insync


def single_replica_topics(replicas: Mapping[str, int], names: Iterable[str], brokers: int) -> list[str]:
    """Of ``names``, the topics with one replica on a cluster of several brokers (``replicas``: topic ->
    fewest replicas of any of its partitions)."""
    if brokers < 2:
        return []
    return [name for name in names if replicas.get(name) == 1]


def ensure_topics(
    kafka_config: Mapping[str, Any],
    names: Iterable[str],
    partitions: int = 3,
    replication_factor: int | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    extra_topic_config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
    min_insync_replicas: int | None = None,
) -> list[str]:
    """Create the topics that do not exist yet and wait until all of them have a leader on every partition.

    Topics that already exist are left as they are (a single-replica one on a multi-broker cluster is
    logged as a warning). ``replication_factor`` / ``min_insync_replicas``: None for the production defaults
    of :func:`replication_plan`. ``max_message_bytes`` is the largest *record* the topic must accept; the
    topic's ``max.message.bytes`` gets batch headroom on top. Returns the names this call created.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    admin = _admin(kafka_config)
    brokers, replicas = _cluster(admin, timeout_s)
    for name in single_replica_topics(replicas, wanted, brokers):
        log.warning(
            "topic %s has a single replica on a %d-broker cluster: acks=all protects nothing there; "
            "raise its replication factor (kafka-reassign-partitions)",
            name,
            brokers,
        )
    missing = [name for name in wanted if name not in replicas]
    factor = 0
    topic_config = {"max.message.bytes": str(topic_max_message_bytes(max_message_bytes))}
    if missing:
        factor, insync = replication_plan(brokers, replication_factor, min_insync_replicas)
        topic_config["min.insync.replicas"] = str(insync)
    topic_config.update(extra_topic_config or {})
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [NewTopic(name, partitions, factor, config=topic_config) for name in missing],
            request_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                created.append(name)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator won: fine
                    raise LineguardError(f"could not create topic {name!r}: {error.str()}") from exc
    _wait_for(admin, wanted, present=True, timeout_s=timeout_s)
    if created:
        log.info(
            "created topics %s (%d partitions, replication factor %s, min.insync.replicas %s)",
            ", ".join(created),
            partitions,
            factor,
            topic_config.get("min.insync.replicas"),
        )
    return created


def delete_topics(kafka_config: Mapping[str, Any], names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Delete the topics (missing ones are ignored) and wait until the metadata no longer lists them."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    admin = _admin(kafka_config)
    futures = admin.delete_topics(wanted, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise LineguardError(f"could not delete topic {name!r}: {error.str()}") from exc
    _wait_for(admin, wanted, present=False, timeout_s=timeout_s)


def _cluster(admin: AdminClient, timeout_s: float) -> tuple[int, dict[str, int]]:
    """Number of brokers, and topic -> fewest replicas of any of its partitions."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"Kafka metadata request failed: {exc.args[0].str()}") from exc
    replicas = {
        name: min((len(p.replicas) for p in topic.partitions.values()), default=0)
        for name, topic in metadata.topics.items()
        if topic.error is None
    }
    return len(metadata.brokers), replicas


def _topic_partitions(admin: AdminClient, timeout_s: float) -> dict[str, list[int]]:
    """Topic name -> leader of each partition (-1 while leaderless)."""
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"Kafka metadata request failed: {exc.args[0].str()}") from exc
    return {
        name: [p.leader for p in topic.partitions.values()]
        for name, topic in metadata.topics.items()
        if topic.error is None
    }


def _wait_for(admin: AdminClient, names: list[str], present: bool, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        topics = _topic_partitions(admin, timeout_s)
        if present:
            pending = [n for n in names if not topics.get(n) or any(leader < 0 for leader in topics[n])]
        else:
            pending = [n for n in names if n in topics]
        if not pending:
            return
        if time.monotonic() > deadline:
            state = "appear" if present else "disappear"
            raise ServiceUnavailableError(
                f"topics {', '.join(pending)} did not {state} in Kafka metadata within {timeout_s:.0f} s"
            )
        time.sleep(0.1)
