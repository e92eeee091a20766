"""Secure-stack material made at run time (CA, broker certificate, passwords, broker properties) and the
rule that secrets never show in a settings repr or in any ``--help`` output."""

from __future__ import annotations

import datetime
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from pydantic import SecretStr
from pymongo.errors import OperationFailure
from typer.testing import CliRunner

from infra.mongo_access import access_refused
from infra.settings import KafkaSettings, MongoSettings, RegistrySettings
from lineguard.stack import security
from lineguard.stack.kafka import KafkaNode, render_server_properties

PASSWORD = "Recognisable-Pa55word-4-tests"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pem_blocks(text: str, kind: str) -> list[str]:
    begin, end = f"-----BEGIN {kind}-----", f"-----END {kind}-----"
    return [begin + part.split(end)[0] + end for part in text.split(begin)[1:]]


def test_broker_certificate_is_signed_by_the_test_ca_for_loopback_names(tmp_path: Path) -> None:
    found = security.ensure_secrets(tmp_path)
    ca = x509.load_pem_x509_certificate(found.ca_path.read_bytes())
    keystore = found.broker_keystore_path.read_text()
    assert len(_pem_blocks(keystore, "PRIVATE KEY")) == 1  # PKCS#8, as Kafka's PEM keystore wants
    chain = [x509.load_pem_x509_certificate(block.encode()) for block in _pem_blocks(keystore, "CERTIFICATE")]
    broker = chain[0]
    assert chain[1] == ca

    broker.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert broker.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7)


def test_secrets_are_private_files_and_stable_across_starts(tmp_path: Path) -> None:
    first = security.ensure_secrets(tmp_path)
    second = security.ensure_secrets(tmp_path)
    assert first.kafka_password.get_secret_value() == second.kafka_password.get_secret_value()
    assert first.mongodb_password.get_secret_value() != first.kafka_password.get_secret_value()
    assert len(first.kafka_password.get_secret_value()) >= 24
    assert _mode(first.directory) == 0o700
    for name in ("kafka-password", "mongodb-password", "ca-key.pem", "broker-keystore.pem"):
        assert _mode(first.directory / name) == 0o600, name
    assert first.kafka_password.get_secret_value() not in repr(first)
    assert first.mongodb_password.get_secret_value() not in repr(first)


def test_load_secrets_is_none_for_a_stack_never_started_secure(tmp_path: Path) -> None:
    assert security.load_secrets(tmp_path) is None


def test_secure_listener_is_added_beside_the_plaintext_one(tmp_path: Path) -> None:
    node = KafkaNode("127.0.0.1", 29092, 29093, tmp_path / "kafka")
    plain = render_server_properties(node)
    keystore = tmp_path / "broker-keystore.pem"
    text = security.add_secure_listener(plain, "127.0.0.1", 29094, keystore)
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))

    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093,SASL_SSL://127.0.0.1:29094"
    )
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29092,SASL_SSL://127.0.0.1:29094"
    assert props["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # the rest of the stack is unchanged
    assert props["listener.name.sasl_ssl.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(keystore)
    assert "ScramLoginModule required;" in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    # Without --secure nothing of this is there.
    assert "SASL_SSL" not in plain


def test_secure_listener_refuses_a_config_without_listeners(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"advertised\.listeners"):
        security.add_secure_listener("listeners=PLAINTEXT://h:1\n", "h", 2, tmp_path / "k.pem")


def test_ferretdb_gets_its_password_from_the_environment_not_argv(tmp_path: Path) -> None:
    found = security.ensure_secrets(tmp_path)
    flags, env = security.ferretdb_auth_arguments(found)
    secret = found.mongodb_password.get_secret_value()
    assert "--test-enable-new-auth" in flags
    assert all(secret not in flag for flag in flags)  # argv is readable by every local user
    assert env == {"FERRETDB_SETUP_PASSWORD": secret}


def test_credentials_in_the_mongodb_uri_are_escaped() -> None:
    found = security.StackSecrets(Path("/x"), "u", SecretStr("k"), "us@r", SecretStr("p:w/d@"))
    uri = security.mongodb_uri_with_credentials("127.0.0.1", 27017, found)
    assert uri == "mongodb://us%40r:p%3Aw%2Fd%40@127.0.0.1:27017/?authSource=admin"


def test_settings_never_show_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEGUARD_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("LINEGUARD_KAFKA_SASL_USERNAME", "lineguard")
    monkeypatch.setenv("MONGODB_URI", f"mongodb://lineguard:{PASSWORD}@127.0.0.1:1/")
    monkeypatch.setenv("LINEGUARD_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO", f"user:{PASSWORD}")
    kafka, mongo, registry = KafkaSettings(), MongoSettings(), RegistrySettings()

    assert kafka.client_config("h:1")["sasl.password"] == PASSWORD  # it is read ...
    for settings in (kafka, mongo, registry):  # ... and never shown
        for shown in (repr(settings), str(settings), settings.model_dump_json()):
            assert PASSWORD not in shown


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["camera"],
        ["worker"],
        ["dlq", "replay"],
        ["dlq", "inspect"],
        ["stack", "up"],
        ["demo"],
    ],
)
def test_help_output_holds_no_secret(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from lineguard.cli import app

    env = {
        "LINEGUARD_KAFKA_SASL_PASSWORD": PASSWORD,
        "MONGODB_URI": f"mongodb://lineguard:{PASSWORD}@127.0.0.1:1/",
        "LINEGUARD_SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO": f"user:{PASSWORD}",
    }
    result = CliRunner().invoke(app, [*command, "--help"], env=env)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert PASSWORD not in result.output


@pytest.mark.parametrize(("code", "refused"), [(18, True), (13, True), (11000, False), (None, False)])
def test_only_refused_mongodb_logins_are_configuration_errors(code: int | None, refused: bool) -> None:
    failure = OperationFailure("failed", code=code, details={"errmsg": "Authentication failed."})
    error = access_refused(failure)
    assert (error is not None) == refused
    if error is not None:
        assert "MONGODB_URI" in str(error) and "Authentication failed." in str(error)
