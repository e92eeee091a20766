"""The local stack as the endpoint fallback: the addresses `lineguard stack up` recorded in its state file.

`infra.endpoints` owns the resolution (environment first); this module only answers "where is the local
stack's Kafka / MongoDB?" for the CLI, the demo, the tests and the benchmarks, which install or pass it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from infra.endpoints import (
    KAFKA_ENV,
    MONGODB_ENV,
    POSTGRES,
    POSTGRES_ENV,
    REDIS,
    REDIS_ENV,
    EndpointFallback,
    Endpoints,
    install_fallback,
)
from infra.endpoints import resolve_endpoints as resolve_with
from lineguard.stack.settings import StackSettings
from lineguard.stack.state import KAFKA, MONGODB, ServiceState, is_running, read_state
from schemas.errors import ConfigurationError

__all__ = [
    "KAFKA_ENV",
    "MONGODB_ENV",
    "Endpoints",
    "default_state_dir",
    "install_local_stack_fallback",
    "local_stack_fallback",
    "mongodb_uri_for",
    "resolve_endpoints",
    "state_dir_of",
]

# The variable that overrides each service, for the messages that say what to do.
_ENV_OF = {KAFKA: KAFKA_ENV, MONGODB: MONGODB_ENV, POSTGRES: POSTGRES_ENV, REDIS: REDIS_ENV}


def default_state_dir() -> Path:
    """The local stack's state directory: ``LINEGUARD_STACK_STATE_DIR``, else ``<cache dir>/stack``."""
    return state_dir_of(StackSettings())


def state_dir_of(settings: StackSettings) -> Path:
    return settings.state_dir if settings.state_dir is not None else settings.cache_dir / "stack"


def mongodb_uri_for(service: ServiceState) -> str:
    return f"mongodb://{service.host}:{service.port}/"


def local_stack_fallback(state_dir: Path | None = None) -> EndpointFallback:
    """A fallback reading the running local stack's state (in `state_dir`, else the default directory)."""

    def address(service: str) -> str:
        directory = state_dir if state_dir is not None else default_state_dir()
        if service not in (KAFKA, MONGODB):
            return _optional_service_uri(service, directory)
        found = _running_service(read_state(directory).services.get(service), service, directory)
        return mongodb_uri_for(found) if service == MONGODB else found.address

    return address


def install_local_stack_fallback() -> None:
    """Make every `resolve_endpoints()` of this process fall back to the local stack (the CLI calls it)."""
    install_fallback(local_stack_fallback())


def resolve_endpoints(env: Mapping[str, str] | None = None, state_dir: Path | None = None) -> Endpoints:
    """The environment's addresses, else the local stack's (see `infra.endpoints.resolve_endpoints`)."""
    return resolve_with(env, fallback=local_stack_fallback(state_dir))


def _optional_service_uri(service: str, state_dir: Path) -> str:
    """A service started with `lineguard stack up --with <service>` records its URI in `<service>.json`."""
    record = state_dir / f"{service}.json"
    if not record.exists():
        env_var = _ENV_OF.get(service, f"the {service} URI variable")
        raise ConfigurationError(f"no {service}: set {env_var} or run `lineguard stack up --with {service}`")
    return str(json.loads(record.read_text())["uri"])


def _running_service(service: ServiceState | None, name: str, state_dir: Path) -> ServiceState:
    env_var = _ENV_OF[name]
    if service is None:
        raise ConfigurationError(
            f"no {name} address: set {env_var}, or start the local stack with `lineguard stack up` "
            f"(no stack state in {state_dir})"
        )
    if not is_running(service):
        why = "was stopped" if service.pid is None else f"is not running (PID {service.pid} is gone)"
        raise ConfigurationError(
            f"the local stack's {name} {why}; run `lineguard stack up`, or set {env_var}"
        )
    return service
