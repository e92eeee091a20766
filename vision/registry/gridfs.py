"""The model registry in MongoDB, for a fleet of workers on many hosts.

- ``<db>.model_artifacts`` (a GridFS bucket): each version's artifact directory as one ``.tar.gz``;
- ``<db>.model_versions``: one document per version (``_id`` = ``name:version``, unique, so a version is
  published once) pointing at its GridFS file, with its sha256;
- ``<db>.model_alias_changes``: the alias history *is* the alias. Each promote or rollback inserts one
  document with ``_id`` = ``<line>:<revision>`` holding the line's new production ``model``/``version`` and
  its promotion ``stack``; a line's alias is its change with the highest revision. Writers claim the next
  revision by inserting that ``_id``: the unique primary key lets exactly one of two racing operators win
  and the other retries on top of the winner. (A compare-and-set ``update_one`` on a revision field was
  tried first and lost updates under concurrent writers on FerretDB, whose updates are not atomic
  read-modify-writes; a primary-key insert is atomic on every MongoDB-protocol server.) Workers read only the
  latest ``revision`` between batches: an index seek returning a few bytes;
- ``<db>.model_thresholds`` plus a revision document per model in ``<db>.model_registry_state``.

Works on MongoDB and on FerretDB (no
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

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.errors import DuplicateKeyError, PyMongoError

from schemas.errors import ConfigurationError, ServiceUnavailableError
from vision.registry.base import (
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
MAX_ALIAS_RETRIES = 100  # each retry means another writer made progress


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
        line=doc["line"],
        model=doc["model"],
        version=doc["version"],
        revision=int(doc["revision"]),
        updated_at=doc["at"],
        stack=tuple((entry["model"], entry["version"]) for entry in doc.get("stack", [])),
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
        self._changes = self._db["model_alias_changes"]
        self._thresholds = self._db["model_thresholds"]
        self._state = self._db["model_registry_state"]
        self._cache = (cache_dir or Path(tempfile.gettempdir()) / "lineguard-registry") / database
        try:
            self._versions.create_index([("name", ASCENDING), ("published_at", ASCENDING)])
            self._changes.create_index([("line", ASCENDING), ("revision", DESCENDING)])
            self._thresholds.create_index([("model", ASCENDING)])
        except PyMongoError as exc:
            raise ServiceUnavailableError(f"model registry at {self.location} not reachable: {exc}") from exc

    def close(self) -> None:
        self._client.close()

    # versions

    def publish(self, artifact: Path) -> ModelVersion:
        from vision.artifact import load_metadata  # artifacts pull in OpenCV; listing a registry does not

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
            self._install(staging, target, doc["sha256"])
        except (OSError, tarfile.TarError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ConfigurationError(f"cannot unpack {name} {version} into {target}: {exc}") from exc
        return target

    @staticmethod
    def _install(staging: Path, target: Path, sha256: str) -> None:
        """Move a verified download into place. Another worker on this host may have installed the same
        version meanwhile and be loading it: a valid copy is kept (ours is dropped), only a stale one is
        replaced."""
        try:
            staging.rename(target)  # fails when target exists and is not empty
            return
        except OSError:
            marker = target / ".sha256"
            if marker.is_file() and marker.read_text().strip() == sha256:
                shutil.rmtree(staging, ignore_errors=True)
                return
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)

    # aliases

    def _latest(self, line: str, projection: dict[str, int] | None = None) -> dict[str, Any] | None:
        return self._changes.find_one({"line": line}, projection, sort=[("revision", DESCENDING)])

    def alias(self, line: str) -> Alias | None:
        doc = self._latest(line)
        return _alias(doc) if doc else None

    def aliases(self) -> list[Alias]:
        found = (self.alias(line) for line in sorted(self._changes.distinct("line")))
        return [alias for alias in found if alias is not None]

    def alias_revision(self, line: str) -> Hashable:
        revisions = []
        for name in (line, DEFAULT_LINE):
            doc = self._latest(name, {"revision": 1})
            revisions.append(doc["revision"] if doc else 0)
        return tuple(revisions)

    def _change_alias(
        self, line: str, action: str, change: Callable[[Alias | None], Alias], reason: str | None = None
    ) -> Alias:
        validate_line(line)
        for _ in range(MAX_ALIAS_RETRIES):
            current = self.alias(line)
            updated = change(current)
            claim = {
                # Zero-padded so ids sort like revisions; the unique _id is what makes the claim atomic.
                "_id": f"{line}:{updated.revision:012d}",
                "line": line,
                "revision": updated.revision,
                "action": action,
                "model": updated.model,
                "version": updated.version,
                "at": updated.updated_at,
                "replaced": f"{current.model}:{current.version}" if current else None,
                "reason": reason,
                # Sub-documents, not pairs: FerretDB does not store nested arrays.
                "stack": [{"model": m, "version": v} for m, v in updated.stack],
            }
            try:
                self._changes.insert_one(claim)
            except DuplicateKeyError:
                continue  # another operator took this revision: build on theirs
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

    def promote(self, line: str, name: str, version: str, reason: str | None = None) -> Alias:
        self._require_version(name, version)
        return self._change_alias(
            line, "promote", lambda current: promoted(current, line, name, version), reason
        )

    def rollback(self, line: str) -> Alias:
        return self._change_alias(line, "rollback", lambda current: rolled_back(current, line))

    def history(self, line: str | None = None) -> list[AliasChange]:
        query = {} if line is None else {"line": line}
        fields = {
            "_id": 0,
            "line": 1,
            "action": 1,
            "model": 1,
            "version": 1,
            "revision": 1,
            "at": 1,
            "replaced": 1,
            "reason": 1,
        }
        docs = self._changes.find(query, fields).sort([("at", ASCENDING), ("revision", ASCENDING)])
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


__all__ = ["GridFSRegistry", "pack_artifact", "unpack_artifact"]
