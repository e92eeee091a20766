"""Settings of one inference worker process (env prefix ``LINEGUARD_WORKER_``), parsed once by the CLI.

Kafka and MongoDB connection details live in :mod:`infra.settings` (``KafkaSettings``, ``MongoSettings``);
this object holds what the worker itself decides: topics, group, model, batching, bounds and delivery mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.kafka_topics import topic_max_message_bytes
from schemas.topics import (
    DEAD_LETTER_TOPIC,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFECT_EVENTS_TOPIC,
    FRAMES_TOPIC,
    RESULTS_TOPIC,
    TopicNames,
)
from workers.identity import stable_worker_id

BackendName = Literal["auto", "onnx", "keras", "tensorflow"]
DeviceName = Literal["cpu", "cuda", "tensorrt", "auto"]
WorkerRole = Literal["production", "shadow"]


def default_worker_id(data: dict[str, Any] | None = None) -> str:
    """``<hostname>-<slot>``, stable across restarts (workers.identity); ``data``: fields validated so far."""

    return stable_worker_id(str((data or {}).get("group_id", "lineguard-workers")))


class WorkerSettings(BaseSettings):
    """What one worker consumes, which model it runs, how it batches and how it delivers."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_WORKER_", extra="ignore")

    # Role: a shadow worker (workers.shadow) runs a candidate model beside production; its outputs must be
    # its own (checked below) and its metrics carry role="shadow".
    role: WorkerRole = "production"

    # Topics and group
    frames_topic: str = FRAMES_TOPIC
    results_topic: str = RESULTS_TOPIC
    defect_events_topic: str = DEFECT_EVENTS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    group_id: str = "lineguard-workers"
    create_topics: bool = Field(
        default=True, description="create the four topics at start when missing (needs the admin right)"
    )
    topic_partitions: int = Field(default=3, ge=1, description="partitions of topics this worker creates")
    worker_id: str = Field(
        default_factory=default_worker_id,
        description="Names this worker in results and dead letters; with --exactly-once also the stable "
        "part of its transactional.id, so a restarted worker fences its killed predecessor.",
    )

    # Model
    model: Path | None = Field(default=None, description="model artifact directory; unset = shipped default")
    backend: BackendName = "auto"
    device: DeviceName = Field(
        default="auto",
        validation_alias=AliasChoices("device", "LINEGUARD_WORKER_DEVICE", "LINEGUARD_DEVICE"),
        description="cpu, cuda, tensorrt or auto; a GPU target this host lacks falls back to the CPU "
        "(one warning). Also sizes the batch and in-flight defaults (GPU: 256 per batch)",
    )
    line: str | None = Field(
        default=None, description="follow this line's production model in the registry (no --model needed)"
    )
    registry: str | None = Field(
        default=None,
        description="model registry (directory or mongodb:// URI); default: LINEGUARD_MODEL_REGISTRY_*",
    )
    thresholds: Path | None = Field(
        default=None, description="YAML/JSON per-line/per-camera thresholds, re-read when it changes"
    )
    recipes: Path | None = Field(
        default=None, description="recipe book: thresholds per (line, recipe), switched on the recipe topic"
    )
    recipe_topic: str = Field(default="lineguard.recipes", description="recipe changeover signals")
    uncertain_events: bool = Field(
        default=True, description="publish defect events for UNCERTAIN verdicts too"
    )
    inference_threads: int = Field(default=0, ge=0, description="0 = all cores")

    # Batching and concurrency
    max_batch_size: int = Field(default=32, ge=1, description="default: 32 on CPU, 256 on a GPU")
    max_wait_ms: float = Field(default=20.0, ge=0)
    decode_threads: int = Field(default=0, ge=0, description="0 = number of cores")
    max_in_flight: int = Field(
        default=0,
        ge=0,
        description="records received but not yet committed before partitions are paused; "
        "0 = 16 x max_batch_size",
    )

    # Consumer bounds (librdkafka)
    session_timeout_ms: int = Field(default=45_000, ge=1_000)
    heartbeat_interval_ms: int | None = None
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    queued_max_messages_kbytes: int = Field(default=32 * 1024, ge=1, description="librdkafka prefetch bound")
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, ge=1024)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    commit_interval_ms: int = Field(default=500, ge=0)

    # Validation
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="width x height above which = OVERSIZE"
    )

    # Delivery
    exactly_once: bool = False
    transaction_timeout_ms: int = Field(default=15_000, ge=1_000)
    mongo_collection: str = "inspections"
    claim_check_bucket: str = Field(
        default="frames",
        description="GridFS bucket of claim-checked images (the cameras' claim_check_bucket); references "
        "naming another bucket are dead-lettered",
    )
    drain_timeout_s: float = Field(default=20.0, gt=0)
    startup_timeout_s: float = Field(
        default=60.0,
        ge=0,
        description="how long a starting worker waits for MongoDB to answer before it exits (0 = no wait)",
    )
    crop_size: int = Field(default=96, ge=16, description="longest side of the JPEG crop per defect region")

    # Capture -> verdict deadline (workers.deadline): 0 = none; per-line values override the default
    # (LINEGUARD_WORKER_DEADLINE_LINES='{"line-1": 150}'). A frame that cannot make it gets the fail-safe.
    deadline_ms: float = Field(default=0.0, ge=0, description="capture -> verdict deadline, ms; 0 = none")
    deadline_lines: dict[str, float] = Field(default_factory=dict, description="per-line deadline, ms")
    deadline_fail_safe: Literal["reject", "pass"] = Field(
        default="reject", description="decision of a late frame: reject (DEFECT) or pass (OK), flagged"
    )

    # Observability
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus + /live /ready; 0 = off")
    metrics_host: str = "0.0.0.0"

    @model_validator(mode="after")
    def _defaults_from_cores(self) -> WorkerSettings:
        cores = os.cpu_count() or 1
        if self.decode_threads == 0:
            self.decode_threads = cores
        if self.inference_threads == 0:
            self.inference_threads = cores
        in_flight_batches = 16
        if self.device != "cpu":  # sized for the device it resolves to (workers.backends.devices)
            from workers.backends.devices import batch_defaults

            defaults = batch_defaults(self.device)
            in_flight_batches = defaults.in_flight_batches
            if "max_batch_size" not in self.model_fields_set:
                self.max_batch_size = defaults.max_batch_size
        if self.max_in_flight == 0:
            # A record stays in flight until its offset is committed (every commit_interval_ms), so the bound
            # must cover a commit interval of throughput on top of the pipeline's own depth: at 4 batches it
            # capped a 2-core worker at 132 frames/s (1280x1024 JPEG), at 16 it reached 181 (bench_workers).
            self.max_in_flight = in_flight_batches * self.max_batch_size
        return self

    @model_validator(mode="after")
    def _shadow_outputs_apart(self) -> WorkerSettings:
        """A shadow worker must never write where production's consumers (the line, the MES) read."""
        if self.role == "shadow":
            outputs = {
                "results topic": self.results_topic,
                "defect events topic": self.defect_events_topic,
                "dead letter topic": self.dead_letter_topic,
                "MongoDB collection": self.mongo_collection,
            }
            prefix = self.frames_topic.removesuffix(".frames")
            production = TopicNames.with_prefix(prefix)
            taken = {
                self.frames_topic,
                RESULTS_TOPIC,
                DEFECT_EVENTS_TOPIC,
                DEAD_LETTER_TOPIC,
                production.results,
                production.defect_events,
                production.dead_letters,
                "inspections",
            }
            for what, name in outputs.items():
                if "shadow" not in name or name in taken:
                    raise ValueError(f"a shadow worker's {what} must be a shadow one, not {name!r}")
            if "shadow" not in self.group_id:
                raise ValueError(f"a shadow worker's group must be its own, not {self.group_id!r}")
        return self

    @property
    def topics(self) -> TopicNames:
        return TopicNames(
            frames=self.frames_topic,
            results=self.results_topic,
            defect_events=self.defect_events_topic,
            dead_letters=self.dead_letter_topic,
        )

    def with_topics(self, topics: TopicNames) -> WorkerSettings:
        """A copy reading and writing the given topics (tests, the demo)."""
        return self.model_copy(
            update={
                "frames_topic": topics.frames,
                "results_topic": topics.results,
                "defect_events_topic": topics.defect_events,
                "dead_letter_topic": topics.dead_letters,
            }
        )

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka consumer keys this worker needs on top of the connection settings.

        Offsets are committed explicitly by the pipeline (never auto-committed, never auto-stored), and the
        prefetch is bounded so a backlog of large frames cannot grow the worker's memory.
        """
        config: dict[str, Any] = {
            "group.id": self.group_id,
            "client.id": f"lineguard-worker-{self.worker_id}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.auto_offset_reset,
            "session.timeout.ms": self.session_timeout_ms,
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "partition.assignment.strategy": "cooperative-sticky",
            "queued.max.messages.kbytes": self.queued_max_messages_kbytes,
            # One record of the largest size must fit in a fetch, or the consumer stalls on it.
            "fetch.max.bytes": topic_max_message_bytes(self.max_message_bytes),
            # librdkafka refuses fetch.max.bytes below message.max.bytes (default 1,000,000): without this a
            # worker configured for records under ~940 KB could not even create its consumer.
            "message.max.bytes": topic_max_message_bytes(self.max_message_bytes),
            "max.partition.fetch.bytes": topic_max_message_bytes(self.max_message_bytes),
            "receive.message.max.bytes": self.max_message_bytes + 2 * 1024 * 1024,
            "isolation.level": "read_committed",
        }
        if self.heartbeat_interval_ms is not None:
            config["heartbeat.interval.ms"] = self.heartbeat_interval_ms
        else:
            config["heartbeat.interval.ms"] = max(500, min(3_000, self.session_timeout_ms // 3))
        return config

    def producer_config(self) -> dict[str, Any]:
        """librdkafka producer keys: idempotent, acks=all, sized like the consumer; maybe transactional."""
        config: dict[str, Any] = {
            "client.id": f"lineguard-worker-{self.worker_id}",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": topic_max_message_bytes(self.max_message_bytes),
        }
        if self.exactly_once:
            config["transactional.id"] = f"lineguard-{self.group_id}-{self.worker_id}"
            config["transaction.timeout.ms"] = self.transaction_timeout_ms
        return config
