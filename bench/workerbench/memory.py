"""Phase 5, memory: a fresh worker against a large backlog; its peak RSS (VmHWM)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lineguard.demo.tally import DemoTally
from lineguard.demo.watch import OutputWatcher
from lineguard.stack.endpoints import Endpoints
from workerbench.common import Sizes, say
from workerbench.frames import FrameFactory, publish_backlog
from workerbench.worker_process import BenchWorker, Deployment


def memory(
    endpoints: Endpoints, model_path: Path, factory: FrameFactory, sizes: Sizes, log_dir: Path
) -> dict[str, Any]:
    deployment = Deployment.create(endpoints, "rss")
    config, topics = deployment.kafka_config, deployment.topics
    worker: BenchWorker | None = None
    try:
        started = time.monotonic()
        megabytes = publish_backlog(config, topics.frames, factory, sizes.backlog, None)
        say(
            f"  backlog of {sizes.backlog} frames ({megabytes:.0f} MB, "
            f"{megabytes * 1000 / sizes.backlog:.0f} KB each) in {time.monotonic() - started:.0f} s; "
            f"watching a fresh worker for {sizes.rss_s:.0f} s"
        )
        tally = DemoTally()  # counts results without a ledger: every one is "foreign", which is fine here
        watcher = OutputWatcher(config, topics, tally)
        watcher.start()
        worker = BenchWorker(endpoints, topics, deployment.database, model_path, log_dir)
        samples: list[float] = []
        deadline = time.monotonic() + sizes.rss_s
        while time.monotonic() < deadline and worker.process.poll() is None:
            rss = worker.rss_mb()
            if rss is not None:
                samples.append(rss)
            time.sleep(0.5)
        peak = worker.peak_rss_mb()
        processed = tally.snapshot().foreign_results
        exit_code, stop_s = worker.stop()
        watcher.stop()
        return {
            "peak_rss_mb": peak,
            "rss_last_mb": samples[-1] if samples else None,
            "rss_backlog_frames": sizes.backlog,
            "rss_backlog_mb": megabytes,
            "rss_frames_processed": processed,
            "rss_worker_exit_code": exit_code,
            "rss_worker_stop_s": stop_s,
        }
    finally:
        if worker is not None:
            worker.stop()
        deployment.remove()
