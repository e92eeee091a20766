"""Apache Kafka for the local stack: jars from Maven Central, a rendered KRaft config, storage formatting,
the broker command line and a health probe that really produces and consumes a record."""

from __future__ import annotations

import base64
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from lineguard.stack import processes
from lineguard.stack.locks import file_lock
from lineguard.stack.processes import Progress
from lineguard.stack.tools import MAVEN, require
from schemas.errors import LineguardError, ServiceUnavailableError
from schemas.topics import DEFAULT_MAX_MESSAGE_BYTES

# Above every topic's max.message.bytes (lineguard's 10 MiB inline limit plus batch headroom), so the
# topic setting is the one that decides; replica fetches use the same figure.
BROKER_MESSAGE_MAX_BYTES = 16 * 1024 * 1024
assert BROKER_MESSAGE_MAX_BYTES > DEFAULT_MAX_MESSAGE_BYTES

PROBE_TOPIC = "lineguard.stack-probe"
_COMPLETE_MARKER = ".complete"


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """What differs between two local brokers: addresses and where the data lives."""

    host: str
    broker_port: int
    controller_port: int
    node_dir: Path  # holds server.properties, log4j2.properties and data/

    @property
    def config_path(self) -> Path:
        return self.node_dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.node_dir / "log4j2.properties"

    @property
    def data_dir(self) -> Path:
        return self.node_dir / "data"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.broker_port}"


def _package_text(name: str) -> str:
    return resources.files("lineguard.stack").joinpath(name).read_text(encoding="utf-8")


def render_server_properties(node: KafkaNode, message_max_bytes: int = BROKER_MESSAGE_MAX_BYTES) -> str:
    """The broker's server.properties for this node (pure: used by the launcher and the unit tests)."""
    return Template(_package_text("kafka-server.properties")).substitute(
        host=node.host,
        broker_port=node.broker_port,
        controller_port=node.controller_port,
        log_dirs=str(node.data_dir),
        message_max_bytes=message_max_bytes,
    )


