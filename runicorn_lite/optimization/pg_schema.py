"""The primary store's schema on PostgreSQL: the tables of ``optimization/schema.py`` as they
stand after its last migration, in PostgreSQL's types.

What differs, and why (as for the index, ``db/pg_schema.py``):
- every text column is ``COLLATE "C"``: byte order, as SQLite compares, so ids and the
  fixed-width ISO timestamps sort alike on both backends whatever the database's locale;
- every index column the SQL orders by is ``NULLS FIRST`` (or ``DESC NULLS LAST``): SQLite's
  place for NULL, which ``postgres.translate`` makes explicit in every ORDER BY; an index must
  match it term for term to be walked instead of sorting;
- ``REAL`` is ``DOUBLE PRECISION`` and ``INTEGER`` is ``BIGINT`` (SQLite's integers are 64-bit);
- an iteration's (run, number) is a unique index rather than the primary key, so that its
  number can be ``NULLS FIRST`` like the ORDER BY that reads it (the columns are NOT NULL: the
  same constraint);
- the running totals are kept by one PL/pgSQL trigger function where SQLite has three triggers;
- the rate-limit counters' table is ``UNLOGGED`` (counters of a minute need no crash safety);
- sums of scores add as IEEE (and SQLite) does, infinite past the largest double, through
  ``optimization_fadd`` and the aggregate ``optimization_fsum``: PostgreSQL's own ``+`` and
  ``sum`` raise there.

The index and the primary store share one database and schema: no name here (tables, indexes,
functions) is one of the index's (``db/pg_schema.py``), and ``index --rebuild`` drops only the
index's. Migrations run in the writer's transaction under an advisory lock keyed by the schema:
several servers starting at once against one empty database migrate it once, the others wait
and find it done.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runicorn_lite.db.postgres import PgConn

_TEXT = 'TEXT COLLATE "C"'

# What a run adds to its totals (``sign`` 1) or takes away (-1), as the SQL of the trigger.
_SUMS = ("runs", "scored", "score_sum", "timed", "duration_sum")


def _totals(row: str) -> str:
    """The five summed values of one run (``row`` is NEW or OLD)."""
    return (f"1, ({row}.final_score IS NOT NULL)::int, coalesce({row}.final_score, 0.0),"
            f" ({row}.duration_ms IS NOT NULL)::int, coalesce({row}.duration_ms, 0)")


def _add(table: str, keys: str, values: str) -> str:
    sets = ", ".join(
        f"{name} = optimization_fadd({table}.{name}, excluded.{name})" if name == "score_sum"
        else f"{name} = {table}.{name} + excluded.{name}"
        for name in _SUMS
    )
    return (f"INSERT INTO {table} ({keys}, {', '.join(_SUMS)}) VALUES ({values}, {_totals('NEW')})"
            f" ON CONFLICT ({keys}) DO UPDATE SET {sets};")


def _take(table: str, where: str) -> str:
    return (f"UPDATE {table} SET runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL)::int,"
            " score_sum = optimization_fadd(score_sum, -coalesce(OLD.final_score, 0.0)),"
            " timed = timed - (OLD.duration_ms IS NOT NULL)::int,"
            f" duration_sum = duration_sum - coalesce(OLD.duration_ms, 0) WHERE {where};")


# Float addition as IEEE (and SQLite) has it: past the largest double the sum is infinite, where
# PostgreSQL's + raises "value out of range" (a 500 for two scores of 1e308). The exact sum is
# taken only when an operand is that large; the aggregate sums scores in /stats likewise.
_FLOAT_SUM = [
    """CREATE FUNCTION optimization_fadd(a DOUBLE PRECISION, b DOUBLE PRECISION) RETURNS DOUBLE PRECISION
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE
            WHEN a IS NULL THEN b
            WHEN b IS NULL THEN a
            WHEN abs(a) < 8e307 AND abs(b) < 8e307 THEN a + b
            ELSE (SELECT CASE WHEN s = 'NaN' THEN 'NaN'::float8
                              WHEN s > 1.7976931348623157e308 THEN 'Infinity'::float8
                              WHEN s < -1.7976931348623157e308 THEN '-Infinity'::float8
                              ELSE s::float8 END
                  FROM (SELECT a::numeric + b::numeric AS s) AS exact)
        END
    $$""",
    "CREATE AGGREGATE optimization_fsum(DOUBLE PRECISION) (SFUNC = optimization_fadd, STYPE = DOUBLE PRECISION)",
]

_SUMMARY_KEYS = "project_id, optimizer_type, status"
_DAILY_KEYS = "project_id, day, optimizer_type, status"
_TRIGGER = f"""CREATE FUNCTION optimization_runs_totals_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {_take("optimization_run_summary",
               "project_id = OLD.project_id AND optimizer_type = OLD.optimizer_type AND status = OLD.status")}
        {_take("optimization_run_daily",
               "project_id = OLD.project_id AND day = substr(OLD.created_at, 1, 10)"
               " AND optimizer_type = OLD.optimizer_type AND status = OLD.status")}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_add("optimization_run_summary", _SUMMARY_KEYS, "NEW.project_id, NEW.optimizer_type, NEW.status")}
        {_add("optimization_run_daily", _DAILY_KEYS,
              "NEW.project_id, substr(NEW.created_at, 1, 10), NEW.optimizer_type, NEW.status")}
    END IF;
    RETURN NULL;
