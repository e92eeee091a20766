"""Settings of a shadow worker, derived from the production worker's, and the candidate model it runs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schemas.errors import ConfigurationError
from schemas.topics import TopicNames
from vision.registry import DEFAULT_LINE, ModelRegistry
from workers.settings import WorkerSettings

SHADOW_COLLECTION = "shadow_inspections"


def shadow_topics(frames_topic: str) -> TopicNames:
    """``<prefix>.shadow.results`` and so on, next to the frames topic ``<prefix>.frames``."""
    prefix = frames_topic.removesuffix(".frames")
    return TopicNames(
        frames=frames_topic,
        results=f"{prefix}.shadow.results",
        defect_events=f"{prefix}.shadow.defect-events",
        dead_letters=f"{prefix}.shadow.dead-letters",
    )


def shadow_group(model: str, version: str, replay: bool) -> str:
    """Live: one stable group per candidate (a restart resumes). Replay: a fresh group per run, whose start
    offsets the replay commits before the worker joins."""
    base = f"lineguard-shadow-{model}-{version}"
    return f"{base}-replay-{uuid.uuid4().hex[:8]}" if replay else base


def shadow_settings(
    base: WorkerSettings,
    candidate: Path,
    group: str,
    *,
    line: str | None = None,
    registry: str | None = None,
    collection: str = SHADOW_COLLECTION,
    results_topic: str | None = None,
) -> WorkerSettings:
    """The production worker's settings turned into a shadow worker's: same decode, batching, backend and
    delivery; its own group, outputs and model. The validators of WorkerSettings refuse shadow outputs
    that are production's."""
    topics = shadow_topics(base.frames_topic)
    if results_topic is not None:
        topics = TopicNames(topics.frames, results_topic, topics.defect_events, topics.dead_letters)
    update: dict[str, Any] = {
        **base.model_dump(),
        "role": "shadow",
        "group_id": group,
        "model": candidate,
        # The line picks the candidate's per-line thresholds from the registry; the model stays fixed.
        "line": line if registry is not None else None,
        "registry": registry,
        "mongo_collection": collection,
        "frames_topic": topics.frames,
        "results_topic": topics.results,
        "defect_events_topic": topics.defect_events,
        "dead_letter_topic": topics.dead_letters,
    }
    try:
        return WorkerSettings(**update)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigurationError(f"invalid shadow worker settings: {problems}") from exc


def resolve_candidate(registry: ModelRegistry, model: str, version: str, line: str | None) -> Path:
    """The candidate's artifact from the registry; refuses an unknown model or version and a candidate of
    another task than the model the line runs (its verdicts could not be compared)."""

    versions = registry.versions(model)
    found = next((v for v in versions if v.version == version), None)
    if found is None:
        known = ", ".join(v.version for v in versions[-5:]) or "none"
        raise ConfigurationError(
            f"unknown candidate {model} {version} in the registry {registry.location} (versions: {known})"
        )
    production = registry.current_production(line or DEFAULT_LINE)
    if production is not None:
        running = next(
            (v for v in registry.versions(production.model) if v.version == production.version), None
        )
        if running is not None and running.task != found.task:
            raise ConfigurationError(
                f"candidate {model} {version} is a {found.task} model but line {line or DEFAULT_LINE} runs "
                f"{production.model} {production.version}, a {running.task} model: verdicts not comparable"
            )
    path: Path = registry.fetch(model, version)
    return path