def render_pom(kafka_version: str) -> str:
    return _package_text("kafka-runtime.pom.xml").replace("@KAFKA_VERSION@", kafka_version)


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka writes it: a random UUID in URL-safe base64 without padding, not
    starting with '-' (Kafka's own generator avoids that too, since it looks like a command-line flag)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def runtime_dir(cache_dir: Path, kafka_version: str) -> Path:
    return cache_dir / f"kafka-{kafka_version}"


def jars_cached(cache_dir: Path, kafka_version: str) -> bool:
    return (runtime_dir(cache_dir, kafka_version) / "libs" / _COMPLETE_MARKER).exists()


def ensure_jars(cache_dir: Path, kafka_version: str, progress: Progress) -> Path:
    """The directory of the broker's runtime jars, resolved with Maven on first use and cached."""
    home = runtime_dir(cache_dir, kafka_version)
    libs = home / "libs"
    if (libs / _COMPLETE_MARKER).exists():
        return libs
    lock = home.parent / f"{home.name}.lock"
    with file_lock(lock, timeout_s=1800, what=f"Kafka {kafka_version} download", on_wait=progress):
        if (libs / _COMPLETE_MARKER).exists():  # another process finished it while we waited
            return libs
        mvn = require([MAVEN])[MAVEN.program]
        home.mkdir(parents=True, exist_ok=True)
        (home / "pom.xml").write_text(render_pom(kafka_version), encoding="utf-8")
        partial = home / "libs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        progress(f"resolving Apache Kafka {kafka_version} jars from Maven Central (first start only)")
        downloads = 0

        def count_downloads(line: str) -> str | None:
            nonlocal downloads
            if "Downloaded from" in line:  # "[INFO] Downloaded from central: https://..."
                downloads += 1
                return f"{downloads} files downloaded"
            return None

        processes.run_step(
            [
                mvn,
                "-B",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={partial}",
            ],
            label="maven",
            log_path=home / "maven.log",
            progress=progress,
            cwd=home,
            on_line=count_downloads,
        )
        broker_jar = partial / f"kafka_2.13-{kafka_version}.jar"
        if not broker_jar.exists():
            raise LineguardError(f"Maven finished but {broker_jar.name} is missing; see {home / 'maven.log'}")
        (partial / _COMPLETE_MARKER).write_text(kafka_version + "\n", encoding="utf-8")
        shutil.rmtree(libs, ignore_errors=True)
        partial.rename(libs)
        progress(f"Kafka {kafka_version}: {sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs


def write_node_files(node: KafkaNode) -> None:
    node.node_dir.mkdir(parents=True, exist_ok=True)
    node.config_path.write_text(render_server_properties(node), encoding="utf-8")
    node.log4j_path.write_text(_package_text("kafka-log4j2.properties"), encoding="utf-8")


def is_formatted(node: KafkaNode) -> bool:
    return (node.data_dir / "meta.properties").exists()


def java_command(java: str, libs: Path, heap_mb: int, logs_dir: Path, log4j_path: Path) -> list[str]:
    """The JVM part of every Kafka command: small heap, G1, our log4j2 config."""
    return [
        java,
        f"-Xmx{heap_mb}m",
        f"-Xms{min(heap_mb, 128)}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dkafka.logs.dir={logs_dir}",
        f"-Dlog4j2.configurationFile={log4j_path}",
        "-cp",
        f"{libs}/*",
    ]


def format_storage(java: str, libs: Path, node: KafkaNode, logs_dir: Path, progress: Progress) -> None:
    """Format the node's KRaft storage once. With a static ``controller.quorum.voters`` list the storage
    tool must not get ``--standalone`` (that is for dynamic quorums)."""
    progress("formatting Kafka storage (first start only)")
    command = [
        *java_command(java, libs, 256, logs_dir, node.log4j_path),
        "kafka.tools.StorageTool",
        "format",
        "--cluster-id",
        new_cluster_id(),
        "--config",
        str(node.config_path),
    ]
    processes.run_step(command, "kafka storage format", logs_dir / "kafka-format.log", progress)


def broker_command(
    java: str, libs: Path, node: KafkaNode, heap_mb: int, logs_dir: Path, class_archive: Path | None = None
) -> list[str]:
    jvm = java_command(java, libs, heap_mb, logs_dir, node.log4j_path)
    if class_archive is not None:
        jvm[1:1] = class_archive_options(class_archive, node)
    return [*jvm, "kafka.Kafka", str(node.config_path)]


# Class-data sharing: the broker loads ~10,000 classes at start, which is most of its start-up time on a
# busy 2-core machine. The first broker that exits cleanly leaves an archive of them (the JVM writes it at
# exit); later starts map it instead of loading and verifying each class (measured: ~20-30 s -> ~15 s under
# load). Restarts matter here: tests and the chaos harness stop and start the broker many times.
def class_archive_path(cache_dir: Path, kafka_version: str) -> Path:
    return runtime_dir(cache_dir, kafka_version) / "kafka-classes.jsa"


def _pending_archive(node: KafkaNode) -> Path:
    return node.node_dir / "kafka-classes.jsa.pending"


def class_archive_options(archive: Path, node: KafkaNode) -> list[str]:
    """Use the shared archive if there is one (the JVM falls back silently if it does not fit), else have
    this broker write one at exit, to a file of its own until it is known to be complete."""
    quiet = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]  # per-class "skipping" notes are noise in kafka.out
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", *quiet]
    return [f"-XX:ArchiveClassesAtExit={_pending_archive(node)}", *quiet]


def adopt_class_archive(node_dir: Path, archive: Path, exited_cleanly: bool) -> None:
    """After the broker stopped: keep the archive it wrote if it exited cleanly (a killed JVM may have
    left half a file), unless another broker's archive got there first."""
    pending = _pending_archive(KafkaNode("", 0, 0, node_dir))
    if exited_cleanly and pending.exists() and not archive.exists():
        os.replace(pending, archive)
    pending.unlink(missing_ok=True)


def broker_ready(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """Does the broker answer a metadata request with itself as a live broker?"""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException:
        return False
    return len(metadata.brokers) > 0


def probe(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Produce one record and read it back: proves the broker accepts writes (topic creation, leader
    election, acks=all) and serves fetches, not merely that its port is open."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from infra.kafka_topics import ensure_topics

    config = {"bootstrap.servers": bootstrap}
    ensure_topics(config, [PROBE_TOPIC], partitions=1, timeout_s=timeout_s)
    token = uuid.uuid4().hex.encode()
    offset = _produce_one(config, token, timeout_s)

    consumer = Consumer({**config, "group.id": "lineguard-stack-probe", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(PROBE_TOPIC, 0, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ServiceUnavailableError(f"Kafka probe consume failed: {error.str()}")
            if message.value() == token:
                return
        raise ServiceUnavailableError(f"Kafka probe: the record at offset {offset} was not read back")
    finally:
        consumer.close()


def _produce_one(config: dict[str, str], value: bytes, timeout_s: float) -> int:
    from confluent_kafka import Producer

    # log_level 3 (errors): right after start-up librdkafka warns, and retries, while the transaction
    # coordinator loads; that is expected here and would only alarm the user.
    producer = Producer({**config, "acks": "all", "enable.idempotence": True, "log_level": 3})
    delivered: list[int] = []
    errors: list[str] = []

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            delivered.append(message.offset())  # type: ignore[attr-defined]

    producer.produce(PROBE_TOPIC, value=value, partition=0, on_delivery=on_delivery)
    remaining = producer.flush(timeout_s)
    if errors or remaining or not delivered:
        raise ServiceUnavailableError(f"Kafka probe produce failed: {errors or 'not delivered in time'}")
    return delivered[0]
