"""OPC UA certificate configuration of `lineguard plc`: checked with the config, one line and exit 2 when
wrong (a missing file, not a certificate, a key of another certificate, an unknown policy)."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from parts.plc_config import NODE_NAMES, plc_config_from_dict
from schemas.errors import ConfigurationError


def _key_and_cert(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.der"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return key_path, cert_path


def _config(security: Any) -> dict[str, Any]:
    return {
        "endpoint": "opc.tcp://127.0.0.1:4840",
        "nodes": {name: f"ns=2;s=Gate.{name}" for name in NODE_NAMES},
        "security": security,
    }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pki")
    key, cert = _key_and_cert(base, "client")
    other_key, _ = _key_and_cert(base, "other")
    ec_key = base / "ec.pem"
    ec_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    garbage = base / "garbage.der"
    garbage.write_bytes(b"not a certificate")
    return {"key": key, "cert": cert, "other_key": other_key, "ec_key": ec_key, "garbage": garbage}


def test_a_matching_certificate_and_key_are_accepted(pki: dict[str, Path]) -> None:
    config = plc_config_from_dict(_config({"certificate": str(pki["cert"]), "private_key": str(pki["key"])}))

    assert config.security is not None
    assert (config.security.policy, config.security.mode) == ("Basic256Sha256", "SignAndEncrypt")
    assert plc_config_from_dict(_config(None)).security is None


@pytest.mark.parametrize(
    ("security", "message"),
    [
        ({"certificate": "/no/such.der", "private_key": "key"}, "cannot read certificate /no/such.der"),
        ({"certificate": "garbage", "private_key": "key"}, "is not an X.509 certificate"),
        ({"certificate": "cert", "private_key": "garbage"}, "is not an unencrypted private key"),
        ({"certificate": "cert", "private_key": "other_key"}, "does not belong to certificate"),
        ({"certificate": "cert", "private_key": "ec_key"}, "is not an RSA key"),
        ({"certificate": "cert"}, "security needs `private_key`"),
        ({"certificate": "cert", "private_key": "key", "policy": "Basic128Rsa15"}, "policy must be one of"),
        ({"certificate": "cert", "private_key": "key", "mode": "None"}, "mode must be Sign"),
        ({"certificate": "cert", "private_key": "key", "password": "x"}, "unknown security keys password"),
        ("yes", "must be a mapping"),
    ],
)
def test_bad_security_config_is_a_configuration_error(
    pki: dict[str, Path], security: Any, message: str
) -> None:
    if isinstance(security, dict):
        security = {k: str(pki.get(v, v)) for k, v in security.items()}

    with pytest.raises(ConfigurationError, match=message):
        plc_config_from_dict(_config(security))


def test_lineguard_plc_with_a_wrong_key_is_one_line_and_exit_2(pki: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "plc.json"
    path.write_text(
        json.dumps(_config({"certificate": str(pki["cert"]), "private_key": str(pki["other_key"])}))
    )

    done = subprocess.run(
        [sys.executable, "-m", "lineguard.cli", "plc", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2
    assert "does not belong to certificate" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
