"""Parameter importance (analysis.md §4): how much of a metric's variance each param explains,
and its Spearman rank correlation with the metric.

The model is a random forest of regression trees written here in numpy (no heavier
dependency: at 10,000 runs × 20 params it answers within the 2 s the contract asks, see
benchmarks/README.md). Each param becomes at most :data:`BINS` ordered codes: numbers (and
booleans, as 1 and 0) by quantiles, strings as categories that each tree orders by their mean
metric in its own sample (the classic exact trick for a categorical split in regression; in
sample only, or a string unique to each run would predict the metric perfectly), a run lacking
the param a code of its own. :data:`TREES` trees, each on a bootstrap sample, are grown level by level to
:data:`DEPTH` with at least :data:`MIN_LEAF` runs a leaf (samples of at most :data:`SAMPLE`
runs, judged on at most :data:`HELD_OUT` others), a third of the params tried at each
level; one ``bincount`` per (level, param) finds every node's best split at once.

``importance`` = permutation importance on each tree's out-of-bag runs: the rise of the squared
error when the param's values are shuffled, halved (shuffling an effect of variance V adds 2V)
and divided by the metric's variance; clipped at 0 and scaled down if they would sum past 1.
Permutation rather than impurity: impurity importance favours params of many values (a seed
looked more important than real effects on small sweeps). Trees capture interactions (a split
under another param's split). Seeded: the same data gives the same answer.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from runicorn_lite.queries.experiments import ExperimentFilter, QueryCache, where_clause
from runicorn_lite.queries.filter_sets import aggregate_column
from runicorn_lite.queries.filters import Field
from runicorn_lite.queries.groups import Columns, _lookup, metric_label

MIN_RUNS = 10
MIN_PRESENCE = 0.10
MAX_PARAMS = 200
BINS = 32
TREES = 32
DEPTH = 8
MIN_LEAF = 5
# Runs a tree is grown on (a bootstrap sample) and judged on (out of its sample), at most: past
# a few thousand runs more of them change the shares little and cost time linearly.
SAMPLE = 4000
HELD_OUT = 2000
SEED = 20240101


class TooFewRuns(ValueError):
    """Fewer than MIN_RUNS matching runs have the metric."""


class Param:
    """One param over the runs: each run's value code (-1: it lacks the param) into ``values``."""

    def __init__(self, code: np.ndarray, values: list[Any]) -> None:
        self.code = code
        self.values = values
        self.present = code >= 0
        self.runs = int(self.present.sum())
        # Over these runs' values only: a string elsewhere in the index changes nothing here.
        self.numeric = not any(isinstance(values[int(c)], str) for c in np.unique(code[self.present]))

    def number(self) -> np.ndarray:
        """The present runs' values as numbers (only when ``numeric``)."""
        table = np.asarray([np.nan if isinstance(v, str) else v for v in self.values], dtype=np.float64)
        out: np.ndarray = table[self.code[self.present]]
        return out


def _codes(param: Param) -> tuple[np.ndarray, bool]:
    """One param as integer codes, 0 where a run lacks it, and whether they are categories:
    numbers (booleans as 1 and 0) by quantile bins, in order; strings (or a mix) as category
    ids, which each tree orders by its own sample (see :func:`_order_categories`)."""
    if not param.numeric:
        return param.code + 1, True
    codes = np.zeros(param.code.size, dtype=np.int64)
    if not param.runs:
        return codes, False
    x = param.number()
    distinct = np.unique(x)
    edges = distinct[1:] if distinct.size < BINS else np.unique(np.quantile(x, np.linspace(0, 1, BINS)[1:-1]))
    codes[param.present] = 1 + np.searchsorted(edges, x, side="right")
    return codes, False


