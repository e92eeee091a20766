"""`lineguard plc` with ``transport: mqtt`` against a real broker (Debian's mosquitto, started here as
`lineguard stack up --with mqtt` would) and the stack's Kafka and MongoDB: every decision is published once,
QoS 1, retained, with consecutive sequences, across SIGKILLed bridges and a full Kafka redelivery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer
from paho.mqtt.client import Client, MQTTMessage
from paho.mqtt.enums import CallbackAPIVersion
from pymongo import MongoClient

from chaos.plc_kill import bridge_command, bridge_env
from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import Endpoints
from lineguard.stack.mosquitto import MosquittoServer, local_server, ping
from lineguard.stack.ports import pick_free_port
from schemas.parts import PartDecision, PartDecisionReason, PartOutcome
from schemas.serde import AvroRecordSerializer

pytestmark = pytest.mark.integration

PARTS = 30


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    server = local_server(tmp_path_factory.mktemp("mosquitto-state"))
    server.start()
    try:
        yield server
    finally:
        server.purge()


class Subscriber:
    """What a PLC (or SCADA) listening on the gate's DDATA topic receives, in order."""

    def __init__(self, broker: MosquittoServer, topic: str) -> None:
        self.payloads: list[dict[str, Any]] = []
        self.retained: list[dict[str, Any]] = []
        self._subscribed = threading.Event()
        self._client = Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:6]}")
        self._client.on_message = self._message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        self._client.subscribe(topic, qos=1)
        assert self._subscribed.wait(10)

    def _message(self, client: Any, userdata: Any, message: MQTTMessage) -> None:
        assert message.qos == 1
        (self.retained if message.retain else self.payloads).append(json.loads(message.payload))

    def parts(self) -> list[str]:
        return [p["part_id"] for p in list(self.payloads)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def _config(tmp_path: Path, url: str, group: str) -> Path:
    path = tmp_path / f"plc-{uuid.uuid4().hex[:4]}.yaml"
    mqtt = {"url": url, "group": group, "edge_node": "line-1", "device": "gate"}
    path.write_text(yaml.safe_dump({"transport": "mqtt", "mqtt": mqtt, "class_codes": {"scratch": 7}}))
    return path


def _decision(n: int) -> PartDecision:
    reject = n % 3 == 0
    now = datetime.now(UTC)
    return PartDecision(
        part_id=f"P-{n:03d}",
        line_id="line-1",
        decision=PartOutcome.REJECT if reject else PartOutcome.PASS,
        reason=PartDecisionReason.DEFECT if reject else PartDecisionReason.ALL_OK,
        rule="any-ng",
        defect_label="scratch" if reject else None,
        first_captured_at=now,
        decided_at=now,
    )


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _terminate_once_connected(bridge: subprocess.Popen[str], timeout_s: float = 60) -> tuple[int, str]:
    """SIGTERM once the bridge is up (its "connected" line: its signal handlers are installed by then), and
    its exit code and output. The acks may all be in MongoDB before a fresh bridge has even started (the
    killed one handed everything over); a SIGTERM during its start-up is Python's default: exit -15."""
    seen: list[str] = []
    read_done = threading.Event()  # the "connected" line, or the end of the output (a bridge that died)

    def read() -> None:
        assert bridge.stdout is not None
        for line in bridge.stdout:
            seen.append(line)
            if ": connected," in line:
                break
        read_done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    read_done.wait(timeout_s)
    assert seen and ": connected," in seen[-1], "".join(seen)[-3000:]
    bridge.send_signal(signal.SIGTERM)
    rest, _ = bridge.communicate(timeout=30)
    return bridge.returncode, "".join(seen) + rest


def _bridge(
    config: Path, topic: str, group: str, endpoints: Endpoints, database: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        bridge_command(config, topic, group),
        env=bridge_env(endpoints.kafka_bootstrap, endpoints.mongodb_uri, database),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_bad_mqtt_config_is_one_line_and_exit_2(tmp_path: Path, endpoints: Endpoints) -> None:
    unreachable = _config(tmp_path, f"mqtt://127.0.0.1:{pick_free_port()}", "g")
    done = _bridge(unreachable, "unused", "g", endpoints, "unused")
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 2, out
    assert "cannot reach the MQTT broker" in out and "Traceback" not in out

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"transport": "mqtt", "mqtt": {"url": "http://x", "group": "a/b"}}))
    done = _bridge(wrong, "unused", "g", endpoints, "unused")
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 2 and "mqtt.url" in out and "Traceback" not in out, out

    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(yaml.safe_dump({"transport": "modbus"}))
    done = _bridge(unknown, "unused", "g", endpoints, "unused")
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 2 and "transport must be opcua or mqtt" in out, out


