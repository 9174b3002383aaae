"""What Runicorn's web UI saves on the server: column widths, dismissed alerts, created folders.

Runicorn keeps these in the user's config folder (``ui_preferences.json``), shared by every
viewer the user runs; here they belong to one server, in a small SQLite file of our store
(``ui.sqlite`` beside the index), so two roots served side by side keep their own. It is
precious (a rebuild of the index never touches it) and never Runicorn's files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from runicorn_lite.db import Database, Migration

FILENAME = "ui.sqlite"
MIGRATIONS = (
    Migration(
        "ui_0001_preferences",
        """
        CREATE TABLE column_widths (
            table_name TEXT NOT NULL,
            size TEXT NOT NULL,
            widths TEXT NOT NULL,               -- JSON object {column: width}
            window_width INTEGER,
            window_height INTEGER,
            updated_at REAL NOT NULL,
            PRIMARY KEY (table_name, size)
        );
        CREATE TABLE dismissed_alerts (
            seq INTEGER PRIMARY KEY,            -- the order they were dismissed in
            alert_id TEXT NOT NULL UNIQUE
        );
        -- Folders made through POST /api/paths/create: the path tree lists them while they
        -- exist, runs or not (the index knows only folders that hold runs).
        CREATE TABLE created_paths (
            path TEXT PRIMARY KEY,
            created_at REAL NOT NULL
        );
        """,
    ),
)


class Preferences:
    """The UI's saved settings of one server."""

    def __init__(self, store_dir: Path) -> None:
        self.db = Database(store_dir / FILENAME, MIGRATIONS, precious=True)

    def close(self) -> None:
        self.db.close()

    # -- column widths ----------------------------------------------------------------------

    def column_widths(self, table: str, size: str) -> dict[str, Any]:
        row = self.db.read(lambda c: c.execute(
            "SELECT widths FROM column_widths WHERE table_name = ? AND size = ?", (table, size)).fetchone())
        widths: dict[str, Any] = orjson.loads(row[0]) if row else {}
        return widths

    def save_column_widths(self, table: str, size: str, widths: dict[str, int],
                           window: tuple[int | None, int | None]) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT INTO column_widths (table_name, size, widths, window_width, window_height, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (table_name, size) DO UPDATE SET widths = excluded.widths, "
                "window_width = excluded.window_width, window_height = excluded.window_height, "
                "updated_at = excluded.updated_at",
                (table, size, orjson.dumps(widths).decode(), window[0], window[1], time.time()),
            )

    def reset_column_widths(self, table: str, size: str | None) -> None:
        with self.db.write() as conn:
            if size:
                conn.execute("DELETE FROM column_widths WHERE table_name = ? AND size = ?", (table, size))
            else:
                conn.execute("DELETE FROM column_widths WHERE table_name = ?", (table,))

    # -- dismissed alerts -------------------------------------------------------------------

    def dismissed_alerts(self) -> list[str]:
        rows = self.db.read(lambda c: c.execute("SELECT alert_id FROM dismissed_alerts ORDER BY seq").fetchall())
        return [r[0] for r in rows]

    def dismiss(self, alert_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO dismissed_alerts (alert_id) VALUES (?)", (alert_id,))

    def undismiss(self, alert_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM dismissed_alerts WHERE alert_id = ?", (alert_id,))

    def clear_dismissed(self) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM dismissed_alerts")

    # -- created folders --------------------------------------------------------------------

    def created_paths(self) -> list[str]:
        rows = self.db.read(lambda c: c.execute("SELECT path FROM created_paths ORDER BY path").fetchall())
        return [r[0] for r in rows]

    def add_created_path(self, path: str) -> None:
        with self.db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO created_paths (path, created_at) VALUES (?, ?)", (path, time.time()))

    def forget_created_paths(self, paths: list[str]) -> None:
        if not paths:
            return
        with self.db.write() as conn:
            conn.executemany("DELETE FROM created_paths WHERE path = ?", [(p,) for p in paths])
