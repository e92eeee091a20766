"""Check, before a process starts its real clients, that Kafka accepts its credentials and TLS settings.

librdkafka reports a refused SASL login or a failed TLS handshake only asynchronously (an error callback
or a log line) and then retries for ever, so a camera with a wrong password would spool frames and a
worker would sit in its group waiting. One metadata request with the process's own configuration turns
those into one clear :class:`ConfigurationError` (exit code 2) at start.

An unreachable broker is *not* an error here: cameras spool and workers retry while Kafka is down, and
this check must not change that. The messages never contain the password, only the user name.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from schemas.errors import ConfigurationError

log = logging.getLogger(__name__)

# A PLAINTEXT client talking to a TLS listener: the broker hangs up during the first request.
_HANDSHAKE_HANGUP = "in state APIVERSION_QUERY"
_HANGUPS_BEFORE_VERDICT = 3  # more than one, so a broker dying mid-handshake is not mistaken for TLS
_UNREACHABLE_HINTS = ("Connection refused", "Failed to resolve", "No route to host")


class _Collector(logging.Handler):
    """Receives librdkafka's log lines (handed over on poll) instead of letting them reach stderr."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def verify_kafka_access(config: Mapping[str, Any], timeout_s: float = 10.0) -> bool:
    """Ask Kafka for metadata with this client configuration.

    Returns True when Kafka answered, False when it could not be reached (connection refused, unknown
    host, or no answer within ``timeout_s``). Raises ConfigurationError when Kafka was reached but refused
    the client: wrong SASL credentials or mechanism, a certificate the client cannot verify, or a
    PLAINTEXT client on a TLS listener.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    collector = _Collector()
    rdkafka_log = logging.Logger("infra.kafka_access.librdkafka")  # unregistered: nothing propagates
    rdkafka_log.addHandler(collector)
    check_config = {
        key: value
        for key, value in config.items()
        if key not in ("error_cb", "logger", "stats_cb", "throttle_cb", "on_delivery")
    }
    check_config.update(
        error_cb=errors.append, logger=rdkafka_log, **{"socket.connection.setup.timeout.ms": 5000}
    )
    admin = AdminClient(check_config)
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return True
        except KafkaException:
            pass
        admin.poll(0.1)  # serves error_cb and the log lines
        _raise_if_refused(config, protocol, errors, collector.lines)
        if any(any(hint in error.str() for hint in _UNREACHABLE_HINTS) for error in errors):
            return False
    log.warning("Kafka at %s did not answer within %.0f s", config.get("bootstrap.servers"), timeout_s)
    return False


def _raise_if_refused(
    config: Mapping[str, Any], protocol: str, errors: list[Any], log_lines: list[str]
) -> None:
    from confluent_kafka import KafkaError

    bootstrap = config.get("bootstrap.servers")
    for error in errors:
        if error.code() == KafkaError._AUTHENTICATION:
            user = config.get("sasl.username")
            mechanism = config.get("sasl.mechanism", "the default mechanism")
            raise ConfigurationError(
                f"Kafka at {bootstrap} refused the credentials of user {user!r} ({mechanism}): check "
                "LINEGUARD_KAFKA_SASL_USERNAME, _SASL_PASSWORD and _SASL_MECHANISM"
            )
        if error.code() == KafkaError._SSL:
            raise ConfigurationError(
                f"TLS handshake with Kafka at {bootstrap} failed ({_ssl_reason(error.str())}): check "
                "LINEGUARD_KAFKA_SSL_CA_LOCATION and LINEGUARD_KAFKA_SECURITY_PROTOCOL"
            )
    hangups = sum(1 for line in log_lines if _HANDSHAKE_HANGUP in line and "Disconnected" in line)
    if protocol == "PLAINTEXT" and hangups >= _HANGUPS_BEFORE_VERDICT:
        raise ConfigurationError(
            f"Kafka at {bootstrap} closes every PLAINTEXT connection at the first request: the listener "
            "probably expects TLS; set LINEGUARD_KAFKA_SECURITY_PROTOCOL (e.g. SASL_SSL) and its credentials"
        )


def _ssl_reason(message: str) -> str:
    """librdkafka's handshake message without the broker prefix and timing suffix."""
    reason = message.split("SSL handshake failed:", 1)[-1]
    return reason.split(" (after ", 1)[0].strip()
