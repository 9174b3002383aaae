"""A reference reading of run directories for the analysis tests (analysis.md): every run's
params, metric summaries, attributes and tags computed from its files the slow, obvious way,
and the filter language's clauses evaluated on them in plain Python."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from support import reference_summary

import runicorn_lite
from runicorn_lite import rundir


def _flat(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out[f"{prefix}{key}"] = json.dumps(value, separators=(",", ":"))
        else:
            out[f"{prefix}{key}"] = value
    return out


class Run:
    """One run as its files say."""

    def __init__(self, run_dir: Path) -> None:
        meta = json.loads((run_dir / rundir.META).read_text())
        status = json.loads((run_dir / rundir.STATUS).read_text())
        assets_path = run_dir / rundir.ASSETS
        config = json.loads(assets_path.read_text()).get("config") or {} if assets_path.exists() else {}
        summary_path = run_dir / rundir.SUMMARY
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        self.run_dir = run_dir
        self.id: str = meta["id"]
        self.deleted = (run_dir / rundir.DELETED).exists()
        self.params = _flat(config.get("args") or {}) | _flat(config.get("extra") or {}, "extra.")
        series: dict[str, dict[int, float]] = {}
        events = run_dir / rundir.EVENTS
        for line in events.read_text().splitlines() if events.exists() else ():
            event = json.loads(line)
            if event.get("type") != "metrics":
                continue
            data = dict(event["data"])
            step = data.pop("global_step")
            data.pop("time", None)
            for name, value in data.items():
                series.setdefault(name, {})[step] = float(value)
        self.metrics = {name: reference_summary(points) for name, points in series.items()}
        best = summary.get("best_metric_value")
        primary = meta.get("primary_metric")
        if best is None and primary and primary["name"] in self.metrics:  # a live run: best so far
            best = self.metrics[primary["name"]][primary["mode"]]
        project, _, name = meta["path"].partition("/")
        ended = status.get("ended_at")
        self.attributes: dict[str, Any] = {
            "status": status["status"], "project": project, "name": name, "alias": meta.get("alias"),
            "created_at": meta["created_at"], "ended_at": ended,
            "duration_s": None if ended is None else ended - meta["created_at"],
            "best_metric_value": best,
        }
        self.tags: list[str] = meta.get("tags") or []

    def value(self, field: str) -> Any:
        """The field's value (booleans as 1 and 0), or None when the run lacks it."""
        kind, _, rest = field.partition(".")
        if kind == "params":
            v = self.params.get(rest)
            return int(v) if isinstance(v, bool) else v
        if kind == "attributes":
            return self.attributes[rest]
        name, _, agg = rest.rpartition(".")
        if agg not in ("last", "min", "max", "first", "count"):
            name, agg = rest, "last"
        s = self.metrics.get(name)
        return None if s is None else s[agg]

    # -- the clauses of analysis.md §1 --------------------------------------------------------

    def cmp(self, field: str, op: str, wanted: Any) -> bool:
        v = self.value(field)
        if v is None or isinstance(v, str) != isinstance(wanted, str):
            return False
        return {"=": v == wanted, "!=": v != wanted, "<": v < wanted, "<=": v <= wanted,
                ">": v > wanted, ">=": v >= wanted}[op]

    def isin(self, field: str, values: tuple[Any, ...], negate: bool = False) -> bool:
        v = self.value(field)
        if v is None:
            return False
        same_kind = [w for w in values if isinstance(w, str) == isinstance(v, str)]
        if negate:
            return bool(same_kind) and v not in same_kind
        return v in same_kind

    def like(self, field: str, pattern: str, *, ci: bool = False, negate: bool = False) -> bool:
        v = self.value(field)
        if not isinstance(v, str):
            return False
        return like(v, pattern, ci) != negate

    def null(self, field: str) -> bool:
        return self.value(field) is None

    def has_tag(self, *tags: str) -> bool:
        return any(t in self.tags for t in tags)

    def tag_like(self, pattern: str, ci: bool = False) -> bool:
        return any(like(t, pattern, ci) for t in self.tags)


def like(text: str, pattern: str, ci: bool) -> bool:
    """SQL LIKE: % any run, _ one character, backslash escapes; ``ci`` folds ASCII case."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ci else 0)
    return re.fullmatch("".join(out), text, flags) is not None


def read_runs(root: Path) -> list[Run]:
    """Every run directory under ``root``, as the reference reads it."""
    return [Run(p.parent) for p in sorted((root / rundir.RUNS_DIRNAME).rglob(rundir.META))]


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1; None under 2 values)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


N_RUNS = 36
OPTIMS = ["sgd", "adam", "AdamW"]
NOTES = ["5% drop", "50 drops", "run_1", "run-1", "Ünïcode", "it's"]


def write_corpus(root: Path, n: int = N_RUNS) -> None:
    """Runs with numbers, strings, booleans, nulls and missing params; tags, aliases, every
    status, a running run, a deleted run, metrics some runs lack."""
    for i in range(n):
        args: dict[str, Any] = {
            "optim": {"name": OPTIMS[i % 3]}, "batch_size": [16, 32, 64][i % 3], "augment": bool(i % 2),
        }
        if i % 7:
            args["lr"] = [0.1, 0.01, 0.001, 0.0001][i % 4]
        if i == 5:
            args["lr"] = "0.01"
        if i == 6:
            args["lr"] = None
        tags = [["best"], ["best", "baseline"], ["prod-1"], [], []][i % 5]
        run = runicorn_lite.init(
            project="vision" if i % 4 else "nlp", name=f"exp{i % 3}", root=root, tags=tags,
            alias=f"base-{i}" if i % 6 == 0 else None, run_id=f"20240101_000000_{i:06x}",
        )
        run.log_config(args=args, extra={"note": NOTES[i % len(NOTES)]})
        if i % 3:
            run.set_primary_metric("acc", "max")
        for step in range(1, 5):
            point = {"loss": round(1 / (step + i % 5), 4)}
            if i % 8 != 7:
                point["acc"] = round(0.1 + ((i * 7 + step * 3) % 10) / 20, 4)
            if i == 9:
                point["acc"] = math.nan
            run.log(point, step=step)
        if i == N_RUNS - 1:
            run.flush()  # its points are in the file before the reference reads it
            continue  # left running
        run.finish(["finished", "finished", "failed", "interrupted"][i % 4])
        if i == 30:
            rundir.mark_deleted(run.run_dir, "finished", "cleanup", 1.0)
