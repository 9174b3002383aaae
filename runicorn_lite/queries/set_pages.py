"""A page of a filter's kept set of runs in the list's order, without SQL building the set
again: a walk of a sort index testing each run against the set, or the members' sort keys read
and sorted here, whichever reads fewer rows."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.queries.runsets import RunSet


def set_page(
    conn: sqlite3.Connection,
    runs: RunSet,
    column: str,
    order: str,
    offset: int,
    per_page: int,
    everything: int,
    where: str,
    total: int,
    deleted: frozenset[int] = frozenset(),
) -> list[int]:
    """The pks of one page of ``runs`` (a filter's set, deleted runs already left out when they
    are not wanted) in the list's order of ``column`` (``order``: its ORDER BY text from
    ``order_clause``, ``column`` whitelisted by the caller), without SQLite building the set
    again: either a walk of the sort index keeping the members (about ``wanted × everything /
    len(runs)`` rows read, cheap when the set is large), or the members' sort keys read by pk
    and sorted here (``len(runs)`` rows, cheap when it is small). ``everything``: how many runs
    the walk could meet; ``where``: the walk's condition (live runs: the sort index's own);
    ``total``: how many members the walk can meet; ``deleted``: members the sort leaves out."""
    wanted = offset + per_page
    if not total or offset >= total:
        return []
    if wanted * everything <= total * total * 4:
        rows = walk(conn, f"SELECT pk FROM experiments WHERE {where} ORDER BY {order}", [],
                    wanted * everything // total)
        return walk_page(rows, runs, frozenset(), wanted)[offset:]
    keys: list[tuple[Any, str, int]] = []
    members = [pk for pk in runs if pk not in deleted] if deleted else list(runs)
    for start in range(0, len(members), 500):
        part = members[start : start + 500]
        keys.extend(conn.execute(
            f"SELECT {column}, id, pk FROM experiments WHERE pk IN ({','.join('?' * len(part))})", part
        ).fetchall())
    descending = " DESC" in order
    if descending:  # NULL lowest: last when descending; ties by id, descending too
        keys.sort(key=lambda k: (k[0] is not None, k[0] if k[0] is not None else 0, k[1]), reverse=True)
    else:  # NULLs last, ties by id
        keys.sort(key=lambda k: (k[0] is None, k[0] if k[0] is not None else 0, k[1]))
    return [k[2] for k in keys[offset:wanted]]


def walk(conn: sqlite3.Connection, sql: str, params: list[Any], expect: int) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` (ordered to the last tie) as a walk takes them, about ``expect`` of
    them wanted. SQLite steps through its rows as they are taken; PostgreSQL's client reads a
    whole result at once (all of a million runs for a page: ~300 ms at a million), so there the
    rows come in windows (``LIMIT``/``OFFSET``) from twice ``expect``, each four times the last."""
    if not on_postgres():
        cursor = conn.execute(sql, params)
        try:
            yield from cursor
        finally:
            cursor.close()
        return
    start, size = 0, max(64, 2 * expect)
    while True:
        rows = conn.execute(f"{sql} LIMIT ? OFFSET ?", [*params, size, start]).fetchall()
        yield from rows
        if len(rows) < size:
            return
        start += size
        size *= 4


def walk_page(cursor: Iterable[tuple[int]], runs: RunSet, deleted: frozenset[int], wanted: int) -> list[int]:
    """The first ``wanted`` pks of ``cursor`` (a walk of a sort index, in the list's order)
    that are members of ``runs`` and not of ``deleted``: a kept set tested in memory, where
    SQL would build the set again in every statement (``pk IN (...)``: linear in its size)."""
    picked: list[int] = []
    for (pk,) in cursor:
        if pk in runs and pk not in deleted:
            picked.append(pk)
            if len(picked) >= wanted:
                break
    return picked
