"""Decision thresholds per line or per camera, stored in the model registry and read live by workers.

A threshold entry belongs to a model and a line, optionally narrowed to one camera: ``defect_score >=
defect`` is a defect, ``>= uncertain`` is held for review, else OK (the workers' verdict rule). Lookups go
from the most specific entry to the least:

1. (line, camera)   2. (line, any camera)   3. (``*``, any camera): the model's fleet-wide override
4. the default the store was built with (the model's own ``model.json`` thresholds).

:class:`ThresholdStore` caches the table and re-reads it only when the registry's cheap revision token
moved, checked at most every ``min_check_interval_s``; so ``lineguard thresholds set`` reaches running
workers within a second or so without touching the model, and a lookup per frame costs a dict access.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from schemas.errors import ConfigurationError
from vision.registry import DEFAULT_LINE, ModelRegistry, utc_now, validate_line, validate_name

logger = logging.getLogger(__name__)

# The same band the workers put below a model's own threshold when nothing sets ``uncertain``.
DEFAULT_UNCERTAIN_BAND = 0.2


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``score >= defect`` -> defect; ``score >= uncertain`` -> uncertain; else OK."""

    defect: float
    uncertain: float

    @classmethod
    def with_band(cls, defect: float, band: float = DEFAULT_UNCERTAIN_BAND) -> Thresholds:
        """``uncertain`` a share ``band`` below ``defect``: the workers' default review band."""
        return cls(defect=defect, uncertain=defect * (1.0 - band))

    def __post_init__(self) -> None:
        if not (0.0 <= self.uncertain <= self.defect):
            raise ConfigurationError(
                f"thresholds need 0 <= uncertain <= defect "
                f"(got uncertain {self.uncertain}, defect {self.defect})"
            )


@dataclass(frozen=True, slots=True)
class ThresholdEntry:
    """One stored override."""

    model: str
    line: str
    camera: str | None
    thresholds: Thresholds
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "line": self.line,
            "camera": self.camera,
            "defect": self.thresholds.defect,
            "uncertain": self.thresholds.uncertain,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdEntry:
        return cls(
            model=data["model"],
            line=data["line"],
            camera=data.get("camera") or None,
            thresholds=Thresholds(float(data["defect"]), float(data["uncertain"])),
            updated_at=data.get("updated_at", ""),
        )


def set_thresholds(
    registry: ModelRegistry, model: str, line: str, thresholds: Thresholds, camera: str | None = None
) -> ThresholdEntry:
    """Store an override for ``model`` on ``line`` (``*`` = every line), optionally one camera only."""
    validate_name("model name", model)
    validate_line(line)
    if camera is not None:
        validate_name("camera", camera)
    entry = ThresholdEntry(model, line, camera, thresholds, utc_now())
    registry.put_threshold_entry(entry.to_dict())
    logger.info("thresholds of %s on line %s camera %s: %s", model, line, camera or "*", thresholds)
    return entry


def list_thresholds(registry: ModelRegistry, model: str) -> list[ThresholdEntry]:
    entries = [ThresholdEntry.from_dict(e) for e in registry.threshold_entries(model)]
    return sorted(entries, key=lambda e: (e.line, e.camera or ""))


class ThresholdStore:
    """Live thresholds of one model, for workers: ``lookup(line, camera)`` per frame."""

    def __init__(
        self,
        registry: ModelRegistry,
        model: str,
        default: Thresholds,
        min_check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._model = model
        self._default = default
        self._interval = min_check_interval_s
        self._clock = clock
        self._checked_at: float | None = None
        self._revision: Hashable = object()
        self._table: dict[tuple[str, str | None], Thresholds] = {}

    def lookup(self, line: str, camera: str | None = None) -> Thresholds:
        self._refresh()
        table = self._table
        return (
            (table.get((line, camera)) if camera is not None else None)
            or table.get((line, None))
            or table.get((DEFAULT_LINE, None))
            or self._default
        )

    def _refresh(self) -> None:
        now = self._clock()
        if self._checked_at is not None and now - self._checked_at < self._interval:
            return
        self._checked_at = now
        try:
            revision = self._registry.thresholds_revision(self._model)
            if revision == self._revision:
                return
            entries = [ThresholdEntry.from_dict(e) for e in self._registry.threshold_entries(self._model)]
        except Exception as exc:  # a registry outage or a bad entry must not stop inspection
            logger.warning("thresholds of %s not refreshed, keeping the previous ones: %s", self._model, exc)
            return
        self._table = {(e.line, e.camera): e.thresholds for e in entries}
        self._revision = revision
        logger.info("thresholds of %s reloaded: %d overrides", self._model, len(entries))
