"""What the key of a request may see (team-server.md §3), for every V1/V2 handler.

A key of project P sees P's runs only: lists and totals count only them (its filter is narrowed
to P), and another project's run is 404 everywhere, exactly as a run that does not exist (so a
key cannot even learn which ids exist elsewhere). A key of every project, and any request on a
server with ``--auth none`` (no principal), sees every run.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable

from starlette.requests import HTTPConnection

from runicorn_lite.api.context import AppContext, Locator, context
from runicorn_lite.api.errors import not_found
from runicorn_lite.http.auth import Principal, principal_of
from runicorn_lite.queries.experiments import ExperimentFilter, RunRef

# A project no run has (a project is one directory name: it holds no "/"): the filter of a key
# that asked for another project than its own. (Not a NUL: PostgreSQL's text cannot hold one.)
NO_PROJECT = "/"


def who(conn: HTTPConnection) -> Principal | None:
    """The key of the request, when it is limited to one project (None: it sees every run)."""
    principal = principal_of(conn.scope)
    return None if principal is None or principal.all_projects else principal


def sees(conn: HTTPConnection, project: str | None) -> bool:
    """Whether runs of ``project`` are visible to the request."""
    key = who(conn)
    return key is None or key.sees(project)


def scoped(conn: HTTPConnection, f: ExperimentFilter) -> ExperimentFilter:
    """A list filter narrowed to the request's project."""
    key = who(conn)
    if key is None:
        return f
    if f.project is not None and f.project != key.project_id:
        return dataclasses.replace(f, project=NO_PROJECT)
    return dataclasses.replace(f, project=key.project_id)


def _projects(ctx: AppContext, ids: list[str]) -> dict[str, str]:
    """The indexed project of each of these ids (ids the index lacks are left out)."""

    def read(conn: sqlite3.Connection) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            sql = f"SELECT id, project FROM experiments WHERE id IN ({','.join('?' * len(part))})"
            out.update(conn.execute(sql, part).fetchall())
        return out

    return ctx.index.read(read)


async def hidden(conn: HTTPConnection, ids: Iterable[str]) -> set[str]:
    """Which of ``ids`` the request may not see (indexed runs of another project, and ids the
    index does not hold, when the key is limited)."""
    key = who(conn)
    wanted = list(dict.fromkeys(ids))
    if key is None or not wanted:
        return set()
    projects = await context(conn).store.call(_projects, context(conn), wanted)
    return {i for i in wanted if projects.get(i) != key.project_id}


async def require_visible(conn: HTTPConnection, exp_id: str) -> None:
    """404, as for a run that does not exist, when the request may not see this run."""
    if await hidden(conn, [exp_id]):
        raise not_found(f"Experiment {exp_id[:200]} not found")


def visible_locator(conn: HTTPConnection, locate: Locator) -> Locator:
    """A Locator (see AppContext) over the index that finds only the runs the request may see;
    another project's run is "run not found", as one that does not exist."""
    key = who(conn)
    if key is None:
        return locate
    project = key.project_id
    ctx = context(conn)

    def visible(ids: list[str]) -> dict[str, RunRef]:
        found = locate(ids)
        projects = _projects(ctx, list(found))
        return {i: ref for i, ref in found.items() if projects.get(i) == project}

    return visible
