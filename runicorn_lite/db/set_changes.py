"""Which runs each version of a set-keeping table changed (``set_changes``: db/schema.py,
0016_set_changes; pg_0005 on PostgreSQL).

The filter's kept sets of runs are good while their table keeps its version (0012). A new run,
or a live run's new points, moves ``exp_params`` or ``metric_summaries`` on by one, and every set
read from it used to be read again: at a million runs over a second for ``params.lr < 0.01``.
Each move of a version now writes one row naming the run it was for, in the same transaction, so
a reader holding a set of version ``v`` finds the runs changed up to its snapshot's version and
tests only those again (queries/filter_sets.py).

One row per version, always: a reader checks that it found as many rows as versions passed, so
a gap (rows pruned, a version moved with no row) means "read the set again", never a wrong set.
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.db.where import placeholders

# The tables whose versions are logged: 'all_runs' by the experiments' triggers, the others by
# the writer (:func:`changed`).
LOGGED = ("exp_params", "metric_summaries", "all_runs")
# Rows kept per table: a reader whose set is older reads it again (as it would anyway: a few
# hundred thousand runs tested one by one cost about what one read of the whole set does).
KEEP_VERSIONS = 100_000
# The log is pruned after every this many moves of a version by this process.
PRUNE_EVERY = 4_096
# Past this many versions a reader reads the whole set again instead.
MAX_DELTA = 20_000

_PG_CHANGED = (
    "WITH moved AS (UPDATE table_versions SET v = v + 1 WHERE name = ? RETURNING name, v)"
    " INSERT INTO set_changes (tbl, v, exp_pk) SELECT name, v, ? FROM moved"
)
# Moves of a version logged by this process: the log is pruned every PRUNE_EVERY of them.
_moves = itertools.count(1)


def changed(conn: sqlite3.Connection, table: str, pk: int) -> None:
    """Move ``table``'s version on (its rows changed in this transaction, for run ``pk``) and
    log which run it was for. Two statements that need no answer: on PostgreSQL they go out in
    the writer's pipeline like the rest of a run's (reading the new version back would wait for
    the server, three times a run of a cold index)."""
    if on_postgres():  # one statement: each costs the writer's thread (py-spy: 6% for two)
        conn.execute(_PG_CHANGED, (table, pk))
    else:
        conn.execute("UPDATE table_versions SET v = v + 1 WHERE name = ?", (table,))
        conn.execute("INSERT INTO set_changes (tbl, v, exp_pk) SELECT name, v, ? FROM table_versions WHERE name = ?",
                     (pk, table))
    if next(_moves) % PRUNE_EVERY == 0:
        prune(conn)


def prune(conn: sqlite3.Connection) -> None:
    """Drop the rows older than each table's last KEEP_VERSIONS versions."""
    for logged in LOGGED:
        conn.execute(
            "DELETE FROM set_changes WHERE tbl = ? AND v <= (SELECT v FROM table_versions WHERE name = ?) - ?",
            (logged, logged, KEEP_VERSIONS),
        )


def read_versions(conn: sqlite3.Connection) -> dict[str, Any]:
    """Every table version and the index's epoch, by the table's key: on PostgreSQL a scan of
    its four rows read every dead row a long write had left (156 MB after a cold index of a
    million runs with autovacuum off: 30-190 ms a read)."""
    names = ("epoch", *LOGGED)
    return dict(conn.execute(f"SELECT name, v FROM table_versions WHERE name IN ({placeholders(len(names))})",
                             names).fetchall())


def changes_since(conn: sqlite3.Connection, table: str, old: int, new: int) -> frozenset[int] | None:
    """The runs whose rows of ``table`` changed after version ``old`` up to ``new`` (this read's
    snapshot), or None when the log cannot say (pruned, or too many to be worth it)."""
    if new < old or new - old > MAX_DELTA:
        return None
    if new == old:
        return frozenset()
    rows: list[Any] = conn.execute(
        "SELECT exp_pk FROM set_changes WHERE tbl = ? AND v > ? AND v <= ?", (table, old, new)
    ).fetchall()
    if len(rows) != new - old:
        return None
    return frozenset(r[0] for r in rows)
