"""The command line: options, environment variables, clear errors, and the index command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from support import copy_fixture, wait_for

import runicorn_lite
from runicorn_lite.cli import main
from runicorn_lite.settings import Settings


def test_help_lists_every_command_and_option() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "index", "demo", "keys"):
        assert command in result.output
    serve_help = CliRunner().invoke(main, ["serve", "--help"]).output
    for option in ("--root", "--host", "--port", "--no-watch", "--rate-limit", "--read-limit",
                   "--write-limit", "--iterations-limit", "RUNICORN_LITE_ROOT", "127.0.0.1", "23300"):
        assert option in serve_help


def test_bad_options_exit_2_without_traceback(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for args in (["serve", "--port", "99999"], ["serve", "--port", "abc"], ["index", "--root", str(a_file)],
                 ["demo", "--runs", "0"], ["nope"], ["serve", "--rescan-interval", "-1"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert "Error" in result.output


def test_demo_then_index_and_rebuild(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["demo", "--root", str(tmp_path), "--runs", "6", "--steps", "20"])
    assert result.exit_code == 0 and "wrote 6 runs" in result.output
    result = runner.invoke(main, ["index", "--root", str(tmp_path)])
    assert result.exit_code == 0 and "6 runs in the index (6 (re)indexed)" in result.output
    result = runner.invoke(main, ["index", "--root", str(tmp_path), "--silent"])
    assert result.exit_code == 0 and result.output == ""
    result = runner.invoke(main, ["index", "--root", str(tmp_path), "--rebuild"])
    assert "6 runs in the index (6 (re)indexed)" in result.output


def test_root_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RUNICORN_LITE_ROOT", str(tmp_path))
    run = runicorn_lite.init(project="env")
    run.finish()
    assert run.run_dir.is_relative_to(tmp_path)
    result = CliRunner().invoke(main, ["index"])
    assert "1 runs in the index" in result.output


def test_python_dash_m_and_serve_port_zero(tmp_path: Path, server_factory) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runicorn_lite", "--version"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and runicorn_lite.__version__ in out.stdout
    server = server_factory(tmp_path, "--no-watch")
    assert server.url.startswith("http://127.0.0.1:")
    body = server.wait_ready()
    assert body["version"] == runicorn_lite.__version__ and body["index"]["watcher"] == "off"
    assert Path(body["root"]) == tmp_path.resolve()
    r = httpx.get(server.url + "/api/v2/experiments")
    assert r.status_code == 200 and r.json()["total"] == 0
    # It says what it serves and, once the start-up scan is done, how many runs it found.
    wait_for(lambda: any("runs found" in line for line in server.output))
    assert f"data folder: {tmp_path.resolve()}\n" in server.output
    assert any(line.startswith(f"0 runs found under {tmp_path.resolve()} (write some with") for line in server.output)


def test_port_in_use_is_a_clear_error(tmp_path: Path, server_factory) -> None:
    server = server_factory(tmp_path, "--no-watch")
    port = server.url.rsplit(":", 1)[1]
    other = tmp_path / "other"  # the same root would be refused first: it is served already
    result = CliRunner().invoke(main, ["serve", "--root", str(other), "--port", port])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"port {port} on 127.0.0.1 is already in use" in result.output
    assert "--port N, or --port 0 for any free port" in result.output


def test_options_show_their_environment_variable_and_the_settings_default() -> None:
    defaults = Settings(root=Path("."))
    serve_help = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200).output
    assert "(env " not in serve_help  # click prints "[env var: ...]" itself
    for option, value in (("PORT", defaults.port), ("READ_LIMIT", defaults.read_limit),
                          ("WRITE_LIMIT", defaults.write_limit), ("ITERATIONS_LIMIT", defaults.iterations_limit)):
        assert f"env var: RUNICORN_LITE_{option}; default: {value}" in serve_help, option


def test_index_draws_a_progress_bar_and_says_what_it_did(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["demo", "--root", str(tmp_path), "--runs", "3", "--steps", "5"]).exit_code == 0
    result = runner.invoke(main, ["index", "--root", str(tmp_path)])
    assert result.exit_code == 0
    assert "indexing" in result.stderr
    assert "3 runs in the index (3 (re)indexed)" in result.stdout


@pytest.mark.parametrize(("fixture", "runs_folder"), [
    ("runicorn_07", "runs"),  # modern: <storage>/runs/<project>/<name>/<id>
    ("runicorn_053", "cv/yolo-ablation/runs"),  # legacy: <storage>/<project>/<name>/runs/<id>
])
def test_a_runicorn_runs_folder_as_root_is_refused_with_the_storage_to_give(
    tmp_path: Path, fixture: str, runs_folder: str
) -> None:
    storage = copy_fixture(fixture, tmp_path / "storage")
    wrong = storage / runs_folder
    for args in (["index", "--root", str(wrong)], ["serve", "--root", str(wrong), "--port", "0"],
                 ["keys", "list", "--root", str(wrong)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert "is the runs/ folder of a Runicorn storage" in result.output
        assert f"--root {storage.resolve()}" in result.output.replace("\n", " ")
    assert not (wrong / ".runicorn_lite").exists()
    result = CliRunner().invoke(main, ["index", "--root", str(storage)])
    assert result.exit_code == 0 and "5 runs in the index" in result.stdout


def test_a_data_root_that_is_created_is_said(tmp_path: Path) -> None:
    new = tmp_path / "not" / "there"
    result = CliRunner().invoke(main, ["index", "--root", str(new)])
    assert result.exit_code == 0
    assert f"created the data root {new.resolve()} (it did not exist)" in result.stderr
    result = CliRunner().invoke(main, ["index", "--root", str(new)])
    assert "created" not in result.stderr


def test_a_storage_that_is_called_runs_is_served(tmp_path: Path) -> None:
    storage = copy_fixture("runicorn_07", tmp_path / "runs")
    result = CliRunner().invoke(main, ["index", "--root", str(storage)])
    assert result.exit_code == 0 and "5 runs in the index" in result.stdout
