"""The secure mode of the local stack (``lineguard stack up --secure``): a test CA and broker certificate
made at run time, a SASL_SSL (SCRAM-SHA-512 over TLS) Kafka listener beside the PLAINTEXT one, a SCRAM
user, and a FerretDB/MongoDB user.

Everything secret lives in ``<state dir>/security/`` (directory 0700, key and password files 0600) and is
never logged: the launcher's progress lines name files, never their contents. Only ``lineguard stack up
--secure`` prints the passwords, as ``export`` lines on stdout for a shell to ``eval``.

The PLAINTEXT listener stays as it is: the stack's own health probe and every other test keep using it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from schemas.errors import ServiceUnavailableError

SECURITY_DIR_NAME = "security"
SECURE_LISTENER = "SASL_SSL"
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192  # Kafka's minimum is 4096
KAFKA_USER = "lineguard"
MONGODB_USER = "lineguard"
MONGODB_AUTH_DATABASE = "admin"
CERT_HOSTS = ("localhost", "127.0.0.1")
_SCRAM_LOGIN_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
CERT_VALID_DAYS = 30  # a development CA: short-lived on purpose

_CA_CERT = "ca.pem"
_CA_KEY = "ca-key.pem"
_BROKER_KEYSTORE = "broker-keystore.pem"  # the broker's private key + certificate chain, PEM
_KAFKA_PASSWORD = "kafka-password"
_MONGODB_PASSWORD = "mongodb-password"


@dataclass(frozen=True, slots=True)
class StackSecrets:
    """Where the secure stack's material is, and the credentials (as SecretStr: repr shows ``**********``)."""

    directory: Path
    kafka_user: str
    kafka_password: SecretStr
    mongodb_user: str
    mongodb_password: SecretStr

    @property
    def ca_path(self) -> Path:
        return self.directory / _CA_CERT

    @property
    def broker_keystore_path(self) -> Path:
        return self.directory / _BROKER_KEYSTORE


def security_dir(state_dir: Path) -> Path:
    return state_dir / SECURITY_DIR_NAME


def load_secrets(state_dir: Path) -> StackSecrets | None:
    """The secure stack's secrets of this state directory, or None if it never ran in secure mode."""
    directory = security_dir(state_dir)
    try:
        kafka_password = (directory / _KAFKA_PASSWORD).read_text(encoding="utf-8").strip()
        mongodb_password = (directory / _MONGODB_PASSWORD).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return StackSecrets(
        directory, KAFKA_USER, SecretStr(kafka_password), MONGODB_USER, SecretStr(mongodb_password)
    )


def ensure_secrets(state_dir: Path) -> StackSecrets:
    """Create what is missing (CA, broker certificate, passwords) and return the secrets. Kept between
    starts: the SCRAM user and the MongoDB user were made with these passwords."""
    directory = security_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    if not (directory / _CA_CERT).exists() or not (directory / _BROKER_KEYSTORE).exists():
        write_test_pki(directory, CERT_HOSTS)
    for name in (_KAFKA_PASSWORD, _MONGODB_PASSWORD):
        if not (directory / name).exists():
            _write_private(directory / name, secrets.token_urlsafe(24) + "\n")
    found = load_secrets(state_dir)
    assert found is not None
    return found


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 0600, never world-readable even for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_test_pki(directory: Path, hosts: tuple[str, ...]) -> None:
    """A self-signed test CA and a broker certificate it signs, with the hosts as subject alternative
    names. The broker's key is unencrypted PKCS#8 PEM, which Kafka reads with ``ssl.keystore.type=PEM``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=5)  # tolerate small clock differences
    not_after = now + datetime.timedelta(days=CERT_VALID_DAYS)

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lineguard local stack test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    broker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pem_key(key: rsa.RSAPrivateKey) -> str:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def pem_cert(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    _write_private(directory / _CA_KEY, pem_key(ca_key))
    chain = pem_cert(broker_cert) + pem_cert(ca_cert)
    _write_private(directory / _BROKER_KEYSTORE, pem_key(broker_key) + chain)
    (directory / _CA_CERT).write_text(pem_cert(ca_cert), encoding="utf-8")  # public: clients need it


# ------------------------------------------------------------------------------------------------ Kafka


def secure_listener_properties(host: str, port: int, keystore: Path) -> dict[str, str]:
    """The broker settings of the SASL_SSL listener (added to server.properties; the PLAINTEXT and
    CONTROLLER listeners stay as they are, and brokers keep talking to each other over PLAINTEXT)."""
    prefix = f"listener.name.{SECURE_LISTENER.lower()}"
    mechanism = SCRAM_MECHANISM.lower()
    return {
        f"{prefix}.sasl.enabled.mechanisms": SCRAM_MECHANISM,
        f"{prefix}.{mechanism}.sasl.jaas.config": f"{_SCRAM_LOGIN_MODULE} required;",
        f"{prefix}.ssl.keystore.type": "PEM",
        f"{prefix}.ssl.keystore.location": str(keystore),
        f"{prefix}.ssl.client.auth": "none",
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
    }


def add_secure_listener(server_properties: str, host: str, port: int, keystore: Path) -> str:
    """server.properties with a ``SASL_SSL://host:port`` listener added (pure, unit tested)."""
    listener = f"{SECURE_LISTENER}://{host}:{port}"
    lines = server_properties.splitlines()
    edited: list[str] = []
    changed: set[str] = set()
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key in ("listeners", "advertised.listeners"):
            line = f"{key}={value},{listener}"
            changed.add(key)
        elif sep and key == "listener.security.protocol.map":
            line = f"{key}={value},{SECURE_LISTENER}:{SECURE_LISTENER}"
            changed.add(key)
        edited.append(line)
    missing = {"listeners", "advertised.listeners", "listener.security.protocol.map"} - changed
    if missing:
        raise ValueError(f"server.properties lacks {', '.join(sorted(missing))}")
    edited.append("")
    edited.append("# SASL_SSL listener of `lineguard stack up --secure` (lineguard.stack.security)")
    edited.extend(f"{key}={value}" for key, value in secure_listener_properties(host, port, keystore).items())
    return "\n".join(edited) + "\n"


