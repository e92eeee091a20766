"""Settings objects for the servers every process talks to, parsed once by the CLI and passed down.

Nothing here is read at import time: a settings object reads the environment when it is constructed.
``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI`` are honoured without the ``LINEGUARD_`` prefix because they
are the two names a user's docker compose or cluster already sets; when they are unset, ``infra.endpoints``
asks the fallback the `lineguard` CLI installs (the local stack of ``lineguard stack up``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    """Where jars, binaries, models and the local stack's data live: outside any work tree, shared by
    checkouts."""
    base = os.environ.get("LINEGUARD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "lineguard"
    )
    return Path(base)


class KafkaSettings(BaseSettings):
    """How to reach Kafka. ``extra`` passes raw librdkafka settings through untouched."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_KAFKA_", extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "LINEGUARD_KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port list; unset means the local stack started by `lineguard stack up`.",
    )
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    extra: dict[str, Any] = Field(
        default_factory=dict, description='raw librdkafka settings as JSON, e.g. {"linger.ms": 5}'
    )
    # Topics lineguard creates (infra.kafka_topics): unset = RF min(3, brokers), min ISR 2 at RF 3.
    topic_replication_factor: int | None = Field(default=None, ge=1)
    topic_min_insync_replicas: int | None = Field(default=None, ge=1)

    def client_config(self, bootstrap_servers: str) -> dict[str, Any]:
        """The librdkafka configuration shared by every client of this process."""
        config: dict[str, Any] = {"bootstrap.servers": bootstrap_servers}
        if self.security_protocol != "PLAINTEXT":
            config["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = self.ssl_ca_location
        config.update(self.extra)
        return config


class MongoSettings(BaseSettings):
    """How to reach MongoDB (or any server on its wire protocol)."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_MONGODB_", extra="ignore")

    uri: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("MONGODB_URI", "LINEGUARD_MONGODB_URI"),
        description="mongodb:// URI (may hold credentials); unset means the local stack.",
    )
    database: str = "lineguard"
    # Unset: the URI's write concern (`?w=...&journal=...`), else majority + journal (workers.sinks.mongo).
    write_concern_w: int | str | None = Field(default=None, description="MongoDB write concern `w` for sinks")
    write_concern_journal: bool | None = None


class RegistrySettings(BaseSettings):
    """An optional Confluent-compatible schema registry; unset means Avro single-object encoding."""

    model_config = SettingsConfigDict(env_prefix="LINEGUARD_SCHEMA_REGISTRY_", extra="ignore")

    url: str | None = None
    basic_auth_user_info: SecretStr | None = None
