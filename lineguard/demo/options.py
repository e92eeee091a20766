"""What a demo run is configured with and shows: its options (topics, group), the live view's status, the
services it uses (the environment, else the running local stack, else a started one) and its model."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from infra.settings import default_cache_dir
from lineguard.demo.tally import Snapshot
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV, Endpoints, resolve_endpoints
from schemas.errors import ConfigurationError
from schemas.topics import TopicNames

if TYPE_CHECKING:
    from vision.artifact import ModelMetadata


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Everything one demo run is configured with (the CLI fills it from its options)."""

    frames: int = 300
    fps: float = 10.0
    width: int = 640
    height: int = 480
    defect_rate: float = 0.3
    seed: int = 0
    model: Path | None = None
    topic_prefix: str = "lineguard-demo"
    partitions: int = 3
    database: str = "lineguard_demo"
    collection: str = "inspections"
    camera_id: str = "demo-camera-1"
    line_id: str = "demo-line-1"
    max_batch_size: int = 16
    max_wait_ms: float = 20.0
    worker_start_timeout_s: float = 120.0
    drain_timeout_s: float = 60.0  # after the last frame: how long to wait for outstanding results
    log_dir: Path = field(default_factory=lambda: default_cache_dir() / "demo")

    @property
    def topics(self) -> TopicNames:
        return TopicNames.with_prefix(self.topic_prefix)

    @property
    def group_id(self) -> str:
        return f"{self.topic_prefix}-workers"


@dataclass(frozen=True, slots=True)
class LiveStatus:
    """What the live view shows at one refresh."""

    phase: str
    elapsed_s: float
    frames_target: int
    snapshot: Snapshot
    lag: int | None


def prepare_endpoints(start_stack: bool, progress: Callable[[str], None]) -> Endpoints:
    """The services to use: the environment variables, else the running local stack, else start it."""
    try:
        return resolve_endpoints()
    except ConfigurationError:
        if not start_stack:
            raise
    from lineguard.stack.launcher import LocalStack

    needed = [
        name for name, var in (("kafka", KAFKA_ENV), ("mongodb", MONGODB_ENV)) if not os.environ.get(var)
    ]
    progress(f"starting the local stack ({', '.join(needed)}); the first start downloads Kafka and FerretDB")
    stack = LocalStack(progress=progress)
    stack.up(services=needed)
    return resolve_endpoints(state_dir=stack.state_dir)


def resolve_model(path: Path | None) -> tuple[Path, ModelMetadata]:
    """The artifact directory and its metadata; a missing or broken artifact is a ConfigurationError."""
    from vision.artifact import load_metadata
    from workers.pipeline import default_model_path

    directory = path if path is not None else default_model_path()
    return directory, load_metadata(directory)