def create_kafka_user(bootstrap: str, user: str, password: SecretStr, timeout_s: float = 30.0) -> None:
    """Create (or update) the SCRAM user through the Admin API on the PLAINTEXT listener.

    Not ``kafka-storage format --add-scram``: that works only when the storage is formatted, so a stack
    formatted earlier without ``--secure`` would never get its user; the Admin API works at every start.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    upsert = UserScramCredentialUpsertion(
        user,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
        password.get_secret_value().encode(),
    )
    try:
        for future in admin.alter_user_scram_credentials([upsert], request_timeout=timeout_s).values():
            future.result(timeout=timeout_s)
    except KafkaException as exc:
        raise ServiceUnavailableError(f"could not create the Kafka SCRAM user {user!r}: {exc}") from exc


def kafka_client_environment(bootstrap: str, found: StackSecrets) -> dict[str, str]:
    """The environment that points lineguard's clients at the secure listener (holds the password)."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "LINEGUARD_KAFKA_SECURITY_PROTOCOL": SECURE_LISTENER,
        "LINEGUARD_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "LINEGUARD_KAFKA_SASL_USERNAME": found.kafka_user,
        "LINEGUARD_KAFKA_SASL_PASSWORD": found.kafka_password.get_secret_value(),
        "LINEGUARD_KAFKA_SSL_CA_LOCATION": str(found.ca_path),
    }


def kafka_client_config(bootstrap: str, found: StackSecrets) -> dict[str, str]:
    """A confluent-kafka configuration for the secure listener (tests and tools)."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": SECURE_LISTENER,
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": found.kafka_user,
        "sasl.password": found.kafka_password.get_secret_value(),
        "ssl.ca.location": str(found.ca_path),
    }


# ---------------------------------------------------------------------------------------------- MongoDB


def ferretdb_auth_arguments(found: StackSecrets) -> tuple[list[str], dict[str, str]]:
    """FerretDB 1.24 flags that enforce authentication (SCRAM, users in ``admin.system.users``, works with
    the SQLite backend) and create the user at start. The password goes in the environment, not argv,
    because every local user can read a process's command line."""
    flags = [
        "--test-enable-new-auth",
        f"--setup-username={found.mongodb_user}",
        f"--setup-database={MONGODB_AUTH_DATABASE}",
    ]
    return flags, {"FERRETDB_SETUP_PASSWORD": found.mongodb_password.get_secret_value()}


def mongodb_uri_with_credentials(host: str, port: int, found: StackSecrets) -> str:
    from urllib.parse import quote_plus

    user = quote_plus(found.mongodb_user)
    password = quote_plus(found.mongodb_password.get_secret_value())
    return f"mongodb://{user}:{password}@{host}:{port}/?authSource={MONGODB_AUTH_DATABASE}"
