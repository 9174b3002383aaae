"""Schema of the primary database: API keys, optimization runs and their iterations, and the
API's rate-limit counters.

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
        -- be reused while nothing changed (see stats.StatsCache).
        CREATE TABLE IF NOT EXISTS optimization_project_revisions (
            project_id TEXT PRIMARY KEY,
            revision INTEGER NOT NULL
        );
        """,
    ),
    Migration(
        "optimization_0002_summaries",
        """
        -- Running totals per (project, optimizer, status), kept by triggers, so that /stats
        -- without a date range reads at most 25 rows instead of scanning every run, and list
        -- totals do not count index entries. Sums of scores are floats and may drift by ulps
        -- after many updates; answers are rounded to 4 decimals, far above that.
        CREATE TABLE IF NOT EXISTS optimization_run_summary (
            project_id TEXT NOT NULL,
            optimizer_type TEXT NOT NULL,
            status TEXT NOT NULL,
            runs INTEGER NOT NULL,
            scored INTEGER NOT NULL,
            score_sum REAL NOT NULL,
            timed INTEGER NOT NULL,
            duration_sum INTEGER NOT NULL,
            PRIMARY KEY (project_id, optimizer_type, status)
        ) WITHOUT ROWID;
        -- Runs per UTC creation day, for recentTrends.
        CREATE TABLE IF NOT EXISTS optimization_run_daily (
            project_id TEXT NOT NULL,
            day TEXT NOT NULL,
            optimizer_type TEXT NOT NULL,
            status TEXT NOT NULL,
            runs INTEGER NOT NULL,
            PRIMARY KEY (project_id, day, optimizer_type, status)
        ) WITHOUT ROWID;

        INSERT INTO optimization_run_summary
            SELECT project_id, optimizer_type, status, count(*), count(final_score),
                   total(final_score), count(duration_ms), coalesce(sum(duration_ms), 0)
            FROM optimization_runs GROUP BY project_id, optimizer_type, status;
        INSERT INTO optimization_run_daily
            SELECT project_id, substr(created_at, 1, 10), optimizer_type, status, count(*)
            FROM optimization_runs GROUP BY 1, 2, 3, 4;

        CREATE TRIGGER IF NOT EXISTS optimization_runs_summary_insert
        AFTER INSERT ON optimization_runs
        BEGIN
            INSERT INTO optimization_run_summary
                VALUES (NEW.project_id, NEW.optimizer_type, NEW.status, 1,
                        NEW.final_score IS NOT NULL, coalesce(NEW.final_score, 0.0),
                        NEW.duration_ms IS NOT NULL, coalesce(NEW.duration_ms, 0))
                ON CONFLICT (project_id, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1, scored = scored + excluded.scored,
                    score_sum = score_sum + excluded.score_sum, timed = timed + excluded.timed,
                    duration_sum = duration_sum + excluded.duration_sum;
            INSERT INTO optimization_run_daily
                VALUES (NEW.project_id, substr(NEW.created_at, 1, 10), NEW.optimizer_type,
                        NEW.status, 1)
                ON CONFLICT (project_id, day, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1;
        END;

        CREATE TRIGGER IF NOT EXISTS optimization_runs_summary_delete
        AFTER DELETE ON optimization_runs
        BEGIN
            UPDATE optimization_run_summary SET
                runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL),
                score_sum = score_sum - coalesce(OLD.final_score, 0.0),
                timed = timed - (OLD.duration_ms IS NOT NULL),
                duration_sum = duration_sum - coalesce(OLD.duration_ms, 0)
            WHERE project_id = OLD.project_id AND optimizer_type = OLD.optimizer_type
                AND status = OLD.status;
            UPDATE optimization_run_daily SET runs = runs - 1
            WHERE project_id = OLD.project_id AND day = substr(OLD.created_at, 1, 10)
                AND optimizer_type = OLD.optimizer_type AND status = OLD.status;
        END;

        CREATE TRIGGER IF NOT EXISTS optimization_runs_summary_update
        AFTER UPDATE OF project_id, optimizer_type, status, final_score, duration_ms, created_at
        ON optimization_runs
        WHEN OLD.project_id IS NOT NEW.project_id OR OLD.optimizer_type IS NOT NEW.optimizer_type
            OR OLD.status IS NOT NEW.status OR OLD.final_score IS NOT NEW.final_score
            OR OLD.duration_ms IS NOT NEW.duration_ms OR OLD.created_at IS NOT NEW.created_at
        BEGIN
            UPDATE optimization_run_summary SET
                runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL),
                score_sum = score_sum - coalesce(OLD.final_score, 0.0),
                timed = timed - (OLD.duration_ms IS NOT NULL),
                duration_sum = duration_sum - coalesce(OLD.duration_ms, 0)
            WHERE project_id = OLD.project_id AND optimizer_type = OLD.optimizer_type
                AND status = OLD.status;
            INSERT INTO optimization_run_summary
                VALUES (NEW.project_id, NEW.optimizer_type, NEW.status, 1,
                        NEW.final_score IS NOT NULL, coalesce(NEW.final_score, 0.0),
                        NEW.duration_ms IS NOT NULL, coalesce(NEW.duration_ms, 0))
                ON CONFLICT (project_id, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1, scored = scored + excluded.scored,
                    score_sum = score_sum + excluded.score_sum, timed = timed + excluded.timed,
                    duration_sum = duration_sum + excluded.duration_sum;
            UPDATE optimization_run_daily SET runs = runs - 1
            WHERE project_id = OLD.project_id AND day = substr(OLD.created_at, 1, 10)
                AND optimizer_type = OLD.optimizer_type AND status = OLD.status;
            INSERT INTO optimization_run_daily
                VALUES (NEW.project_id, substr(NEW.created_at, 1, 10), NEW.optimizer_type,
                        NEW.status, 1)
                ON CONFLICT (project_id, day, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1;
        END;
        """,
    ),
    Migration(
        "optimization_0003_daily_totals",
        """
        -- The daily table also keeps the score and duration sums, so /stats with a date range
        -- reads whole days from it and scans raw runs only on the range's two edge days
        -- (at 100k runs: a few ms instead of a scan of every run in the range).
        ALTER TABLE optimization_run_daily ADD COLUMN scored INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE optimization_run_daily ADD COLUMN score_sum REAL NOT NULL DEFAULT 0.0;
        ALTER TABLE optimization_run_daily ADD COLUMN timed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE optimization_run_daily ADD COLUMN duration_sum INTEGER NOT NULL DEFAULT 0;
        DELETE FROM optimization_run_daily;
        INSERT INTO optimization_run_daily
            (project_id, day, optimizer_type, status, runs, scored, score_sum, timed, duration_sum)
            SELECT project_id, substr(created_at, 1, 10), optimizer_type, status, count(*),
                   count(final_score), total(final_score), count(duration_ms),
                   coalesce(sum(duration_ms), 0)
            FROM optimization_runs GROUP BY 1, 2, 3, 4;
        -- Edge days of a date range: a covering index, no table lookups.
        CREATE INDEX IF NOT EXISTS runs_project_created_totals ON optimization_runs
            (project_id, created_at, optimizer_type, status, final_score, duration_ms);

        DROP TRIGGER IF EXISTS optimization_runs_summary_insert;
        DROP TRIGGER IF EXISTS optimization_runs_summary_delete;
        DROP TRIGGER IF EXISTS optimization_runs_summary_update;

        CREATE TRIGGER optimization_runs_totals_insert
        AFTER INSERT ON optimization_runs
        BEGIN
            INSERT INTO optimization_run_summary
                VALUES (NEW.project_id, NEW.optimizer_type, NEW.status, 1,
                        NEW.final_score IS NOT NULL, coalesce(NEW.final_score, 0.0),
                        NEW.duration_ms IS NOT NULL, coalesce(NEW.duration_ms, 0))
                ON CONFLICT (project_id, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1, scored = scored + excluded.scored,
                    score_sum = score_sum + excluded.score_sum, timed = timed + excluded.timed,
                    duration_sum = duration_sum + excluded.duration_sum;
            INSERT INTO optimization_run_daily
                VALUES (NEW.project_id, substr(NEW.created_at, 1, 10), NEW.optimizer_type,
                        NEW.status, 1, NEW.final_score IS NOT NULL,
                        coalesce(NEW.final_score, 0.0), NEW.duration_ms IS NOT NULL,
                        coalesce(NEW.duration_ms, 0))
                ON CONFLICT (project_id, day, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1, scored = scored + excluded.scored,
                    score_sum = score_sum + excluded.score_sum, timed = timed + excluded.timed,
                    duration_sum = duration_sum + excluded.duration_sum;
        END;

        CREATE TRIGGER optimization_runs_totals_delete
        AFTER DELETE ON optimization_runs
        BEGIN
            UPDATE optimization_run_summary SET
                runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL),
                score_sum = score_sum - coalesce(OLD.final_score, 0.0),
                timed = timed - (OLD.duration_ms IS NOT NULL),
                duration_sum = duration_sum - coalesce(OLD.duration_ms, 0)
            WHERE project_id = OLD.project_id AND optimizer_type = OLD.optimizer_type
                AND status = OLD.status;
            UPDATE optimization_run_daily SET
                runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL),
                score_sum = score_sum - coalesce(OLD.final_score, 0.0),
                timed = timed - (OLD.duration_ms IS NOT NULL),
                duration_sum = duration_sum - coalesce(OLD.duration_ms, 0)
            WHERE project_id = OLD.project_id AND day = substr(OLD.created_at, 1, 10)
                AND optimizer_type = OLD.optimizer_type AND status = OLD.status;
        END;

        CREATE TRIGGER optimization_runs_totals_update
        AFTER UPDATE OF project_id, optimizer_type, status, final_score, duration_ms, created_at
        ON optimization_runs
        WHEN OLD.project_id IS NOT NEW.project_id OR OLD.optimizer_type IS NOT NEW.optimizer_type
            OR OLD.status IS NOT NEW.status OR OLD.final_score IS NOT NEW.final_score
            OR OLD.duration_ms IS NOT NEW.duration_ms OR OLD.created_at IS NOT NEW.created_at
        BEGIN
            UPDATE optimization_run_summary SET
                runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL),
                score_sum = score_sum - coalesce(OLD.final_score, 0.0),
                timed = timed - (OLD.duration_ms IS NOT NULL),
                duration_sum = duration_sum - coalesce(OLD.duration_ms, 0)
            WHERE project_id = OLD.project_id AND optimizer_type = OLD.optimizer_type
                AND status = OLD.status;
            INSERT INTO optimization_run_summary
                VALUES (NEW.project_id, NEW.optimizer_type, NEW.status, 1,
                        NEW.final_score IS NOT NULL, coalesce(NEW.final_score, 0.0),
                        NEW.duration_ms IS NOT NULL, coalesce(NEW.duration_ms, 0))
                ON CONFLICT (project_id, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1, scored = scored + excluded.scored,
                    score_sum = score_sum + excluded.score_sum, timed = timed + excluded.timed,
                    duration_sum = duration_sum + excluded.duration_sum;
            UPDATE optimization_run_daily SET
                runs = runs - 1, scored = scored - (OLD.final_score IS NOT NULL),
                score_sum = score_sum - coalesce(OLD.final_score, 0.0),
                timed = timed - (OLD.duration_ms IS NOT NULL),
                duration_sum = duration_sum - coalesce(OLD.duration_ms, 0)
            WHERE project_id = OLD.project_id AND day = substr(OLD.created_at, 1, 10)
                AND optimizer_type = OLD.optimizer_type AND status = OLD.status;
            INSERT INTO optimization_run_daily
                VALUES (NEW.project_id, substr(NEW.created_at, 1, 10), NEW.optimizer_type,
                        NEW.status, 1, NEW.final_score IS NOT NULL,
                        coalesce(NEW.final_score, 0.0), NEW.duration_ms IS NOT NULL,
                        coalesce(NEW.duration_ms, 0))
                ON CONFLICT (project_id, day, optimizer_type, status) DO UPDATE SET
                    runs = runs + 1, scored = scored + excluded.scored,
                    score_sum = score_sum + excluded.score_sum, timed = timed + excluded.timed,
                    duration_sum = duration_sum + excluded.duration_sum;
        END;
        """,
    ),
    Migration(
        "optimization_0004_rate_limits",
        """
        -- The API's fixed-window request counters (optimization/limits.py), here rather than in
        -- one process's memory so that every server over this store shares them: a limit of 10
        -- a minute is 10 in total, whichever worker answers. One row per (bucket, subject),
        -- started over when its window has passed.
        CREATE TABLE IF NOT EXISTS optimization_rate_limits (
            bucket TEXT NOT NULL,
            subject TEXT NOT NULL,
            window_start INTEGER NOT NULL,
            used INTEGER NOT NULL,
            PRIMARY KEY (bucket, subject)
        ) WITHOUT ROWID;
        """,
    ),
    Migration(
        "optimization_0005_key_scopes_and_sessions",
        """
        -- Keys for every project (project_id '*') and keys that can only read (team-server.md §3).
        ALTER TABLE api_keys ADD COLUMN all_projects INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE api_keys ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
        -- Web sessions: a browser signs in once with a key and holds an HttpOnly cookie whose
        -- token is stored here hashed, as keys are; revoking the key ends its sessions.
        CREATE TABLE IF NOT EXISTS auth_sessions (
            token_hash TEXT PRIMARY KEY,
            key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS auth_sessions_key ON auth_sessions (key_id);
        """,
    ),
)
