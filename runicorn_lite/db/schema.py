"""Schema of the index: derived from run directories, deletable and rebuildable at any time."""

from __future__ import annotations

from runicorn_lite.db import Migration

# Columns a list may be ordered by (the V2 whitelist) → the SQL column. Only these identifiers
# are ever put into an ORDER BY.
SORT_COLUMNS = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "best_metric_value": "best_metric_value",
    "status": "status",
    "name": "name",
    "project": "project",
    "ended_at": "ended_at",
}
# Sort columns that can hold NULL: ascending order puts NULLs last through an expression index
# on (col IS NULL, col, id).
NULLABLE_SORT_COLUMNS = ("best_metric_value", "ended_at")
# Aggregates of a metric summary (each is the name of its column in metric_summaries; only
# these identifiers are ever formatted into SQL for metrics).
METRIC_AGGREGATES = ("last", "min", "max", "first", "count")
# The aggregates a list row, a CSV export and a run's metrics JSON show of each metric.
LIST_AGGREGATES = METRIC_AGGREGATES[:3]


def _sort_indexes() -> str:
    statements = []
    for col in SORT_COLUMNS:
        # Live (not deleted) rows: a partial index the planner can walk in either direction,
        # so ORDER BY .. LIMIT never sorts the whole table. Lists with include_deleted=true
        # (a rare, administrative view) sort; an index per column for them too cost more at
        # every ingest than it saves.
        statements.append(
            f"CREATE INDEX IF NOT EXISTS idx_sort_live_{col} ON experiments({col}, id) "
            "WHERE deleted_at IS NULL;"
        )
    for col in NULLABLE_SORT_COLUMNS:
        statements.append(
            f"CREATE INDEX IF NOT EXISTS idx_sort_live_nl_{col} ON experiments({col} IS NULL, {col}, id) "
            "WHERE deleted_at IS NULL;"
        )
    return "\n".join(statements)


