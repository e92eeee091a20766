"""The registry in a directory: one host, CI, the demo (JSON files replaced atomically, a file lock for
writers)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from schemas.errors import ConfigurationError
from vision.registry.base import (
    Alias,
    AliasChange,
    ModelRegistry,
    ModelVersion,
    promoted,
    rolled_back,
    utc_now,
    validate_line,
    validate_name,
)

logger = logging.getLogger(__name__)


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
        from vision.artifact import load_metadata  # artifacts pull in OpenCV; listing a registry does not

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
        from vision.artifact import load_metadata  # artifacts pull in OpenCV; listing a registry does not

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
