"""Capacity model for a plant: worker cores, partitions and KEDA settings from the measured benchmark.

Nothing here is measured: the inputs are the README's `bench/bench_workers.py` run on the 2-core machine
(pipeline 179 frames/s with the worker at 1.50 cores; 316 MB peak RSS on a 20,000-frame backlog), and the
outputs are what deploy/k8s uses. `python bench/capacity.py` prints the README's table;
tests/unit/test_k8s_manifests.py checks that the manifests carry these numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Measured (README, "Run the demo": bench_workers.py --json, shipped model, 1280x1024 JPEG, batch 32)
PIPELINE_FPS = 179.0  # Kafka -> worker -> Kafka + MongoDB, one worker
WORKER_CORES = 1.50  # cores that worker used at that rate
PEAK_RSS_MB = 316.0

# Chosen
LATENCY_BUDGET_S = 2.0  # a backlog one worker clears within this is fine; more means scale out
TARGET_UTILISATION = 0.7  # the 70 % load point, where the README's p99 latency was measured
CAMERA_FPS = 5.0  # frames per second per camera (the compose camera's rate)

FPS_PER_CORE = PIPELINE_FPS / WORKER_CORES
WORKER_CPU_MILLICORES = math.ceil(WORKER_CORES * 1000 / 100) * 100  # request what the benchmark used
WORKER_MEMORY_MI = 512  # peak RSS 316 MB plus headroom for a model swap
WORKER_MEMORY_LIMIT_MI = 1024
# KEDA's Kafka scaler asks for ceil(total lag / lagThreshold) replicas: each worker owns as much backlog as
# it clears within the budget.
LAG_THRESHOLD = int(PIPELINE_FPS * LATENCY_BUDGET_S)
BACKLOG_SECONDS_THRESHOLD = LATENCY_BUDGET_S  # the Prometheus trigger on lineguard_lag_backlog_seconds
BASE_PARTITIONS = 12  # deploy/k8s: frames topic partitions = KEDA maxReplicaCount


@dataclass(frozen=True)
class Plan:
    cameras: int
    fps: float
    cores: float
    workers: int
    partitions: int
    max_replicas: int


def plan(cameras: int, camera_fps: float = CAMERA_FPS) -> Plan:
    """Workers at the target utilisation; partitions = twice that (room to scale out), at least 6."""
    fps = cameras * camera_fps
    workers = max(1, math.ceil(fps / (PIPELINE_FPS * TARGET_UTILISATION)))
    partitions = max(6, 2 * workers)
    return Plan(cameras, fps, fps / FPS_PER_CORE, workers, partitions, partitions)


def table(sizes: tuple[int, ...] = (10, 50, 200)) -> str:
    rows = [
        "| cameras (x 5 fps) | frames/s | worker cores | workers at 70 % | partitions = maxReplicaCount "
        "| lagThreshold | backlog trigger |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        p = plan(size)
        rows.append(
            f"| {p.cameras} | {p.fps:.0f} | {p.cores:.1f} | {p.workers} | {p.partitions} | {LAG_THRESHOLD} "
            f"| {BACKLOG_SECONDS_THRESHOLD:.0f} s |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    print(
        f"frames/s per core: {FPS_PER_CORE:.0f}; worker request {WORKER_CPU_MILLICORES}m CPU, "
        f"{WORKER_MEMORY_MI}Mi; lagThreshold {LAG_THRESHOLD} "
        f"({PIPELINE_FPS:.0f} frames/s x {LATENCY_BUDGET_S} s)"
    )
    print(table())
