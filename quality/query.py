"""What a report covers: a time range and optional line / camera / station / model-version filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class ReportQuery:
    start: datetime
    end: datetime
    line: str | None = None
    camera: str | None = None
    station: str | None = None
    model_version: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ConfigurationError("report range: start and end need a time zone (e.g. 2026-01-05T00:00Z)")
        if self.end <= self.start:
            raise ConfigurationError(f"report range: end {self.end} is not after start {self.start}")

    def mongo_filter(self) -> dict[str, Any]:
        """The ``$match`` of every query: the range (served by the captured_at indexes) and the filters."""
        match: dict[str, Any] = {"captured_at": {"$gte": self.start, "$lt": self.end}}
        for field, value in (
            ("line_id", self.line),
            ("camera_id", self.camera),
            ("station_id", self.station),
            ("model.version", self.model_version),
        ):
            if value is not None:
                match[field] = value
        return match

    def describe(self) -> str:
        filters = [
            f"{name}={value}"
            for name, value in (
                ("line", self.line),
                ("camera", self.camera),
                ("station", self.station),
                ("model", self.model_version),
            )
            if value is not None
        ]
        text = f"{self.start.isoformat()} .. {self.end.isoformat()}"
        return text + (f" ({', '.join(filters)})" if filters else "")
