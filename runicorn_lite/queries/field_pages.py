"""Pages of the list ordered by a param or a metric aggregate: the order's SQL (whitelisted
fields only) and, for a ``filter=`` expression alone, a page from a walk of the field's index
that tests the expression's kept set of runs."""

from __future__ import annotations

import sqlite3
from typing import Any

from runicorn_lite.db.dialect import on_postgres
from runicorn_lite.queries.filter_sets import aggregate_column
from runicorn_lite.queries.filters import Field
from runicorn_lite.queries.runsets import RunSet
from runicorn_lite.queries.set_pages import walk, walk_page


def field_order(field: Field, direction: str) -> str:
    """ORDER BY terms of a field's value (``s.``: its params or summaries row) in ``direction``:
    numbers before strings for params on both backends."""
    if field.kind != "params":
        return f"s.{aggregate_column(field)} {direction}"
    if on_postgres():
        return f"(s.vn IS NULL) {direction}, s.vn {direction}, s.vs {direction}"
    return f"s.v {direction}"


def field_source(field: Field) -> tuple[str, str, list[Any]]:
    """(table, condition, params) of the rows that give runs a value for ``field``; the value
    is column ``s.v`` (params) or the aggregate's column (metrics)."""
    if field.kind == "params":
        return "exp_params", "s.key = ?", [field.name]
    col = aggregate_column(field)
    return "metric_summaries", f"s.metric = ? AND s.{col} IS NOT NULL", [field.name]


def kept_field_page(
    conn: sqlite3.Connection, runs: RunSet, deleted: frozenset[int], everything: int, field: Field,
    desc: bool, offset: int, per_page: int, total: int,
) -> list[int] | None:
    """The pks of a page of ``runs`` (a ``filter=`` expression's kept set, less ``deleted``;
    ``total`` of them, among ``everything`` runs a walk may meet) ordered by ``field``: a walk
    of the field's index testing the set, when the set is large (the walk meets a member
    every few rows) and the page lies among the runs that have the field; else None (SQL's).
    SQL's ``+pk IN (...)`` builds the set again in every statement: 1.75 s at a million runs
    for a clause that most of them match."""
    wanted = offset + per_page
    if not total or wanted * everything > total * total * 4:
        return None
    table, has, has_params = field_source(field)
    direction = "DESC" if desc else ""
    rows = walk(conn, f"SELECT s.exp_pk FROM {table} s WHERE {has}"
                f" ORDER BY {field_order(field, direction)}, s.exp_id {direction}", has_params,
                wanted * everything // total)
    picked = walk_page(rows, runs, deleted, wanted)
    return picked[offset:] if len(picked) == wanted else None
