"""What every model registry store offers: versions, per-line production aliases, their history and the
watcher workers poll between batches (see :mod:`vision.registry` for the rules)."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import default_cache_dir
from schemas.errors import ConfigurationError

logger = logging.getLogger(__name__)

DEFAULT_LINE = "*"  # the fleet-wide alias, used by lines that have none of their own


class ModelRegistrySettings(BaseSettings):
    """Where the model registry lives: a directory path or a ``mongodb://`` URI (GridFS)."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_MODEL_REGISTRY_", extra="ignore")

    location: str = Field(default="", description="directory or mongodb:// URI; empty: <cache>/registry")
    database: str = "lineguard"
    cache_dir: Path = Field(default_factory=lambda: default_cache_dir() / "registry-cache")

    def resolved_location(self) -> str:
        return self.location or str(default_cache_dir() / "registry")


def utc_now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One published artifact."""

    name: str
    version: str
    task: str
    created_at: str
    published_at: str
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Alias:
    """A line's production model. ``stack`` holds the production versions in promotion order, the current
    one last; ``revision`` counts every change."""

    line: str
    model: str
    version: str
    revision: int
    updated_at: str
    stack: tuple[tuple[str, str], ...] = ()

    @property
    def previous(self) -> tuple[str, str] | None:
        return self.stack[-2] if len(self.stack) > 1 else None


@dataclass(frozen=True, slots=True)
class AliasChange:
    """One entry of the alias history."""

    line: str
    action: str  # promote | rollback
    model: str
    version: str
    revision: int
    at: str
    replaced: str | None = None  # "model:version" it replaced
    reason: str | None = None  # why: the shadow gate's verdict, or the operator's --force --reason


def validate_name(kind: str, value: str) -> str:
    """Names end up in paths and document ids: keep them to a safe character set."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not value or value in (".", "..") or not set(value) <= allowed:
        raise ConfigurationError(f"invalid {kind} {value!r}: use letters, digits, '.', '_' and '-'")
    return value


def validate_line(line: str) -> str:
    return line if line == DEFAULT_LINE else validate_name("line", line)


class ModelRegistry(ABC):
    """What every registry store offers; the thresholds methods serve :mod:`vision.thresholds`."""

    location: str

    @abstractmethod
    def publish(self, artifact: Path) -> ModelVersion:
        """Store the artifact directory under the name and version its ``model.json`` gives."""

    @abstractmethod
    def models(self) -> list[str]: ...

    @abstractmethod
    def versions(self, name: str) -> list[ModelVersion]:
        """Published versions of ``name``, oldest first."""

    @abstractmethod
    def fetch(self, name: str, version: str) -> Path:
        """A local artifact directory of that version, ready for ``vision.artifact.load_metadata``."""

    @abstractmethod
    def promote(self, line: str, name: str, version: str, reason: str | None = None) -> Alias: ...

    @abstractmethod
    def rollback(self, line: str) -> Alias: ...

    @abstractmethod
    def alias(self, line: str) -> Alias | None:
        """The line's own alias (no fallback)."""

    @abstractmethod
    def aliases(self) -> list[Alias]: ...

    @abstractmethod
    def history(self, line: str | None = None) -> list[AliasChange]: ...

    @abstractmethod
    def alias_revision(self, line: str) -> Hashable:
        """A cheap token that changes whenever the line's (or the default) alias changes."""

    @abstractmethod
    def threshold_entries(self, model: str) -> list[dict[str, Any]]: ...

    @abstractmethod
    def put_threshold_entry(self, entry: dict[str, Any]) -> None: ...

    @abstractmethod
    def thresholds_revision(self, model: str) -> Hashable:
        """A cheap token that changes whenever a threshold of ``model`` changes."""

    def current_production(self, line: str) -> Alias | None:
        """The line's production alias, else the fleet default (``*``), else None."""
        return self.alias(line) or (self.alias(DEFAULT_LINE) if line != DEFAULT_LINE else None)

    def _require_version(self, name: str, version: str) -> None:
        if not any(v.version == version for v in self.versions(name)):
            known = ", ".join(v.version for v in self.versions(name)[-5:]) or "none"
            raise ConfigurationError(
                f"model {name} has no version {version} in {self.location} (latest: {known})"
            )

    def close(self) -> None:  # noqa: B027 - optional hook, the directory store holds nothing open
        """Release connections (GridFS)."""


class AliasWatcher:
    """Between batches, tells a worker when its line's production model changed.

    ``poll()`` costs one cheap revision read, at most every ``min_interval_s``; when the revision moved it
    reads the alias and returns it if it names another model or version than the last one returned (the first
    poll returns the current one), else None. A failing store is logged and treated as unchanged,
    so a registry outage never stops inspection.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        line: str,
        min_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._line = line
        self._interval = min_interval_s
        self._clock = clock
        self._checked_at: float | None = None
        self._revision: Hashable = object()  # matches nothing: the first poll reads the alias
        self._serving: tuple[str, str] | None = None

    def retry(self, serving: tuple[str, str] | None) -> None:
        """Report the current alias again at the next poll: the caller could not load the one it was given
        and still serves ``serving`` (model, version), or None."""
        self._serving = serving
        self._revision = object()

    def poll(self) -> Alias | None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._interval:
            return None
        self._checked_at = now
        try:
            revision = self._registry.alias_revision(self._line)
            if revision == self._revision:
                return None
            alias = self._registry.current_production(self._line)
        except Exception as exc:  # any store failure (I/O, network, parse): keep serving the current model
            logger.warning(
                "registry %s not reachable, keeping the current model: %s", self._registry.location, exc
            )
            return None
        self._revision = revision
        # Another line's change also moves a shared revision; report only a different model or version.
        if alias is None or (alias.model, alias.version) == self._serving:
            return None
        self._serving = (alias.model, alias.version)
        return alias


def promoted(current: Alias | None, line: str, name: str, version: str) -> Alias:
    """The alias after promoting ``name:version`` on top of ``current``."""
    stack = (*current.stack, (name, version)) if current else ((name, version),)
    revision = current.revision + 1 if current else 1
    return Alias(line, name, version, revision, utc_now(), stack)


def rolled_back(current: Alias | None, line: str) -> Alias:
    """The alias after popping the current production version, or a ConfigurationError."""
    if current is None or len(current.stack) < 2:
        raise ConfigurationError(f"line {line} has no earlier production version to roll back to")
    stack = current.stack[:-1]
    model, version = stack[-1]
    return Alias(line, model, version, current.revision + 1, utc_now(), stack)
