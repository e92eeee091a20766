"""OPC UA security for the PLC bridge: the client certificate and private key named in the PLC config,
checked before anything connects, so a wrong path, a file that is not a certificate or key, or a key that
does not belong to the certificate is one line and exit 2, not a handshake failure deep inside asyncua.

```yaml
security:
  policy: Basic256Sha256        # or Aes128Sha256RsaOaep, Aes256Sha256RsaPss
  mode: SignAndEncrypt          # or Sign
  certificate: /etc/lineguard/plc-client.der   # X.509, DER or PEM
  private_key: /etc/lineguard/plc-client.pem   # RSA, PEM or DER, unencrypted
  server_certificate: /etc/lineguard/plc.der   # optional: pin the PLC's certificate
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import ConfigurationError

if TYPE_CHECKING:  # asyncua and cryptography load when a secured PLC connects
    from asyncua import Client
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.x509 import Certificate

POLICIES = ("Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss")
MODES = ("Sign", "SignAndEncrypt")


@dataclass(frozen=True, slots=True)
class PlcSecurity:
    policy: str
    mode: str
    certificate: Path
    private_key: Path
    server_certificate: Path | None = None

    async def apply(self, client: Client) -> None:
        """Configure an asyncua ``Client`` (before ``connect``)."""
        from asyncua import ua
        from asyncua.crypto import security_policies

        policy = getattr(security_policies, f"SecurityPolicy{self.policy}")
        await client.set_security(
            policy,
            str(self.certificate),
            str(self.private_key),
            server_certificate=None if self.server_certificate is None else str(self.server_certificate),
            mode=getattr(ua.MessageSecurityMode, self.mode),
        )


def plc_security_from_dict(data: object) -> PlcSecurity | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ConfigurationError(
            "PLC config: `security` must be a mapping (policy, mode, certificate, private_key)"
        )
    unknown = set(data) - {"policy", "mode", "certificate", "private_key", "server_certificate"}
    if unknown:
        raise ConfigurationError(f"PLC config: unknown security keys {', '.join(sorted(unknown))}")
    policy = str(data.get("policy", "Basic256Sha256"))
    if policy not in POLICIES:
        raise ConfigurationError(
            f"PLC config: security policy must be one of {', '.join(POLICIES)}, got {policy!r}"
        )
    mode = str(data.get("mode", "SignAndEncrypt"))
    if mode not in MODES:
        raise ConfigurationError(f"PLC config: security mode must be Sign or SignAndEncrypt, got {mode!r}")
    for name in ("certificate", "private_key"):
        if not isinstance(data.get(name), str):
            raise ConfigurationError(f"PLC config: security needs `{name}` (a file path)")
    certificate = Path(data["certificate"])
    private_key = Path(data["private_key"])
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey  # only a secured PLC needs it

    certified = _certificate(certificate, "certificate").public_key()
    key = _private_key(private_key)
    if (
        not isinstance(certified, RSAPublicKey)
        or certified.public_numbers() != key.public_key().public_numbers()
    ):
        raise ConfigurationError(
            f"PLC config: private key {private_key} does not belong to certificate {certificate}"
        )
    server = data.get("server_certificate")
    server_certificate = None if server is None else Path(str(server))
    if server_certificate is not None:
        _certificate(server_certificate, "server_certificate")
    return PlcSecurity(policy, mode, certificate, private_key, server_certificate)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"PLC config: cannot read {what} {path}: {exc.strerror}") from None


def _certificate(path: Path, what: str) -> Certificate:
    from cryptography import x509

    data = _read(path, what)
    try:
        return (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except ValueError:
        raise ConfigurationError(
            f"PLC config: {what} {path} is not an X.509 certificate (DER or PEM)"
        ) from None


def _private_key(path: Path) -> RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = _read(path, "private_key")
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"PLC config: private_key {path} is not an unencrypted private key (PEM or DER)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError(f"PLC config: private_key {path} is not an RSA key (OPC UA needs RSA)")
    return key