def _order_categories(ids: np.ndarray, sample: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Category ids → ordered codes by their mean metric in this tree's sample: the best split
    of ordered categories is then the best split of the categories in two (Breiman's theorem
    for regression). Only in-sample runs order them, so a category of one run (a note, a
    name) tells nothing about out-of-sample runs; categories absent from the sample, and those
    past the first BINS - 2, share codes."""
    k = int(ids.max()) + 1
    count = np.bincount(ids[sample], minlength=k)
    mean = np.divide(np.bincount(ids[sample], weights=y[sample], minlength=k), count, out=np.zeros(k),
                     where=count > 0)
    seen = np.flatnonzero(count[1:] > 0) + 1
    lookup = np.zeros(k, dtype=np.int64)
    lookup[seen[np.argsort(mean[seen], kind="stable")]] = 1 + np.minimum(np.arange(seen.size), BINS - 2)
    ordered: np.ndarray = lookup[ids]
    return ordered


Levels = list[tuple[np.ndarray, np.ndarray]]


def _grow(xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator) -> tuple[Levels, np.ndarray]:
    """One tree on ``(xs, ys)``: each level's (column, cut) per node (column -1: no split, all
    rows go left), and the mean of ``ys`` in each leaf."""
    n, p = xs.shape
    tries = max(1, math.ceil(p / 3))
    node = np.zeros(n, dtype=np.int64)
    levels = []
    for _level in range(DEPTH):
        nodes = int(node.max()) + 1
        count = np.bincount(node, minlength=nodes).astype(np.float64)
        sums = np.bincount(node, weights=ys, minlength=nodes)
        parent = np.divide(sums**2, count, out=np.zeros(nodes), where=count > 0)
        best_gain = np.zeros(nodes)
        best_col = np.full(nodes, -1)
        best_cut = np.zeros(nodes, dtype=np.int64)
        for col in rng.choice(p, size=tries, replace=False):
            idx = node * BINS + xs[:, col]
            c = np.bincount(idx, minlength=nodes * BINS).reshape(nodes, BINS).cumsum(axis=1)
            s = np.bincount(idx, weights=ys, minlength=nodes * BINS).reshape(nodes, BINS).cumsum(axis=1)
            rc, rs = count[:, None] - c, sums[:, None] - s
            ok = (c >= MIN_LEAF) & (rc >= MIN_LEAF)
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = np.where(ok, s**2 / c + rs**2 / rc, -np.inf) - parent[:, None]
            cut = gain.argmax(axis=1)
            g = gain[np.arange(nodes), cut]
            better = g > best_gain + 1e-12
            best_gain[better], best_col[better], best_cut[better] = g[better], col, cut[better]
        if not (best_col >= 0).any():
            break
        levels.append((best_col, best_cut))
        node = _step(xs, node, best_col, best_cut)
    leaves = int(node.max()) + 1
    in_leaf = np.bincount(node, minlength=leaves)
    value = np.divide(np.bincount(node, weights=ys, minlength=leaves), in_leaf, out=np.zeros(leaves),
                      where=in_leaf > 0)
    return levels, value


def _step(x: np.ndarray, node: np.ndarray, cols: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Each row's node one level down (a node without a split sends its rows left)."""
    col = cols[node]
    has = col >= 0
    right = np.zeros(node.size, dtype=np.int64)
    right[has] = x[has, col[has]] > cuts[node[has]]
    return node * 2 + right


def _predict(x: np.ndarray, levels: Levels, value: np.ndarray) -> np.ndarray:
    node = np.zeros(x.shape[0], dtype=np.int64)
    for cols, cuts in levels:
        node = _step(x, node, cols, cuts)
    return value[node]


