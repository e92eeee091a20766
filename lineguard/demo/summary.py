"""What a demo run reports when it ends: counts, latency, accuracy, the model and where everything went."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lineguard.demo.options import DemoOptions
from lineguard.demo.tally import DemoTally
from lineguard.stack.endpoints import Endpoints

if TYPE_CHECKING:
    from streams.runner import RunSummary
    from vision.artifact import ModelMetadata

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How the run went, beyond what the tally counted."""

    started: float  # time.monotonic() at the start
    model_path: Path
    metadata: ModelMetadata
    stopped_by: str
    worker_exit: int | None
    worker_log: Path
    unreadable: int
    lag: int | None
    camera: RunSummary | None


def count_documents(options: DemoOptions, endpoints: Endpoints, tally: DemoTally) -> int | None:
    """The MongoDB documents of this run's frames (None when MongoDB did not answer)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    identities = tally.identities()
    if not identities:
        return 0
    numbers = [number for _camera, number in identities]
    client: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=5_000)
    try:
        collection = client[options.database][options.collection]
        return int(
            collection.count_documents(
                {
                    "camera_id": options.camera_id,
                    "frame_number": {"$gte": min(numbers), "$lte": max(numbers)},
                }
            )
        )
    except PyMongoError as exc:
        log.warning("could not count the MongoDB documents: %s", exc)
        return None
    finally:
        client.close()


def demo_summary(
    options: DemoOptions, endpoints: Endpoints, tally: DemoTally, outcome: RunOutcome
) -> dict[str, Any]:
    """The JSON-ready summary the CLI prints and the tests read."""
    snapshot = tally.snapshot()
    camera = outcome.camera
    topics = options.topics
    metadata = outcome.metadata
    delivered = int(camera.close.delivered) if camera is not None else snapshot.produced
    return {
        "stopped_by": outcome.stopped_by,
        "duration_s": round(time.monotonic() - outcome.started, 1),
        "frames_requested": options.frames,
        "produced": snapshot.produced,
        "delivered": delivered,
        "results": snapshot.results,
        "missing_results": max(0, delivered - snapshot.results - snapshot.dead_letters),
        "duplicate_results": tally.duplicates,
        "foreign_results": snapshot.foreign_results,
        "unreadable_records": outcome.unreadable,
        "verdicts": snapshot.verdicts,
        "defects": snapshot.verdicts.get("DEFECT", 0),
        "defects_by_class": snapshot.defects_by_class,
        "defect_events": snapshot.defect_events,
        "dead_letters": snapshot.dead_letters,
        "dead_letters_by_reason": snapshot.dead_letters_by_reason,
        "mongodb_documents": count_documents(options, endpoints, tally),
        "consumer_lag": outcome.lag,
        "throughput_fps": round(tally.throughput_fps(), 2),
        "latency_ms": tally.latency_ms(),
        "latency_segments_ms": tally.latency_segments_ms(),
        "accuracy": tally.accuracy(metadata.classes),
        "model": {
            "name": metadata.name,
            "version": metadata.version,
            "task": metadata.task.value,
            "path": str(outcome.model_path),
        },
        "worker": {"exit_code": outcome.worker_exit, "log": str(outcome.worker_log)},
        "where": {
            "kafka": endpoints.kafka_bootstrap,
            "topics": {
                "frames": topics.frames,
                "results": topics.results,
                "defect_events": topics.defect_events,
                "dead_letters": topics.dead_letters,
            },
            "consumer_group": options.group_id,
            "mongodb": {"database": options.database, "collection": options.collection},
            # The inspection console over this run's topics and database (issue 12).
            "console": {
                "url": "http://127.0.0.1:8765/",
                "command": f"lineguard console --database {options.database} "
                f"--topic-prefix {options.topic_prefix} --worker-group {options.group_id}",
            },
        },
    }
