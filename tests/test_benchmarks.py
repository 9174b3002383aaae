"""Every benchmark command runs once, on a tiny corpus, so the scripts cannot rot.

These are smoke tests of the harness (exit status, the table is printed, results are saved), not
timing assertions: timing claims live in benchmarks/README.md. Scratch files go to a tmp dir
through $BENCH_WORK.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PEER_VENVS = REPO / "benchmarks" / ".work"

pytestmark = pytest.mark.e2e


def bench(work: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENCH_WORK": str(work), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def corpus(work: Path) -> Path:
    out = work / "corpus"
    proc = bench(work, "generate", "--quick", "--out", str(out), "--seed", "3")
    assert "wrote 30 runs" in proc.stdout
    return out


def test_generate_is_reproducible(corpus: Path, work: Path) -> None:
    info = json.loads((corpus / "corpus.json").read_text())
    assert info["runs"] == 30 and info["points"] == 30 * 20 * 3
    again = work / "corpus-again"
    bench(work, "generate", "--quick", "--out", str(again), "--seed", "3", "--workers", "1")
    first = sorted(p.relative_to(corpus) for p in corpus.glob("runs/*/*/*/events.jsonl"))
    second = sorted(p.relative_to(again) for p in again.glob("runs/*/*/*/events.jsonl"))
    assert first == second and len(first) == 30
    for rel in first[:5]:
        assert (corpus / rel).read_bytes() == (again / rel).read_bytes()


def test_api(corpus: Path, work: Path) -> None:
    proc = bench(work, "api", "--quick", "--root", str(corpus))
    assert "| List all (page 1 of 50) |" in proc.stdout
    assert "`/api/health` (floor)" in proc.stdout
    res = json.loads((work / "results" / "api-quick.json").read_text())
    rows = {r["query"]: r for r in res["runs"]["rows"]}
    # Every V2 read was timed in the three passes (httpx, raw repeated, raw after a change).
    for name in ("`filter=` of 3 clauses", "Sort by `metrics.accuracy.max`", "List + `include=params,metrics`",
                 "Detail", "Metrics (all points)"):
        assert all(rows[name][mode]["n"] == 2 for mode in ("httpx", "raw", "raw_changed")), name
    assert rows["List all (page 1 of 50)"]["matches"] == 30
    # The bystander run, soft-deleted and restored in turn, is back: the corpus is as generated.
    assert not list(corpus.glob("runs/**/.deleted"))
    compare = res["compare"]["rows"][0]
    assert compare["series"] == 3 * 3 and compare["bytes"] > 0
    huge = res["huge"]
    assert huge["index_rebuild"]["peak_rss_mb"] > 0
    assert len(huge["rows"]) == 8
    for row in huge["rows"]:
        assert all(row[server]["peak_rss_mb"] > 0 and row[server]["bytes"] > 0 for server in ("after_scan", "fresh"))


def test_analysis(corpus: Path, work: Path) -> None:
    proc = bench(work, "analysis", "--quick", "--root", str(corpus))
    assert "| 5-clause filter= (or, not, parentheses) |" in proc.stdout
    res = json.loads((work / "results" / "analysis-quick.json").read_text())
    measured = res["corpora"]["corpus"]
    assert measured["importance_runs"] == 30 and measured["importance_params"] >= 15
    for mode in ("repeated", "after a change"):
        assert measured[mode]["groups by 2 params, 2 metrics"]["n"] == 2


def test_ingest(corpus: Path, work: Path) -> None:
    proc = bench(work, "ingest", "--quick", "--root", str(corpus))
    assert "Cold index" in proc.stdout and "Live latency" in proc.stdout
    live = json.loads((work / "results" / "ingest-quick.json").read_text())["live"]
    assert live["events"] == 10 and live["summary"]["events"] == 10
    # The trainer's run is removed again, so the corpus stays as generated.
    assert not list((corpus / "runs" / "live_latency").glob("trainer/*"))


def test_load(work: Path) -> None:
    proc = bench(work, "load", "--quick", "--root", str(work / "opt-load"))
    assert "| add-iteration | 4 |" in proc.stdout
    res = json.loads((work / "results" / "load-quick.json").read_text())
    assert all(not p["errors"] for p in res["phases"]), res["phases"]


def test_scale(work: Path) -> None:
    proc = bench(work, "scale", "--quick")
    assert "| Sort by metric |" in proc.stdout and "| `filter=` of 3 clauses |" in proc.stdout
    res = json.loads((work / "results" / "scale-quick.json").read_text())
    assert all(q["changed"]["n"] == 2 for q in res["by_size"]["60"].values() if isinstance(q, dict))


@pytest.mark.skipif(not (PEER_VENVS / "venv-runicorn" / "bin" / "runicorn").exists(),
                    reason="the real Runicorn is not installed in benchmarks/.work/venv-runicorn"
                           " (see benchmarks/README.md)")
def test_peers_runicorn(corpus: Path, work: Path) -> None:
    # MLflow is left out here: its server alone takes ~20 s to start; `peers --quick` covers it by hand.
    proc = bench(work, "peers", "--quick", "--only", "runicorn", "--root", str(corpus))
    assert "ours faster by" in proc.stdout and "| runicorn |" in proc.stdout
    rows = json.loads((work / "results" / "peers-quick.json").read_text())["rows"]
    assert rows["runicorn"]["Detail"]["n"] == 2 and "`filter=` of 3 clauses" in rows["runicorn-lite"]


def test_files(work: Path) -> None:
    proc = bench(work, "files", "--quick", "--root", str(work / "files-root"))
    assert "| Range: middle 10 MB |" in proc.stdout and "server peak RSS" in proc.stdout
    res = json.loads((work / "results" / "files-quick.json").read_text())
    assert res["results"]["whole file"]["bytes"] == 8 << 20


def test_soak(work: Path) -> None:
    proc = bench(work, "soak", "--quick", "--write-minutes", "0.1", "--root", str(work / "soak-root"), timeout=120)
    assert "5xx: 0;" in proc.stdout and "runs differing: files 0, index 0" in proc.stdout
    result = json.loads((work / "results" / "soak.json").read_text())
    assert result["requests"] > 0 and result["points"]["points_logged"] > 0
    assert result["write_seconds"] == 6  # writers stopped half-way; readers went on
    assert result["points"]["points_logged"] == result["points"]["points_in_index"]


def test_dbthreads(corpus: Path, work: Path) -> None:
    proc = bench(work, "dbthreads", "--quick", "--root", str(corpus), "--clients", "4")
    assert "| `threads` | 4 |" in proc.stdout and "| `aiosqlite x1` | 4 |" in proc.stdout
    rows = json.loads((work / "results" / "dbthreads-quick.json").read_text())["rows"]
    assert {r["mode"] for r in rows} == {"threads", "aiosqlite xN", "aiosqlite x1"}
    assert all(r["requests"] > 0 for r in rows)


def test_browser(corpus: Path, work: Path) -> None:
    if not (os.environ.get("RUNICORN_LITE_CHROMIUM") or shutil.which("chromium")):
        if os.environ.get("RUNICORN_LITE_BROWSER_TESTS", "").lower() == "required":
            pytest.fail("the browser benchmark needs Chromium, and browser tests are required here")
        pytest.skip("no Chromium (apt-get install chromium)")
    proc = bench(work, "browser", "--quick", "--root", str(corpus), timeout=240)
    assert "| Runs view: first rows painted |" in proc.stdout and "| All JS + CSS, gzipped |" in proc.stdout
    res = json.loads((work / "results" / "browser-quick.json").read_text())
    assert res["ours"]["live"]["n"] == 5 and res["ours"]["runs"]["n"] == 2
    assert res["bundle"]["gzip_kb"] > 10
    # the runs it wrote are removed again, so the corpus stays as generated
    assert not (corpus / "runs" / "browser_bench").exists()


def test_export(corpus: Path, work: Path) -> None:
    proc = bench(work, "export", "--quick", "--root", str(corpus), "--work-root", str(work / "export-long"))
    assert "| every run by params.lr |" in proc.stdout and "metrics.csv of one run" in proc.stdout
    res = json.loads((work / "results" / "export-quick.json").read_text())
    assert res["corpus"]["every run, newest first"]["rows"] == 30
    assert res["points"]["steps"] == 2000


def test_events(corpus: Path, work: Path) -> None:
    proc = bench(work, "events", "--quick", "--root", str(corpus))
    assert "| log() + flush() |" in proc.stdout and "| quiet | 10 streams |" in proc.stdout
    res = json.loads((work / "results" / "events-quick.json").read_text())
    assert res["latency"]["log()"]["n"] == 10 and res["load"]["20 points/s logged"]["events"] > 0
    assert not (corpus / "runs" / "bench_live_events").exists()  # the corpus stays as generated


def test_ratelimit(work: Path) -> None:
    import backends

    if backends.problem() is not None:
        pytest.skip(str(backends.problem()))
    proc = bench(work, "ratelimit", "--quick", "--database", backends.BASE_URL)
    assert "| PostgreSQL store | 4 |" in proc.stdout and "| SQLite store | 1 |" in proc.stdout
    results = json.loads((work / "results" / "ratelimit-quick.json").read_text())["results"]
    assert all(r["n"] > 0 for r in results.values()) and len(results) == 6


def test_uploads(work: Path) -> None:
    proc = bench(work, "uploads", "--quick")
    assert "| one uploader, points a minute (sent / indexed) |" in proc.stdout
    res = json.loads((work / "results" / "uploads-quick.json").read_text())
    assert res["latency"]["n"] == 10 and res["throughput"]["points"] == 8000
    assert res["concurrent"] == {"runs": 4, "steps_each": 50, "lost": 0, "duplicated": 0}


def test_newrun(corpus: Path, work: Path) -> None:
    proc = bench(work, "newrun", "--root", str(corpus), "--rounds", "2")
    assert "| `filter=` of 3 clauses |" in proc.stdout
    res = json.loads((work / "results" / "newrun.json").read_text())
    assert res["runs"] == 30
    for q in res["queries"].values():
        assert q["kept"]["n"] == 2 and q["whole"]["n"] == 2
    assert not (corpus / "runs" / "bench_newrun").exists()  # its runs are removed again
