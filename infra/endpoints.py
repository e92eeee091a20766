"""Where Kafka and MongoDB are: the two environment variables first, then a fallback the caller supplies.

Every process kind (camera, worker, bridge, tests, benchmarks) asks `resolve_endpoints`, so "which servers
am I talking to?" has one answer everywhere. A production process sets the variables (compose, Kubernetes).
The `lineguard` CLI installs the local development stack (`lineguard stack up`) as the fallback; this floor
never reads the stack's state itself, so nothing that runs in production depends on the dev launcher.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from schemas.errors import ConfigurationError

KAFKA_ENV = "KAFKA_BOOTSTRAP_SERVERS"
MONGODB_ENV = "MONGODB_URI"

POSTGRES_ENV = "POSTGRES_URI"
REDIS_ENV = "REDIS_URL"
MQTT_ENV = "MQTT_URL"  # the MQTT broker of `lineguard plc` over MQTT (mqtt://host:port)

KAFKA = "kafka"
MONGODB = "mongodb"
POSTGRES = "postgres"
REDIS = "redis"

# Given a service name (KAFKA, MONGODB, POSTGRES...), its address; raises ConfigurationError saying why.
EndpointFallback = Callable[[str], str]

_installed_fallback: EndpointFallback | None = None


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Addresses of the two services lineguard needs."""

    kafka_bootstrap: str  # host:port[,host:port...]
    mongodb_uri: str  # mongodb://... (may carry credentials: never log it)

    def kafka_config(self) -> dict[str, str]:
        """The minimal confluent-kafka client configuration for these endpoints."""
        return {"bootstrap.servers": self.kafka_bootstrap}


def install_fallback(fallback: EndpointFallback | None) -> None:
    """Where this process looks when a variable is unset (the CLI: the local stack); None removes it."""
    global _installed_fallback
    _installed_fallback = fallback


def resolve_endpoints(
    env: Mapping[str, str] | None = None, fallback: EndpointFallback | None = None
) -> Endpoints:
    """Kafka and MongoDB addresses: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` when set (each on its own),
    else `fallback`, else the process's installed fallback.

    Raises ConfigurationError, telling the user what to do, when no source gives an address.
    """
    environ = os.environ if env is None else env
    kafka = (environ.get(KAFKA_ENV) or "").strip()
    mongo = (environ.get(MONGODB_ENV) or "").strip()
    source = fallback if fallback is not None else _installed_fallback
    if not kafka:
        kafka = _from_fallback(source, KAFKA, KAFKA_ENV)
    if not mongo:
        mongo = _from_fallback(source, MONGODB, MONGODB_ENV)
    return Endpoints(kafka_bootstrap=kafka, mongodb_uri=mongo)


def resolve_service(
    service: str, env_var: str, env: Mapping[str, str] | None = None, fallback: EndpointFallback | None = None
) -> str:
    """An optional service's address (POSTGRES from ``POSTGRES_URI``...): the variable, else the fallback."""
    environ = os.environ if env is None else env
    value = (environ.get(env_var) or "").strip()
    if value:
        return value
    return _from_fallback(fallback if fallback is not None else _installed_fallback, service, env_var)


def _from_fallback(source: EndpointFallback | None, service: str, env_var: str) -> str:
    if source is None:
        raise ConfigurationError(
            f"no {service} address: set {env_var} (the `lineguard` commands also find the local stack "
            "started by `lineguard stack up`)"
        )
    return source(service)
