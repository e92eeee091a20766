"""Users, roles, sessions and read-only tokens of the console, stored in MongoDB.

Passwords are hashed with scrypt (a per-user random salt; the parameters are stored with the hash so they can
grow later). Session ids and tokens are random 256-bit strings handed to the browser once; MongoDB keeps only
their SHA-256, so a copy of the database does not let anyone sign in. Every session carries its own CSRF
token, which the front end sends back in a header on each write (double submit: a cross-site form can send
the cookie but cannot read the token).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database

from schemas.errors import ConfigurationError

USERS = "console_users"
SESSIONS = "console_sessions"
TOKENS = "console_tokens"
SESSION_LIFETIME = timedelta(hours=12)
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD_LENGTH = 8


class Role(IntEnum):
    """Ordered: a role may do everything the roles below it may."""

    viewer = 1
    reviewer = 2
    admin = 3


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a signed-in user (with a CSRF token) or a read-only token (no writes at all)."""

    name: str
    role: Role
    csrf: str | None  # None for tokens: they can never write

    def may(self, needed: Role) -> bool:
        return self.role >= needed


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), digest)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AccessStore:
    """The three collections behind sign-in."""

    def __init__(self, database: Database[dict[str, Any]]) -> None:
        self._users = database[USERS]
        self._sessions = database[SESSIONS]
        self._tokens = database[TOKENS]

    def ensure_indexes(self) -> None:
        if "expires_at" not in self._sessions.index_information():
            self._sessions.create_index([("expires_at", ASCENDING)], name="expires_at")

    def add_user(self, name: str, password: str, role: Role) -> None:
        """Create or replace a user (replacing is how an admin resets a password)."""
        if not _USERNAME.match(name):
            raise ConfigurationError("user names are 1-64 letters, digits or . _ @ -")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigurationError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        document = {
            "_id": name,
            "role": role.name,
            "password": hash_password(password),
            "updated_at": datetime.now(UTC),
        }
        self._users.replace_one({"_id": name}, document, upsert=True)

    def users(self) -> list[dict[str, Any]]:
        return [{"name": u["_id"], "role": u["role"]} for u in self._users.find({}, {"role": 1}).sort("_id")]

    def sign_in(self, name: str, password: str) -> tuple[str, Principal] | None:
        """A new session id and its principal, or None for a wrong name or password (same answer for both)."""
        user = self._users.find_one({"_id": name}) if _USERNAME.match(name) else None
        if user is None:
            hash_password(password)  # spend the same time as a real check: no user-name oracle
            return None
        if not verify_password(password, str(user.get("password", ""))):
            return None
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        role = Role[user["role"]]
        self._sessions.insert_one(
            {
                "_id": _digest(session_id),
                "user": name,
                "role": role.name,
                "csrf": csrf,
                "expires_at": datetime.now(UTC) + SESSION_LIFETIME,
            }
        )
        return session_id, Principal(name, role, csrf)

    def session(self, session_id: str) -> Principal | None:
        found = self._sessions.find_one({"_id": _digest(session_id)})
        if found is None:
            return None
        expires = found["expires_at"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires < datetime.now(UTC):
            self._sessions.delete_one({"_id": found["_id"]})
            return None
        return Principal(found["user"], Role[found["role"]], found["csrf"])

    def sign_out(self, session_id: str) -> None:
        self._sessions.delete_one({"_id": _digest(session_id)})

    def add_token(self, name: str) -> str:
        """A new read-only token (shown once; only its hash is kept)."""
        token = "lgt_" + secrets.token_urlsafe(32)
        self._tokens.insert_one({"_id": _digest(token), "name": name, "created_at": datetime.now(UTC)})
        return token

    def token(self, token: str) -> Principal | None:
        found = self._tokens.find_one({"_id": _digest(token)})
        return None if found is None else Principal(f"token:{found['name']}", Role.viewer, None)
