"""Chaos fault for the PLC bridge: SIGKILL `lineguard plc` mid-handshake again and again (and silence the PLC
for a while), then audit what the stand-in PLC received: every decision exactly once.

``python -m chaos plc-kills --kills 20 --parts 200 --silent-s 30`` (or ``bench/bench_plc.py --kills 20``).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer
from pymongo import MongoClient

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import resolve_endpoints
from parts.plc_sim import SimulatedPlc, node_ids
from schemas.parts import PartDecision, PartDecisionReason, PartOutcome
from schemas.serde import AvroRecordSerializer


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bridge_env(kafka_bootstrap: str, mongodb_uri: str, database: str) -> dict[str, str]:
    """The environment of a `lineguard plc` subprocess on these servers, acks in ``database``."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "MONGODB_URI": mongodb_uri,
        "LINEGUARD_MONGODB_DATABASE": database,
    }


def bridge_command(config: Path, topic: str, group: str) -> list[str]:
    """`lineguard plc` as a subprocess command line (this interpreter, so the same environment)."""
    return [
        sys.executable,
        "-m",
        "lineguard.cli",
        "plc",
        "--config",
        str(config),
        "--topic",
        topic,
        "--group",
        group,
    ]


def kill_loop(args: argparse.Namespace) -> dict[str, Any]:  # parts, kills, silent_s
    """Decisions straight onto the topic, the bridge as a subprocess, SIGKILLed --kills times at random."""
    endpoints = resolve_endpoints()
    kafka = endpoints.kafka_config()
    topic = f"bench.plc.{uuid.uuid4().hex[:8]}.part-decisions"
    group = f"bench-plc-{uuid.uuid4().hex[:6]}"
    database = f"bench_plc_{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka, [topic], partitions=1)
    plc = SimulatedPlc(_free_port()).start()
    config = Path(tempfile.mkdtemp()) / "plc.yaml"
    config.write_text(
        yaml.safe_dump(
            {"endpoint": plc.endpoint, "nodes": node_ids(plc.namespace_index), "ack_timeout_s": 5.0}
        )
    )
    env = bridge_env(endpoints.kafka_bootstrap, endpoints.mongodb_uri, database)
    command = bridge_command(config, topic, group)
    producer = Producer(kafka)
    serialize = AvroRecordSerializer(PartDecision)
    now = datetime.now(UTC)
    for n in range(args.parts):
        decision = PartDecision(
            part_id=f"K-{n:05d}",
            line_id="line-1",
            decision=PartOutcome.REJECT,
            reason=PartDecisionReason.DEFECT,
            rule="any-ng",
            first_captured_at=now,
            decided_at=now,
        )
        producer.produce(topic, key=decision.part_id.encode(), value=serialize(decision))
    producer.flush(10)
    rng = random.Random(11)
    kills = 0
    started = time.monotonic()
    bridge = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len({r.part_id for r in plc.received}) < args.parts and time.monotonic() - started < 600:
        if kills < args.kills:
            target = len(plc.received) + rng.randint(1, 8)  # kill after 1..8 more acknowledged parts
            while len(plc.received) < min(target, args.parts):
                time.sleep(0.005)
            bridge.send_signal(signal.SIGKILL)
            bridge.wait()
            kills += 1
            bridge = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if kills == args.kills // 2 and getattr(args, "silent_s", 0) > 0:
                plc.acknowledging.clear()  # the PLC stops answering: the bridge must hold, not drop
                time.sleep(args.silent_s)
                plc.acknowledging.set()
        else:
            time.sleep(0.1)
    bridge.send_signal(signal.SIGTERM)
    bridge.wait(20)
    plc.stop()
    delete_topics(kafka, [topic])
    MongoClient(endpoints.mongodb_uri).drop_database(database)
    received = [r.part_id for r in plc.received]
    return {
        "parts": args.parts,
        "kills": kills,
        "received": len(received),
        "duplicates": len(received) - len(set(received)),
        "lost": args.parts - len(set(received)),
        "silent_s": getattr(args, "silent_s", 0),
        "plc_scans_with_an_unanswered_request": plc.ignored_scans,  # > 0: the bridge held during the silence
        "seconds": round(time.monotonic() - started, 1),
    }


def passed(report: dict[str, Any]) -> bool:
    return report["duplicates"] == 0 and report["lost"] == 0
