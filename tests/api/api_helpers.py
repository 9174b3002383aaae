"""Corpora for the V1/V2 API tests, written through our real SDK, and reference answers.

A module of its own name (every conftest.py is called alike). Runs are written by
``runicorn_lite.init`` / ``log`` / ``finish``; only their clock is then set through the format
module (``rundir``), so that times, ties and the 30-day window are known exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backends
from starlette.applications import Starlette

import runicorn_lite
from runicorn_lite import rundir
from runicorn_lite.app import create_app
from runicorn_lite.sdk import Run
from runicorn_lite.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DAY = 86400.0
HOUR = 3600.0

# Documented experiment fields (v2-api.md) and the ones DECISIONS adds.
DOCUMENTED_FIELDS = {"id", "project", "name", "status", "created_at", "best_metric_name", "best_metric_value",
                     "pid", "run_dir"}
EXTRA_FIELDS = {"path", "alias", "tags", "description", "ended_at", "updated_at"}
V1_LIST_FIELDS = {"id", "run_dir", "created_time", "status", "pid", "best_metric_value", "best_metric_name",
                  "project", "name", "path", "alias", "tags", "assets_count"}
V1_DETAIL_FIELDS = {"id", "status", "pid", "run_dir", "project", "name", "path", "alias", "tags", "start_time",
                    "duration", "summary", "logs", "metrics", "metrics_step", "assets", "assets_count"}


def open_app(root: Path, **settings: Any) -> Starlette:
    """An app over ``root`` with ingest off, its index freshly scanned, on the backend of the
    tests running now (a PostgreSQL schema of its own there)."""
    settings.setdefault("database", backends.new_database())
    app = create_app(Settings(root=root, **settings), ingest=False)
    app.state.ctx.indexer.scan()
    return app


def close_app(app: Starlette) -> None:
    """Close what ``open_app`` opened (as the ``make_app`` fixture does)."""
    app.state.ctx.store.close()
    app.state.optimization.state.api.close()
    app.state.ctx.preferences.close()
    app.state.ctx.index.close()
    backends.drop_database(app.state.ctx.settings.database)


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy a checked-in corpus written by the real runicorn SDK into ``dest``."""
    shutil.copytree(FIXTURES / name, dest, dirs_exist_ok=True)
    return dest


def copy_runs(src_root: Path, dest_root: Path) -> Path:
    """A corpus's run directories (mtimes kept), without its index: a fresh root to mutate."""
    shutil.copytree(src_root, dest_root, ignore=shutil.ignore_patterns(".runicorn_lite"), dirs_exist_ok=True)
    return dest_root


