"""Lightning with two CPU processes (DDP on gloo): one run, written by rank 0 alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from shown import shown_all

pytest.importorskip("lightning")

SCRIPT = Path(__file__).resolve().parent / "ddp_train.py"


@pytest.mark.slow
def test_two_processes_one_run_written_by_rank_zero(root: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank 0 done" in done.stdout
    (run,) = shown_all(root).values()  # rank 1 wrote no run of its own
    assert run.status == "finished" and run.experiment["path"] == "ddp/two"
    # 32 samples, 2 processes, batches of 4: 4 steps an epoch, 2 epochs; every value from rank 0
    assert run.curve("rank") == dict.fromkeys(range(8), 0.0)
    assert sorted(run.curve("train_loss")) == list(range(8))
    assert run.params == {"lr": 0.05}
