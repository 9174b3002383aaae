"""API keys: created by the CLI, checked by the server on every request.

A key is ``sk_live_`` + 40 URL-safe random characters. Only its SHA-256 is stored, with a short
display prefix so that ``keys list`` / ``keys revoke`` can name it. The server looks the hash up
in the primary store on every request (a primary-key probe, microseconds), so keys created or revoked while
it runs take effect at once, with no cache to invalidate.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from runicorn_lite.db import StoreError
from runicorn_lite.db.backend import Backend
from runicorn_lite.http.auth import KEY_PREFIX, Principal
from runicorn_lite.timeutil import now_iso

log = logging.getLogger("runicorn_lite.optimization")

DISPLAY_PREFIX_LEN = len(KEY_PREFIX) + 8
MAX_PROJECT_LEN = 200
MAX_LABEL_LEN = 200
# last_used_at is informational: a request only notes the use in memory (writing it would put
# every read through the single writer); a background thread stores the notes this often.
LAST_USED_FLUSH_S = 5.0


class KeyCommandError(Exception):
    """A key command could not be done (unknown key, ambiguous prefix, bad project name)."""


@dataclass(frozen=True)
class KeyInfo:
    """What is stored about a key (never the key itself)."""

    id: str
    prefix: str
    project_id: str
    label: str | None
    created_at: str
    last_used_at: str | None
    revoked_at: str | None
    all_projects: bool = False
    read_only: bool = False


# The project_id stored for a key of every project (the column is NOT NULL; all_projects decides).
ALL_PROJECTS = "*"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _row_to_info(row: tuple[Any, ...]) -> KeyInfo:
    key_id, prefix, project_id, label, created_at, last_used_at, revoked_at, all_projects, read_only = row
    return KeyInfo(key_id, prefix, project_id, label, created_at, last_used_at, revoked_at, bool(all_projects),
                   bool(read_only))


_COLUMNS = "id, prefix, project_id, label, created_at, last_used_at, revoked_at, all_projects, read_only"
# What a request needs to know of a key (principal_of reads rows of these).
PRINCIPAL_COLUMNS = "id, project_id, all_projects, read_only"


def principal_of(row: tuple[Any, ...]) -> Principal:
    key_id, project_id, all_projects, read_only = row
    return Principal(key_id, project_id, bool(all_projects), bool(read_only))


def create_key(
    db: Backend, project_id: str | None, label: str | None = None, *, all_projects: bool = False,
    read_only: bool = False,
) -> tuple[str, KeyInfo]:
    """Make a new key for ``project_id`` (or, ``all_projects``, for every project; then
    ``project_id`` must be None); returns the key (shown once) and its stored record."""
    if all_projects:
        if project_id is not None:
            raise KeyCommandError("give either a project or --all-projects, not both")
        project_id = ALL_PROJECTS
    if project_id is None:
        raise KeyCommandError("give the key's project (--project NAME), or --all-projects")
    project_id = project_id.strip()
    if not project_id:
        raise KeyCommandError("project must not be empty")
    if project_id == ALL_PROJECTS and not all_projects:
        raise KeyCommandError(f"{ALL_PROJECTS!r} is not a project name; for every project give --all-projects")
    if len(project_id) > MAX_PROJECT_LEN:
        raise KeyCommandError(f"project must be at most {MAX_PROJECT_LEN} characters")
    if label is not None and len(label) > MAX_LABEL_LEN:
        raise KeyCommandError(f"label must be at most {MAX_LABEL_LEN} characters")
    key = KEY_PREFIX + secrets.token_urlsafe(30)
    info = KeyInfo(
        id="key_" + uuid.uuid4().hex[:16],
        prefix=key[:DISPLAY_PREFIX_LEN],
        project_id=project_id,
        label=label,
        created_at=now_iso(),
        last_used_at=None,
        revoked_at=None,
        all_projects=all_projects,
        read_only=read_only,
    )
    with db.write() as conn:
        conn.execute(
            "INSERT INTO api_keys (id, prefix, key_hash, project_id, label, created_at, all_projects, read_only)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (info.id, info.prefix, hash_key(key), info.project_id, info.label, info.created_at,
             int(all_projects), int(read_only)),
        )
    return key, info


def list_keys(db: Backend) -> list[KeyInfo]:
    """Every key, oldest first, revoked ones included."""

    def query(conn: sqlite3.Connection) -> list[KeyInfo]:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id")
        return [_row_to_info(row) for row in rows]

    return db.read(query)


def revoke_key(db: Backend, key_id_or_prefix: str) -> tuple[KeyInfo, bool]:
    """Revoke the key named by its id, its display prefix (or a unique start of it), or the
    full key. Returns the key and whether it was active before (revoking twice is harmless)."""
    needle = key_id_or_prefix.strip()
    if not needle:
        raise KeyCommandError("give a key id or prefix")
    with db.write() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE id = ? OR prefix = ? OR key_hash = ?",
            (needle, needle, hash_key(needle)),
        ).fetchall()
        if not rows and needle.startswith(KEY_PREFIX) and len(needle) > len(KEY_PREFIX):
            # LIKE would treat _ in sk_live_ as a wildcard; compare the prefix exactly instead.
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE substr(prefix, 1, ?) = ?",
                (len(needle), needle),
            ).fetchall()
        if not rows:
            raise KeyCommandError(f"no key matches {needle!r}")
        if len(rows) > 1:
            raise KeyCommandError(f"{needle!r} matches {len(rows)} keys; give the key id instead")
        info = _row_to_info(rows[0])
        if info.revoked_at is not None:
            return info, False
        revoked_at = now_iso()
        conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (revoked_at, info.id))
        conn.execute("DELETE FROM auth_sessions WHERE key_id = ?", (info.id,))
    return KeyInfo(**{**info.__dict__, "revoked_at": revoked_at}), True


class KeyChecker:
    """Resolves bearer tokens to principals, reading the primary store on every call (so keys created or
    revoked while serving take effect at once)."""

    def __init__(self, db: Backend, flush_interval_s: float = LAST_USED_FLUSH_S) -> None:
        self._db = db
        self._flush_interval_s = flush_interval_s
        self._used: dict[str, str] = {}  # key id -> last use, not yet stored
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def lookup(self, token: str) -> Principal | None:
        """The principal of an active key, or None for an unknown or revoked one."""
        row = self._db.read_one(
            f"SELECT {PRINCIPAL_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (hash_key(token),)
        )
        if row is None:
            return None
        principal = principal_of(row)
        self._note_use(principal.key_id)
        return principal

    def note_use(self, key_id: str) -> None:
        """Record a use of a key made through one of its sessions."""
        self._note_use(key_id)

    def _note_use(self, key_id: str) -> None:
        with self._lock:
            self._used[key_id] = now_iso()
            if self._flusher is None and not self._stop.is_set():
                self._flusher = threading.Thread(target=self._flush_periodically, name="runicorn-lite-key-use",
                                                 daemon=True)
                self._flusher.start()

    def flush(self) -> None:
        """Store the noted uses (last_used_at) in one write."""
        with self._lock:
            used, self._used = self._used, {}
        if not used:
            return
        try:
            with self._db.write() as conn:
                conn.executemany(
                    "UPDATE api_keys SET last_used_at = ? WHERE id = ?", [(at, key_id) for key_id, at in used.items()]
                )
        except StoreError as exc:
            # Bookkeeping only: a busy store loses a "last used" time, nothing else.
            log.warning("could not record the last use of %d key(s): %s", len(used), exc)

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self._flush_interval_s):
            self.flush()

    def close(self) -> None:
        """Stop the background writes and store what is noted (before the database closes)."""
        self._stop.set()
        with self._lock:
            flusher = self._flusher
        if flusher is not None:
            flusher.join()
        self.flush()