END $$"""


def _sort_index(name: str, column: str) -> list[str]:
    """The two indexes of a nullable sort column, one per direction (see schema.py)."""
    return [
        f"CREATE INDEX runs_project_{name}_asc ON optimization_runs (project_id, ({column} IS NULL) NULLS FIRST,"
        f" {column} NULLS FIRST, created_at NULLS FIRST, id NULLS FIRST)",
        f"CREATE INDEX runs_project_{name}_desc ON optimization_runs (project_id, ({column} IS NULL) NULLS FIRST,"
        f" {column} DESC NULLS LAST, created_at DESC NULLS LAST, id DESC NULLS LAST)",
    ]


def _primary_v1() -> list[str]:
    return [
        f"""CREATE TABLE api_keys (
            id {_TEXT} PRIMARY KEY,
            prefix {_TEXT} NOT NULL,
            key_hash {_TEXT} NOT NULL UNIQUE,
            project_id {_TEXT} NOT NULL,
            label {_TEXT},
            created_at {_TEXT} NOT NULL,
            last_used_at {_TEXT},
            revoked_at {_TEXT}
        )""",
        "CREATE INDEX api_keys_prefix ON api_keys (prefix)",
        f"""CREATE TABLE optimization_runs (
            id {_TEXT} PRIMARY KEY,
            project_id {_TEXT} NOT NULL,
            run_name {_TEXT},
            optimizer_type {_TEXT} NOT NULL,
            status {_TEXT} NOT NULL DEFAULT 'pending',
            direction {_TEXT} NOT NULL DEFAULT 'maximize',
            config {_TEXT} NOT NULL DEFAULT '{{}}',
            search_space {_TEXT} NOT NULL DEFAULT '{{}}',
            final_score DOUBLE PRECISION,
            best_params {_TEXT},
            metadata {_TEXT} NOT NULL DEFAULT '{{}}',
            iterations_count BIGINT NOT NULL DEFAULT 0,
            duration_ms BIGINT,
            error_message {_TEXT},
            created_at {_TEXT} NOT NULL,
            updated_at {_TEXT} NOT NULL,
            started_at {_TEXT},
            completed_at {_TEXT}
        )""",
        # created_at is never NULL: one index serves both directions (walked backwards).
        "CREATE INDEX runs_project_created ON optimization_runs (project_id, created_at NULLS FIRST, id NULLS FIRST)",
        "CREATE INDEX runs_project_status_created ON optimization_runs"
        " (project_id, status, created_at NULLS FIRST, id NULLS FIRST)",
        "CREATE INDEX runs_project_optimizer_created ON optimization_runs"
        " (project_id, optimizer_type, created_at NULLS FIRST, id NULLS FIRST)",
        *_sort_index("score", "final_score"),
        *_sort_index("duration", "duration_ms"),
        # Edge days of a date range in /stats: covering, no table lookups.
        "CREATE INDEX runs_project_created_totals ON optimization_runs (project_id, created_at NULLS FIRST)"
        " INCLUDE (optimizer_type, status, final_score, duration_ms)",
        f"""CREATE TABLE optimization_iterations (
            run_id {_TEXT} NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
            iteration_number BIGINT NOT NULL,
            id {_TEXT} NOT NULL,
            params {_TEXT} NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            metrics {_TEXT} NOT NULL DEFAULT '{{}}',
            metadata {_TEXT} NOT NULL DEFAULT '{{}}',
            duration_ms BIGINT,
            created_at {_TEXT} NOT NULL
        )""",
        "CREATE UNIQUE INDEX optimization_iterations_number ON optimization_iterations"
        " (run_id, iteration_number NULLS FIRST)",
        f"""CREATE TABLE optimization_project_revisions (
            project_id {_TEXT} PRIMARY KEY,
            revision BIGINT NOT NULL
        )""",
        f"""CREATE TABLE optimization_run_summary (
            project_id {_TEXT} NOT NULL,
            optimizer_type {_TEXT} NOT NULL,
            status {_TEXT} NOT NULL,
            runs BIGINT NOT NULL,
            scored BIGINT NOT NULL,
            score_sum DOUBLE PRECISION NOT NULL,
            timed BIGINT NOT NULL,
            duration_sum BIGINT NOT NULL,
            PRIMARY KEY (project_id, optimizer_type, status)
        )""",
        f"""CREATE TABLE optimization_run_daily (
            project_id {_TEXT} NOT NULL,
            day {_TEXT} NOT NULL,
            optimizer_type {_TEXT} NOT NULL,
            status {_TEXT} NOT NULL,
            runs BIGINT NOT NULL,
            scored BIGINT NOT NULL DEFAULT 0,
            score_sum DOUBLE PRECISION NOT NULL DEFAULT 0.0,
            timed BIGINT NOT NULL DEFAULT 0,
            duration_sum BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (project_id, day, optimizer_type, status)
        )""",
        *_FLOAT_SUM,
        _TRIGGER,
        "CREATE TRIGGER optimization_runs_totals_change AFTER INSERT OR DELETE ON optimization_runs"
        " FOR EACH ROW EXECUTE FUNCTION optimization_runs_totals_keep()",
        "CREATE TRIGGER optimization_runs_totals_update"
        " AFTER UPDATE OF project_id, optimizer_type, status, final_score, duration_ms, created_at"
        " ON optimization_runs FOR EACH ROW WHEN ("
        " OLD.project_id IS DISTINCT FROM NEW.project_id OR OLD.optimizer_type IS DISTINCT FROM NEW.optimizer_type"
        " OR OLD.status IS DISTINCT FROM NEW.status OR OLD.final_score IS DISTINCT FROM NEW.final_score"
        " OR OLD.duration_ms IS DISTINCT FROM NEW.duration_ms OR OLD.created_at IS DISTINCT FROM NEW.created_at)"
        " EXECUTE FUNCTION optimization_runs_totals_keep()",
    ]


def _rate_limits() -> list[str]:
    # UNLOGGED: counters of a minute need no crash safety, and a hit then writes no WAL.
    return [
        f"""CREATE UNLOGGED TABLE optimization_rate_limits (
            bucket {_TEXT} NOT NULL,
            subject {_TEXT} NOT NULL,
            window_start BIGINT NOT NULL,
            used BIGINT NOT NULL,
            PRIMARY KEY (bucket, subject)
        )""",
    ]


def _key_scopes_and_sessions() -> list[str]:
    # As optimization_0005_key_scopes_and_sessions on SQLite.
    return [
        "ALTER TABLE api_keys ADD COLUMN all_projects INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_keys ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0",
        f"""CREATE TABLE auth_sessions (
            token_hash {_TEXT} PRIMARY KEY,
            key_id {_TEXT} NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
            created_at {_TEXT} NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX auth_sessions_key ON auth_sessions (key_id)",
    ]


