"""Load a subset of a runicorn corpus into an MLflow SQLite store (run with the MLflow venv's python).

    python benchmarks/mlflow_load.py CORPUS DB_URI ARTIFACT_DIR N_RUNS [latest]

Each project becomes an experiment; each run keeps its name (``run_name``), tags (``tag=1``),
description (``mlflow.note.content``), status, start/end time, its params (the config of
``assets.json`` flattened as runicorn-lite flattens it: ``optim.name``, ``extra.…``; MLflow keeps
params as strings, so each value is ``str()`` of it, a list its JSON text), every metric point
(``log_batch``, 1000 values a call, the params with the first) and its best metric as the metric
``best_metric_value``; with ``latest``, only each metric's last point (what ``runs/search``
filters and answers with: its latest value). Prints one JSON line: ``{"runs", "points",
"params", "seconds", "experiments": {project: id}, "runs_map": {our id: mlflow id},
"param_values": {"lr": [...]}}``
(the distinct values of a few params, from which the benchmark writes MLflow's equivalent of a
numeric comparison).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# Params whose distinct values are reported (numeric filters become != / = of their strings).
REPORTED_PARAMS = ("lr",)
STATUS = {"finished": "FINISHED", "failed": "FAILED", "interrupted": "KILLED", "running": "RUNNING"}


def run_dirs(corpus: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(corpus / "runs"):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if "meta.json" in filenames:
            out.append(Path(dirpath))
            dirnames[:] = []
    return sorted(out, key=lambda p: p.name)


def read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def flat_params(config: object) -> dict[str, str]:
    """``config.args`` with dotted keys, then ``config.extra`` under ``extra.``; values as MLflow
    stores them (strings, at most 6,000 characters: its limit)."""
    out: dict[str, str] = {}

    def walk(value: object, prefix: str) -> None:
        if isinstance(value, dict) and value:
            for key, leaf in value.items():
                walk(leaf, f"{prefix}{key}.")
            return
        key = prefix[:-1]
        if not key:
            return
        text = json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)
        out[key] = text[:6000]

    if isinstance(config, dict):
        for section, prefix in (("args", ""), ("extra", "extra.")):
            if isinstance(config.get(section), dict):
                walk(config[section], prefix)
    return out


def main() -> None:  # noqa: C901, PLR0912, PLR0915 - a peer's loader, one scenario
    corpus, uri, artifacts, n = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    latest_only = sys.argv[5:6] == ["latest"]
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    dirs = run_dirs(corpus)
    step = max(1, len(dirs) // n)
    chosen = dirs[::step][:n]
    t0 = time.perf_counter()
    experiments: dict[str, str] = {}
    runs_map: dict[str, str] = {}
    points = 0
    n_params = 0
    param_values: dict[str, set[str]] = {k: set() for k in REPORTED_PARAMS}
    for d in chosen:
        meta, status, summary = read(d / "meta.json"), read(d / "status.json"), read(d / "summary.json")
        path = meta.get("path") or "default"
        project, _, name = path.partition("/")
        if project not in experiments:
            experiments[project] = client.create_experiment(project, artifact_location=f"{artifacts}/{project}")
        start_ms = int(meta.get("created_at", time.time()) * 1000)
        tags = dict.fromkeys(meta.get("tags") or [], "1")
        if meta.get("description"):
            tags["mlflow.note.content"] = meta["description"]
        tags["runicorn.id"] = meta.get("id", d.name)
        run = client.create_run(experiments[project], start_time=start_ms, tags=tags, run_name=name or "default")
        rid = run.info.run_id
        runs_map[d.name] = rid
        metrics = []
        with open(d / "events.jsonl", "rb") as fh:
            for line in fh:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("type") != "metrics":
                    continue
                data = ev.get("data") or {}
                s = int(data.get("global_step", 0))
                ts = int(float(data.get("time", ev.get("ts", 0))) * 1000)
                for k, v in data.items():
                    if k in ("global_step", "step", "time", "stage", "epoch") or not isinstance(v, (int, float)):
                        continue
                    metrics.append(Metric(k, float(v), ts, s))
        if latest_only:  # each key's point of the highest step (the last logged among equals)
            last: dict[str, Metric] = {}
            for m in metrics:
                if m.key not in last or m.step >= last[m.key].step:
                    last[m.key] = m
            metrics = list(last.values())
        if summary.get("best_metric_value") is not None:
            metrics.append(Metric("best_metric_value", float(summary["best_metric_value"]), start_ms, 0))
        points += len(metrics)
        params = flat_params(read(d / "assets.json").get("config"))
        for key in REPORTED_PARAMS:
            if key in params:
                param_values[key].add(params[key])
        n_params += len(params)
        param_list = [Param(k, v) for k, v in params.items()]
        # MLflow takes at most 1000 metrics and 100 params a call.
        calls = max(-(-len(metrics) // 1000), -(-len(param_list) // 100), 1)
        for j in range(calls):
            client.log_batch(rid, metrics=metrics[j * 1000:(j + 1) * 1000], params=param_list[j * 100:(j + 1) * 100],
                             tags=[RunTag("loaded", "1")] if j == 0 else [])
        st = STATUS.get(str(status.get("status", "finished")), "FINISHED")
        if st != "RUNNING":
            end = status.get("ended_at")
            client.set_terminated(rid, st, end_time=int(end * 1000) if end else None)
    print(json.dumps({"runs": len(chosen), "points": points, "params": n_params, "seconds": time.perf_counter() - t0,
                      "experiments": experiments, "runs_map": runs_map,
                      "param_values": {k: sorted(v) for k, v in param_values.items()}}))


if __name__ == "__main__":
    main()
