"""Issue 19, item 5: topics get a production replication factor and min.insync.replicas (RF min(3, brokers),
min ISR 2 with 3 replicas), both configurable, and a single-replica topic on a multi-broker cluster is
warned about. The shared stack is one broker: there the defaults are RF 1 / min ISR 1."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from infra.kafka_topics import (
    delete_topics,
    ensure_topics,
    replication_plan,
    single_replica_topics,
)
from schemas.errors import ConfigurationError

pytestmark = pytest.mark.integration


def test_production_defaults_follow_the_number_of_brokers() -> None:
    assert replication_plan(1) == (1, 1)
    assert replication_plan(2) == (2, 1)
    assert replication_plan(3) == (3, 2)
    assert replication_plan(9) == (3, 2)
    assert replication_plan(5, replication_factor=5, min_insync_replicas=3) == (5, 3)
    with pytest.raises(ConfigurationError, match=r"needs 1\.\.3 brokers"):
        replication_plan(3, replication_factor=4)
    with pytest.raises(ConfigurationError, match=r"min\.insync\.replicas"):
        replication_plan(3, min_insync_replicas=4)


def test_single_replica_topics_are_found_only_on_multi_broker_clusters() -> None:
    replicas = {"frames": 1, "results": 3, "other": 1}
    assert single_replica_topics(replicas, ["frames", "results"], brokers=3) == ["frames"]
    assert single_replica_topics(replicas, ["frames", "results"], brokers=1) == []


def _config(admin: AdminClient, name: str) -> dict[str, str]:
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return {key: entry.value for key, entry in configs.items()}


def test_on_the_single_node_stack_topics_get_rf_1_and_min_isr_1(
    kafka_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    admin = AdminClient(kafka_config)
    brokers = len(admin.list_topics(timeout=10).brokers)
    name = f"test.rf.{uuid.uuid4().hex[:8]}"
    try:
        with caplog.at_level(logging.WARNING, logger="infra.kafka_topics"):
            assert ensure_topics(kafka_config, [name], partitions=2) == [name]
            assert ensure_topics(kafka_config, [name], partitions=2) == []
        factor, insync = replication_plan(brokers)
        partitions = admin.list_topics(timeout=10).topics[name].partitions.values()
        assert {len(p.replicas) for p in partitions} == {factor}
        assert _config(admin, name)["min.insync.replicas"] == str(insync)
        single = "single replica" in caplog.text
        assert single is (brokers > 1 and factor == 1)  # never on one broker
        # More replicas than brokers: one clear configuration error, nothing created.
        other = f"test.rf.{uuid.uuid4().hex[:8]}"
        with pytest.raises(ConfigurationError, match="replication factor"):
            ensure_topics(kafka_config, [other], replication_factor=brokers + 1)
        assert other not in admin.list_topics(timeout=10).topics
    finally:
        delete_topics(kafka_config, [name])


def test_the_replication_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.settings import KafkaSettings

    assert KafkaSettings().topic_replication_factor is None  # production defaults
    monkeypatch.setenv("LINEGUARD_KAFKA_TOPIC_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("LINEGUARD_KAFKA_TOPIC_MIN_INSYNC_REPLICAS", "2")
    settings = KafkaSettings()
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (3, 2)
