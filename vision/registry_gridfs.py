"""The model registry in MongoDB, for a fleet of workers on many hosts.

- ``<db>.model_artifacts`` (a GridFS bucket): each version's artifact directory as one ``.tar.gz``;
- ``<db>.model_versions``: one document per version (``_id`` = ``name:version``, unique, so a version is
  published once) pointing at its GridFS file, with its sha256;
- ``<db>.model_aliases``: one document per line (``_id`` = line) with the production ``model``/``version``,
  the promotion ``stack`` and a ``revision`` counter. Workers read only ``revision`` between batches: a
  primary-key lookup returning a few bytes;
- ``<db>.model_alias_history``: append-only log of alias changes;
- ``<db>.model_thresholds`` plus a revision document per model in ``<db>.model_registry_state``.

Alias changes are optimistic: read, compute, update on the condition that ``revision`` is unchanged, retry on
a lost race, so two operators promoting at once never lose a change. Works on MongoDB and on FerretDB (no
transactions needed). Fetched artifacts are cached per version under ``cache_dir`` and verified by sha256.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from schemas.errors import ConfigurationError, ServiceUnavailableError
from vision.registry import (
    DEFAULT_LINE,
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

BUCKET = "model_artifacts"
MAX_ALIAS_RETRIES = 10


def pack_artifact(artifact: Path) -> bytes:
    """The artifact directory as a gzip'd tar with paths relative to it (artifacts are a few MB)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(artifact.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=str(path.relative_to(artifact)), recursive=False)
    return buffer.getvalue()


