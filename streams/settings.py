"""Settings of one camera producer process (env prefix ``LINEGUARD_CAMERA_``), parsed once by the CLI.

Kafka and MongoDB addresses are not here: they come from ``infra.settings`` (``KAFKA_BOOTSTRAP_SERVERS``,
``MONGODB_URI``, or the local stack), like every other process kind's.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import ConfigurationError
from schemas.topics import FRAMES_TOPIC
from streams.publisher import DEFAULT_INLINE_LIMIT_BYTES
from streams.sources.base import ImageFormat
from streams.sources.spec import parse_size
from streams.spool import FsyncPolicy, SpoolPolicy

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_byte_size(text: str | int) -> int:
    """``"8MiB"`` -> 8388608, ``"500kb"`` -> 500000, ``"1048576"`` -> 1048576."""
    if isinstance(text, int):
        return text
    match = _SIZE_PATTERN.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ConfigurationError(f"{text!r} is not a size; use bytes or a unit: 500KB, 8MiB, 1GB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


class CameraSettings(BaseSettings):
    """Everything ``lineguard camera`` is configured with."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_CAMERA_", extra="ignore")

    source: str = Field(default="synthetic", description="where frames come from (see --help of the CLI)")
    camera_id: str = "camera-1"
    line_id: str = "line-1"
    station_id: str = "station-1"
    topic: str = FRAMES_TOPIC
    partitions: int = Field(default=3, ge=1, description="partitions when the topic has to be created")
    fps: float = Field(default=10.0, ge=0, description="frames per second; 0 = as fast as possible")
    count: int = Field(default=0, ge=0, description="stop after this many frames; 0 = until the source ends")
    encoding: ImageFormat = ImageFormat.jpeg
    quality: int = Field(default=90, ge=1, le=100, description="JPEG quality")
    resize: str | None = Field(default=None, description="WIDTHxHEIGHT to resize to before encoding")
    inline_limit: str = Field(
        default=f"{DEFAULT_INLINE_LIMIT_BYTES // (1024 * 1024)}MiB",
        description="images above this size are claim-checked (or refused)",
    )
    claim_check: bool = True
    claim_check_bucket: str = "frames"
    claim_check_max_bytes: int | None = Field(
        default=None, ge=1, description="refuse new claim-checked images above this store size (counted)"
    )
    spool_dir: Path | None = Field(default=None, description="default: <cache>/spool/<camera id>")
    spool: bool = Field(default=True, description="store-and-forward when the broker is unreachable")
    spool_max_mb: float = Field(default=1024.0, gt=0)
    spool_policy: SpoolPolicy = SpoolPolicy.drop_oldest
    spool_fsync: FsyncPolicy = Field(
        default=FsyncPolicy.always,
        description="always: each spooled frame survives a power cut; never: faster",
    )
    close_timeout_s: float = Field(default=10.0, ge=0, description="flush bound at shutdown")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="Prometheus /metrics port; 0 = off")
    first_frame_number: int | None = Field(
        default=None,
        ge=0,
        description=(
            "default: microseconds since the epoch at start, never below the camera's persisted reservation "
            "(<cache>/frame-sequence/<camera id>), so numbers keep growing across restarts and clock steps"
        ),
    )

    @field_validator("resize")
    @classmethod
    def _check_resize(cls, value: str | None) -> str | None:
        if value:
            parse_size(value, "--resize")
        return value or None

    @field_validator("inline_limit")
    @classmethod
    def _check_inline_limit(cls, value: str) -> str:
        parse_byte_size(value)
        return value

    @property
    def resize_to(self) -> tuple[int, int] | None:
        return parse_size(self.resize, "--resize") if self.resize else None

    @property
    def inline_limit_bytes(self) -> int:
        return parse_byte_size(self.inline_limit)

    def spool_directory(self, cache_dir: Path) -> Path:
        if self.spool_dir is not None:
            return self.spool_dir.expanduser()
        return cache_dir / "spool" / self._safe_id

    def sequence_path(self, cache_dir: Path) -> Path:
        """Where this camera's frame-number reservation is kept (streams.sequence)."""
        return cache_dir / "frame-sequence" / self._safe_id

    @property
    def _safe_id(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.camera_id)
