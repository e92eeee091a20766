"""The long-running services' MongoDB client: timeouts by default, a URI option always wins."""

from __future__ import annotations

from infra.mongo_access import SERVICE_MONGO_DEFAULTS, open_service_client, service_client_options


def test_the_defaults_bound_every_wait() -> None:
    client = open_service_client("mongodb://127.0.0.1:1/")  # does not connect
    try:
        options = client.options
        assert options.pool_options.socket_timeout == 5.0
        assert options.pool_options.connect_timeout == 3.0
        assert options.server_selection_timeout == 10.0
        assert options.heartbeat_frequency == 2.0
    finally:
        client.close()


def test_an_option_in_the_uri_wins_whatever_its_case() -> None:
    uri = "mongodb://127.0.0.1:1/?sockettimeoutms=60000&directConnection=true&HeartbeatFrequencyMS=9000"
    assert service_client_options(uri) == {
        "connectTimeoutMS": SERVICE_MONGO_DEFAULTS["connectTimeoutMS"],
        "serverSelectionTimeoutMS": SERVICE_MONGO_DEFAULTS["serverSelectionTimeoutMS"],
    }
    client = open_service_client(uri)
    try:
        assert client.options.pool_options.socket_timeout == 60.0
        assert client.options.heartbeat_frequency == 9.0
        assert client.options.pool_options.connect_timeout == 3.0
    finally:
        client.close()


def test_the_caller_s_own_options_are_kept() -> None:
    client = open_service_client("mongodb://127.0.0.1:1/", tz_aware=True)
    try:
        assert client.codec_options.tz_aware is True
        assert client.options.pool_options.socket_timeout == 5.0
    finally:
        client.close()