def test_each_decision_is_published_once_across_kills_and_a_redelivery(
    tmp_path: Path, broker: MosquittoServer, endpoints: Endpoints, kafka_config: dict[str, Any]
) -> None:
    sparkplug_group = f"test-{uuid.uuid4().hex[:8]}"
    topic = f"test.plc-mqtt.{uuid.uuid4().hex[:8]}.part-decisions"
    database = f"test_plc_mqtt_{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_config, [topic], partitions=1)
    config = _config(tmp_path, broker.uri, sparkplug_group)
    subscriber = Subscriber(broker, f"spBv1.0/{sparkplug_group}/DDATA/line-1/gate")
    producer = Producer(kafka_config)
    serialize = AvroRecordSerializer(PartDecision)
    for n in range(PARTS):
        producer.produce(topic, key=f"P-{n:03d}".encode(), value=serialize(_decision(n)))
        if n % 10 == 9:  # a redelivered / repeated decision for a part already on the topic
            producer.produce(topic, key=f"P-{n - 5:03d}".encode(), value=serialize(_decision(n - 5)))
    assert producer.flush(30) == 0
    mongo: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri)
    acks = mongo[database]["plc_acks"]
    bridge: subprocess.Popen[str] | None = None
    try:
        for kill_after in (5, 12, 20):  # SIGKILL mid-stream, three times, then run to the end
            bridge = _bridge(config, topic, "g1", endpoints, database)
            running = bridge
            _wait(
                lambda n=kill_after, b=running: len(subscriber.payloads) >= n or b.poll() is not None,
                90,
                "publishes",
            )
            assert bridge.poll() is None, bridge.communicate()[0]
            bridge.send_signal(signal.SIGKILL)
            bridge.wait(30)
        bridge = _bridge(config, topic, "g1", endpoints, database)
        _wait(lambda: acks.count_documents({}) == PARTS, 90, "every part handed over")
        returncode, out = _terminate_once_connected(bridge)
        assert returncode == 0, out

        expected = [f"P-{n:03d}" for n in range(PARTS)]
        assert subscriber.parts() == expected  # each part once, in order, across the kills
        assert [p["sequence"] for p in subscriber.payloads] == list(range(1, PARTS + 1))
        first = {m["name"]: m["value"] for m in subscriber.payloads[0]["metrics"]}
        assert first == {"Decision": 2, "ClassCode": 7, "ErrorCode": 0, "PartId": "P-000", "Sequence": 1}
        assert {m["name"]: m["value"] for m in subscriber.payloads[1]["metrics"]}["Decision"] == 1

        # A bridge killed between the broker's PUBACK and the MongoDB insert: only the retained state knows.
        acks.delete_one({"_id": expected[-1]})
        bridge = _bridge(config, topic, "g2", endpoints, database)  # a new group: everything redelivered
        _wait(lambda: acks.count_documents({}) == PARTS, 90, "the last ack restored from the retained state")
        returncode, out = _terminate_once_connected(bridge)
        assert returncode == 0, out
        assert subscriber.parts() == expected  # the redelivered decisions were all skipped

        late = Subscriber(broker, f"spBv1.0/{sparkplug_group}/DDATA/line-1/gate")  # a SCADA joining now
        _wait(lambda: late.retained, 10, "the retained gate state")
        assert late.retained[0]["part_id"] == expected[-1] and late.retained[0]["sequence"] == PARTS
        late.close()
    finally:
        if bridge is not None and bridge.poll() is None:
            bridge.kill()
        subscriber.close()
        delete_topics(kafka_config, [topic])
        mongo.drop_database(database)
        mongo.close()


def test_stack_up_with_mqtt_starts_a_broker_and_down_purges_it(
    kafka_config: dict[str, Any], tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_config["bootstrap.servers"],  # set: the stack starts nothing else
        "MONGODB_URI": os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:1/"),
        "LINEGUARD_STACK_STATE_DIR": str(tmp_path / "stack"),
    }
    env.pop("MQTT_URL", None)
    command = [sys.executable, "-m", "lineguard.cli", "stack"]
    up = subprocess.run(
        [*command, "up", "--with", "mqtt"], capture_output=True, text=True, env=env, timeout=60
    )
    try:
        assert up.returncode == 0, up.stderr
        url = up.stdout.strip().removeprefix("export MQTT_URL=")
        port = int(url.rsplit(":", 1)[1])
        assert url == f"mqtt://127.0.0.1:{port}" and ping(port)
    finally:
        down = subprocess.run(
            [*command, "down", "--with", "mqtt", "--purge"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert down.returncode == 0, down.stderr
    assert "stopped: mosquitto (data purged)" in down.stdout
    assert not ping(port) and not (tmp_path / "stack" / "mosquitto").exists()
