"""The files the launcher renders for Kafka: broker config, Maven POM, cluster ids, JVM command line."""

from __future__ import annotations

import re
from pathlib import Path

from infra.kafka_topics import topic_max_message_bytes
from lineguard.stack import kafka
from lineguard.stack.kafka import KafkaNode
from schemas.topics import DEFAULT_MAX_MESSAGE_BYTES


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _node(tmp_path: Path) -> KafkaNode:
    return KafkaNode(host="127.0.0.1", broker_port=41001, controller_port=41002, node_dir=tmp_path / "kafka")


def test_server_properties_describe_one_combined_kraft_node_on_the_chosen_ports(tmp_path: Path) -> None:
    props = _properties(kafka.render_server_properties(_node(tmp_path)))

    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == f"{props['node.id']}@127.0.0.1:41002"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:41001,CONTROLLER://127.0.0.1:41002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:41001"
    assert props["log.dirs"] == str(tmp_path / "kafka" / "data")


def test_server_properties_admit_frames_and_single_node_transactions(tmp_path: Path) -> None:
    props = _properties(kafka.render_server_properties(_node(tmp_path)))

    broker_limit = int(props["message.max.bytes"])
    assert broker_limit >= 10 * 1024 * 1024
    assert broker_limit >= topic_max_message_bytes(DEFAULT_MAX_MESSAGE_BYTES)  # topic limit decides
    assert int(props["replica.fetch.max.bytes"]) >= broker_limit
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_rendered_files_have_no_unfilled_placeholders(tmp_path: Path) -> None:
    assert "${" not in kafka.render_server_properties(_node(tmp_path))
    pom = kafka.render_pom("4.4.0")
    assert "@KAFKA_VERSION@" not in pom
    assert "<artifactId>kafka_2.13</artifactId>\n      <version>4.4.0</version>" in pom


def test_write_node_files_writes_config_and_logging(tmp_path: Path) -> None:
    node = _node(tmp_path)
    kafka.write_node_files(node)

    assert _properties(node.config_path.read_text())["listeners"].endswith(":41002")
    assert "${sys:kafka.logs.dir}/kafka.log" in node.log4j_path.read_text()
    assert not kafka.is_formatted(node)


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {kafka.new_cluster_id() for _ in range(200)}

    assert len(ids) == 200
    for cluster_id in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
        assert not cluster_id.startswith("-")


def test_broker_command_caps_the_heap_and_points_at_our_logging(tmp_path: Path) -> None:
    node = _node(tmp_path)
    command = kafka.broker_command("/usr/bin/java", tmp_path / "libs", node, 512, tmp_path / "logs")

    assert "-Xmx512m" in command
    assert f"-Dlog4j2.configurationFile={node.log4j_path}" in command
    assert f"-Dkafka.logs.dir={tmp_path / 'logs'}" in command
    assert command[-2:] == ["kafka.Kafka", str(node.config_path)]
    assert command[command.index("-cp") + 1] == f"{tmp_path / 'libs'}/*"


def test_first_broker_writes_a_class_archive_and_later_ones_use_it(tmp_path: Path) -> None:
    node = _node(tmp_path)
    archive = tmp_path / "cache" / "kafka-classes.jsa"

    def command() -> list[str]:
        return kafka.broker_command("/usr/bin/java", tmp_path / "libs", node, 512, tmp_path, archive)

    first = command()
    pending = next(arg.split("=", 1)[1] for arg in first if arg.startswith("-XX:ArchiveClassesAtExit="))
    assert Path(pending).parent == node.node_dir  # its own file until known complete

    node.node_dir.mkdir(parents=True)
    Path(pending).write_bytes(b"archive")
    archive.parent.mkdir(parents=True)
    kafka.adopt_class_archive(node.node_dir, archive, exited_cleanly=True)
    assert archive.read_bytes() == b"archive" and not Path(pending).exists()

    later = command()
    assert f"-XX:SharedArchiveFile={archive}" in later
    assert later[0] == "/usr/bin/java" and later[-2] == "kafka.Kafka"


def test_an_archive_from_a_killed_broker_is_discarded(tmp_path: Path) -> None:
    node = _node(tmp_path)
    node.node_dir.mkdir(parents=True)
    archive = tmp_path / "kafka-classes.jsa"
    command = kafka.broker_command("/usr/bin/java", tmp_path, node, 512, tmp_path, class_archive=archive)
    pending = Path(next(a.split("=", 1)[1] for a in command if a.startswith("-XX:ArchiveClassesAtExit=")))
    pending.write_bytes(b"half an archi")

    kafka.adopt_class_archive(node.node_dir, archive, exited_cleanly=False)

    assert not archive.exists() and not pending.exists()
