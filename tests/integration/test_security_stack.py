"""`lineguard stack up --secure` end to end, in a state directory of its own: Kafka SASL_SSL with SCRAM over
a test CA made at run time and FerretDB with authentication. The right credentials work for raw clients,
the camera and the worker; wrong ones are one clear error line and exit code 2; the password shows in no
log line, no /metrics output and no progress line."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from pydantic import SecretStr
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from infra.kafka_access import verify_kafka_access
from infra.kafka_topics import ensure_topics
from infra.settings import KafkaSettings
from lineguard.stack.endpoints import KAFKA_ENV, MONGODB_ENV
from lineguard.stack.ports import pick_free_port
from schemas.errors import ConfigurationError

pytestmark = pytest.mark.integration

PASSWORD_VAR = "LINEGUARD_KAFKA_SASL_PASSWORD"
_SECURITY_VARS = (
    "LINEGUARD_KAFKA_SECURITY_PROTOCOL",
    "LINEGUARD_KAFKA_SASL_MECHANISM",
    "LINEGUARD_KAFKA_SASL_USERNAME",
    PASSWORD_VAR,
    "LINEGUARD_KAFKA_SSL_CA_LOCATION",
)


def _lineguard(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lineguard.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


class SecureStack:
    """A running secure stack: the plain environment (no endpoints) and the exported credentials."""

    def __init__(
        self, base_env: dict[str, str], exports: dict[str, str], up: subprocess.CompletedProcess[str]
    ):
        self.base_env = base_env
        self.exports = exports
        self.up = up

    @property
    def env(self) -> dict[str, str]:
        """What a user has after `eval "$(lineguard stack up --secure)"`."""
        return {**self.base_env, **self.exports}

    @property
    def password(self) -> str:
        return self.exports[PASSWORD_VAR]

    @property
    def mongodb_password(self) -> str:
        return self.exports[MONGODB_ENV].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]

    def kafka_settings(self, **overrides: object) -> KafkaSettings:
        e = self.exports
        values: dict[str, Any] = {
            "security_protocol": e["LINEGUARD_KAFKA_SECURITY_PROTOCOL"],
            "sasl_mechanism": e["LINEGUARD_KAFKA_SASL_MECHANISM"],
            "sasl_username": e["LINEGUARD_KAFKA_SASL_USERNAME"],
            "sasl_password": SecretStr(self.password),
            "ssl_ca_location": e["LINEGUARD_KAFKA_SSL_CA_LOCATION"],
            **overrides,
        }
        return KafkaSettings.model_construct(**values)

    def client_config(self, **overrides: object) -> dict[str, object]:
        return self.kafka_settings(**overrides).client_config(self.exports[KAFKA_ENV])


def _parse_exports(stdout: str) -> dict[str, str]:
    exports: dict[str, str] = {}
    for line in stdout.splitlines():
        assert line.startswith("export "), line
        key, _, value = line.removeprefix("export ").partition("=")
        exports[key] = shlex.split(value)[0]
    return exports


@pytest.fixture(scope="module")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureStack]:
    state_dir = tmp_path_factory.mktemp("secure") / "stack"
    env = {k: v for k, v in os.environ.items() if k not in (KAFKA_ENV, MONGODB_ENV, *_SECURITY_VARS)}
    env["LINEGUARD_STACK_STATE_DIR"] = str(state_dir)
    up = _lineguard(env, "stack", "up", "--secure", timeout=240)
    try:
        assert up.returncode == 0, up.stderr
        yield SecureStack(env, _parse_exports(up.stdout), up)
    finally:
        _lineguard(env, "stack", "down", "--purge")


def test_up_prints_credentials_only_in_its_export_lines(secure_stack: SecureStack) -> None:
    exports = secure_stack.exports
    assert exports["LINEGUARD_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert exports["LINEGUARD_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert exports["LINEGUARD_KAFKA_SASL_USERNAME"] == "lineguard"
    assert Path(exports["LINEGUARD_KAFKA_SSL_CA_LOCATION"]).is_file()
    assert "authSource=admin" in exports[MONGODB_ENV]
    assert secure_stack.password not in secure_stack.up.stderr  # progress lines name files, not secrets
    assert secure_stack.mongodb_password not in secure_stack.up.stderr
    assert exports[KAFKA_ENV] in secure_stack.up.stderr  # ... and say where the secure listener is
    status = _lineguard(secure_stack.base_env, "stack", "status", "--json")
    assert status.returncode == 0, status.stderr
    kafka = next(entry for entry in json.loads(status.stdout) if entry["service"] == "kafka")
    assert kafka["secure_address"] == exports[KAFKA_ENV] != kafka["address"]


def test_produce_and_consume_over_sasl_ssl(secure_stack: SecureStack) -> None:
    config = secure_stack.client_config()
    topic = f"test.secure.{uuid.uuid4().hex[:8]}"
    ensure_topics(config, [topic], partitions=1)
    token = uuid.uuid4().bytes
    delivered: list[object] = []
    producer = Producer({**config, "acks": "all"})
    producer.produce(topic, token, on_delivery=lambda err, msg: delivered.append(err or msg.offset()))
    assert producer.flush(30) == 0
    assert delivered == [0]

    consumer = Consumer({**config, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        values: list[bytes | None] = []
        while not values and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            assert error is None or error.code() == KafkaError._PARTITION_EOF, error
            if error is None:
                values.append(message.value())
    finally:
        consumer.close()
    assert values == [token]


def test_refused_clients_fail_with_a_clear_configuration_error(secure_stack: SecureStack) -> None:
    assert verify_kafka_access(secure_stack.client_config()) is True
    with pytest.raises(ConfigurationError, match="refused the credentials of user 'lineguard'") as refused:
        verify_kafka_access(secure_stack.client_config(sasl_password=SecretStr("wrong-password")))
    assert "wrong-password" not in str(refused.value)
    with pytest.raises(ConfigurationError, match="expects TLS"):
        verify_kafka_access({"bootstrap.servers": secure_stack.exports[KAFKA_ENV]})
    with pytest.raises(ConfigurationError, match=r"TLS handshake .* failed .*certificate verify failed"):
        verify_kafka_access(secure_stack.client_config(ssl_ca_location=None))


def _assert_one_error_line(result: subprocess.CompletedProcess[str], expected: str, secret: str) -> None:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr


def test_camera_with_a_wrong_password_exits_2(secure_stack: SecureStack, tmp_path: Path) -> None:
    env = {**secure_stack.env, PASSWORD_VAR: "wrong-password-123"}
    result = _lineguard(env, "camera", "--count", "1", "--no-progress", "--spool-dir", str(tmp_path))
    _assert_one_error_line(result, "refused the credentials of user 'lineguard'", "wrong-password-123")


def test_camera_with_a_wrong_mongodb_password_exits_2(secure_stack: SecureStack, tmp_path: Path) -> None:
    wrong_uri = secure_stack.exports[MONGODB_ENV].replace(secure_stack.mongodb_password, "wrong-password-mdb")
    env = {**secure_stack.env, MONGODB_ENV: wrong_uri}  # claim-check is on by default: it needs MongoDB
    result = _lineguard(env, "camera", "--count", "1", "--no-progress", "--spool-dir", str(tmp_path))
    _assert_one_error_line(result, "MongoDB refused access", "wrong-password-mdb")


def test_plaintext_camera_on_the_tls_listener_exits_2(secure_stack: SecureStack, tmp_path: Path) -> None:
    env = {**secure_stack.base_env, KAFKA_ENV: secure_stack.exports[KAFKA_ENV]}
    env[MONGODB_ENV] = secure_stack.exports[MONGODB_ENV]
    result = _lineguard(env, "camera", "--count", "1", "--no-progress", "--spool-dir", str(tmp_path))
    _assert_one_error_line(result, "expects TLS", secure_stack.password)


def test_camera_with_the_right_credentials_logs_no_secret(secure_stack: SecureStack, tmp_path: Path) -> None:
    topic = f"test.secure.camera.{uuid.uuid4().hex[:8]}"
    result = _lineguard(
        secure_stack.env,
        "--log-level",
        "DEBUG",
        "camera",
        "--count",
        "2",
        "--fps",
        "0",
        "--topic",
        topic,
        "--no-progress",
        "--spool-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "2 delivered" in result.stderr
    assert "DEBUG" in result.stderr  # the check below covers debug logging, not an empty log
    assert secure_stack.password not in result.stdout + result.stderr
    assert secure_stack.mongodb_password not in result.stdout + result.stderr


def test_mongodb_enforces_authentication(secure_stack: SecureStack) -> None:
    uri = secure_stack.exports[MONGODB_ENV]
    host = uri.split("@", 1)[1].split("/", 1)[0]
    wrong = uri.replace(secure_stack.mongodb_password, "wrong-password")
    for candidate, code in ((f"mongodb://{host}/", 13), (wrong, 18)):  # Unauthorized, AuthenticationFailed
        client: MongoClient[dict[str, object]] = MongoClient(candidate, serverSelectionTimeoutMS=5000)
        try:
            with pytest.raises(OperationFailure) as refused:
                client["lineguard_test"]["security"].insert_one({"x": 1})
            assert refused.value.code == code
        finally:
            client.close()
    client = MongoClient(uri, serverSelectionTimeoutMS=5000)
    database = f"lineguard_test_{uuid.uuid4().hex[:8]}"  # its own: the count holds whatever ran before
    try:
        client[database]["security"].insert_one({"x": 1})
        assert client[database]["security"].count_documents({}) == 1
    finally:
        client.drop_database(database)
        client.close()


def test_worker_with_wrong_credentials_exits_2(secure_stack: SecureStack) -> None:
    prefix = f"test.secure.{uuid.uuid4().hex[:8]}"
    args = ("worker", "--topic-prefix", prefix, "--group", f"{prefix}.g")
    kafka_refused = _lineguard({**secure_stack.env, PASSWORD_VAR: "wrong-password-456"}, *args)
    _assert_one_error_line(kafka_refused, "refused the credentials of user 'lineguard'", "wrong-password-456")

    wrong_uri = secure_stack.exports[MONGODB_ENV].replace(secure_stack.mongodb_password, "wrong-password-789")
    mongo_refused = _lineguard({**secure_stack.env, MONGODB_ENV: wrong_uri}, *args)
    _assert_one_error_line(mongo_refused, "MongoDB refused access", "wrong-password-789")


def test_dlq_commands_use_the_credentials(secure_stack: SecureStack) -> None:
    topic = f"test.secure.dlq.{uuid.uuid4().hex[:8]}"
    ensure_topics(secure_stack.client_config(), [topic], partitions=1)
    inspected = _lineguard(secure_stack.env, "dlq", "inspect", "--topic", topic, "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["total"] == 0

    refused = _lineguard({**secure_stack.env, PASSWORD_VAR: "wrong-password-dlq"}, "dlq", "inspect")
    _assert_one_error_line(refused, "refused the credentials of user 'lineguard'", "wrong-password-dlq")


def test_worker_metrics_and_debug_logs_hold_no_secret(secure_stack: SecureStack, tmp_path: Path) -> None:
    prefix = f"test.secure.{uuid.uuid4().hex[:8]}"
    port = pick_free_port()
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log_file:
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "lineguard.cli", "--log-level", "DEBUG", "worker"),
                *("--topic-prefix", prefix, "--group", f"{prefix}.g", "--metrics-port", str(port)),
            ],
            env=secure_stack.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        metrics = _scrape_when_ready(worker, port, log_path)
    finally:
        worker.send_signal(signal.SIGTERM)
        exit_code = worker.wait(timeout=60)
    logs = log_path.read_text()
    assert exit_code == 0, logs
    assert "lineguard_worker_frames_in_total" in metrics
    assert "DEBUG" in logs
    for secret in (secure_stack.password, secure_stack.mongodb_password):
        assert secret not in metrics
        assert secret not in logs


def _scrape_when_ready(worker: subprocess.Popen[bytes], port: int, log_path: Path) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert worker.poll() is None, log_path.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as ready:
                if ready.status == 200:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                        return str(response.read().decode())
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"worker not ready in time:\n{log_path.read_text()}")


def test_the_stack_logs_and_configs_hold_no_secret(secure_stack: SecureStack) -> None:
    """The servers' logs after this test itself made them log authentication: a good and a refused login
    on each server (it used to rely on running last, after the other tests had done so)."""
    _exercise_authentication(secure_stack)
    state_dir = Path(secure_stack.base_env["LINEGUARD_STACK_STATE_DIR"])
    configs = [state_dir / "kafka" / "server.properties", state_dir / "state.json"]
    files = [*(state_dir / "logs").glob("*"), *configs]
    assert any(path.name == "kafka.log" and path.stat().st_size > 0 for path in files)
    assert any(path.name == "mongodb.log" and path.stat().st_size > 0 for path in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert secure_stack.password not in text, path
        assert secure_stack.mongodb_password not in text, path


def _exercise_authentication(secure_stack: SecureStack) -> None:
    """A good and a refused login on Kafka and on MongoDB: what a server might log a secret for."""
    verify_kafka_access(secure_stack.client_config())
    with pytest.raises(ConfigurationError):
        verify_kafka_access(secure_stack.client_config(sasl_password=SecretStr("wrong-password-logs")))
    uri = secure_stack.exports[MONGODB_ENV]
    for candidate, works in ((uri, True), (uri.replace(secure_stack.mongodb_password, "wrong-logs"), False)):
        client: MongoClient[dict[str, object]] = MongoClient(candidate, serverSelectionTimeoutMS=5000)
        try:
            if works:
                client.admin.command("ping")
            else:
                with pytest.raises(OperationFailure):
                    client["lineguard_test"]["security"].insert_one({"x": 1})
        finally:
            client.close()
