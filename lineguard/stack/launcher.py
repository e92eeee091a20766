"""``LocalStack``: start, stop and inspect the local Kafka + MongoDB stack. The CLI and the integration
fixtures both drive it.

Layout of the state directory (default ``~/.cache/lineguard/stack``)::

    state.json          addresses, ports, PIDs (see lineguard.stack.state)
    .lock               held while `up` or `down` runs, so two of them never race
    logs/kafka.log      the broker's log4j log;  logs/kafka.out  its stdout/stderr (JVM crashes)
    logs/mongodb.log    mongod's or FerretDB's output
    kafka/              server.properties, log4j2.properties, data/ (KRaft storage)
    ferretdb/ | mongod/ the MongoDB-protocol server's data

Jars and binaries live in the cache directory beside it (``kafka-<version>/libs``,
``ferretdb-<version>/ferretdb``), shared by every state directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path

from lineguard.stack import kafka, mongodb, ports, processes, security
from lineguard.stack.endpoints import mongodb_uri_for, state_dir_of
from lineguard.stack.locks import file_lock
from lineguard.stack.processes import Progress
from lineguard.stack.settings import StackSettings
from lineguard.stack.state import (
    KAFKA,
    MONGODB,
    SERVICES,
    ServiceState,
    StackState,
    is_running,
    read_state,
    write_state,
)
from lineguard.stack.tools import GO, JAVA, MAVEN, Requirement, require, which
from schemas.errors import ConfigurationError, ServiceUnavailableError

log = logging.getLogger(__name__)

SECURE_PORT = "sasl_ssl"  # key of the secure listener's port in the Kafka service's extra_ports

STOP_TIMEOUT_S = {KAFKA: 30.0, MONGODB: 15.0}  # SIGTERM grace before SIGKILL
LOCK_TIMEOUT_S = 600.0


class Health(StrEnum):
    running = "running"  # process alive and answering
    unhealthy = "unhealthy"  # process alive but not answering (starting, or wedged)
    crashed = "crashed"  # a PID is recorded but that process is gone: stale state
    stopped = "stopped"  # stopped by the launcher
    absent = "absent"  # never started with this state directory


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    name: str
    health: Health
    service: ServiceState | None
    detail: str = ""

    @property
    def address(self) -> str:
        if self.service is None:
            return "-"
        return mongodb_uri_for(self.service) if self.name == MONGODB else self.service.address


@dataclass(frozen=True, slots=True)
class UpResult:
    started: list[str] = field(default_factory=list)  # services this call started
    already_running: list[str] = field(default_factory=list)
    state: StackState = field(default_factory=StackState)


def _log_progress(message: str) -> None:
    log.info("%s", message)


def _validate(services: Iterable[str]) -> list[str]:
    wanted = list(dict.fromkeys(services))
    unknown = [name for name in wanted if name not in SERVICES]
    if unknown:
        raise ConfigurationError(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
    return wanted


class LocalStack:
    """The local stack of one state directory."""

    def __init__(self, settings: StackSettings | None = None, progress: Progress | None = None) -> None:
        self.settings = settings if settings is not None else StackSettings()
        self.cache_dir = self.settings.cache_dir
        self.state_dir = state_dir_of(self.settings)
        self.logs_dir = self.state_dir / "logs"
        self._progress = progress or _log_progress

    # ----------------------------------------------------------------------------------------- queries

    def state(self) -> StackState:
        processes.reap_exited()
        return read_state(self.state_dir)

    def status(self, services: Sequence[str] = SERVICES) -> list[ServiceStatus]:
        """The truth about each service: a recorded PID counts only if that process still runs our
        server, and a live process counts as running only if it answers."""
        state = self.state()
        return [self._status_of(name, state.services.get(name)) for name in _validate(services)]

    def _status_of(self, name: str, service: ServiceState | None) -> ServiceStatus:
        if service is None:
            return ServiceStatus(name, Health.absent, None, "never started here")
        if service.pid is None:
            return ServiceStatus(name, Health.stopped, service)
        if not is_running(service):
            detail = f"recorded PID {service.pid} is gone (stale); see {service.log_file}"
            return ServiceStatus(name, Health.crashed, service, detail)
        if self._answers(service):
            return ServiceStatus(name, Health.running, service, f"pid {service.pid}, {service.program}")
        return ServiceStatus(name, Health.unhealthy, service, f"pid {service.pid} alive but not answering")

    @staticmethod
    def _answers(service: ServiceState) -> bool:
        if service.name == KAFKA:
            return kafka.broker_ready(service.address)
        return mongodb.ping(mongodb_uri_for(service))

    def log_files(self, services: Sequence[str] = SERVICES) -> dict[str, list[Path]]:
        files = {
            KAFKA: [self.logs_dir / "kafka.log", self.logs_dir / "kafka.out"],
            MONGODB: [self._mongo_log],
        }
        return {name: files[name] for name in _validate(services)}

    @property
    def _mongo_log(self) -> Path:
        return self.logs_dir / "mongodb.log"

    # ---------------------------------------------------------------------------------------- commands

    def up(
        self,
        services: Sequence[str] = SERVICES,
        kafka_port: int | None = None,
        kafka_controller_port: int | None = None,
        mongodb_port: int | None = None,
    ) -> UpResult:
        """Start the services that are not running (reusing their recorded ports and data) and wait until
        each one is healthy. Services already running are left alone."""
        wanted = _validate(services)
        with file_lock(self.state_dir / ".lock", LOCK_TIMEOUT_S, "local stack", self._progress):
            state = self.state()
            to_start = [name for name in wanted if not self._alive(state.services.get(name))]
            already = [name for name in wanted if name not in to_start]
            if not to_start:
                return UpResult(already_running=already, state=state)
            tools = require(self._requirements(to_start))  # one message naming everything missing
            self._prepare(to_start)

            launched: list[str] = []
            try:
                if KAFKA in to_start:
                    state = self._start_kafka(state, tools[JAVA.program], kafka_port, kafka_controller_port)
                    launched.append(KAFKA)
                if MONGODB in to_start:
                    state = self._start_mongodb(state, mongodb_port)
                    launched.append(MONGODB)
                for name in launched:  # both start in parallel; wait for each in turn
                    self._wait_healthy(state.services[name])
                if self.settings.secure and KAFKA in launched:
                    self._create_kafka_user(state.services[KAFKA])
            except BaseException:
                state = self._stop(state, launched)  # never leave a half-started stack behind
                raise
            return UpResult(started=launched, already_running=already, state=state)

    def down(self, services: Sequence[str] = SERVICES, purge: bool = False) -> list[str]:
        """Stop the services (SIGTERM, bounded wait, SIGKILL) and return those that were running.
        With ``purge`` their data, ports and state are forgotten as well."""
        wanted = _validate(services)
        with file_lock(self.state_dir / ".lock", LOCK_TIMEOUT_S, "local stack", self._progress):
            state = self.state()
            was_running = [name for name in wanted if self._alive(state.services.get(name))]
            state = self._stop(state, wanted)
            if purge:
                for name in wanted:
                    service = state.services.get(name)
                    if service is not None:
                        shutil.rmtree(service.data_dir, ignore_errors=True)
                state = StackState({n: s for n, s in state.services.items() if n not in wanted})
                write_state(self.state_dir, state)
            return was_running

    # --------------------------------------------------------------------------------------- internals

    @staticmethod
    def _alive(service: ServiceState | None) -> bool:
        return service is not None and is_running(service)

    def _requirements(self, services: Sequence[str]) -> list[Requirement]:
        needed: list[Requirement] = []
        if KAFKA in services:
            needed.append(JAVA)
            if not kafka.jars_cached(self.cache_dir, self.settings.kafka_version):
                needed.append(MAVEN)
        if MONGODB in services and mongodb.pick_server() == mongodb.FERRETDB:
            binary = mongodb.ferretdb_binary(self.cache_dir, self.settings.ferretdb_version)
            if not binary.exists():
                needed.append(GO)
        return needed

    def _prepare(self, services: Sequence[str]) -> None:
        """Fetch the Kafka jars and build FerretDB side by side: on a cold cache they are the slow part
        of the first start (Maven downloads vs. a CPU-bound go build) and do not depend on each other."""
        steps: list[Callable[[], Path]] = []
        if KAFKA in services:
            kafka_version = self.settings.kafka_version
            steps.append(partial(kafka.ensure_jars, self.cache_dir, kafka_version, self._progress))
        if MONGODB in services and mongodb.pick_server() == mongodb.FERRETDB:
            version = self.settings.ferretdb_version
            steps.append(partial(mongodb.ensure_ferretdb, self.cache_dir, version, self._progress))
        if len(steps) < 2:
            return  # nothing to overlap: the start itself prepares what it needs
        with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="stack-prepare") as pool:
            for future in [pool.submit(step) for step in steps]:
                future.result()  # re-raises the first failure

    def _taken_ports(self, state: StackState, other_than: str) -> set[int]:
        taken: set[int] = set()
        for name, service in state.services.items():
            if name != other_than:
                taken.add(service.port)
                taken.update(service.extra_ports.values())
        return taken

    def _start_kafka(
        self, state: StackState, java: str, port: int | None, controller_port: int | None
    ) -> StackState:
        libs = kafka.ensure_jars(self.cache_dir, self.settings.kafka_version, self._progress)
        recorded = state.services.get(KAFKA)
        taken = self._taken_ports(state, KAFKA)
        broker_port = ports.choose_port(recorded.port if recorded else None, port, taken)
        taken.add(broker_port)
        ctrl_port = ports.choose_port(
            recorded.extra_ports.get("controller") if recorded else None, controller_port, taken
        )
        node = kafka.KafkaNode(ports.LOOPBACK, broker_port, ctrl_port, self.state_dir / "kafka")
        kafka.write_node_files(node)
        extra_ports = {"controller": ctrl_port}
        if self.settings.secure:
            taken.add(ctrl_port)
            extra_ports[SECURE_PORT] = self._add_secure_listener(node, recorded, taken)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if not kafka.is_formatted(node):
            kafka.format_storage(java, libs, node, self.logs_dir, self._progress)
        archive = kafka.class_archive_path(self.cache_dir, self.settings.kafka_version)
        command = kafka.broker_command(java, libs, node, self.settings.kafka_heap_mb, self.logs_dir, archive)
        self._progress(f"starting Apache Kafka {self.settings.kafka_version} on {node.bootstrap}")
        pid = processes.spawn(command, self.logs_dir / "kafka.out", cwd=node.node_dir)
        service = ServiceState(
            name=KAFKA,
            host=node.host,
            port=broker_port,
            data_dir=str(node.node_dir),
            log_file=str(self.logs_dir / "kafka.log"),
            program="kafka",
            pid=pid,
            started_at=time.time(),
            extra_ports=extra_ports,
        )
        state = state.with_service(service)
        write_state(self.state_dir, state)  # recorded at once, so `down` can stop it even if `up` dies
        return state

    def _start_mongodb(self, state: StackState, port: int | None) -> StackState:
        server = mongodb.pick_server()
        data_dir = self.state_dir / server
        data_dir.mkdir(parents=True, exist_ok=True)
        recorded = state.services.get(MONGODB)
        taken = self._taken_ports(state, MONGODB)
        chosen = ports.choose_port(recorded.port if recorded else None, port, taken)
        if server == mongodb.MONGOD:
            mongod = which(mongodb.MONGOD)
            assert mongod is not None
            command = mongodb.mongod_command(mongod, ports.LOOPBACK, chosen, data_dir)
        else:
            binary = mongodb.ensure_ferretdb(self.cache_dir, self.settings.ferretdb_version, self._progress)
            command = mongodb.ferretdb_command(binary, ports.LOOPBACK, chosen, data_dir)
        env: dict[str, str] | None = None
        if self.settings.secure:
            if server != mongodb.FERRETDB:
                raise ConfigurationError(
                    "`--secure` enables authentication only for FerretDB so far; mongod is on PATH, so it "
                    "would run without authentication"
                )
            flags, secret_env = security.ferretdb_auth_arguments(security.ensure_secrets(self.state_dir))
            command = [*command, *flags]
            env = {**os.environ, **secret_env}
        self._progress(f"starting {server} on {ports.LOOPBACK}:{chosen}")
        pid = processes.spawn(command, self._mongo_log, cwd=data_dir, env=env)
        service = ServiceState(
            name=MONGODB,
            host=ports.LOOPBACK,
            port=chosen,
            data_dir=str(data_dir),
            log_file=str(self._mongo_log),
            program=server,
            pid=pid,
            started_at=time.time(),
        )
        state = state.with_service(service)
        write_state(self.state_dir, state)
        return state

    def _add_secure_listener(
        self, node: kafka.KafkaNode, recorded: ServiceState | None, taken: set[int]
    ) -> int:
        """Add the SASL_SSL listener to the node's server.properties; returns its port."""
        port = ports.choose_port(recorded.extra_ports.get(SECURE_PORT) if recorded else None, None, taken)
        found = security.ensure_secrets(self.state_dir)
        text = node.config_path.read_text(encoding="utf-8")
        text = security.add_secure_listener(text, node.host, port, found.broker_keystore_path)
        node.config_path.write_text(text, encoding="utf-8")
        self._progress(f"Kafka SASL_SSL listener on {node.host}:{port} (CA {found.ca_path})")
        return port

    def _create_kafka_user(self, service: ServiceState) -> None:
        found = security.ensure_secrets(self.state_dir)
        security.create_kafka_user(service.address, found.kafka_user, found.kafka_password)
        self._progress(f"Kafka SCRAM user {found.kafka_user!r} ready ({security.SCRAM_MECHANISM})")

    def _wait_healthy(self, service: ServiceState) -> None:
        """Wait until the service answers; fail fast (with its last log lines) if its process dies."""
        deadline = time.monotonic() + self.settings.start_timeout_s
        answers: Callable[[], bool] = (
            (lambda: ports.accepts_connections(service.port) and kafka.broker_ready(service.address))
            if service.name == KAFKA
            else (lambda: mongodb.ping(mongodb_uri_for(service)))
        )
        while not answers():
            if not is_running(service):
                raise ServiceUnavailableError(
                    f"{service.name} exited during start-up; last log lines:\n{self._log_tail(service.name)}"
                )
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"{service.name} did not become healthy within {self.settings.start_timeout_s:.0f} s; "
                    f"last log lines:\n{self._log_tail(service.name)}"
                )
            time.sleep(0.5)
        if service.name == KAFKA:
            kafka.probe(service.address, timeout_s=max(10.0, deadline - time.monotonic()))
        self._progress(f"{service.name} healthy at {service.address}")

    def _log_tail(self, name: str, lines: int = 15) -> str:
        tails: list[str] = []
        for path in self.log_files([name])[name]:
            tails.extend(f"    {path.name}: {line}" for line in processes.tail(path, lines))
        return "\n".join(tails) or "    (no log output)"

    def _stop(self, state: StackState, services: Iterable[str]) -> StackState:
        for name in services:
            service = state.services.get(name)
            if service is None or service.pid is None:
                continue
            if is_running(service):
                self._progress(f"stopping {name} (pid {service.pid})")
                clean = processes.stop_process(
                    service.pid, partial(is_running, service), term_timeout_s=STOP_TIMEOUT_S[name]
                )
                if not clean:
                    log.warning("%s needed SIGKILL", name)
                if name == KAFKA:
                    archive = kafka.class_archive_path(self.cache_dir, self.settings.kafka_version)
                    kafka.adopt_class_archive(Path(service.data_dir), archive, exited_cleanly=clean)
            state = state.with_service(service.stopped())
            write_state(self.state_dir, state)
        return state
