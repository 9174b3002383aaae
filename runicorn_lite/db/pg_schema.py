"""The index's schema on PostgreSQL: the tables of ``db/schema.py`` as they stand after its last
migration, in PostgreSQL's types.

What differs, and why:
- every text column is ``COLLATE "C"``: byte order, as SQLite compares, so both backends sort
  names and ids alike whatever the database's locale;
- every index column is ``NULLS FIRST``: SQLite's place for NULL (lowest); the SQL asks for it
  explicitly (``postgres.translate``) and an index must match to be walked;
- a param's value has two typed columns, ``vn`` (numbers, booleans as 1 and 0: NUMERIC written
  from each number's shortest decimal form, so 32 stays an integer, 0.1 reads back as the same
  double, and comparisons are exact) and ``vs`` (strings), where SQLite keeps one untyped ``v``;
  numbers sort before strings on both;
- substring search is a ``pg_trgm`` GIN index over each run's searchable text (lowercased),
  where SQLite has FTS5's trigram table;
- the kept counts are maintained by a PL/pgSQL trigger.

Migrations run in the writer's transaction under an advisory lock keyed by the schema: several
servers starting at once against one empty database migrate it once, the others wait.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from runicorn_lite.db.schema import METRIC_AGGREGATES, NULLABLE_SORT_COLUMNS, SORT_COLUMNS

if TYPE_CHECKING:
    from runicorn_lite.db.postgres import PgConn

_TEXT = 'TEXT COLLATE "C"'


def _sort_indexes() -> list[str]:
    out = []
    for col in SORT_COLUMNS:
        out.append(
            f"CREATE INDEX idx_sort_live_{col} ON experiments ({col} NULLS FIRST, id NULLS FIRST)"
            " WHERE deleted_at IS NULL"
        )
    for col in NULLABLE_SORT_COLUMNS:
        out.append(
            f"CREATE INDEX idx_sort_live_nl_{col} ON experiments"
            f" (({col} IS NULL) NULLS FIRST, {col} NULLS FIRST, id NULLS FIRST) WHERE deleted_at IS NULL"
        )
    return out


def _index_v1(trgm: str) -> list[str]:
    return [
        f"""CREATE TABLE experiments (
            pk BIGSERIAL PRIMARY KEY,
            id {_TEXT} NOT NULL UNIQUE,
            run_dir {_TEXT} NOT NULL UNIQUE,
            generation {_TEXT} NOT NULL,
            project {_TEXT} NOT NULL,
            name {_TEXT} NOT NULL,
            path {_TEXT} NOT NULL,
            alias {_TEXT},
            description {_TEXT},
            tags {_TEXT} NOT NULL DEFAULT '[]',
            status {_TEXT} NOT NULL,
            exit_reason {_TEXT},
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            pid BIGINT,
            hostname {_TEXT},
            best_metric_name {_TEXT},
            best_metric_value DOUBLE PRECISION,
            best_metric_step BIGINT,
            best_metric_mode {_TEXT},
            primary_metric {_TEXT},
            primary_mode {_TEXT},
            deleted_at DOUBLE PRECISION,
            delete_reason {_TEXT},
            environment_available INTEGER NOT NULL DEFAULT 0,
            n_points BIGINT NOT NULL DEFAULT 0,
            files_sig {_TEXT} NOT NULL DEFAULT '',
            events_ino NUMERIC(20),
            events_offset BIGINT NOT NULL DEFAULT 0,
            events_last_step BIGINT,
            live_best_value DOUBLE PRECISION,
            live_best_step BIGINT,
            indexed_at DOUBLE PRECISION NOT NULL,
            row_json BYTEA NOT NULL DEFAULT '\\x7b7d',
            params_json BYTEA,
            metrics_json BYTEA
        )""",
        "CREATE INDEX idx_experiments_project ON experiments (project NULLS FIRST)",
        "CREATE INDEX idx_experiments_status ON experiments (status NULLS FIRST)",
        "CREATE INDEX idx_experiments_created_at ON experiments (created_at NULLS FIRST)",
        "CREATE INDEX idx_experiments_best_metric ON experiments"
        " (best_metric_name NULLS FIRST, best_metric_value NULLS FIRST)",
        "CREATE INDEX idx_experiments_deleted_at ON experiments (deleted_at NULLS FIRST)",
        "CREATE INDEX idx_experiments_project_name ON experiments (project NULLS FIRST, name NULLS FIRST)",
        "CREATE INDEX idx_experiments_project_status ON experiments (project NULLS FIRST, status NULLS FIRST)",
        *_sort_indexes(),
        "CREATE INDEX idx_live_project_created ON experiments (project NULLS FIRST, created_at NULLS FIRST,"
        " id NULLS FIRST) INCLUDE (status, best_metric_value) WHERE deleted_at IS NULL",
        f"""CREATE TABLE exp_tags (
            tag {_TEXT} NOT NULL,
            exp_pk BIGINT NOT NULL REFERENCES experiments (pk) ON DELETE CASCADE,
            PRIMARY KEY (tag, exp_pk)
        )""",
        "CREATE INDEX idx_exp_tags_exp ON exp_tags (exp_pk)",
        f"""CREATE TABLE metric_chunks (
            exp_pk BIGINT NOT NULL REFERENCES experiments (pk) ON DELETE CASCADE,
            metric {_TEXT} NOT NULL,
            chunk BIGINT NOT NULL,
            n BIGINT NOT NULL,
            min_step BIGINT NOT NULL,
            max_step BIGINT NOT NULL,
            steps BYTEA NOT NULL,
            vals BYTEA NOT NULL,
            times BYTEA,
            PRIMARY KEY (exp_pk, metric, chunk)
        )""",
        f"""CREATE TABLE chunk_outlines (
            exp_pk BIGINT NOT NULL REFERENCES experiments (pk) ON DELETE CASCADE,
            metric {_TEXT} NOT NULL,
            chunk BIGINT NOT NULL,
            n BIGINT NOT NULL,
            min_step BIGINT NOT NULL,
            max_step BIGINT NOT NULL,
            m4 BYTEA NOT NULL,
            PRIMARY KEY (exp_pk, metric, chunk)
        )""",
        # Search: the run's searchable text, lowercased (by Python, Unicode included), under a
        # trigram index that LIKE uses.
        f"""CREATE TABLE experiments_fts (
            rowid BIGINT PRIMARY KEY REFERENCES experiments (pk) ON DELETE CASCADE,
            body {_TEXT} NOT NULL
        )""",
        f"CREATE INDEX idx_experiments_fts_body ON experiments_fts USING gin (body {trgm})",
        f"""CREATE TABLE exp_params (
            exp_pk BIGINT NOT NULL REFERENCES experiments (pk) ON DELETE CASCADE,
            key {_TEXT} NOT NULL,
            vn NUMERIC,
            vs {_TEXT},
            exp_id {_TEXT} NOT NULL,
            PRIMARY KEY (exp_pk, key)
        )""",
        "CREATE INDEX idx_params_key_vn ON exp_params (key, vn NULLS FIRST, exp_id) WHERE vn IS NOT NULL",
        "CREATE INDEX idx_params_key_vs ON exp_params (key, vs NULLS FIRST, exp_id) WHERE vs IS NOT NULL",
        "CREATE INDEX idx_params_key_order ON exp_params"
        " (key, (vn IS NULL) NULLS FIRST, vn NULLS FIRST, vs NULLS FIRST, exp_id NULLS FIRST)",
        f"""CREATE TABLE metric_summaries (
            exp_pk BIGINT NOT NULL REFERENCES experiments (pk) ON DELETE CASCADE,
            metric {_TEXT} NOT NULL,
            exp_id {_TEXT} NOT NULL,
            first DOUBLE PRECISION,
            first_step BIGINT,
            last DOUBLE PRECISION,
            last_step BIGINT,
            min DOUBLE PRECISION,
            max DOUBLE PRECISION,
            count BIGINT NOT NULL,
            points BIGINT NOT NULL,
            min_step BIGINT NOT NULL,
            max_step BIGINT NOT NULL,
            PRIMARY KEY (exp_pk, metric)
        )""",
        *(
            f"CREATE INDEX idx_msum_{agg} ON metric_summaries (metric, {agg} NULLS FIRST, exp_id NULLS FIRST)"
            f" WHERE {agg} IS NOT NULL"
            for agg in METRIC_AGGREGATES
            if agg != "count"  # never null: its index below has no WHERE
        ),
        "CREATE INDEX idx_msum_count ON metric_summaries (metric, count NULLS FIRST, exp_id NULLS FIRST)",
        f"""CREATE TABLE exp_docs (
            exp_pk BIGINT PRIMARY KEY REFERENCES experiments (pk) ON DELETE CASCADE,
            config {_TEXT},
            environment {_TEXT}
        )""",
        f"""CREATE TABLE exp_images (
            exp_pk BIGINT NOT NULL REFERENCES experiments (pk) ON DELETE CASCADE,
            seq BIGINT NOT NULL,
            key {_TEXT} NOT NULL,
            step BIGINT,
            caption {_TEXT},
            path {_TEXT} NOT NULL,
            PRIMARY KEY (exp_pk, seq)
        )""",
        f"""CREATE TABLE exp_counts (
            live INTEGER NOT NULL,
            project {_TEXT} NOT NULL,
            status {_TEXT} NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (live, project, status)
        )""",
        """CREATE FUNCTION exp_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE exp_counts SET n = n - 1
                    WHERE live = (CASE WHEN OLD.deleted_at IS NULL THEN 1 ELSE 0 END)
                    AND project = OLD.project AND status = OLD.status;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO exp_counts (live, project, status, n)
                    VALUES (CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE 0 END, NEW.project, NEW.status, 1)
                    ON CONFLICT (live, project, status) DO UPDATE SET n = exp_counts.n + 1;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER exp_counts_insert AFTER INSERT OR DELETE ON experiments"
        " FOR EACH ROW EXECUTE FUNCTION exp_counts_keep()",
        "CREATE TRIGGER exp_counts_update AFTER UPDATE OF project, status, deleted_at ON experiments"
        " FOR EACH ROW WHEN (OLD.project IS DISTINCT FROM NEW.project OR OLD.status IS DISTINCT FROM NEW.status"
        " OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)) EXECUTE FUNCTION exp_counts_keep()",
        f"CREATE TABLE table_versions (name {_TEXT} PRIMARY KEY, v BIGINT NOT NULL)",
        "CREATE TABLE change_log (seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, writer BIGINT NOT NULL,"
        " payload BYTEA NOT NULL)",
        "CREATE TABLE ingest_state (id INTEGER PRIMARY KEY CHECK (id = 1), at DOUBLE PRECISION NOT NULL,"
        " payload BYTEA NOT NULL)",
        "INSERT INTO table_versions (name, v) VALUES"
        " ('epoch', (random() * 9e15)::bigint), ('exp_params', 0), ('metric_summaries', 0)",
    ]