def _forest(codes: np.ndarray, categorical: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Permutation importance of each column of ``codes`` (``_codes``) on each tree's
    out-of-bag runs, as shares of var(y): permuting a param whose effect adds variance V
    raises the squared error by 2V, so half the rise over var(y) is its share."""
    n, p = codes.shape
    x = codes.copy()
    rng = np.random.default_rng(SEED)
    rise = np.zeros(p)
    trees = 0
    variance = float(y.var())
    if variance <= 0:
        return rise
    for _tree in range(TREES):
        sample = np.asarray(rng.integers(0, n, size=min(n, SAMPLE)), dtype=np.int64)
        for cat_col in np.flatnonzero(categorical):
            x[:, cat_col] = _order_categories(codes[:, cat_col], sample, y)
        out_of_bag = np.ones(n, dtype=bool)
        out_of_bag[sample] = False
        held = np.flatnonzero(out_of_bag)
        if held.size > HELD_OUT:
            held = rng.choice(held, size=HELD_OUT, replace=False)
        xo, yo = x[held], y[held]
        if yo.size < 2:
            continue
        levels, value = _grow(x[sample], y[sample], rng)
        trees += 1
        base = float(((yo - _predict(xo, levels, value)) ** 2).mean())
        used: list[int] = sorted({int(c) for cols, _cuts in levels for c in cols[cols >= 0]})
        for col in used:
            shuffled = xo.copy()
            shuffled[:, col] = xo[rng.permutation(yo.size), col]
            rise[col] += float(((yo - _predict(shuffled, levels, value)) ** 2).mean()) - base
    shares = np.clip(rise / max(trees, 1) / (2 * variance), 0.0, None)
    total = float(shares.sum())
    return shares / total if total > 1 else shares


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_a)) + 1]
    ends = np.r_[starts[1:], a.size]
    avg = (starts + ends - 1) / 2.0
    ranks = np.empty(a.size)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(param: Param, y: np.ndarray) -> float | None:
    """Spearman's rank correlation over the runs that have the param, a number (booleans as 1
    and 0); None for strings, or when either side is constant there."""
    if not param.numeric or param.runs < 3:
        return None
    rx = _ranks(param.number())
    ry = _ranks(y[param.present])
    sx, sy = rx.std(), ry.std()
    if sx == 0 or sy == 0:
        return None
    return float(np.clip(((rx - rx.mean()) * (ry - ry.mean())).mean() / (sx * sy), -1.0, 1.0))


def importance(
    conn: sqlite3.Connection, f: ExperimentFilter, metric: Field, keys: Sequence[str] | None = None,
    cache: QueryCache | None = None,
) -> dict[str, Any]:
    """The answer of ``GET /api/v2/importance`` (without its timing). Params come as arrays
    kept by the version of their table (groups.Columns), so after a delete or a live run's
    points only the forest is grown again."""
    col = aggregate_column(metric)
    where, params = where_clause(f)
    rows = conn.execute(
        f"SELECT e.pk, s.{col} FROM metric_summaries s JOIN experiments e ON e.pk = s.exp_pk"
        f" WHERE s.metric = ? AND s.{col} IS NOT NULL AND {where} ORDER BY e.pk",
        [metric.name, *params],
    ).fetchall()
    label = metric_label(metric)
    if len(rows) < MIN_RUNS:
        raise TooFewRuns(f"Importance needs at least {MIN_RUNS} runs with {label}; {len(rows)} of the matching"
                         f" runs have it")
    pks = np.fromiter((pk for pk, _v in rows), dtype=np.int64, count=len(rows))
    y = np.fromiter((v for _pk, v in rows), dtype=np.float64, count=len(rows))
    n = len(rows)
    source = Columns(conn, cache)
    if keys is None:
        # Keys common enough over every run (one walk of the (key, value) index, kept by
        # version) are the candidates; their presence among these runs decides.
        counts = source.key_counts()
        candidates = [k for k, c in counts if c >= MIN_PRESENCE * n]
    else:
        candidates = list(dict.fromkeys(keys))
    columns: dict[str, Param] = {}
    for key in candidates:
        keys_of, code, values = source.param(key)
        param = Param(_lookup(keys_of, code, pks, -1), values)
        if keys is not None or param.runs >= MIN_PRESENCE * n:
            columns[key] = param
    if keys is None and len(columns) > MAX_PARAMS:
        kept = sorted(columns, key=lambda k: (-columns[k].runs, k))[:MAX_PARAMS]
        columns = {k: columns[k] for k in kept}
    names = list(columns)
    shares = np.zeros(len(names))
    if names:
        coded = [_codes(columns[k]) for k in names]
        shares = _forest(np.stack([c for c, _cat in coded], axis=1), np.array([cat for _c, cat in coded]), y)
    ranked = sorted(range(len(names)), key=lambda i: (-round(float(shares[i]), 6), names[i]))
    out = [
        {"key": names[i], "importance": round(float(shares[i]), 6), "correlation": spearman(columns[names[i]], y),
         "runs": columns[names[i]].runs}
        for i in ranked
    ]
    return {"metric": label, "runs": n, "params": out,
            "model": f"random forest of {TREES} regression trees (depth {DEPTH}), out-of-bag permutation importance"}
