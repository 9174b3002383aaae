"""Every knob of the server in one frozen dataclass, filled from CLI flags and environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Every option of the command line has the environment variable ENV_PREFIX + its name.
ENV_PREFIX = "RUNICORN_LITE_"
DEFAULT_ROOT = "./runicorn-data"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 23300
# Our own files live in a folder of their own under the data root, never beside the real
# Runicorn's runicorn.db.
STORE_DIRNAME = ".runicorn_lite"
INDEX_FILENAME = "index.sqlite"
PRIMARY_FILENAME = "primary.sqlite"


def default_root() -> Path:
    """The data root when no --root is given: $RUNICORN_LITE_ROOT, else $RUNICORN_DIR (where a
    script written for Runicorn keeps its runs), else ./runicorn-data."""
    return Path(os.environ.get(f"{ENV_PREFIX}ROOT") or os.environ.get("RUNICORN_DIR") or DEFAULT_ROOT)


def default_index_dir() -> Path | None:
    """Where our SQLite files go when no --index-dir is given: $RUNICORN_LITE_INDEX_DIR, or
    None for the store folder under the data root."""
    value = os.environ.get("RUNICORN_LITE_INDEX_DIR")
    return Path(value) if value else None


@dataclass(frozen=True)
class Settings:
    """Configuration of one server (or one CLI command) over one data root."""

    root: Path = field(default_factory=default_root)
    # Our two SQLite files (and the lock of the server) go here instead of under the root:
    # nothing is then written under the root by the store (a read-only or shared folder).
    index_dir: Path | None = field(default_factory=default_index_dir)
    # The root cannot be written (a read-only mount, a colleague's folder): reads are served,
    # writes to run directories answer 403.
    read_only: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    watch: bool = True
    # Seconds between fallback rescans (file systems without reliable events, exceeded
    # inotify limits). 0 turns the periodic rescan off.
    rescan_interval: float = 30.0
    # V1/V2 rate limits of the V2 document; off by default for a local server.
    rate_limit: bool = False
    # Optimization API limits: requests per 60 s window, per project.
    read_limit: int = 1000
    write_limit: int = 500
    iterations_limit: int = 2000
    # Requests with a bad API key, per client address per 60 s.
    auth_failure_limit: int = 60
    # Refuse Host headers that are not loopback names (the CLI turns it on when it binds a
    # loopback address; in-process test clients use other names).
    check_host: bool = False
    # Seconds of quiet after which a live event stream (/api/v2/events) sends a comment line,
    # so that proxies and browsers keep it open.
    events_keepalive: float = 15.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())
        if self.index_dir is not None:
            object.__setattr__(self, "index_dir", Path(self.index_dir).expanduser().resolve())

    @property
    def store_dir(self) -> Path:
        """Folder holding our two SQLite files (``index_dir``, or a folder under the root)."""
        return self.index_dir if self.index_dir is not None else self.root / STORE_DIRNAME

    @property
    def index_path(self) -> Path:
        """The derived, rebuildable index (experiments, metrics, tags, search)."""
        return self.store_dir / INDEX_FILENAME

    @property
    def primary_path(self) -> Path:
        """The primary database (API keys, optimization runs); never touched by a rebuild."""
        return self.store_dir / PRIMARY_FILENAME

    def ensure_dirs(self) -> None:
        """Create our store folder (and the data root, when the store is under it) if they do
        not exist yet."""
        self.store_dir.mkdir(parents=True, exist_ok=True)

    def root_is_writable(self) -> bool:
        """Whether run directories under the root can be changed (False on a read-only mount
        or without write permission; a root not made yet will be)."""
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent
        return os.access(path, os.W_OK)
