"""PostgreSQL behind the surface of :class:`runicorn_lite.db.Database`.

The query code is written once, in the SQL both databases understand, with ``?`` placeholders.
What differs is handled in two places: :func:`translate` rewrites the few SQLite spellings that
have a mechanical PostgreSQL twin (placeholders, ``INSERT OR IGNORE/REPLACE``, ``likely()``,
unary ``+`` planner hints, ``instr``, ``total``, and SQLite's order of NULLs, lowest in both
directions, made explicit); the rest (full-text search, typed param values, the planner's
statistics) asks :func:`is_postgres` and says what it does on each.

Values go in as SQLite stores them: NaN as NULL (SQLite cannot keep NaN), booleans as 0 and 1.
Low-level errors become the project's own at this boundary: a lost server is
:class:`DatabaseUnavailable` (503 with ``Retry-After``), a cancelled statement
:class:`~runicorn_lite.db.QueryTimeout`, and a value the database refuses the ``sqlite3``
exception that the ingester already treats as "this run, not the store".
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from runicorn_lite.db import READ_BUDGET_S, DatabaseUnavailable, QueryTimeout, StoreError
from runicorn_lite.db.dialect import postgres_statements

T = TypeVar("T")

log = logging.getLogger("runicorn_lite.db")
# The pool says every failed connection attempt (several a second while a server is away); the
# store says it once, in its own words (503 answers, health, one ingest warning).
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
logging.getLogger("psycopg").setLevel(logging.ERROR)

# Seconds to wait for a connection before a request is answered 503.
CONNECT_TIMEOUT_S = 5.0
# How long health keeps what one look at the server found.
PING_EVERY_S = 1.0
# The writer's connection, idle this long, is checked (one round trip) before a transaction.
STALE_AFTER_S = 5.0


__all__ = ["DatabaseUnavailable", "PgConn", "PgDatabase", "check_reachable", "describe_url", "translate"]


def is_postgres(conn: object) -> bool:
    """Whether ``conn`` (what a read or write hands its function) talks to PostgreSQL."""
    return getattr(conn, "dialect", "sqlite") == "postgresql"


def describe_url(url: str) -> str:
    """``host:port/dbname`` of a libpq URL, for messages (never the password)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or ''}"


# -- SQL ------------------------------------------------------------------------------------------

# Primary keys of the tables that ``INSERT OR REPLACE`` writes (what the upsert conflicts on).
UPSERT_KEYS: dict[str, tuple[str, ...]] = {
    "metric_summaries": ("exp_pk", "metric"),
    "exp_docs": ("exp_pk",),
    "deferred_indexes": ("name",),
}

_STRING = re.compile(r"('(?:[^']|'')*')")
_ORDER_END = re.compile(r"\b(LIMIT|OFFSET)\b|\)", re.IGNORECASE)
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.IGNORECASE | re.DOTALL)


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """PostgreSQL's spelling of a statement written for SQLite (see the module's docstring)."""
    upsert = _INSERT_OR.match(sql)
    pieces = _STRING.split(sql)
    out = []
    for i, piece in enumerate(pieces):
        # In a string literal only % changes (psycopg reads %% as %); ? and words stay.
        out.append(piece.replace("%", "%%") if i % 2 else _translate_code(piece))
    text = _nulls_like_sqlite("".join(out))
    if upsert is not None:
        verb, table, columns = upsert.group(1).upper(), upsert.group(2), upsert.group(3)
        text = re.sub(r"^\s*INSERT\s+OR\s+\w+\s+INTO", "INSERT INTO", text, count=1, flags=re.IGNORECASE)
        if verb == "IGNORE":
            text += " ON CONFLICT DO NOTHING"
        else:
            keys = UPSERT_KEYS[table]
            names = [c.strip() for c in columns.split(",")]
            sets = ", ".join(f"{c} = excluded.{c}" for c in names if c not in keys)
            text += f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    return text


