"""Schema of the primary database: API keys, optimization runs and their iterations.

Timestamps are stored as fixed-width ISO-8601 UTC text with milliseconds
(``YYYY-MM-DDTHH:MM:SS.mmmZ``): that is exactly what the API answers, so reads need no
conversion, and fixed width makes text order equal time order (indexes and range filters work).
JSON columns hold compact orjson text, embedded verbatim into answers.
"""

from __future__ import annotations

from runicorn_lite.db import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "optimization_0001_initial",
        """
        CREATE TABLE IF NOT EXISTS api_keys (
            id TEXT PRIMARY KEY,
            prefix TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            project_id TEXT NOT NULL,
            label TEXT,
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            revoked_at TEXT
        );
        CREATE INDEX IF NOT EXISTS api_keys_prefix ON api_keys (prefix);

        CREATE TABLE IF NOT EXISTS optimization_runs (
            id TEXT PRIMARY KEY,
            project_id TEXT NOT NULL,
            run_name TEXT,
            optimizer_type TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            direction TEXT NOT NULL DEFAULT 'maximize',
            config TEXT NOT NULL DEFAULT '{}',
            search_space TEXT NOT NULL DEFAULT '{}',
            final_score REAL,
            best_params TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            iterations_count INTEGER NOT NULL DEFAULT 0,
            duration_ms INTEGER,
            error_message TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            started_at TEXT,
            completed_at TEXT
        );
        -- The list endpoint always filters by project and sorts by one of three columns with
        -- NULLs last and ties by (created_at, id). created_at is never NULL, so one index serves
        -- both directions; the nullable sort columns need one index per direction because
        -- "NULLs last" flips relative to the value order. The leading "IS NULL" expression
        -- lets SQLite walk the index in exactly the ORDER BY of queries.py and stop at LIMIT.
        CREATE INDEX IF NOT EXISTS runs_project_created
            ON optimization_runs (project_id, created_at, id);
        CREATE INDEX IF NOT EXISTS runs_project_status_created
            ON optimization_runs (project_id, status, created_at, id);
        CREATE INDEX IF NOT EXISTS runs_project_optimizer_created
            ON optimization_runs (project_id, optimizer_type, created_at, id);
        CREATE INDEX IF NOT EXISTS runs_project_score_asc
            ON optimization_runs (project_id, final_score IS NULL, final_score, created_at, id);
        CREATE INDEX IF NOT EXISTS runs_project_score_desc
            ON optimization_runs
            (project_id, final_score IS NULL, final_score DESC, created_at DESC, id DESC);
        CREATE INDEX IF NOT EXISTS runs_project_duration_asc
            ON optimization_runs (project_id, duration_ms IS NULL, duration_ms, created_at, id);
        CREATE INDEX IF NOT EXISTS runs_project_duration_desc
            ON optimization_runs
            (project_id, duration_ms IS NULL, duration_ms DESC, created_at DESC, id DESC);

        -- Clustered by run: GET one reads its iterations as one contiguous range, in order,
        -- and the primary key is the per-run uniqueness of iteration_number.
        CREATE TABLE IF NOT EXISTS optimization_iterations (
            run_id TEXT NOT NULL REFERENCES optimization_runs (id) ON DELETE CASCADE,
            iteration_number INTEGER NOT NULL,
            id TEXT NOT NULL,
            params TEXT NOT NULL,
            score REAL NOT NULL,
            metrics TEXT NOT NULL DEFAULT '{}',
            metadata TEXT NOT NULL DEFAULT '{}',
            duration_ms INTEGER,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, iteration_number)
        ) WITHOUT ROWID;

        -- Bumped in every transaction that changes a project's runs, so that stats answers can
        -- be reused while nothing changed (see queries.StatsCache).
        CREATE TABLE IF NOT EXISTS optimization_project_revisions (
            project_id TEXT PRIMARY KEY,
            revision INTEGER NOT NULL
        );
        """,
    ),
)
