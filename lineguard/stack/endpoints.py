"""Where Kafka and MongoDB are: the two environment variables win, else the running local stack.

Every process kind (camera, worker, tests, benchmarks) asks this one function, so "which servers am I
talking to?" has one answer everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lineguard.stack.state import KAFKA, MONGODB, ServiceState, is_running, read_state
from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from lineguard.settings import StackSettings

KAFKA_ENV = "KAFKA_BOOTSTRAP_SERVERS"
MONGODB_ENV = "MONGODB_URI"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Addresses of the two services lineguard needs."""

    kafka_bootstrap: str  # host:port[,host:port...]
    mongodb_uri: str  # mongodb://... (may carry credentials: never log it)

    def kafka_config(self) -> dict[str, str]:
        """The minimal confluent-kafka client configuration for these endpoints."""
        return {"bootstrap.servers": self.kafka_bootstrap}


def default_state_dir() -> Path:
    """The local stack's state directory: ``LINEGUARD_STACK_STATE_DIR``, else ``<cache dir>/stack``."""
    from lineguard.settings import StackSettings

    return state_dir_of(StackSettings())


def state_dir_of(settings: StackSettings) -> Path:
    return settings.state_dir if settings.state_dir is not None else settings.cache_dir / "stack"


def mongodb_uri_for(service: ServiceState) -> str:
    return f"mongodb://{service.host}:{service.port}/"


def resolve_endpoints(env: Mapping[str, str] | None = None, state_dir: Path | None = None) -> Endpoints:
    """Kafka and MongoDB addresses: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` when set (each on its own),
    else the local stack recorded in its state file, which must be running.

    Raises ConfigurationError, telling the user what to do, when neither source gives an address.
    """
    environ = os.environ if env is None else env
    kafka = (environ.get(KAFKA_ENV) or "").strip()
    mongo = (environ.get(MONGODB_ENV) or "").strip()
    if kafka and mongo:
        return Endpoints(kafka_bootstrap=kafka, mongodb_uri=mongo)

    directory = state_dir if state_dir is not None else default_state_dir()
    state = read_state(directory)
    if not kafka:
        kafka = _running_service(state.services.get(KAFKA), KAFKA, KAFKA_ENV, directory).address
    if not mongo:
        mongo_service = _running_service(state.services.get(MONGODB), MONGODB, MONGODB_ENV, directory)
        mongo = mongodb_uri_for(mongo_service)
    return Endpoints(kafka_bootstrap=kafka, mongodb_uri=mongo)


def _running_service(service: ServiceState | None, name: str, env_var: str, state_dir: Path) -> ServiceState:
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
