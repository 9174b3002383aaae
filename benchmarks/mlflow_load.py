"""Load a subset of a runicorn corpus into an MLflow SQLite store (run with the MLflow venv's python).

    python benchmarks/mlflow_load.py CORPUS DB_URI ARTIFACT_DIR N_RUNS

Each project becomes an experiment; each run keeps its name (``run_name``), tags (``tag=1``),
description (``mlflow.note.content``), status, start/end time, every metric point
(``log_batch``, 1000 values a call) and its best metric as the metric ``best_metric_value``.
Prints one JSON line: ``{"runs", "points", "seconds", "experiments": {project: id}, "runs_map": {our id: mlflow id}}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

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


def main() -> None:
    corpus, uri, artifacts, n = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    dirs = run_dirs(corpus)
    step = max(1, len(dirs) // n)
    chosen = dirs[::step][:n]
    t0 = time.perf_counter()
    experiments: dict[str, str] = {}
    runs_map: dict[str, str] = {}
    points = 0
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
        if summary.get("best_metric_value") is not None:
            metrics.append(Metric("best_metric_value", float(summary["best_metric_value"]), start_ms, 0))
        points += len(metrics)
        for i in range(0, len(metrics), 1000):
            client.log_batch(rid, metrics=metrics[i:i + 1000], tags=[RunTag("loaded", "1")] if i == 0 else [])
        st = STATUS.get(str(status.get("status", "finished")), "FINISHED")
        if st != "RUNNING":
            end = status.get("ended_at")
            client.set_terminated(rid, st, end_time=int(end * 1000) if end else None)
    print(json.dumps({"runs": len(chosen), "points": points, "seconds": time.perf_counter() - t0,
                      "experiments": experiments, "runs_map": runs_map}))


if __name__ == "__main__":
    main()
