"""Prune rate of `lineguard claimcheck prune` on N stored objects (half of them expired), real MongoDB.

    source /tmp/stack_exports.txt; nice -n 10 .venv/bin/python -m bench.bench_claimcheck_prune --objects 5000

Files and chunks documents are inserted in bulk (as GridFS lays them out: one 4 KiB chunk per object) so the
figure is the pruner's own cost: the scan, one conditional delete per files document, one per chunk set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import MongoClient

from infra.claimcheck_retention import prune_bucket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    args = parser.parse_args()
    client: MongoClient[dict[str, Any]] = MongoClient(os.environ["MONGODB_URI"])
    name = f"bench_prune_{uuid.uuid4().hex[:8]}"
    db = client[name]
    try:
        now = datetime.now(UTC)
        files, chunks = [], []
        for index in range(args.objects):
            digest = hashlib.sha256(index.to_bytes(8, "big")).hexdigest()
            moment = now - (timedelta(hours=2) if index % 2 else timedelta(minutes=1))
            files.append(
                {
                    "_id": digest,
                    "length": 4096,
                    "chunkSize": 261120,
                    "uploadDate": moment,
                    "metadata": {"sha256": digest, "referenced_at": moment},
                }
            )
            chunks.append({"files_id": digest, "n": 0, "data": b"\0" * 4096})
        # The indexes GridFS creates on its first upload (the pruner deletes chunks by files_id).
        db["frames.chunks"].create_index([("files_id", 1), ("n", 1)], unique=True)
        db["frames.files"].create_index([("filename", 1), ("uploadDate", 1)])
        db["frames.files"].insert_many(files)
        db["frames.chunks"].insert_many(chunks)
        report = prune_bucket(db, "frames", now - timedelta(hours=1))
        print(
            json.dumps(
                {
                    "objects": report.scanned,
                    "deleted": report.deleted,
                    "kept": report.kept,
                    "seconds": round(report.seconds, 2),
                    "scanned_per_s": round(report.scanned / report.seconds),
                    "deleted_per_s": round(report.deleted / report.seconds),
                }
            )
        )
    finally:
        client.drop_database(name)


if __name__ == "__main__":
    main()
