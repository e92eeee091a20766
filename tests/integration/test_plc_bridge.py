"""`lineguard plc` against a real OPC UA server (asyncua, standing in for the PLC) and the stack's Kafka and
MongoDB: every decision reaches the PLC once, across a SIGKILLed bridge and a PLC that stops acknowledging."""

from __future__ import annotations

import signal
import socket
import subprocess
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
from pymongo.database import Database

from chaos.plc_kill import bridge_command, bridge_env
from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import Endpoints
from parts.plc_sim import SimulatedPlc, node_ids
from schemas.parts import PartDecision, PartDecisionReason, PartOutcome
from schemas.serde import AvroRecordSerializer

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def plc() -> Iterator[SimulatedPlc]:
    simulated = SimulatedPlc(_free_port()).start()
    try:
        yield simulated
    finally:
        simulated.stop()


def _config(tmp_path: Path, endpoint: str, nodes: dict[str, str]) -> Path:
    path = tmp_path / "plc.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "endpoint": endpoint,
                "nodes": nodes,
                "class_codes": {"scratch": 7},
                "ack_timeout_s": 1.0,
                "heartbeat_s": 0.5,
                "connect_timeout_s": 3,
            }
        )
    )
    return path


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


class _Output:
    """The bridge's output lines, read as they come (a thread), so a test can wait for a log line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)

    def text(self, timeout_s: float = 20) -> str:
        self._reader.join(timeout_s)
        return "".join(self.lines)

    def has(self, fragment: str) -> bool:
        return any(fragment in line for line in list(self.lines))


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


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, plc: SimulatedPlc, endpoints: Endpoints) -> None:
    unknown = _config(tmp_path, plc.endpoint, {**node_ids(), "decision": "ns=2;s=Gate.NoSuchNode"})
    done = _bridge(unknown, "unused", "g", endpoints, "unused")
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 2, out
    assert "decision" in out and "NoSuchNode" in out and "Traceback" not in out

    unreachable = _config(tmp_path, f"opc.tcp://127.0.0.1:{_free_port()}/plc", node_ids())
    done = _bridge(unreachable, "unused", "g", endpoints, "unused")
    out, _ = done.communicate(timeout=60)
    assert done.returncode == 2, out
    assert "cannot reach the OPC UA endpoint" in out and "Traceback" not in out


def test_every_decision_reaches_the_plc_once_across_kills_and_a_silent_plc(
    tmp_path: Path,
    plc: SimulatedPlc,
    endpoints: Endpoints,
    kafka_config: dict[str, Any],
    mongo_db: Database[dict[str, Any]],
) -> None:
    topic = f"test.plc.{uuid.uuid4().hex[:8]}.part-decisions"
    group = f"plc-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_config, [topic], partitions=1)
    config = _config(tmp_path, plc.endpoint, node_ids(plc.namespace_index))
    producer = Producer(kafka_config)
    serialize = AvroRecordSerializer(PartDecision)
    parts = 30

    def publish(numbers: range) -> None:
        for n in numbers:
            producer.produce(topic, key=f"P-{n:03d}".encode(), value=serialize(_decision(n)))
        producer.produce(topic, key=b"P-001", value=serialize(_decision(1)))  # a second decision for P-001
        assert producer.flush(10) == 0

    bridge = _bridge(config, topic, group, endpoints, mongo_db.name)
    try:
        publish(range(parts // 2))
        _wait(lambda: len(plc.received) >= 5, 30, "the first acknowledgements")
        bridge.send_signal(signal.SIGKILL)  # mid-stream, possibly between write and ack, or ack and commit
        bridge.wait(10)
        plc.acknowledging.clear()  # the PLC goes silent: decisions must wait in Kafka, not vanish
        bridge = _bridge(config, topic, group, endpoints, mongo_db.name)
        output = _Output(bridge)
        publish(range(parts // 2, parts))
        # The restarted bridge raises a request the silent PLC ignores; after ack_timeout_s it raises the
        # alarm and keeps waiting. Waited for in its log, not by a fixed sleep: a loaded machine may take
        # seconds just to start the bridge (the killed one may have left `request` set, so the PLC's
        # ignored scans alone do not show that the new bridge is there).
        _wait(lambda: output.has("ALARM: PLC has not acknowledged"), 60, "the restarted bridge's alarm")
        silent_count = len(plc.received)
        plc.acknowledging.set()
        _wait(lambda: len({r.part_id for r in plc.received}) >= parts, 40, "every part at the PLC")
        time.sleep(1.0)  # a duplicate write would land now
    finally:
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(20)
        delete_topics(kafka_config, [topic])
    out = output.text()

    part_ids = [r.part_id for r in plc.received]
    assert sorted(part_ids) == [f"P-{n:03d}" for n in range(parts)]  # none lost, none twice
    assert silent_count < parts
    assert "ALARM: PLC has not acknowledged" in out
    rejected = {r.part_id: r for r in plc.received if r.decision == 2}
    assert set(rejected) == {f"P-{n:03d}" for n in range(0, parts, 3)}
    assert {r.class_code for r in rejected.values()} == {7}
    sequences = [r.sequence for r in plc.received]
    assert sequences == sorted(sequences) and len(set(sequences)) == parts
    assert mongo_db.plc_acks.count_documents({}) == parts
