"""init(capture_console=True) tees stdout and stderr into logs.txt; progress bars keep their last
state per line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import runicorn_lite
from runicorn_lite import rundir


def _logged(run_dir: Path) -> list[str]:
    lines = (run_dir / rundir.LOGS).read_text(encoding="utf-8").splitlines()
    assert all(line[2] == ":" and line[5] == ":" and line[8:11] == " | " for line in lines)
    return [line.split(" | ", 1)[1] for line in lines]


def _bar(stream: object, label: str) -> None:
    for pct in (0, 50, 100):
        print(f"\r{label} {pct:3d}%", end="", file=stream, flush=True)  # type: ignore[call-overload]
    print(file=stream)  # type: ignore[call-overload]


def test_stdout_and_stderr_reach_the_terminal_and_logs(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sys.stdout, sys.stderr
    run = runicorn_lite.init(project="p", root=root, capture_console=True)
    print("epoch 1")
    print("a warning", file=sys.stderr)
    _bar(sys.stdout, "train")
    print("windows line\r\nnext")
    print()
    print("ünïcode ✓")
    print("unfinished", end="")
    run.log_text("from log_text")
    run.finish()
    assert (sys.stdout, sys.stderr) == before  # put back at finish
    print("after finish")
    assert _logged(run.run_dir) == ["epoch 1", "a warning", "train 100%", "windows line", "next", "", "ünïcode ✓",
                                    "from log_text", "unfinished"]  # an unfinished line: written at finish
    out, err = capsys.readouterr()
    assert "epoch 1\n" in out and "\rtrain  50%" in out and "a warning\n" in err and "after finish" in out
    assert "after finish" not in (run.run_dir / rundir.LOGS).read_text()


@pytest.mark.parametrize(("mode", "expected"), [("all", ["train   0%", "train  50%", "train 100%", "done"]),
                                                ("none", ["done"])])
def test_tqdm_modes(root: Path, mode: str, expected: list[str]) -> None:
    run = runicorn_lite.init(project="p", root=root, capture_console=True, tqdm_mode=mode)
    _bar(sys.stdout, "train")
    print("done")
    run.finish()
    assert _logged(run.run_dir) == expected


def test_a_bad_tqdm_mode_is_refused_before_any_directory(root: Path) -> None:
    with pytest.raises(ValueError, match="tqdm_mode"):
        runicorn_lite.init(project="p", root=root, capture_console=True, tqdm_mode="fancy")
    assert not (root / "runs").exists()
