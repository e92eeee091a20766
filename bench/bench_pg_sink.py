"""PostgreSQL sink throughput: rows/s from the results topic into PostgreSQL, offsets committed after COMMIT.

Produces ``--rows`` sample results to a fresh topic, then runs the sink in process (same code as
``lineguard sink postgres``) until every row is in PostgreSQL and its offsets are committed, and prints rows/s
(sink start to last commit, the group join left out) and the committed offsets against the topic's end.
PostgreSQL: ``POSTGRES_URI`` or a throw-away local server from the Debian binaries; Kafka: the stack's.

    .venv/bin/python bench/bench_pg_sink.py --rows 100000 [--batch-size 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, TopicPartition

from infra.kafka_topics import delete_topics, ensure_topics
from lineguard.stack.endpoints import resolve_endpoints
from lineguard.stack.postgres import local_server
from mes.consumer import PostgresSink, SinkConfig
from mes.samples import produce, sample_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    kafka = resolve_endpoints().kafka_config()
    topic = f"bench.pg-sink.{uuid.uuid4().hex[:8]}.results"
    ensure_topics(kafka, [topic], partitions=3)
    server = None
    uri = os.environ.get("POSTGRES_URI")
    if not uri:
        server = local_server(Path(tempfile.mkdtemp(prefix="bench-pg-")))
        server.start()
        uri = server.uri
    database = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(uri, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    db_uri = uri.rsplit("/", 1)[0] + "/" + database
    try:
        t0 = time.perf_counter()
        produce(kafka, topic, sample_results(args.rows, every_s=0.05))
        produce_s = time.perf_counter() - t0
        group = f"bench-{uuid.uuid4().hex[:6]}"
        sink = PostgresSink(kafka, SinkConfig(postgres_uri=db_uri, topic=topic, group_id=group,
                                              batch_size=args.batch_size))  # fmt: skip
        stop = threading.Event()
        thread = threading.Thread(target=sink.run, args=(stop,))
        thread.start()
        first_at: float | None = None
        while sink.stats.rows < args.rows:
            if first_at is None and sink.stats.rows > 0:
                first_at = time.perf_counter()
                first_rows = sink.stats.rows
            time.sleep(0.02)
        end_at = time.perf_counter()
        stop.set()
        thread.join()
        with psycopg.connect(db_uri) as connection:
            row = connection.execute("SELECT count(*) FROM inspections").fetchone()
        durable = int(row[0]) if row else 0
        check = Consumer({**kafka, "group.id": group})
        committed = check.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
        ends = [check.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)]
        check.close()
        assert first_at is not None
        figures = {
            "rows": args.rows,
            "batch_size": args.batch_size,
            "produce_s": round(produce_s, 2),
            "rows_in_postgres": durable,
            "committed_offsets": sum(max(tp.offset, 0) for tp in committed),  # an unused partition: none
            "topic_end_offsets": sum(ends),
            "sink_rows_per_s": round((args.rows - first_rows) / (end_at - first_at)),
            "batches": sink.stats.batches,
        }
    finally:
        delete_topics(kafka, [topic])
        if server is not None:
            server.purge()
    print(json.dumps(figures) if args.json else "\n".join(f"{k:>20}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
