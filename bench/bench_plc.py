"""Verdict -> PLC: per-stage latency of the part join and the OPC UA bridge, and a bridge-kill loop.

Needs the stack's Kafka and MongoDB (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI). A stand-in PLC (asyncua server,
parts.plc_sim) acknowledges every result. Latency mode publishes InspectionResults (3 views per part, capture
time = publish time: the worker's own capture->result latency is bench_workers' figure) at --parts-per-s and
reports p50/p99 of: last view captured -> part decided, decided -> PLC write (result ready), write -> PLC ack,
and the sum capture -> PLC write against --deadline-ms.

    .venv/bin/python bench/bench_plc.py --parts 300 --parts-per-s 20
    .venv/bin/python bench/bench_plc.py --kills 20 --parts 200   # SIGKILL the bridge 20 times
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, Producer
from pymongo import MongoClient

from chaos.plc_kill import kill_loop
from infra.kafka_topics import delete_topics
from lineguard.stack.endpoints import resolve_endpoints
from parts.plc import PlcBridge
from parts.plc_config import plc_config_from_dict
from parts.plc_sim import SimulatedPlc, node_ids
from parts.rules import part_rules_from_dict
from parts.service import PartService, PartTopics
from schemas.parts import PartDecision
from schemas.records import InspectionResult, KafkaCoordinates, ModelInfo, Task, Verdict
from schemas.serde import AvroRecordSerializer

CAMERAS = ("cam-a", "cam-b", "cam-c")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _result(part: str, camera: str, frame: int, verdict: Verdict) -> InspectionResult:
    now = datetime.now(UTC)
    return InspectionResult(
        camera_id=camera,
        line_id="line-1",
        station_id="st-1",
        frame_number=frame,
        part_id=part,
        source=KafkaCoordinates(topic="frames", partition=0, offset=frame),
        model=ModelInfo(name="bench", version="1", task=Task.CLASSIFICATION),
        verdict=verdict,
        captured_at=now,
        received_at=now,
        inferred_at=now,
        batch_size=1,
        worker_id="bench",
    )


def latency(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = resolve_endpoints()
    kafka = endpoints.kafka_config()
    topics = PartTopics.with_prefix(f"bench.plc.{uuid.uuid4().hex[:8]}")
    mongo: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri)
    database = mongo[f"bench_plc_{uuid.uuid4().hex[:8]}"]
    rules = part_rules_from_dict({"lines": {"line-1": {"expected_views": list(CAMERAS), "timeout_ms": 2000}}})
    plc = SimulatedPlc(_free_port()).start()
    stop = threading.Event()
    service = PartService(
        kafka, database, rules, topics, group_id=f"bench-{uuid.uuid4().hex[:6]}", partitions=3
    )
    joiner = threading.Thread(target=service.run, args=(stop,), daemon=True)
    joiner.start()
    config = plc_config_from_dict(
        {"endpoint": plc.endpoint, "nodes": node_ids(plc.namespace_index), "ack_timeout_s": 1.0}
    )
    writes: list[tuple[PartDecision, float, float]] = []
    consumer = Consumer(
        {
            **kafka,
            "group.id": f"bench-plc-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    last_captured: dict[str, float] = {}

    async def bridge_main(done: asyncio.Event) -> None:
        bridge = PlcBridge(
            config, consumer, database["plc_acks"], on_write=lambda d, w, a: writes.append((d, w, a))
        )
        await bridge.connect()
        consumer.subscribe([topics.decisions])
        await bridge.run(done)
        await bridge.close()

    loop = asyncio.new_event_loop()
    done = asyncio.Event()
    bridge_thread = threading.Thread(target=loop.run_until_complete, args=(bridge_main(done),), daemon=True)
    bridge_thread.start()
    producer = Producer({**kafka, "linger.ms": 1})
    serialize = AvroRecordSerializer(InspectionResult)
    # One warm-up part through the whole path before the clock starts: a fixed sleep was not enough on a
    # loaded machine (groups still joining, the decisions topic not yet seen), and every part then queued.
    for i, camera in enumerate(CAMERAS):
        warm_up = _result("W-000000", camera, i, Verdict.OK)
        producer.produce(topics.results, key=camera.encode(), value=serialize(warm_up))
    producer.flush(10)
    ready_by = time.monotonic() + 120
    while not writes and time.monotonic() < ready_by:
        time.sleep(0.05)
    if not writes:
        raise SystemExit("the warm-up part did not reach the PLC within 120 s")
    writes.clear()
    rng = random.Random(7)
    period = 1.0 / args.parts_per_s
    started = time.monotonic()
    for n in range(args.parts):
        part = f"B-{n:06d}"
        for i, camera in enumerate(CAMERAS):
            verdict = Verdict.DEFECT if rng.random() < 0.05 else Verdict.OK
            result = _result(part, camera, 3 + n * 3 + i, verdict)
            producer.produce(topics.results, key=camera.encode(), value=serialize(result))
        last_captured[part] = result.captured_at.timestamp()
        producer.poll(0)
        time.sleep(max(0.0, started + (n + 1) * period - time.monotonic()))
    producer.flush(10)
    deadline = time.monotonic() + 60
    while len(writes) < args.parts and time.monotonic() < deadline:
        time.sleep(0.1)
    loop.call_soon_threadsafe(done.set)
    bridge_thread.join(10)
    stop.set()
    joiner.join(10)
    plc.stop()
    delete_topics(kafka, [topics.results, topics.views, topics.changelog, topics.decisions])
    mongo.drop_database(database.name)
    join_ms = [(d.decided_at.timestamp() - last_captured[d.part_id]) * 1000 for d, _, _ in writes]
    to_plc_ms = [(w - d.decided_at.timestamp()) * 1000 for d, w, _ in writes]
    ack_ms = [(a - w) * 1000 for _, w, a in writes]
    total_ms = [(w - last_captured[d.part_id]) * 1000 for d, w, _ in writes]
    stages = {
        "captured->decided": join_ms,
        "decided->plc_write": to_plc_ms,
        "plc_write->ack": ack_ms,
        "captured->plc_write": total_ms,
    }
    return {
        "parts": args.parts,
        "parts_per_s": args.parts_per_s,
        "views_per_s": args.parts_per_s * 3,
        "written": len(writes),
        "duplicates": len(writes) - len({d.part_id for d, _, _ in writes}),
        "deadline_ms": args.deadline_ms,
        "within_deadline": sum(1 for t in total_ms if t <= args.deadline_ms),
        "stages_ms": {
            name: {"p50": round(_pct(v, 0.5), 1), "p99": round(_pct(v, 0.99), 1)}
            for name, v in stages.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", type=int, default=300)
    parser.add_argument("--parts-per-s", type=float, default=20.0)
    parser.add_argument("--deadline-ms", type=float, default=200.0)
    parser.add_argument("--kills", type=int, default=0, help="bridge-kill loop instead of latency")
    parser.add_argument("--silent-s", type=float, default=0.0, help="kill loop: PLC silent this long once")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = kill_loop(args) if args.kills else latency(args)
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