def _all_runs_version() -> list[str]:
    # As 0013_all_runs_version on SQLite: the version of the set of runs itself.
    return [
        "INSERT INTO table_versions (name, v) VALUES ('all_runs', 0)",
        """CREATE FUNCTION all_runs_keep() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE table_versions SET v = v + 1 WHERE name = 'all_runs';
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER all_runs_change AFTER INSERT OR DELETE ON experiments"
        " FOR EACH ROW EXECUTE FUNCTION all_runs_keep()",
    ]


def _set_changes() -> list[str]:
    # As 0016_set_changes on SQLite: which run each move of a logged version was for.
    return [
        "CREATE TABLE set_changes (tbl TEXT NOT NULL, v BIGINT NOT NULL, exp_pk BIGINT NOT NULL, PRIMARY KEY (tbl, v))",
        """CREATE OR REPLACE FUNCTION all_runs_keep() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            run BIGINT;
        BEGIN
            IF TG_OP = 'DELETE' THEN run := OLD.pk; ELSE run := NEW.pk; END IF;
            WITH moved AS (UPDATE table_versions SET v = v + 1 WHERE name = 'all_runs' RETURNING name, v)
                INSERT INTO set_changes (tbl, v, exp_pk) SELECT name, v, run FROM moved;
            RETURN NULL;
        END $$""",
    ]


def _covering_sort_indexes() -> list[str]:
    """The sort indexes with the pk in their leaves: the live runs in any sort order are then
    an index-only scan (SQLite's indexes hold the rowid, which is the pk)."""
    out = []
    for statement in _sort_indexes():
        name = statement.split()[2]
        out.append(f"DROP INDEX {name}")
        out.append(statement.replace(" WHERE deleted_at IS NULL", " INCLUDE (pk) WHERE deleted_at IS NULL"))
    return out


def _kept_analytics() -> list[str]:
    # As 0015_kept_analytics on SQLite: what the analytics summary adds up, kept by triggers.
    dur = "CASE WHEN {r}.ended_at >= {r}.created_at THEN {r}.ended_at - {r}.created_at END"
    live = "CASE WHEN {r}.deleted_at IS NULL THEN 1 ELSE 0 END"
    day = "floor({r}.created_at / 86400)::bigint"
    old_dur, new_dur = dur.format(r="OLD"), dur.format(r="NEW")
    return [
        f"""CREATE TABLE exp_stats (
            live INTEGER NOT NULL,
            project {_TEXT} NOT NULL,
            status {_TEXT} NOT NULL,
            n_dur BIGINT NOT NULL,
            dur_sum DOUBLE PRECISION NOT NULL,
            points BIGINT NOT NULL,
            PRIMARY KEY (live, project, status)
        )""",
        f"""INSERT INTO exp_stats (live, project, status, n_dur, dur_sum, points)
            SELECT {live.format(r="e")}, project, status, count({dur.format(r="e")}),
                coalesce(sum({dur.format(r="e")}), 0), sum(n_points)
            FROM experiments e GROUP BY 1, 2, 3""",
        f"""CREATE TABLE exp_days (
            live INTEGER NOT NULL,
            day BIGINT NOT NULL,
            project {_TEXT} NOT NULL,
            status {_TEXT} NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (live, day, project, status)
        )""",
        f"""INSERT INTO exp_days (live, day, project, status, n)
            SELECT {live.format(r="e")}, {day.format(r="e")}, project, status, count(*)
            FROM experiments e GROUP BY 1, 2, 3, 4""",
        f"""CREATE FUNCTION exp_stats_keep() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE exp_stats SET n_dur = n_dur - CASE WHEN {old_dur} IS NULL THEN 0 ELSE 1 END,
                    dur_sum = dur_sum - coalesce({old_dur}, 0), points = points - OLD.n_points
                    WHERE live = {live.format(r="OLD")} AND project = OLD.project AND status = OLD.status;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO exp_stats (live, project, status, n_dur, dur_sum, points)
                    VALUES ({live.format(r="NEW")}, NEW.project, NEW.status,
                            CASE WHEN {new_dur} IS NULL THEN 0 ELSE 1 END, coalesce({new_dur}, 0), NEW.n_points)
                    ON CONFLICT (live, project, status) DO UPDATE SET n_dur = exp_stats.n_dur + EXCLUDED.n_dur,
                        dur_sum = exp_stats.dur_sum + EXCLUDED.dur_sum, points = exp_stats.points + EXCLUDED.points;
            END IF;
            RETURN NULL;
        END $$""",
        f"""CREATE FUNCTION exp_days_keep() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN
                UPDATE exp_days SET n = n - 1 WHERE live = {live.format(r="OLD")} AND day = {day.format(r="OLD")}
                    AND project = OLD.project AND status = OLD.status;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                INSERT INTO exp_days (live, day, project, status, n)
                    VALUES ({live.format(r="NEW")}, {day.format(r="NEW")}, NEW.project, NEW.status, 1)
                    ON CONFLICT (live, day, project, status) DO UPDATE SET n = exp_days.n + 1;
            END IF;
            RETURN NULL;
        END $$""",
        "CREATE TRIGGER exp_stats_insert AFTER INSERT OR DELETE ON experiments"
        " FOR EACH ROW EXECUTE FUNCTION exp_stats_keep()",
        "CREATE TRIGGER exp_stats_update AFTER UPDATE OF project, status, deleted_at, created_at, ended_at, n_points"
        " ON experiments FOR EACH ROW WHEN (OLD.project IS DISTINCT FROM NEW.project"
        " OR OLD.status IS DISTINCT FROM NEW.status OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)"
        " OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.ended_at IS DISTINCT FROM NEW.ended_at"
        " OR OLD.n_points IS DISTINCT FROM NEW.n_points) EXECUTE FUNCTION exp_stats_keep()",
        "CREATE TRIGGER exp_days_insert AFTER INSERT OR DELETE ON experiments"
        " FOR EACH ROW EXECUTE FUNCTION exp_days_keep()",
        f"CREATE TRIGGER exp_days_update AFTER UPDATE OF project, status, deleted_at, created_at ON experiments"
        f" FOR EACH ROW WHEN (OLD.project IS DISTINCT FROM NEW.project OR OLD.status IS DISTINCT FROM NEW.status"
        f" OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) OR {day.format(r='OLD')} <> {day.format(r='NEW')})"
        f" EXECUTE FUNCTION exp_days_keep()",
        "CREATE INDEX idx_live_project_status_best ON experiments (project, status, best_metric_value)"
        " WHERE deleted_at IS NULL",
    ]


INDEX_MIGRATIONS = (
    "pg_0001_index", "pg_0002_all_runs_version", "pg_0003_covering_sort_indexes", "pg_0004_kept_analytics",
    "pg_0005_set_changes",
)
# The tables of the index (what a rebuild drops; the primary store's tables are never among them).
# The index's tables of a few rows that every run written updates (versions, kept counts).
CHURNED_TABLES = ("table_versions", "exp_counts", "exp_stats", "exp_days")
INDEX_TABLES = (
    "experiments", "exp_tags", "metric_chunks", "chunk_outlines", "experiments_fts", "exp_params",
    "metric_summaries", "exp_docs", "exp_images", "exp_counts", "exp_stats", "exp_days", "table_versions",
    "set_changes", "change_log", "ingest_state", "_index_migrations",
)


def trigram_opclass(conn: PgConn) -> str:
    """``gin_trgm_ops``, qualified by the schema its extension lives in (created when missing)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('runicorn-lite/pg_trgm'))")
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
    row = conn.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace"
        " WHERE e.extname = 'pg_trgm'"
    ).fetchone()
    schema = row[0] if row else "public"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", schema):
        raise ValueError(f"unexpected schema name for pg_trgm: {schema!r}")
    return f'"{schema}".gin_trgm_ops'


def migrate_index(conn: PgConn) -> list[str]:
    """Create or bring the index's tables up to date (inside the caller's transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/runicorn-lite/index'))")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _index_migrations (name TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
    )
    done = {r[0] for r in conn.execute("SELECT name FROM _index_migrations").fetchall()}
    applied = []
    if "pg_0001_index" not in done:
        for statement in _index_v1(trigram_opclass(conn)):
            conn.execute(statement)
        applied.append("pg_0001_index")
    if "pg_0002_all_runs_version" not in done:
        for statement in _all_runs_version():
            conn.execute(statement)
        applied.append("pg_0002_all_runs_version")
    if "pg_0003_covering_sort_indexes" not in done:
        for statement in _covering_sort_indexes():
            conn.execute(statement)
        applied.append("pg_0003_covering_sort_indexes")
    if "pg_0004_kept_analytics" not in done:
        for statement in _kept_analytics():
            conn.execute(statement)
        applied.append("pg_0004_kept_analytics")
    if "pg_0005_set_changes" not in done:
        for statement in _set_changes():
            conn.execute(statement)
        applied.append("pg_0005_set_changes")
    for name in applied:
        conn.execute("INSERT INTO _index_migrations (name, applied_at) VALUES (?, ?)", (name, time.time()))
    return applied


def drop_index(conn: PgConn) -> None:
    """Drop every table of the index (``index --rebuild``); the primary store's stay."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/runicorn-lite/index'))")
    for table in (*INDEX_TABLES, "deferred_indexes"):  # the latter made by a cold scan (db/bulk.py)
        conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    for function in ("exp_counts_keep", "all_runs_keep", "exp_stats_keep", "exp_days_keep"):
        conn.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
