"""The README's shell blocks run as written, in order, against a real server started the way the
README says (``./scripts/serve``), over a temporary data root and a free port.

Two things differ from a reader's terminal, both through what the README itself names: the
data root comes from ``RUNICORN_LITE_ROOT`` (a temporary folder), and the server's port from
``RUNICORN_LITE_PORT`` (a free one), so the blocks' ``127.0.0.1:23300`` is read as that port.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
from pathlib import Path

import backends
import pytest
from support import wait_for

from runicorn_lite.settings import DEFAULT_PORT

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
SERVE = "./scripts/serve"

if not (REPO / ".venv" / "bin" / "runicorn-lite").exists():
    pytest.skip("the README's commands use .venv (made by ./scripts/test or ./scripts/serve)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_does_not_reinstall_when_nothing_changed() -> None:
    # Bring the install up to date (a no-op when ./scripts/test just ran), then serve must not
    # install again.
    subprocess.run(["bash", "-c", ". scripts/venv.sh && ensure_venv test"], cwd=REPO, check=True, timeout=600)
    out = subprocess.run([SERVE, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and "Usage: runicorn-lite serve" in out.stdout
    assert "installing" not in out.stderr, out.stderr


def test_every_shell_block_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    blocks = SHELL_BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    for block in blocks:
        assert not re.search(r"<[a-z][a-z _-]*>", block), f"a placeholder in:\n{block}"
    port = _free_port()
    env = {**os.environ, "RUNICORN_LITE_ROOT": str(tmp_path / "data"), "RUNICORN_LITE_PORT": str(port)}
    servers: list[subprocess.Popen[str]] = []
    readers: list[threading.Thread] = []
    output: list[str] = []
    try:
        for block in blocks:
            if block.lstrip().startswith(SERVE):
                assert block.strip().count("\n") == 0, "a block that starts the server holds only that"
                server = subprocess.Popen(["bash", "-c", block], cwd=REPO, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                servers.append(server)
                readers.append(threading.Thread(target=lambda s=server: output.extend(s.stdout or ()), daemon=True))
                readers[-1].start()
                wait_for(lambda: any("runs found under" in line for line in output), timeout=120)
                continue
            assert servers, "the README starts the server before it asks it anything"
            if "--database postgresql" in block or "DB=postgresql" in block:
                reason = backends.problem()
                if reason is not None and not backends.REQUIRED:
                    continue  # the summary warns that the PostgreSQL half did not run
                if reason is not None:
                    pytest.fail(f"PostgreSQL is required here, but {reason}", pytrace=False)
            script = block.replace(f"127.0.0.1:{DEFAULT_PORT}", f"127.0.0.1:{port}")
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, f"{block}\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-2000:]}"
            # Plain curl exits 0 on a 4xx too: an error body would show in the output.
            assert '{"detail"' not in done.stdout and '{"error"' not in done.stdout, f"{block}\n{done.stdout[-2000:]}"
    finally:
        for server in servers:
            server.terminate()
            server.wait(10)
        for reader in readers:
            reader.join(10)
        for server in servers:
            if server.stdout is not None:
                server.stdout.close()
    text = "".join(output)
    assert f"listening on http://127.0.0.1:{port}" in text and f"data folder: {tmp_path / 'data'}" in text
    assert "Traceback" not in text
