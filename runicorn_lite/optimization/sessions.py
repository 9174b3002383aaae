"""Web sessions: a browser signs in once with an API key and then holds a session cookie.

The cookie carries a random token (``ss_`` + 43 URL-safe characters); only its SHA-256 is
stored, beside the key it stands for, in the primary database. A session lasts
``SESSION_TTL_S`` at most, and ends with its key: revoking a key deletes its sessions, and a
lookup only finds sessions of active keys.
"""

from __future__ import annotations

import secrets
import time

from runicorn_lite.db.backend import Backend
from runicorn_lite.http.auth import SESSION_TTL_S, Principal
from runicorn_lite.optimization.keys import PRINCIPAL_COLUMNS, KeyChecker, hash_key
from runicorn_lite.timeutil import now_iso

TOKEN_PREFIX = "ss_"
_KEY_COLUMNS = ", ".join(f"k.{c.strip()}" for c in PRINCIPAL_COLUMNS.split(","))


def start_session(db: Backend, principal: Principal) -> str:
    """A new session of ``principal``'s key; returns its token (the cookie's value)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    with db.write() as conn:
        # Expired sessions go as new ones come: the table holds live sessions only.
        conn.execute("DELETE FROM auth_sessions WHERE expires_at <= ?", (now,))
        conn.execute(
            "INSERT INTO auth_sessions (token_hash, key_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (hash_key(token), principal.key_id, now_iso(), now + SESSION_TTL_S),
        )
    return token


def session_principal(db: Backend, keys: KeyChecker, token: str) -> Principal | None:
    """Who a session token speaks for; None when unknown, expired or its key revoked."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = db.read_one(
        f"SELECT {_KEY_COLUMNS} FROM auth_sessions s JOIN api_keys k ON k.id = s.key_id"
        " WHERE s.token_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL",
        (hash_key(token), time.time()),
    )
    if row is None:
        return None
    key_id, project_id, all_projects, read_only = row
    keys.note_use(key_id)
    return Principal(key_id, project_id, bool(all_projects), bool(read_only))


def end_session(db: Backend, token: str) -> None:
    """Forget a session (signing out twice is harmless)."""
    with db.write() as conn:
        conn.execute("DELETE FROM auth_sessions WHERE token_hash = ?", (hash_key(token),))


class Authenticator:
    """Keys and sessions of one primary database: the :class:`~runicorn_lite.http.auth.KeyStore`
    of the server's V1/V2 side (blocking calls: run them on a database thread)."""

    def __init__(self, db: Backend, keys: KeyChecker) -> None:
        self.db = db
        self.keys = keys

    def resolve(self, token: str | None, session: str | None) -> Principal | None:
        """The principal of a bearer key, else of a session token; None for neither."""
        if token is not None:
            return self.keys.lookup(token)
        if session is not None:
            return session_principal(self.db, self.keys, session)
        return None

    def start(self, principal: Principal) -> str:
        return start_session(self.db, principal)

    def end(self, token: str) -> None:
        end_session(self.db, token)
