"""Live counters: Redis against an in-process store, the measurement behind choosing Redis (issue 15).

Measured on the same seeded results (3 lines, 20 results/s per line of capture time, 10 % defects):

- apply: results/s counted, in batches, by the in-process store, by Redis with ``appendfsync always`` (the
  stack's setting: a step is on disk before Kafka offsets are committed) and with ``everysec``;
- decode: results/s of Avro bytes -> tally, the cost of rebuilding an in-process store from the topic;
- read: the console's query (the last ``--windows`` windows of every line) p50/p99, from another client;
- restart: Redis stopped and started again (AOF loaded) vs rebuilding an in-process store by replaying the
  retention (``--retention-h`` hours at ``--line-rate`` results/s, at the measured decode rate);
- memory: Redis bytes per counted result (the seen-id sets dominate);
- end to end (unless ``--no-kafka``): `CountersConsumer` from a fresh results topic into Redis, records/s.

    nice -n 10 .venv/bin/python bench/bench_counters.py [--results 200000] [--batch-size 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import resolve_endpoints
from lineguard.stack.redis_server import RedisServer, local_server
from mes.samples import produce, sample_results
from quality.counters.consumer import CounterConfig, CountersConsumer
from quality.counters.redis_store import RedisStore, connect
from quality.counters.store import CounterStore, InProcessStore
from quality.counters.tally import Tally, tally
from schemas.records import InspectionResult
from schemas.serde import AvroRecordDeserializer, AvroRecordSerializer

WINDOW_S = 60


def _apply_rate(store: CounterStore, tallies: Sequence[Tally], batch: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(tallies), batch):
        store.apply(tallies[i : i + batch], {0: i + batch}, "bench:results")
    return len(tallies) / (time.perf_counter() - started)


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 3),
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 3),
    }


def _read_latency(store: CounterStore, windows: int, repeats: int = 300) -> dict[str, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for line in store.lines():
            store.recent(line, windows)
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def _end_to_end(results: Sequence[InspectionResult], url: str, batch: int) -> float:
    kafka = resolve_endpoints().kafka_config()
    topic = f"bench.counters.{uuid.uuid4().hex[:8]}.results"
    ensure_topics(kafka, [topic], partitions=3)
    try:
        produce(kafka, topic, results)
        store = RedisStore(connect(url), WINDOW_S, prefix=f"bench-e2e-{uuid.uuid4().hex[:6]}")
        consumer = CountersConsumer(kafka, CounterConfig(topic=topic, group_id=f"b-{uuid.uuid4().hex[:6]}",
                                                         batch_size=batch), store)  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=consumer.run, args=(stop,))
        thread.start()
        while consumer.stats.records == 0:  # the clock starts at the first batch: group join left out
            time.sleep(0.01)
        started, first = time.perf_counter(), consumer.stats.records
        while consumer.stats.records < len(results):
            time.sleep(0.01)
        rate = (len(results) - first) / (time.perf_counter() - started)
        stop.set()
        thread.join()
        return rate
    finally:
        delete_topics(kafka, [topic])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--windows", type=int, default=60, help="windows per line the console reads")
    parser.add_argument("--line-rate", type=float, default=300.0, help="results/s of the plant, for restart")
    parser.add_argument("--retention-h", type=float, default=24.0)
    parser.add_argument("--no-kafka", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results = sample_results(args.results, lines=3, every_s=1 / 60)
    encoded = [AvroRecordSerializer(InspectionResult)(r) for r in results]
    decode = AvroRecordDeserializer(InspectionResult)
    started = time.perf_counter()
    tallies = [tally(decode(blob), WINDOW_S) for blob in encoded]
    decode_rate = len(encoded) / (time.perf_counter() - started)

    report: dict[str, object] = {"results": args.results, "batch_size": args.batch_size}
    memory = InProcessStore(WINDOW_S)
    report["apply_in_process_per_s"] = round(_apply_rate(memory, tallies, args.batch_size))
    report["read_in_process"] = _read_latency(memory, args.windows)
    report["decode_tally_per_s"] = round(decode_rate)

    server = local_server(Path(tempfile.mkdtemp(prefix="bench-redis-")))
    server.start()
    try:
        client = connect(server.uri)
        for policy in ("everysec", "always"):
            client.config_set("appendfsync", policy)
            store = RedisStore(client, WINDOW_S, prefix=f"bench-{policy}")
            report[f"apply_redis_{policy}_per_s"] = round(_apply_rate(store, tallies, args.batch_size))
        client.delete(*client.keys("bench-everysec:*"))
        report["read_redis"] = _read_latency(RedisStore(connect(server.uri), WINDOW_S, prefix="bench-always"),
                                             args.windows)  # fmt: skip
        used = int(client.info("memory")["used_memory"]) - int(client.info("memory")["used_memory_startup"])
        report["redis_bytes_per_result"] = round(used / args.results)
        server.stop()
        started = time.perf_counter()
        RedisServer(server.home, server.port).start()
        report["redis_restart_s"] = round(time.perf_counter() - started, 2)
        retained = args.line_rate * args.retention_h * 3600
        report["in_process_rebuild_s"] = round(retained / decode_rate, 1)
        report["retained_results"] = int(retained)
        report["redis_memory_for_retention_mb"] = round(retained * used / args.results / 2**20)
        if not args.no_kafka:
            report["end_to_end_redis_per_s"] = round(_end_to_end(results, server.uri, args.batch_size))
    finally:
        server.purge()
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