def unpack_artifact(data: bytes, target: Path) -> None:
    """Extract into ``target``, refusing links, devices and paths that leave it (the ``data`` filter)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        archive.extractall(target, filter="data")


def _alias(doc: dict[str, Any]) -> Alias:
    return Alias(
        line=doc["_id"],
        model=doc["model"],
        version=doc["version"],
        revision=int(doc["revision"]),
        updated_at=doc["updated_at"],
        stack=tuple((m, v) for m, v in doc.get("stack", [])),
    )


class GridFSRegistry(ModelRegistry):
    """:class:`ModelRegistry` on MongoDB GridFS (see the module docstring for the collections)."""

    def __init__(self, uri: str, database: str = "lineguard", cache_dir: Path | None = None) -> None:
        import gridfs

        self.location = f"mongodb/{database}"
        self._client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        self._db = self._client[database]
        self._bucket = gridfs.GridFSBucket(self._db, bucket_name=BUCKET)
        self._versions = self._db["model_versions"]
        self._aliases = self._db["model_aliases"]
        self._history = self._db["model_alias_history"]
        self._thresholds = self._db["model_thresholds"]
        self._state = self._db["model_registry_state"]
        self._cache = (cache_dir or Path(tempfile.gettempdir()) / "lineguard-registry") / database
        try:
            self._versions.create_index([("name", ASCENDING), ("published_at", ASCENDING)])
            self._history.create_index([("line", ASCENDING), ("revision", ASCENDING)])
            self._thresholds.create_index([("model", ASCENDING)])
        except PyMongoError as exc:
            raise ServiceUnavailableError(f"model registry at {self.location} not reachable: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    # versions

    def publish(self, artifact: Path) -> ModelVersion:
        from vision.artifact import load_metadata

        metadata = load_metadata(artifact)
        name, version = validate_name("model name", metadata.name), validate_name("version", metadata.version)
        key = f"{name}:{version}"
        if self._versions.find_one({"_id": key}, {"_id": 1}) is not None:
            raise ConfigurationError(
                f"model {name} version {version} is already published in {self.location}"
            )
        data = pack_artifact(artifact)
        file_id = self._bucket.upload_from_stream(
            f"{key}.tar.gz", data, metadata={"name": name, "version": version}
        )
        document = {
            "_id": key,
            "name": name,
            "version": version,
            "task": metadata.task.value,
            "created_at": metadata.created_at.isoformat(),
            "published_at": utc_now(),
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "file_id": file_id,
        }
        try:
            self._versions.insert_one(document)
        except DuplicateKeyError:
            # Lost a race with another publisher of the same version: theirs stands, ours goes.
            self._bucket.delete(file_id)
            raise ConfigurationError(f"model {name} version {version} is already published") from None
        logger.info("published %s %s to %s (%d bytes)", name, version, self.location, len(data))
        return self._model_version(document)

    @staticmethod
    def _model_version(doc: dict[str, Any]) -> ModelVersion:
        return ModelVersion(
            name=doc["name"],
            version=doc["version"],
            task=doc["task"],
            created_at=doc["created_at"],
            published_at=doc["published_at"],
            size_bytes=int(doc["size_bytes"]),
        )

    def models(self) -> list[str]:
        return sorted({doc["name"] for doc in self._versions.find({}, {"name": 1})})

    def versions(self, name: str) -> list[ModelVersion]:
        docs = self._versions.find({"name": name}).sort([("published_at", ASCENDING), ("version", ASCENDING)])
        return [self._model_version(doc) for doc in docs]

    def fetch(self, name: str, version: str) -> Path:
        validate_name("model name", name)
        validate_name("version", version)
        doc = self._versions.find_one({"_id": f"{name}:{version}"})
        if doc is None:
            raise ConfigurationError(f"model {name} version {version} is not published in {self.location}")
        target = self._cache / name / version
        marker = target / ".sha256"
        if marker.is_file() and marker.read_text().strip() == doc["sha256"]:
            return target
        data = self._bucket.open_download_stream(doc["file_id"]).read()
        if hashlib.sha256(data).hexdigest() != doc["sha256"]:
            raise ServiceUnavailableError(
                f"artifact {name} {version} in {self.location} fails its sha256 check"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}."))
        try:
            unpack_artifact(data, staging)
            (staging / ".sha256").write_text(doc["sha256"])
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ConfigurationError(f"cannot unpack {name} {version} into {target}: {exc}") from exc
        return target

    # aliases

    def alias(self, line: str) -> Alias | None:
        doc = self._aliases.find_one({"_id": line})
        return _alias(doc) if doc else None

    def aliases(self) -> list[Alias]:
        return [_alias(doc) for doc in self._aliases.find({}).sort("_id", ASCENDING)]

    def alias_revision(self, line: str) -> Hashable:
        docs = self._aliases.find({"_id": {"$in": [line, DEFAULT_LINE]}}, {"revision": 1})
        return tuple(sorted((doc["_id"], doc["revision"]) for doc in docs))

    def _change_alias(self, line: str, action: str, change: Callable[[Alias | None], Alias]) -> Alias:
        validate_line(line)
        for _ in range(MAX_ALIAS_RETRIES):
            current_doc = self._aliases.find_one({"_id": line})
            current = _alias(current_doc) if current_doc else None
            updated = change(current)
            fields = {
                "model": updated.model,
                "version": updated.version,
                "revision": updated.revision,
                "updated_at": updated.updated_at,
                "stack": [list(entry) for entry in updated.stack],
            }
            if current is None:
                try:
                    self._aliases.insert_one({"_id": line, **fields})
                except DuplicateKeyError:
                    continue  # someone created it first: go again on top of theirs
            else:
                result = self._aliases.update_one(
                    {"_id": line, "revision": current.revision}, {"$set": fields}
                )
                if result.matched_count == 0:
                    continue  # changed under us
            replaced = f"{current.model}:{current.version}" if current else None
            change_doc = AliasChange(
                line, action, updated.model, updated.version, updated.revision, updated.updated_at, replaced
            )
            self._history.insert_one(_history_doc(change_doc))
            logger.info(
                "line %s: %s -> %s %s (revision %d)",
                line,
                action,
                updated.model,
                updated.version,
                updated.revision,
            )
            return updated
        raise ServiceUnavailableError(
            f"alias of line {line} kept changing; gave up after {MAX_ALIAS_RETRIES} tries"
        )

    def promote(self, line: str, name: str, version: str) -> Alias:
        self._require_version(name, version)
        return self._change_alias(line, "promote", lambda current: promoted(current, line, name, version))

    def rollback(self, line: str) -> Alias:
        return self._change_alias(line, "rollback", lambda current: rolled_back(current, line))

    def history(self, line: str | None = None) -> list[AliasChange]:
        query = {} if line is None else {"line": line}
        docs = self._history.find(query, {"_id": 0}).sort([("at", ASCENDING), ("revision", ASCENDING)])
        return [AliasChange(**doc) for doc in docs]

    # thresholds

    def threshold_entries(self, model: str) -> list[dict[str, Any]]:
        return list(self._thresholds.find({"model": model}, {"_id": 0}))

    def put_threshold_entry(self, entry: dict[str, Any]) -> None:
        key = f"{entry['model']}|{entry['line']}|{entry.get('camera') or ''}"
        self._thresholds.replace_one({"_id": key}, {"_id": key, **entry}, upsert=True)
        self._state.update_one(
            {"_id": f"thresholds:{entry['model']}"}, {"$inc": {"revision": 1}}, upsert=True
        )

    def thresholds_revision(self, model: str) -> Hashable:
        doc = self._state.find_one({"_id": f"thresholds:{model}"}, {"revision": 1})
        return doc["revision"] if doc else 0


def _history_doc(change: AliasChange) -> dict[str, Any]:
    return {
        "line": change.line,
        "action": change.action,
        "model": change.model,
        "version": change.version,
        "revision": change.revision,
        "at": change.at,
        "replaced": change.replaced,
    }


__all__ = ["GridFSRegistry", "pack_artifact", "unpack_artifact"]
