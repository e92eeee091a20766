"""Tell a refused MongoDB login apart from an unreachable server.

A wrong password (AuthenticationFailed) or missing credentials against a server that requires them
(Unauthorized) are the user's to fix: one clear :class:`ConfigurationError`, exit code 2. An unreachable
server is not: the camera claim-checks only the rare large frame and the worker reports an outage on its
own, so the check below lets that pass. Messages never hold the URI, which may carry the password.

Also the client options of the long-running services that write MongoDB (:func:`open_service_client`):
timeouts that notice a half-open or stalled link in seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

MONGODB_AUTH_ERROR_CODES = frozenset({13, 18})  # Unauthorized, AuthenticationFailed


def access_refused(exc: OperationFailure) -> ConfigurationError | None:
    """The configuration error for a refused login or missing credentials, None for any other failure."""
    if exc.code not in MONGODB_AUTH_ERROR_CODES:
        return None
    reason = (exc.details or {}).get("errmsg") or exc.code
    return ConfigurationError(
        f"MongoDB refused access ({reason}): check the user and password in MONGODB_URI"
    )


def verify_mongodb_access(uri: str, database: str, timeout_s: float = 3.0) -> bool:
    """List the database's collections (a command that needs a login where logins are required).

    Returns True when MongoDB answered, False when it could not be reached in ``timeout_s``; raises
    ConfigurationError when it refused the credentials."""
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure, PyMongoError

    timeout_ms = int(timeout_s * 1000)
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        client[database].list_collection_names()
        return True
    except OperationFailure as exc:
        refused = access_refused(exc)
        if refused is not None:
            raise refused from None
        return True  # it answered; whatever else failed is not a login problem
    except PyMongoError:
        return False
    finally:
        client.close()


# Defaults of the long-running services' MongoDB clients (workers). pymongo's own defaults wait for ever
# on a socket (socketTimeoutMS none), 20 s on a connect and 30 s for a server: a half-open or stalled link
# then holds a write for tens of seconds. The writes are idempotent by _id and retried by the sink, so a
# timeout costs one rewrite, never a document; the values only have to stay clear of a healthy write.
SERVICE_MONGO_DEFAULTS: dict[str, int] = {
    # A silent socket is given up after 5 s: an insert of 256 inspection documents (MONGO_MAX_DOCUMENTS, one
    # round trip of well under 1 MB) answers in a fraction of that even on a loaded FerretDB or a 300 ms link.
    "socketTimeoutMS": 5_000,
    # A TCP connect (and the monitor's hello, which runs under this timeout) on a plant LAN takes
    # milliseconds; 3 s allows for a slow link and still notices a dead server soon.
    "connectTimeoutMS": 3_000,
    # The monitor checks the server every 2 s (pymongo: 10 s), so a half-open monitor connection marks the
    # server unknown and clears the pool within heartbeat + connect timeout (~5 s) instead of ~30 s.
    "heartbeatFrequencyMS": 2_000,
    # Per attempt; the sink retries 5 times with backoff, so ~53 s in all outlasts a 30 s partition (and the
    # 34 s outage of the fault campaign) before the worker counts MongoDB as down.
    "serverSelectionTimeoutMS": 10_000,
}


def uri_option_names(uri: str) -> set[str]:
    """The options a MongoDB URI sets, lower-cased (URI options are case-insensitive); pure, no DNS lookup
    (``mongodb+srv`` URIs are not resolved here, unlike ``pymongo.uri_parser.parse_uri``)."""
    _, _, query = uri.partition("?")
    names = set()
    for item in query.replace(";", "&").split("&"):
        name = item.partition("=")[0].strip()
        if name:
            names.add(name.lower())
    return names


def service_client_options(uri: str) -> dict[str, int]:
    """:data:`SERVICE_MONGO_DEFAULTS` less the ones the URI sets: pymongo lets keyword arguments override
    the URI, and an option the user wrote in ``MONGODB_URI`` must win."""
    given = uri_option_names(uri)
    return {name: value for name, value in SERVICE_MONGO_DEFAULTS.items() if name.lower() not in given}


def open_service_client(uri: str, **options: Any) -> MongoClient[dict[str, Any]]:
    """A MongoClient for a long-running writer: :func:`service_client_options`, then ``options`` (the
    caller's own, e.g. ``tz_aware``). Does not connect (pymongo connects on the first operation)."""
    from pymongo import MongoClient

    return MongoClient(uri, **{**service_client_options(uri), **options})
