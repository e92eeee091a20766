"""The model registry: published artifact versions per model name, and a ``production`` alias per line.

Two stores share one interface (:class:`ModelRegistry`): a directory (one host, CI, the demo) and MongoDB
GridFS (:mod:`vision.registry.gridfs`, a fleet of workers). :func:`open_registry` picks one from a location:
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

from pathlib import Path

from vision.registry.base import (
    DEFAULT_LINE,
    Alias,
    AliasChange,
    AliasWatcher,
    ModelRegistry,
    ModelRegistrySettings,
    ModelVersion,
    promoted,
    rolled_back,
    utc_now,
    validate_line,
    validate_name,
)
from vision.registry.directory import DirectoryRegistry

__all__ = [
    "DEFAULT_LINE",
    "Alias",
    "AliasChange",
    "AliasWatcher",
    "DirectoryRegistry",
    "ModelRegistry",
    "ModelRegistrySettings",
    "ModelVersion",
    "open_registry",
    "promoted",
    "rolled_back",
    "utc_now",
    "validate_line",
    "validate_name",
]


def open_registry(
    location: str | Path | None = None, settings: ModelRegistrySettings | None = None
) -> ModelRegistry:
    """The registry at ``location`` (a path or a ``mongodb://`` URI); None reads the settings."""
    settings = settings or ModelRegistrySettings()
    where = str(location) if location else settings.resolved_location()
    if where.startswith(("mongodb://", "mongodb+srv://")):
        from vision.registry.gridfs import GridFSRegistry  # pymongo and gridfs only for a MongoDB store

        return GridFSRegistry(where, database=settings.database, cache_dir=settings.cache_dir)
    return DirectoryRegistry(Path(where))
