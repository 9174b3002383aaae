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


def default_database() -> str | None:
    """$RUNICORN_LITE_DATABASE, or None for the SQLite files."""
    return os.environ.get(f"{ENV_PREFIX}DATABASE") or None


POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite:///"


def database_problem(url: str) -> str | None:
    """Why ``url`` cannot name our database, or None."""
    if url.startswith(POSTGRES_SCHEMES):
        return None
    if url.startswith(SQLITE_SCHEME):
        return None if len(url) > len(SQLITE_SCHEME) else "sqlite:/// needs a folder: sqlite:///path/to/dir"
    return "expected postgresql://user@host:port/dbname or sqlite:///path/to/dir"


def sqlite_folder(url: str) -> Path:
    """The folder a ``sqlite:///…`` URL names: ``sqlite:///abs/dir`` is /abs/dir (read as a
    file URL), ``sqlite:///./rel`` and ``sqlite:///../rel`` are relative."""
    rest = url[len(SQLITE_SCHEME):]
    if rest.startswith(("./", "../")):
        return Path(rest)
    return Path("/" + rest.lstrip("/"))


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
    # The index and the primary store in PostgreSQL (a libpq URL), or None for the two SQLite
    # files; ``sqlite:///dir`` is the same as ``index_dir=dir``.
    database: str | None = field(default_factory=default_database)
    # The root cannot be written (a read-only mount, a colleague's folder): reads are served,
    # writes to run directories answer 403.
    read_only: bool = False
    # Processes answering on one address (serve --workers N); one of them ingests at a time.
    workers: int = 1
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
    # Host names the server answers to besides loopback names on its port (team-server.md §3).
    # None checks no Host at all: in-process test clients call the server "testserver"; the CLI
    # always checks.
    allowed_hosts: tuple[str, ...] | None = None
    # "keys": every /api request needs a key (or a session of one); "none": only the
    # optimization API and uploads do.
    auth: str = "none"
    # Seconds of quiet after which a live event stream (/api/v2/events) sends a comment line,
    # so that proxies and browsers keep it open.
    events_keepalive: float = 15.0
    # Serve Runicorn's own web UI (from the installed runicorn package, or from
    # runicorn_ui_bundle: a runicorn wheel or a webui folder) at / instead of ours.
    runicorn_ui: bool = False
    runicorn_ui_bundle: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())
        if self.database is not None and self.database.startswith(SQLITE_SCHEME):
            object.__setattr__(self, "index_dir", sqlite_folder(self.database).expanduser().resolve())
            object.__setattr__(self, "database", None)
        if self.index_dir is not None:
            object.__setattr__(self, "index_dir", Path(self.index_dir).expanduser().resolve())
        if self.runicorn_ui_bundle is not None:
            object.__setattr__(self, "runicorn_ui_bundle", Path(self.runicorn_ui_bundle).expanduser().resolve())

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL database holding the index and the primary store, if there is one."""
        if self.database is not None and self.database.startswith(POSTGRES_SCHEMES):
            return self.database
        return None

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
