"""Rows by step kept as columns: appends, steps out of order, gaps, picks, JSON in batches."""

from __future__ import annotations

import math
from array import array

import orjson

from runicorn_lite.queries import steptable
from runicorn_lite.queries.steptable import StepTable


def rows(table: StepTable, picks: list[int] | None = None) -> list[dict]:
    return orjson.loads(b"[" + b"".join(table.json_rows(picks)) + b"]")


def test_columns_line_up_by_step_whatever_the_order_they_come_in() -> None:
    table = StepTable()
    table.add_numbers("loss", [1, 2, 3], [0.3, 0.2, 0.1])
    table.add_numbers("acc", array("q", [2, 3]), array("d", [0.5, 0.6]))  # the tail of the steps
    table.add_numbers("acc", [4, 5], [0.7, 0.8])  # past the end
    table.add_texts("stage", [1, 5], ["train", "val"])
    table.add_numbers("loss", [0, 3], [9.0, -1.0])  # before the first step, and a step again
    table.add_numbers("lr", [], [])
    assert list(table.steps) == [0, 1, 2, 3, 4, 5]
    assert rows(table) == [
        {"global_step": 0, "acc": None, "loss": 9.0, "lr": None, "stage": None},
        {"global_step": 1, "acc": None, "loss": 0.3, "lr": None, "stage": "train"},
        {"global_step": 2, "acc": 0.5, "loss": 0.2, "lr": None, "stage": None},
        {"global_step": 3, "acc": 0.6, "loss": -1.0, "lr": None, "stage": None},
        {"global_step": 4, "acc": 0.7, "loss": None, "lr": None, "stage": None},
        {"global_step": 5, "acc": 0.8, "loss": None, "lr": None, "stage": "val"},
    ]


def test_json_comes_in_batches_and_nan_is_null(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(steptable, "ROWS_PER_BATCH", 7)
    table = StepTable()
    table.add_numbers("x", list(range(30)), [math.nan if i == 4 else float(i) for i in range(30)])
    pieces = list(table.json_rows())
    assert len(pieces) == 5 and pieces[1].startswith(b",")
    got = rows(table)
    assert [r["global_step"] for r in got] == list(range(30)) and got[4]["x"] is None
    assert rows(table, [0, 29]) == [{"global_step": 0, "x": 0.0}, {"global_step": 29, "x": 29.0}]
    assert list(StepTable().json_rows()) == []


def test_picks_keep_first_last_and_extremes_of_every_column() -> None:
    table = StepTable()
    n = 10_000
    table.add_numbers("a", list(range(n)), [math.sin(i / 50) + (9 if i == 4321 else 0) for i in range(n)])
    table.add_numbers("b", list(range(0, n, 2)), [-(i % 97) - (200 if i == 7000 else 0) for i in range(0, n, 2)])
    assert table.pick(None) is None and table.pick(n) is None
    picks = table.pick(200)
    assert picks is not None and len(picks) <= 200 and picks == sorted(set(picks))
    assert picks[0] == 0 and picks[-1] == n - 1
    steps = [table.steps[i] for i in picks]
    assert 4321 in steps and 7000 in steps