def _translate_code(code: str) -> str:
    code = code.replace("%", "%%").replace("?", "%s")
    code = re.sub(r"\b(?:un)?likely\(", "(", code)
    code = re.sub(r"\binstr\(", "strpos(", code)
    code = re.sub(r"\btotal\(([^()]*)\)", r"coalesce(sum(\1), 0)::float8", code)
    # Unary plus (a hint that keeps SQLite's planner off an index) is no-op arithmetic here.
    return re.sub(r"(?<=[\s(,=])\+(?=[A-Za-z_(])", "", code)


def _nulls_like_sqlite(sql: str) -> str:
    """Every ORDER BY term with SQLite's place for NULLs: first ascending, last descending."""
    out, pos = [], 0
    for match in re.finditer(r"\bORDER BY\b", sql, re.IGNORECASE):
        start = match.end()
        if start < pos:
            continue
        end = _order_end(sql, start)
        terms = _split_top(sql[start:end])
        fixed = []
        for term in terms:
            bare = term.rstrip()
            upper = bare.upper()
            if "NULLS " in upper:
                fixed.append(term)
            elif upper.endswith(" DESC"):
                fixed.append(f"{bare} NULLS LAST")
            else:
                fixed.append(f"{bare} NULLS FIRST")
        out.append(sql[pos:start])
        out.append(",".join(fixed) + " ")
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def _order_end(sql: str, start: int) -> int:
    depth = 0
    for i in range(start, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                return i
            depth -= 1
        elif depth == 0 and _ORDER_END.match(sql, i) and (i == 0 or not sql[i - 1].isalnum()):
            word = _ORDER_END.match(sql, i)
            if word is not None and word.group(1):
                return i
    return len(sql)


def _split_top(text: str) -> list[str]:
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return [p for p in parts if p.strip()]


def _value(v: object) -> object:
    if v is None or (isinstance(v, (str, bytes, int)) and not isinstance(v, bool)):
        return v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _values(params: Sequence[object] | None) -> list[object]:
    return [] if not params else [_value(v) for v in params]


class _NumericLoader(Loader):
    """``numeric`` (what ``sum`` of integers gives) as an int when whole, else a float — as
    SQLite answers."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        if "." in text or "e" in text or "E" in text or text in ("NaN", "Infinity", "-Infinity"):
            return float(text)
        return int(text)


def _configure(conn: psycopg.Connection[Any]) -> None:
    """The writer's connection: no time limit on a statement, as the store's own jobs grow with
    the index (a migration over every run, the indexes a cold scan set aside: minutes at a
    million runs, which a request's 10 s budget cancelled at every scan), but none waits longer
    than that for another process's lock."""
    conn.adapters.register_loader("numeric", _NumericLoader)
    conn.execute(f"SET lock_timeout = {int(READ_BUDGET_S * 1000)}")
    conn.commit()


def _configure_reader(conn: psycopg.Connection[Any]) -> None:
    _configure(conn)
    conn.execute(f"SET statement_timeout = {int(READ_BUDGET_S * 1000)}")  # a request's budget
    conn.commit()
    # Every read is one snapshot, and only reads.
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True


@contextlib.contextmanager
def _errors(what: str = "") -> Iterator[None]:
    """psycopg's errors as ours (see the module's docstring)."""
    try:
        yield
    except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as exc:
        raise QueryTimeout(f"query stopped after its budget: {exc}") from exc
    except psycopg.errors.IntegrityError as exc:
        raise sqlite3.IntegrityError(str(exc)) from exc
    except (psycopg.errors.DataError, psycopg.errors.NumericValueOutOfRange) as exc:
        raise sqlite3.DataError(str(exc)) from exc
    except PoolTimeout as exc:
        raise DatabaseUnavailable(f"database unavailable: {what}{_first_line(exc)}") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise _ConnectionLost(f"database unavailable: {what}{_first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"{what}{_first_line(exc)}") from exc


class _ConnectionLost(DatabaseUnavailable):
    """A connection died under a statement (a pooled one may have idled past its server)."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PgConn:
    """A psycopg connection with the surface of a ``sqlite3.Connection`` that our SQL uses."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[object] | None = ()) -> psycopg.Cursor[Any]:
        with _errors():
            return self.raw.execute(translate(sql), _values(params), prepare=None)

    def executemany(self, sql: str, seq: Iterable[Sequence[object]]) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        rows = [_values(p) for p in seq]
        with _errors():
            if rows:
                cur.executemany(translate(sql), rows)
        return cur


class PgDatabase:
    """One PostgreSQL database (or one schema of it, by the URL's ``search_path``) with the
    surface of :class:`runicorn_lite.db.Database`: a writer connection guarded by a lock, a pool
    of reader connections, reads in one snapshot within a time budget."""

    dialect = "postgresql"

    def __init__(self, url: str, migrate: Callable[[PgConn], list[str]] | None = None, *, name: str = "index",
                 readers: int = 6, pipeline: bool = False, tables: Sequence[str] = (),
                 churned: Sequence[str] = ()) -> None:
        self.url = url
        self.name = name
        # The tables of this store (what analyze() vacuums: the database may hold others').
        self.tables = tuple(tables)
        # Those of them of a few rows updated by every write (analyze() rewrites them whole).
        self.churned = tuple(t for t in churned if t in self.tables)
        # Pipeline mode for write transactions: the index's ingest batches, whose statements
        # raise nothing the caller catches one by one (an error surfaces at the next sync).
        self.pipeline = pipeline
        self.where = describe_url(url)
        self.generation = 0
        self.damaged: str | None = None
        # What made the last write fail for want of room (SQLite's full disk); PostgreSQL's own
        # disk is its server's business: its errors answer 503 like any other.
        self.write_problem: str | None = None
        self.writer_check: Callable[[], bool] | None = None
        self._write_lock = threading.RLock()
        self._writer: psycopg.Connection[Any] | None = None
        self._writer_used = 0.0
        self._pinged: tuple[float, str | None] = (-PING_EVERY_S, None)
        self._closed = False
        self._pool = ConnectionPool(
            url, min_size=1, max_size=readers, open=False, configure=_configure_reader, timeout=CONNECT_TIMEOUT_S,
            kwargs={"autocommit": False, "connect_timeout": int(CONNECT_TIMEOUT_S)}, name=f"runicorn-lite-{name}",
        )
        if migrate is not None:
            with self.write() as conn:
                migrate(conn)  # type: ignore[arg-type]
        self._pool.open(wait=False)

    @property
    def path(self) -> _Named:
        """What messages name this store by (the SQLite store's file has ``.name``)."""
        return _Named(f"{self.name} on {self.where}")

    # -- writing --------------------------------------------------------------------------

    def _writer_conn(self) -> psycopg.Connection[Any]:
        if self._writer is not None and not self._writer.closed and not self._writer.broken:
            try:  # an idle connection may have lost its server meanwhile: one round trip tells
                if time.monotonic() - self._writer_used > STALE_AFTER_S:
                    self._writer.execute("SELECT 1")
                    self._writer.rollback()
            except psycopg.Error:
                with contextlib.suppress(psycopg.Error):
                    self._writer.close()
        self._writer_used = time.monotonic()
        if self._writer is None or self._writer.closed or self._writer.broken:
            with _errors(f"cannot connect to {self.where}: "):
                self._writer = psycopg.connect(self.url, autocommit=False, connect_timeout=int(CONNECT_TIMEOUT_S))
            _configure(self._writer)
        return self._writer

    @contextlib.contextmanager
    def write(self, *, pipelined: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction on the one writer connection; in pipeline mode when this store
        pipelines its writes and ``pipelined`` (a body that catches a statement's error where it
        happens, as a savepoint per run does, asks for no pipeline: there an error surfaces at
        the next sync)."""
        if self.writer_check is not None and not self.writer_check():
            raise RuntimeError(f"{self.name} is written only by its store's writer thread")
        with self._write_lock:
            if self._closed:
                raise StoreError(f"{self.name} is closed")
            raw = self._writer_conn()
            try:
                # Pipeline mode: statements whose results are not read go out without waiting
                # for their answers (an ingest batch is many small statements: a round trip
                # each cost most of a cold index's time, measured).
                pipeline = raw.pipeline() if self.pipeline and pipelined else contextlib.nullcontext()
                with _errors(), pipeline, postgres_statements():
                    yield PgConn(raw)  # type: ignore[misc]
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    raw.rollback()
                raise
            else:
                with _errors("cannot commit: "):
                    raw.commit()
                self.generation += 1

    def analyze(self) -> None:
        """``VACUUM (ANALYZE)`` of the store's tables: the planner's statistics, and the
        visibility map that lets a sort index answer from itself (an index-only scan of the
        live runs in order: 1.4 ms against 21 ms of seq scan and sort at 10k runs, measured).
        VACUUM cannot run in a transaction: its own autocommit connection, under the write
        lock (what calls it is the store's writer). Table names come from the schema's own
        list, never from input."""
        if not self.tables:
            return
        with (
            self._write_lock,
            _errors("cannot vacuum: "),
            psycopg.connect(self.url, autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)) as conn,
        ):
            conn.execute(f"VACUUM (ANALYZE) {', '.join(self.tables)}".encode())
            if self.churned:
                # A few rows, updated by every run written: after a cold index of a million
                # runs table_versions was 156 MB of dead rows (autovacuum off), and reading its
                # four rows took 30-190 ms. Plain VACUUM frees them but keeps the file's length.
                conn.execute(f"VACUUM FULL {', '.join(self.churned)}".encode())

    # -- reading --------------------------------------------------------------------------

    def read(self, fn: Callable[[sqlite3.Connection], T], budget_s: float = READ_BUDGET_S) -> T:
        """Run ``fn`` in one read-only snapshot (REPEATABLE READ) within ``budget_s``.

        A connection of the pool found dead (the server restarted, the network was cut while it
        idled) is dropped and the read tried once more on another, so a server that is back
        answers the first request after it, not an error per stale connection."""
        if self._closed:
            raise StoreError(f"{self.name} is closed")
        try:
            return self._read(fn, budget_s)
        except _ConnectionLost:
            return self._read(fn, budget_s)

    def _read(self, fn: Callable[[sqlite3.Connection], T], budget_s: float) -> T:
        with _errors(), self._pool.connection() as raw:
            if budget_s != READ_BUDGET_S:
                raw.execute(f"SET LOCAL statement_timeout = {int(budget_s * 1000)}")
            try:
                with postgres_statements():
                    return fn(PgConn(raw))  # type: ignore[arg-type]
            finally:
                if not raw.closed and not raw.broken:
                    raw.rollback()

    def read_one(
        self, sql: str, params: Sequence[object] = (), budget_s: float = READ_BUDGET_S
    ) -> tuple[Any, ...] | None:
        """The first row of one read statement."""
        row: tuple[Any, ...] | None = self.read(lambda conn: conn.execute(sql, params).fetchone(), budget_s)
        return row

    # -- what the SQLite store has and a server has no use for here -------------------------

    def file_changed(self) -> str | None:
        return None

    @contextlib.contextmanager
    def suspended(self, reason: str, wait_s: float = 0.0) -> Iterator[None]:
        yield

    def close_connections(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                with contextlib.suppress(psycopg.Error):
                    self._writer.close()
                self._writer = None

    def reopen(self) -> None:
        self.close_connections()
        self.generation += 1

    def ping(self) -> str | None:
        """Why the database cannot be reached now, or None (one round trip, at most once per
        PING_EVERY_S: health is asked often and should cost a request, not a query)."""
        now = time.monotonic()
        if now - self._pinged[0] < PING_EVERY_S:
            return self._pinged[1]
        try:
            self.read(lambda conn: conn.execute("SELECT 1").fetchone(), 2.0)
            problem = None
        except StoreError as exc:
            problem = str(exc)
        self._pinged = (time.monotonic(), problem)
        return problem

    def close(self) -> None:
        self._closed = True
        self.close_connections()
        with contextlib.suppress(Exception):
            self._pool.close(timeout=2.0)


class _Named(str):
    @property
    def name(self) -> str:
        return str(self)


def check_reachable(url: str) -> None:
    """Raise :class:`DatabaseUnavailable` naming the host and the cause when ``url`` cannot be
    reached (a server that cannot start must say why in one line)."""
    started = time.monotonic()
    try:
        psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S)).close()
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {describe_url(url)}: {_first_line(exc)}"
            f" (after {time.monotonic() - started:.1f} s)"
        ) from exc