INDEX_MIGRATIONS = [
    Migration(
        "0001_experiments",
        """
        CREATE TABLE experiments (
            pk INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            run_dir TEXT NOT NULL UNIQUE,          -- relative to the data root
            generation TEXT NOT NULL,
            project TEXT NOT NULL,
            name TEXT NOT NULL,
            path TEXT NOT NULL,
            alias TEXT,
            description TEXT,
            tags TEXT NOT NULL DEFAULT '[]',       -- JSON list, for output; filters use exp_tags
            status TEXT NOT NULL,
            exit_reason TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            ended_at REAL,
            pid INTEGER,
            hostname TEXT,
            best_metric_name TEXT,
            best_metric_value REAL,
            best_metric_step INTEGER,
            best_metric_mode TEXT,
            primary_metric TEXT,
            primary_mode TEXT,
            deleted_at REAL,
            delete_reason TEXT,
            environment_available INTEGER NOT NULL DEFAULT 0,
            n_points INTEGER NOT NULL DEFAULT 0,
            -- ingest bookkeeping: what was read, so an unchanged run costs nothing
            files_sig TEXT NOT NULL DEFAULT '',
            events_ino INTEGER,
            events_offset INTEGER NOT NULL DEFAULT 0,
            events_last_step INTEGER,
            live_best_value REAL,
            live_best_step INTEGER,
            indexed_at REAL NOT NULL
        );
        -- The indexes named by the V2 document.
        CREATE INDEX idx_experiments_project ON experiments(project);
        CREATE INDEX idx_experiments_status ON experiments(status);
        CREATE INDEX idx_experiments_created_at ON experiments(created_at);
        CREATE INDEX idx_experiments_best_metric ON experiments(best_metric_name, best_metric_value);
        CREATE INDEX idx_experiments_deleted_at ON experiments(deleted_at);
        -- What the filters and analytics need beyond them.
        CREATE INDEX idx_experiments_project_name ON experiments(project, name);
        CREATE INDEX idx_experiments_project_status ON experiments(project, status);

        CREATE TABLE exp_tags (
            tag TEXT NOT NULL,
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            PRIMARY KEY (tag, exp_pk)
        ) WITHOUT ROWID;
        CREATE INDEX idx_exp_tags_exp ON exp_tags(exp_pk);

        -- Metric points packed per (experiment, metric) into chunks of steps: a run's curves
        -- come back in one indexed range read, and ingest writes a few rows per run rather
        -- than one per point.
        CREATE TABLE metric_chunks (
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            metric TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            n INTEGER NOT NULL,
            min_step INTEGER NOT NULL,
            max_step INTEGER NOT NULL,
            steps BLOB NOT NULL,                   -- int64 array
            vals BLOB NOT NULL,                    -- float64 array (NaN/Infinity kept)
            PRIMARY KEY (exp_pk, metric, chunk)
        ) WITHOUT ROWID;

        -- Substring search (case-insensitive) over project, name, path, alias, description,
        -- tags and id.
        CREATE VIRTUAL TABLE experiments_fts USING fts5(body, tokenize = 'trigram');
        """,
    ),
    Migration("0002_sort_indexes", _sort_indexes()),
    Migration(
        "0003_project_sort_index",
        """
        -- Filter by project, newest first (the V2 document's "filter by project" row): walk
        -- the project's live rows in order instead of sorting them.
        CREATE INDEX IF NOT EXISTS idx_live_project_created ON experiments(project, created_at, id)
            WHERE deleted_at IS NULL;
        """,
    ),
    Migration(
        "0004_project_index_covers_filters",
        """
        -- The same order, also carrying status and best value: a project + time-range query
        -- with those filters (the V2 document's 4-filter row) checks them in the index and
        -- reads only the matching rows (at 100k runs: 26 ms -> 3.4 ms, measured).
        DROP INDEX IF EXISTS idx_live_project_created;
        CREATE INDEX idx_live_project_created
            ON experiments(project, created_at, id, status, best_metric_value)
            WHERE deleted_at IS NULL;
        """,
    ),
    Migration(
        "0005_params_summaries_images",
        """
        -- A run's params (config.args flattened with dotted keys, config.extra under "extra."),
        -- one row per key with a value. ``v`` has no declared type, so no affinity: numbers
        -- (booleans as 1 and 0) stay numbers and strings stay text, a comparison never turns
        -- one into the other, and the index orders numbers before strings. Null params have
        -- no row: a run "lacks" them for filters and sorts. ``exp_id`` is here so that a sort
        -- by a param walks (key, v, exp_id) in order, ties broken by id, without sorting.
        CREATE TABLE exp_params (
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            key TEXT NOT NULL,
            v,
            exp_id TEXT NOT NULL,
            PRIMARY KEY (exp_pk, key)
        ) WITHOUT ROWID;
        CREATE INDEX idx_params_key_v ON exp_params(key, v, exp_id);

        -- Per (run, metric) summary over the finite values in step order, kept by the
        -- ingester as points arrive. ``points``, ``min_step``, ``max_step`` count every stored
        -- point (NaN included), for the detail's totals and the incremental update.
        CREATE TABLE metric_summaries (
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            metric TEXT NOT NULL,
            exp_id TEXT NOT NULL,
            first REAL,
            first_step INTEGER,
            last REAL,
            last_step INTEGER,
            min REAL,
            max REAL,
            count INTEGER NOT NULL,
            points INTEGER NOT NULL,
            min_step INTEGER NOT NULL,
            max_step INTEGER NOT NULL,
            PRIMARY KEY (exp_pk, metric)
        ) WITHOUT ROWID;
        -- Filters and sorts by one aggregate of one metric walk these, ties broken by id.
        CREATE INDEX idx_msum_last ON metric_summaries(metric, last, exp_id) WHERE last IS NOT NULL;
        CREATE INDEX idx_msum_min ON metric_summaries(metric, min, exp_id) WHERE min IS NOT NULL;
        CREATE INDEX idx_msum_max ON metric_summaries(metric, max, exp_id) WHERE max IS NOT NULL;
        CREATE INDEX idx_msum_first ON metric_summaries(metric, first, exp_id) WHERE first IS NOT NULL;
        CREATE INDEX idx_msum_count ON metric_summaries(metric, count, exp_id);

        -- What a detail shows as it is: the flat params (JSON object, file order, booleans
        -- and nulls kept), the raw config object of assets.json, the raw environment.json.
        CREATE TABLE exp_docs (
            exp_pk INTEGER PRIMARY KEY REFERENCES experiments(pk) ON DELETE CASCADE,
            params TEXT,
            config TEXT,
            environment TEXT
        );

        -- The run's image events, in file order.
        CREATE TABLE exp_images (
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            key TEXT NOT NULL,
            step INTEGER,
            caption TEXT,
            path TEXT NOT NULL,
            PRIMARY KEY (exp_pk, seq)
        ) WITHOUT ROWID;

        -- Every run is read again once, so that the new tables fill from its files.
        UPDATE experiments SET files_sig = '', events_ino = NULL;
        """,
    ),
    Migration(
        "0006_list_metrics_json",
        """
        -- The run's metrics as a list row shows them ({name: {"last", "min", "max"}}), kept as
        -- JSON beside its params: include=params,metrics then copies two texts per row into
        -- the answer instead of building 3 objects per run from summary rows.
        ALTER TABLE exp_docs ADD COLUMN metrics TEXT;
        UPDATE experiments SET files_sig = '', events_ino = NULL;
        """,
    ),
    Migration(
        "0007_row_json",
        """
        -- The experiment object as the API shows it (db/rows.py): lists copy it into their
        -- answer instead of building it from seventeen columns per run (a page of 50 at 10k
        -- runs: 190 -> 70 us, measured).
        ALTER TABLE experiments ADD COLUMN row_json BLOB NOT NULL DEFAULT X'7B7D';
        UPDATE experiments SET files_sig = '', events_ino = NULL;
        """,
    ),
    Migration(
        "0008_listing_json_in_the_row",
        """
        -- A list row's params and metrics (include=params,metrics) live in the experiment's
        -- own row, so the page's one read brings them; exp_docs keeps only what a detail shows
        -- (config, environment: large, and then they are not in the way of a list).
        ALTER TABLE experiments ADD COLUMN params_json BLOB;
        ALTER TABLE experiments ADD COLUMN metrics_json BLOB;
        DROP TABLE exp_docs;
        CREATE TABLE exp_docs (
            exp_pk INTEGER PRIMARY KEY REFERENCES experiments(pk) ON DELETE CASCADE,
            config TEXT,
            environment TEXT
        );
        UPDATE experiments SET files_sig = '', events_ino = NULL;
        """,
    ),
    Migration(
        "0009_chunk_times_and_m4",
        """
        -- Each chunk also keeps the wall-clock time of every point (the time of the event that
        -- logged it; NaN where unknown) and its M4 points (first, lowest, highest, last): a
        -- downsampled view of a long series reads these small blobs, not every point.
        ALTER TABLE metric_chunks ADD COLUMN times BLOB;
        ALTER TABLE metric_chunks ADD COLUMN m4 BLOB;
        UPDATE experiments SET files_sig = '', events_ino = NULL;
        """,
    ),
    Migration(
        "0010_chunk_outlines",
        """
        -- A chunk row is about 12 KB of blobs, one database page or more: reading the range and
        -- M4 points of a long series' 200 chunks meant 200 pages and more (the M4 blob sat
        -- after the point blobs). They move to a narrow table of their own, 100 to a page; the
        -- chunks keep their points. Everything here is derived: the runs are read again.
        DROP TABLE metric_chunks;
        CREATE TABLE metric_chunks (
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            metric TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            n INTEGER NOT NULL,
            min_step INTEGER NOT NULL,
            max_step INTEGER NOT NULL,
            steps BLOB NOT NULL,                   -- int64 array
            vals BLOB NOT NULL,                    -- float64 array (NaN/Infinity kept)
            times BLOB,                            -- float64 array (NaN where unknown)
            PRIMARY KEY (exp_pk, metric, chunk)
        ) WITHOUT ROWID;
        CREATE TABLE chunk_outlines (
            exp_pk INTEGER NOT NULL REFERENCES experiments(pk) ON DELETE CASCADE,
            metric TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            n INTEGER NOT NULL,
            min_step INTEGER NOT NULL,
            max_step INTEGER NOT NULL,
            m4 BLOB NOT NULL,                      -- db/chunks.py m4()
            PRIMARY KEY (exp_pk, metric, chunk)
        ) WITHOUT ROWID;
        UPDATE experiments SET files_sig = '', events_ino = NULL;
        """,
    ),
    Migration(
        "0011_live_counts",
        """
        -- How many runs there are per (live, project, status), kept by triggers in the same
        -- transaction as the rows: a list's total without other filters is a sum of a few rows
        -- here, not a walk of one index entry per run (2 ms at 100k runs, after every change).
        CREATE TABLE exp_counts (
            live INTEGER NOT NULL,                 -- 1: not deleted
            project TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (live, project, status)
        ) WITHOUT ROWID;
        INSERT INTO exp_counts (live, project, status, n)
            SELECT deleted_at IS NULL, project, status, count(*) FROM experiments GROUP BY 1, 2, 3;
        CREATE TRIGGER exp_counts_insert AFTER INSERT ON experiments BEGIN
            INSERT INTO exp_counts (live, project, status, n)
                VALUES (new.deleted_at IS NULL, new.project, new.status, 1)
                ON CONFLICT (live, project, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER exp_counts_delete AFTER DELETE ON experiments BEGIN
            UPDATE exp_counts SET n = n - 1
                WHERE live = (old.deleted_at IS NULL) AND project = old.project AND status = old.status;
        END;
        CREATE TRIGGER exp_counts_update AFTER UPDATE OF project, status, deleted_at ON experiments
            WHEN old.project IS NOT new.project OR old.status IS NOT new.status
                OR (old.deleted_at IS NULL) != (new.deleted_at IS NULL)
        BEGIN
            UPDATE exp_counts SET n = n - 1
                WHERE live = (old.deleted_at IS NULL) AND project = old.project AND status = old.status;
            INSERT INTO exp_counts (live, project, status, n)
                VALUES (new.deleted_at IS NULL, new.project, new.status, 1)
                ON CONFLICT (live, project, status) DO UPDATE SET n = n + 1;
        END;
        """,
    ),
    Migration(
        "0012_table_versions",
        """
        -- A version of each table that filter clauses read as sets of runs, moved on by the
        -- writer in the same transaction as any change of its rows: a reader that finds the
        -- same version in its snapshot finds the same rows, so a set built from them stays good
        -- through every other change (a delete, a live run's new points, an edit). ``epoch``
        -- names this index file: a rebuilt one starts elsewhere.
        CREATE TABLE table_versions (
            name TEXT PRIMARY KEY,
            v INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO table_versions (name, v) VALUES ('epoch', random()), ('exp_params', 0), ('metric_summaries', 0);
        """,
    ),
    Migration(
        "0013_all_runs_version",
        """
        -- The version of the set of runs itself (a row added or removed; an update leaves it),
        -- kept by triggers: a filter's 'not' is the difference from this set, kept with it.
        INSERT INTO table_versions (name, v) VALUES ('all_runs', 0);
        CREATE TRIGGER all_runs_insert AFTER INSERT ON experiments BEGIN
            UPDATE table_versions SET v = v + 1 WHERE name = 'all_runs';
        END;
        CREATE TRIGGER all_runs_delete AFTER DELETE ON experiments BEGIN
            UPDATE table_versions SET v = v + 1 WHERE name = 'all_runs';
        END;
        """,
    ),
    Migration(
        "0014_change_log",
        """
        -- What each committed write changed, for the other processes that serve the store
        -- (serve --workers N, or servers sharing one PostgreSQL database): they follow it for
        -- the live event stream and to know that what they keep of the index is stale. Written
        -- only when the store is shared; rows older than a few minutes are dropped.
        CREATE TABLE change_log (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            writer INTEGER NOT NULL,               -- the pid of the process that wrote
            payload BLOB NOT NULL
        );
        -- Where the ingesting worker's indexing stands (its /api/health "index" report), for the
        -- workers that do not ingest: one row, written after each scan.
        CREATE TABLE ingest_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            at REAL NOT NULL,
            payload BLOB NOT NULL
        );
        """,
    ),
    Migration(
        "0015_kept_analytics",
        """
        -- What /api/v2/analytics/summary adds up, kept by triggers as exp_counts is: the
        -- durations and points per (live, project, status), and the runs created per day, so
        -- the overview sums a few rows instead of making three passes over every run (past
        -- 10 s at a million runs). The best value per project comes from the index below: one
        -- descent per (project, status).
        CREATE TABLE exp_stats (
            live INTEGER NOT NULL,
            project TEXT NOT NULL,
            status TEXT NOT NULL,
            n_dur INTEGER NOT NULL,                -- runs that ended at or after their start
            dur_sum REAL NOT NULL,                 -- the sum of their durations, in seconds
            points INTEGER NOT NULL,
            PRIMARY KEY (live, project, status)
        ) WITHOUT ROWID;
        INSERT INTO exp_stats (live, project, status, n_dur, dur_sum, points)
            SELECT deleted_at IS NULL, project, status, sum(coalesce(ended_at >= created_at, 0)),
                sum(iif(ended_at >= created_at, ended_at - created_at, 0)), sum(n_points)
            FROM experiments GROUP BY 1, 2, 3;
        CREATE TABLE exp_days (
            live INTEGER NOT NULL,
            day INTEGER NOT NULL,                  -- whole days of created_at since 1970-01-01 (UTC)
            project TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (live, day, project, status)
        ) WITHOUT ROWID;
        INSERT INTO exp_days (live, day, project, status, n)
            SELECT deleted_at IS NULL, CAST(created_at / 86400 AS INTEGER), project, status, count(*)
            FROM experiments GROUP BY 1, 2, 3, 4;
        CREATE TRIGGER exp_stats_insert AFTER INSERT ON experiments BEGIN
            INSERT INTO exp_stats (live, project, status, n_dur, dur_sum, points)
                VALUES (new.deleted_at IS NULL, new.project, new.status, coalesce(new.ended_at >= new.created_at, 0),
                        iif(new.ended_at >= new.created_at, new.ended_at - new.created_at, 0), new.n_points)
                ON CONFLICT (live, project, status) DO UPDATE SET n_dur = n_dur + excluded.n_dur,
                    dur_sum = dur_sum + excluded.dur_sum, points = points + excluded.points;
            INSERT INTO exp_days (live, day, project, status, n)
                VALUES (new.deleted_at IS NULL, CAST(new.created_at / 86400 AS INTEGER), new.project, new.status, 1)
                ON CONFLICT (live, day, project, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER exp_stats_delete AFTER DELETE ON experiments BEGIN
            UPDATE exp_stats SET n_dur = n_dur - coalesce(old.ended_at >= old.created_at, 0),
                    dur_sum = dur_sum - iif(old.ended_at >= old.created_at, old.ended_at - old.created_at, 0),
                    points = points - old.n_points
                WHERE live = (old.deleted_at IS NULL) AND project = old.project AND status = old.status;
            UPDATE exp_days SET n = n - 1 WHERE live = (old.deleted_at IS NULL)
                AND day = CAST(old.created_at / 86400 AS INTEGER) AND project = old.project AND status = old.status;
        END;
        CREATE TRIGGER exp_stats_update AFTER UPDATE OF project, status, deleted_at, created_at, ended_at, n_points
            ON experiments
            WHEN old.project IS NOT new.project OR old.status IS NOT new.status
                OR (old.deleted_at IS NULL) != (new.deleted_at IS NULL) OR old.created_at IS NOT new.created_at
                OR old.ended_at IS NOT new.ended_at OR old.n_points IS NOT new.n_points
        BEGIN
            UPDATE exp_stats SET n_dur = n_dur - coalesce(old.ended_at >= old.created_at, 0),
                    dur_sum = dur_sum - iif(old.ended_at >= old.created_at, old.ended_at - old.created_at, 0),
                    points = points - old.n_points
                WHERE live = (old.deleted_at IS NULL) AND project = old.project AND status = old.status;
            INSERT INTO exp_stats (live, project, status, n_dur, dur_sum, points)
                VALUES (new.deleted_at IS NULL, new.project, new.status, coalesce(new.ended_at >= new.created_at, 0),
                        iif(new.ended_at >= new.created_at, new.ended_at - new.created_at, 0), new.n_points)
                ON CONFLICT (live, project, status) DO UPDATE SET n_dur = n_dur + excluded.n_dur,
                    dur_sum = dur_sum + excluded.dur_sum, points = points + excluded.points;
        END;
        CREATE TRIGGER exp_days_update AFTER UPDATE OF project, status, deleted_at, created_at ON experiments
            WHEN old.project IS NOT new.project OR old.status IS NOT new.status
                OR (old.deleted_at IS NULL) != (new.deleted_at IS NULL)
                OR CAST(old.created_at / 86400 AS INTEGER) != CAST(new.created_at / 86400 AS INTEGER)
        BEGIN
            UPDATE exp_days SET n = n - 1 WHERE live = (old.deleted_at IS NULL)
                AND day = CAST(old.created_at / 86400 AS INTEGER) AND project = old.project AND status = old.status;
            INSERT INTO exp_days (live, day, project, status, n)
                VALUES (new.deleted_at IS NULL, CAST(new.created_at / 86400 AS INTEGER), new.project, new.status, 1)
                ON CONFLICT (live, day, project, status) DO UPDATE SET n = n + 1;
        END;
        CREATE INDEX idx_live_project_status_best ON experiments(project, status, best_metric_value)
            WHERE deleted_at IS NULL;
        """,
    ),
    Migration(
        "0016_set_changes",
        """
        -- Which run each move of a logged table version was for (db/set_changes.py): a kept set
        -- of runs is brought up to date by testing those runs again. One row per version.
        CREATE TABLE set_changes (
            tbl TEXT NOT NULL,
            v INTEGER NOT NULL,
            exp_pk INTEGER NOT NULL,
            PRIMARY KEY (tbl, v)
        ) WITHOUT ROWID;
        DROP TRIGGER all_runs_insert;
        DROP TRIGGER all_runs_delete;
        CREATE TRIGGER all_runs_insert AFTER INSERT ON experiments BEGIN
            UPDATE table_versions SET v = v + 1 WHERE name = 'all_runs';
            INSERT INTO set_changes (tbl, v, exp_pk) SELECT name, v, new.pk FROM table_versions WHERE name = 'all_runs';
        END;
        CREATE TRIGGER all_runs_delete AFTER DELETE ON experiments BEGIN
            UPDATE table_versions SET v = v + 1 WHERE name = 'all_runs';
            INSERT INTO set_changes (tbl, v, exp_pk) SELECT name, v, old.pk FROM table_versions WHERE name = 'all_runs';
        END;
        """,
    ),
]
