"""The model registry: published artifact versions per model name, and a ``production`` alias per line.

Two stores share one interface (:class:`ModelRegistry`): a directory (one host, CI, the demo) and MongoDB
GridFS (:mod:`vision.registry_gridfs`, a fleet of workers). :func:`open_registry` picks one from a location:
a ``mongodb://`` URI or a path.

- Versions are immutable: publishing a name/version twice is refused.
- Each line has a production alias. ``promote`` pushes a version onto the line's stack, ``rollback`` pops it,
  so repeated rollbacks walk back through earlier production versions. The alias ``*`` is the fleet default
  for lines without their own.
- Every change increments the alias' ``revision``. Workers call :class:`AliasWatcher.poll` between batches:
  a cheap read (a ``stat`` for the directory store; for MongoDB two index seeks that return one revision
  number each), and a new :class:`Alias` only when the model or version changed.
- Every change is also appended to a history, for `lineguard models list --history`.

Decision thresholds per line or camera live in the same store (see :mod:`vision.thresholds`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lineguard.settings import default_cache_dir
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


# ------------------------------------------------------------------------------------------ directory store


def _stat_token(path: Path) -> Hashable:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    # os.replace gives every write a new inode, so this changes even within one mtime tick.
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _alias_from_dict(line: str, data: dict[str, Any]) -> Alias:
    return Alias(
        line=line,
        model=data["model"],
        version=data["version"],
        revision=int(data["revision"]),
        updated_at=data["updated_at"],
        stack=tuple((m, v) for m, v in data.get("stack", [])),
    )


def _alias_to_dict(alias: Alias) -> dict[str, Any]:
    return {
        "model": alias.model,
        "version": alias.version,
        "revision": alias.revision,
        "updated_at": alias.updated_at,
        "stack": [list(entry) for entry in alias.stack],
    }


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


class DirectoryRegistry(ModelRegistry):
    """A registry in a directory::

        <root>/models/<name>/<version>/   artifact copies (read-only by convention)
        <root>/aliases.json               production alias per line
        <root>/history.jsonl              alias changes, one JSON object per line
        <root>/thresholds.json            threshold overrides

    Writers serialise on an ``fcntl`` lock; readers never lock (files are replaced atomically).
    """

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser()
        self.location = str(self.root)
        try:
            (self.root / "models").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot use {self.root} as a model registry: {exc}") from exc
        self._aliases_path = self.root / "aliases.json"
        self._thresholds_path = self.root / "thresholds.json"
        self._history_path = self.root / "history.jsonl"
        self._alias_cache: tuple[Hashable, dict[str, Any]] | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read(self, path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"registry file {path} is unreadable: {exc}") from exc

    # versions

    def publish(self, artifact: Path) -> ModelVersion:
        from vision.artifact import load_metadata

        metadata = load_metadata(artifact)
        name, version = validate_name("model name", metadata.name), validate_name("version", metadata.version)
        target = self.root / "models" / name / version
        if target.exists():
            raise ConfigurationError(f"model {name} version {version} is already published in {self.root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}."))
        try:
            shutil.copytree(artifact, staging, dirs_exist_ok=True)
            staging.rename(target)  # atomic: readers see the whole version or none of it
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        published = {"published_at": utc_now()}
        _write_json_atomic(target / ".registry.json", published)
        logger.info("published %s %s to %s", name, version, self.root)
        return self._version(name, version)

    def _version(self, name: str, version: str) -> ModelVersion:
        from vision.artifact import load_metadata

        folder = self.root / "models" / name / version
        metadata = load_metadata(folder)
        info = self._read(folder / ".registry.json", {})
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != ".registry.json")
        return ModelVersion(
            name=name,
            version=version,
            task=metadata.task.value,
            created_at=metadata.created_at.isoformat(),
            published_at=info.get("published_at", ""),
            size_bytes=size,
        )

    def models(self) -> list[str]:
        return sorted(
            p.name for p in (self.root / "models").iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def versions(self, name: str) -> list[ModelVersion]:
        folder = self.root / "models" / validate_name("model name", name)
        if not folder.is_dir():
            return []
        found = [
            self._version(name, p.name) for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
        ]
        return sorted(found, key=lambda v: (v.published_at, v.version))

    def fetch(self, name: str, version: str) -> Path:
        folder = self.root / "models" / validate_name("model name", name) / validate_name("version", version)
        if not (folder / "model.json").is_file():
            raise ConfigurationError(f"model {name} version {version} is not published in {self.root}")
        return folder

    # aliases

    def _aliases(self) -> dict[str, Any]:
        token = _stat_token(self._aliases_path)
        if self._alias_cache is None or self._alias_cache[0] != token:
            self._alias_cache = (token, self._read(self._aliases_path, {}))
        return self._alias_cache[1]

    def alias(self, line: str) -> Alias | None:
        data = self._aliases().get(line)
        return _alias_from_dict(line, data) if data else None

    def aliases(self) -> list[Alias]:
        return [_alias_from_dict(line, data) for line, data in sorted(self._aliases().items())]

    def alias_revision(self, line: str) -> Hashable:
        return _stat_token(self._aliases_path)

    def _change_alias(
        self, line: str, action: str, change: Callable[[Alias | None], Alias], reason: str | None = None
    ) -> Alias:
        validate_line(line)
        with self._locked():
            self._alias_cache = None
            data = self._read(self._aliases_path, {})
            current = _alias_from_dict(line, data[line]) if line in data else None
            updated = change(current)
            data[line] = _alias_to_dict(updated)
            _write_json_atomic(self._aliases_path, data)
            entry = AliasChange(
                line,
                action,
                updated.model,
                updated.version,
                updated.revision,
                updated.updated_at,
                f"{current.model}:{current.version}" if current else None,
                reason,
            )
            with open(self._history_path, "a", encoding="utf-8") as history:
                history.write(json.dumps(asdict(entry)) + "\n")
        logger.info(
            "line %s: %s -> %s %s (revision %d)",
            line,
            action,
            updated.model,
            updated.version,
            updated.revision,
        )
        return updated

    def promote(self, line: str, name: str, version: str, reason: str | None = None) -> Alias:
        self._require_version(name, version)
        return self._change_alias(
            line, "promote", lambda current: promoted(current, line, name, version), reason
        )

    def rollback(self, line: str) -> Alias:
        return self._change_alias(line, "rollback", lambda current: rolled_back(current, line))

    def history(self, line: str | None = None) -> list[AliasChange]:
        try:
            rows = self._history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        changes = [AliasChange(**json.loads(row)) for row in rows if row.strip()]
        return [c for c in changes if line is None or c.line == line]

    # thresholds

    def threshold_entries(self, model: str) -> list[dict[str, Any]]:
        entries = self._read(self._thresholds_path, {"entries": []})["entries"]
        return [e for e in entries if e["model"] == model]

    def put_threshold_entry(self, entry: dict[str, Any]) -> None:
        with self._locked():
            data = self._read(self._thresholds_path, {"entries": []})
            key = (entry["model"], entry["line"], entry.get("camera"))
            kept = [e for e in data["entries"] if (e["model"], e["line"], e.get("camera")) != key]
            data["entries"] = [*kept, entry]
            _write_json_atomic(self._thresholds_path, data)

    def thresholds_revision(self, model: str) -> Hashable:
        return _stat_token(self._thresholds_path)


def open_registry(
    location: str | Path | None = None, settings: ModelRegistrySettings | None = None
) -> ModelRegistry:
    """The registry at ``location`` (a path or a ``mongodb://`` URI); None reads the settings."""
    settings = settings or ModelRegistrySettings()
    where = str(location) if location else settings.resolved_location()
    if where.startswith(("mongodb://", "mongodb+srv://")):
        from vision.registry_gridfs import GridFSRegistry

        return GridFSRegistry(where, database=settings.database, cache_dir=settings.cache_dir)
    return DirectoryRegistry(Path(where))
