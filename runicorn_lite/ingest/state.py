"""What the indexer reports of itself (/api/health, the CLI's progress)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class IndexState:
    """What /api/health reports about indexing. Plain fields, written by the indexer thread."""

    scanning: bool = False
    scans_completed: int = 0
    runs_seen: int = 0  # by the scan under way (or the last one)
    runs_indexed: int = 0  # (re)read by the scan under way (or the last one)
    runs_in_index: int = 0  # now: scans and refreshes keep it current
    last_scan_runs_seen: int | None = None  # by the last completed scan
    last_scan_runs_indexed: int | None = None
    last_scan_started_at: float | None = None
    last_scan_finished_at: float | None = None
    last_scan_duration_s: float | None = None
    # Seconds the last scan spent walking the tree and comparing signatures (not reading runs):
    # what a periodic rescan of an unchanged tree costs; it paces those rescans (watcher.py).
    last_walk_s: float | None = None
    # Seconds between two periodic rescans as paced now (None: none are made).
    rescan_every_s: float | None = None
    last_change_at: float | None = None
    last_ingest_lag_s: float | None = None
    errors: int = 0
    watcher: str = "off"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready copy."""
        return dict(self.__dict__)