# Each step: its name and its statements, applied in this order, each recorded once.
_STEPS = (
    ("pg_0001_primary", _primary_v1), ("pg_0002_rate_limits", _rate_limits),
    ("pg_0003_key_scopes_and_sessions", _key_scopes_and_sessions),
)
PRIMARY_MIGRATIONS = tuple(name for name, _ in _STEPS)
# The primary store's tables (never among the index's ``INDEX_TABLES``: a rebuild leaves them).
PRIMARY_TABLES = (
    "api_keys", "optimization_runs", "optimization_iterations", "optimization_project_revisions",
    "optimization_run_summary", "optimization_run_daily", "optimization_rate_limits", "auth_sessions",
    "_primary_migrations",
)


def migrate_primary(conn: PgConn) -> list[str]:
    """Create or bring the primary store's tables up to date (inside the caller's transaction,
    under a lock of this schema: a second server waits here, then finds nothing to do)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/runicorn-lite/primary'))")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _primary_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
    )
    done = {r[0] for r in conn.execute("SELECT name FROM _primary_migrations").fetchall()}
    applied = []
    for name, statements in _STEPS:
        if name in done:
            continue
        for statement in statements():
            conn.execute(statement)
        conn.execute("INSERT INTO _primary_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
        applied.append(name)
    return applied
