"""Ingest: run directories → the SQLite index (full scans, incremental refreshes, a watcher)."""

from __future__ import annotations

from runicorn_lite.ingest.indexer import Indexer
from runicorn_lite.ingest.keeper import IndexKeeper, open_index, open_store
from runicorn_lite.ingest.state import IndexState
from runicorn_lite.ingest.watcher import Watcher

__all__ = ["IndexKeeper", "IndexState", "Indexer", "Watcher", "open_index", "open_store"]
