"""A throw-away Kafka broker whose second listener is reached only through a fault proxy.

Kafka clients learn broker addresses from metadata: a worker bootstrapped through a proxy would be told the
broker's real address and connect around it. So the broker gets a listener of its own for the proxied
clients, ``PROXIED``, bound on a private port and *advertised at the proxy's port*: every connection a
worker makes (bootstrap, partition leaders, the group and transaction coordinators) goes through the proxy.
The ``PLAINTEXT`` listener stays direct, for the harness's own producer, readers and audit, which must not
suffer the fault they measure. The shared stack's broker cannot be used: its listeners are fixed.

Jars, Java and the class-data archive come from the local stack's cache (:mod:`lineguard.stack.kafka`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from chaos.netproxy import FaultProxy
from infra.settings import default_cache_dir
from lineguard.stack import kafka, ports, processes
from lineguard.stack.settings import StackSettings
from lineguard.stack.state import process_cmdline
from lineguard.stack.tools import JAVA, require
from schemas.errors import ServiceUnavailableError

PROXIED_LISTENER = "PROXIED"


def add_proxied_listener(server_properties: str, bind_port: int, advertised_port: int) -> str:
    """server.properties with a ``PROXIED`` listener bound on ``bind_port``, advertised at
    ``advertised_port`` (pure)."""
    edited = []
    for line in server_properties.splitlines():
        key, sep, _value = line.partition("=")
        if sep and key == "listeners":
            line = f"{line},{PROXIED_LISTENER}://127.0.0.1:{bind_port}"
        elif sep and key == "advertised.listeners":
            line = f"{line},{PROXIED_LISTENER}://127.0.0.1:{advertised_port}"
        elif sep and key == "listener.security.protocol.map":
            line = f"{line},{PROXIED_LISTENER}:PLAINTEXT"
        edited.append(line)
    return "\n".join(edited) + "\n"


@dataclass
class ProxiedKafka:
    """Start with :meth:`start`; ``direct`` is the harness's bootstrap, ``proxy.address`` the workers'."""

    work_dir: Path
    heap_mb: int = 384
    start_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        taken: set[int] = set()
        self.broker_port = ports.pick_free_port(taken)
        taken.add(self.broker_port)
        self.controller_port = ports.pick_free_port(taken)
        taken.add(self.controller_port)
        self.proxied_port = ports.pick_free_port(taken)
        self.proxy = FaultProxy("127.0.0.1", self.proxied_port, name="kafka")
        self.node = kafka.KafkaNode(
            ports.LOOPBACK, self.broker_port, self.controller_port, self.work_dir / "kafka"
        )
        self.pid: int | None = None

    @property
    def direct(self) -> str:
        return self.node.bootstrap

    def start(self) -> ProxiedKafka:
        cache = default_cache_dir()
        java = require([JAVA])[JAVA.program]
        logs = self.work_dir / "logs"
        version = StackSettings().kafka_version
        libs = kafka.ensure_jars(cache, version, lambda message: None)
        self.proxy.start()
        kafka.write_node_files(self.node)
        text = self.node.config_path.read_text(encoding="utf-8")
        self.node.config_path.write_text(
            add_proxied_listener(text, self.proxied_port, self.proxy.port), encoding="utf-8"
        )
        if not kafka.is_formatted(self.node):
            kafka.format_storage(java, libs, self.node, logs, lambda message: None)
        archive = kafka.class_archive_path(cache, version)
        command = kafka.broker_command(java, libs, self.node, self.heap_mb, logs, archive)
        self.pid = processes.spawn(command, logs / "kafka.out", cwd=self.node.node_dir)
        deadline = time.monotonic() + self.start_timeout_s
        while not (ports.accepts_connections(self.broker_port) and kafka.broker_ready(self.direct)):
            if time.monotonic() > deadline or not self._alive():
                self.stop()
                raise ServiceUnavailableError(f"private Kafka did not start; see {logs / 'kafka.out'}")
            time.sleep(0.5)
        kafka.probe(self.direct, timeout_s=60)
        return self

    def _alive(self) -> bool:
        argv = None if self.pid is None else process_cmdline(self.pid)
        return argv is not None and "kafka.Kafka" in argv

    def stop(self) -> None:
        if self.pid is not None:
            processes.stop_process(self.pid, self._alive, term_timeout_s=20)
            self.pid = None
        self.proxy.close()
