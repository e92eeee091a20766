"""Settings of the local development stack that `lineguard stack up` starts (the roof, not the floor:
production processes never read these)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.settings import default_cache_dir


class StackSettings(BaseSettings):
    """The local development stack (Kafka in KRaft mode + MongoDB or FerretDB)."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_STACK_", extra="ignore")

    cache_dir: Path = Field(default_factory=default_cache_dir)
    state_dir: Path | None = Field(
        default=None, description="state file, logs and data of the local stack; unset: <cache_dir>/stack"
    )
    kafka_version: str = "4.4.0"
    ferretdb_version: str = "v1.24.2"
    kafka_heap_mb: int = 512
    start_timeout_s: float = 120.0
    secure: bool = Field(
        default=False,
        description="also open a SASL_SSL (SCRAM-SHA-512 over TLS) Kafka listener and require MongoDB "
        "authentication, with a CA and passwords made at run time (see lineguard.stack.security)",
    )
