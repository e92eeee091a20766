"""Tell a refused MongoDB login apart from an unreachable server.

A wrong password (AuthenticationFailed) or missing credentials against a server that requires them
(Unauthorized) are the user's to fix: one clear :class:`ConfigurationError`, exit code 2. An unreachable
server is not: the camera claim-checks only the rare large frame and the worker reports an outage on its
own, so the check below lets that pass. Messages never hold the URI, which may carry the password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigurationError

if TYPE_CHECKING:
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