@dataclass
class Spec:
    """One run of a corpus: what is written, hence what every answer must say about it."""

    id: str
    path: str
    status: str  # what finish() is called with; "running" = never finished
    age: float  # created this many seconds before the corpus' "now"
    duration: float | None = None  # ended_at - created_at (None while running)
    tags: list[str] = field(default_factory=list)
    alias: str | None = None
    description: str | None = None
    primary: tuple[str, str] | None = None  # (metric, mode)
    points: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    environment: bool = False
    deleted: bool = False
    # filled when written
    created_at: float = 0.0
    ended_at: float | None = None

    @property
    def project(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def name(self) -> str:
        return self.path.split("/", 1)[1] if "/" in self.path else "default"

    @property
    def best(self) -> float | None:
        """Best value of the primary metric (finite values; NaN never wins), else None."""
        if self.primary is None:
            return None
        metric, mode = self.primary
        values = [d[metric] for _, d in self.points if metric in d and math.isfinite(d[metric])]
        if not values:
            return None
        return max(values) if mode == "max" else min(values)

    @property
    def series(self) -> dict[str, dict[int, float]]:
        """metric → {step: value}, the last value logged at a step winning."""
        out: dict[str, dict[int, float]] = {}
        for step, data in self.points:
            for key, value in data.items():
                out.setdefault(key, {})[step] = value
        return out

    @property
    def n_points(self) -> int:
        return sum(len(s) for s in self.series.values())

    def body(self) -> str:
        """The text that ``search`` looks in."""
        return "\n".join(x for x in (self.project, self.name, self.path, self.alias, self.description,
                                     " ".join(self.tags), self.id) if x)


@dataclass
class Corpus:
    """A data root filled with runs, and the specs they were written from."""

    root: Path
    now: float
    specs: list[Spec]
    open_runs: list[Run] = field(default_factory=list)

    def by_id(self, exp_id: str) -> Spec:
        return next(s for s in self.specs if s.id == exp_id)

    @property
    def live(self) -> list[Spec]:
        return [s for s in self.specs if not s.deleted]

    def run_dir(self, spec: Spec) -> Path:
        return self.root / "runs" / spec.path / spec.id

    def close(self) -> None:
        for run in self.open_runs:
            run.flush()


def write_run(root: Path, spec: Spec, now: float) -> Run | None:
    """Write one run through the SDK, then set its clock; returns the Run while it stays live."""
    run = runicorn_lite.init(path=spec.path, root=root, tags=spec.tags, description=spec.description,
                             alias=spec.alias, run_id=spec.id)
    if spec.primary:
        run.set_primary_metric(*spec.primary)
    for step, data in spec.points:
        run.log(data, step=step)
    for line in spec.logs:
        run.log_text(line)
    spec.created_at = now - spec.age
    if spec.status == "running":
        run.flush()
    else:
        run.finish(spec.status)
        spec.ended_at = spec.created_at + (spec.duration or 0.0)
    run_dir = run.run_dir
    rundir.update_meta(run_dir, {"created_at": spec.created_at})
    status = rundir.read_json_object(run_dir / rundir.STATUS) or {}
    status["started_at"] = spec.created_at
    if spec.ended_at is not None:
        status["ended_at"] = spec.ended_at
    rundir.atomic_write_json(run_dir / rundir.STATUS, status)
    if spec.environment:
        rundir.atomic_write_json(run_dir / rundir.ENVIRONMENT, {"python": "3.11", "packages": ["numpy"]})
        (run_dir / "media").mkdir()
        (run_dir / "media" / "sample.txt").write_text("a nested file\n")
    if spec.deleted:
        rundir.mark_deleted(run_dir, rundir.normalize_status(spec.status), "cleanup", now - HOUR)
    return run if spec.status == "running" else None


def _curve(best: float, mode: str = "max", steps: int = 5) -> list[tuple[int, dict[str, float]]]:
    """A few steps whose primary metric peaks (or bottoms) at ``best`` before the last step."""
    out = []
    for i in range(1, steps + 1):
        frac = i / (steps - 1)
        value = best * min(frac, 1.0) if mode == "max" else best + (1 - min(frac, 1.0))
        if i == steps:  # the last value is not the best
            value = best - 0.05 if mode == "max" else best + 0.05
        other = round(1.0 / i, 4)
        out.append((i, {"acc": round(value, 4), "loss": other} if mode == "max"
                    else {"loss": round(value, 4), "acc": other}))
    return out


def corpus_specs() -> list[Spec]:
    """Twelve runs over three projects: every status, ties on created_at and best value, NULL
    best values and end times, tags, aliases, descriptions (non-ASCII too), one soft-deleted."""
    base = "20240612_080000_"
    nan_curve = _curve(0.80)
    nan_curve[1] = (2, {"acc": nan_curve[1][1]["acc"], "loss": math.nan})
    return [
        Spec(base + "c0ffe1", "vision/resnet", "finished", 10 * DAY, 600, ["baseline"], "rn50-base",
             "ResNet-50 baseline on CIFAR-10", ("acc", "max"), _curve(0.91),
             ["epoch 1 done", "epoch 2 done"], environment=True),
        Spec(base + "c0ffe2", "vision/resnet", "finished", 9 * DAY, 1200, ["baseline", "production"], None,
             "wider ResNet", ("acc", "max"), _curve(0.95)),
        Spec(base + "c0ffe3", "vision/vit", "failed", 8 * DAY, 300, ["experimental"], None,
             "ViT-tiny, diverged", ("acc", "max"), nan_curve),
        Spec(base + "c0ffe4", "vision/vit", "interrupted", 8 * DAY, 100, [], None, None, None,
             [(1, {"loss": 2.0}), (2, {"loss": 1.5})]),
        Spec(base + "c0ffe5", "nlp/bert", "finished", 5 * DAY, 900, ["production"], "bert-prod",
             "BERT fine-tune", ("acc", "max"), _curve(0.91)),
        Spec(base + "c0ffe6", "nlp/bert", "running", 1 * DAY, None, [], None, "still training",
             ("acc", "max"), [(1, {"acc": 0.5}), (2, {"acc": 0.7}), (3, {"acc": 0.6})]),
        Spec(base + "c0ffe7", "nlp/gpt", "finished", 3 * DAY, 1500, [], None, "Über-Modell mit ß", None,
             [(1, {"ppl": 30.0}), (2, {"ppl": 20.0})]),
        Spec(base + "c0ffe8", "nlp/gpt/small", "failed", 2 * DAY, 60, ["experimental"], "tiny-gpt", None,
             ("loss", "min"), _curve(0.30, "min")),
        Spec(base + "c0ffe9", "audio/wav2vec", "finished", 60 * DAY, 3000, [], None, "old speech run",
             ("acc", "max"), _curve(0.5)),
        Spec(base + "c0ffea", "audio/wav2vec", "running", 1 * HOUR, None, [], None, None, None,
             [(1, {"loss": 3.0})]),
        Spec(base + "c0ffeb", "vision/resnet", "finished", 10 * DAY, 600, ["baseline"], None,
             "ResNet rerun", ("acc", "max"), _curve(0.91)),
        Spec(base + "c0ffec", "vision/resnet", "finished", 4 * DAY, 100, ["baseline"], None,
             "ResNet best but deleted", ("acc", "max"), _curve(0.99), deleted=True),
    ]


def build_corpus(root: Path, specs: Iterable[Spec] | None = None, now: float | None = None) -> Corpus:
    """Write the runs under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    corpus = Corpus(root=root, now=now, specs=list(specs if specs is not None else corpus_specs()))
    for spec in corpus.specs:
        run = write_run(root, spec, now)
        if run is not None:
            corpus.open_runs.append(run)
    return corpus


def expected_order(exps: list[dict[str, Any]], field_name: str, desc: bool) -> list[str]:
    """Reference order of DECISIONS: by the field, NULLs last either way, ties by id (same way)."""
    present = [e for e in exps if e[field_name] is not None]
    missing = [e for e in exps if e[field_name] is None]
    present.sort(key=lambda e: (e[field_name], e["id"]), reverse=desc)
    missing.sort(key=lambda e: e["id"], reverse=desc)
    return [e["id"] for e in present + missing]


def matches_search(spec: Spec, text: str) -> bool:
    """Reference search: every word a case-insensitive substring of the searchable text."""
    body = spec.body().lower()
    return all(word.lower() in body for word in text.split())


def utc_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def pid_is_gone(pid: int) -> bool:
    """Whether no process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def ids(body: dict[str, Any]) -> list[str]:
    return [e["id"] for e in body["experiments"]]


def assert_error(response: Any, status: int, contains: str | None = None) -> str:
    """The canonical error: the status, a JSON body ``{"detail": str}`` and nothing else."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["detail"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    if contains is not None:
        assert contains in body["detail"], body["detail"]
    return body["detail"]
