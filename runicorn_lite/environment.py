"""What ``init(capture_env=True)`` records in environment.json, with Runicorn 0.7.x's keys.

Every part is best effort: what cannot be learned is null, never an exception, and nothing here
may hold a training script up for long (each external command has a short timeout; packages
come from the installed distributions' metadata, not from ``pip freeze``). Environment
variables come from a short allow-list, so that tokens and passwords never reach the file.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 2.0
GPU_TIMEOUT_S = 3.0
# Settings that change what a run computes or where; none of them carries a credential.
ENV_ALLOW_LIST = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_HOME",
    "CUDNN_VERSION",
    "NCCL_VERSION",
    "NVIDIA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "TF_CPP_MIN_LOG_LEVEL",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "JAX_PLATFORM_NAME",
    "KERAS_BACKEND",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
    "VIRTUAL_ENV",
    "CONDA_DEFAULT_ENV",
)
MAX_ENV_VALUE = 500
_URL_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")


def _safe(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - best effort by contract: an unknown part is null
        return None


def capture(cwd: Path | None = None) -> dict[str, Any]:
    """The environment.json object for a run started in ``cwd`` (the current directory)."""
    where = Path.cwd() if cwd is None else Path(cwd)
    return {
        "python_version": sys.version,
        "platform": _safe(lambda: f"{platform.system()} {platform.release()} ({platform.machine()})"),
        "platform_details": _safe(platform_details),
        "pip_packages": _safe(pip_packages),
        "conda_packages": _safe(conda_packages),
        "conda_env": _safe(conda_env),
        "git_info": _safe(git_info, where),
        "env_variables": _safe(env_variables) or {},
        "gpu_info": _safe(gpu_info),
    }


def platform_details() -> dict[str, str]:
    uname = platform.uname()
    return {
        "system": uname.system,
        "node": uname.node,
        "release": uname.release,
        "version": uname.version,
        "machine": uname.machine,
        "processor": uname.processor,
        "python_implementation": platform.python_implementation(),
        "python_compiler": platform.python_compiler(),
    }


def pip_packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted by name (as pip freeze lists)."""
    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return [seen[k] for k in sorted(seen)]


def conda_env() -> str | None:
    name = os.environ.get("CONDA_DEFAULT_ENV")
    if name:
        return name
    prefix = os.environ.get("CONDA_PREFIX")
    return Path(prefix).name if prefix else None


def conda_packages() -> list[str] | None:
    """``name=version=build`` from the environment's conda-meta records (what ``conda list
    --export`` prints, without starting conda, which takes seconds)."""
    prefix = os.environ.get("CONDA_PREFIX")
    if not prefix:
        return None
    meta = Path(prefix) / "conda-meta"
    if not meta.is_dir():
        return None
    out = []
    for record in sorted(meta.glob("*.json")):
        parts = record.stem.rsplit("-", 2)
        if len(parts) == 3:
            out.append("=".join(parts))
    return out


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_info(cwd: Path) -> dict[str, Any] | None:
    """commit, branch, dirty (and Runicorn's has_changes, changed_files_count, remote) of the
    repository that holds ``cwd``; None outside a repository or without git."""
    if shutil.which("git") is None:
        return None
    status = _git(cwd, "status", "--porcelain=v2", "--branch")
    if status is None:
        return None
    commit = branch = None
    changed = 0
    for line in status.splitlines():
        if line.startswith("# branch.oid "):
            oid = line.split(" ", 2)[2]
            commit = None if oid == "(initial)" else oid
        elif line.startswith("# branch.head "):
            head = line.split(" ", 2)[2]
            branch = "HEAD" if head == "(detached)" else head
        elif line and not line.startswith("#"):
            changed += 1
    info: dict[str, Any] = {
        "commit": commit,
        "branch": branch,
        "dirty": changed > 0,
        "has_changes": changed > 0,
        "changed_files_count": changed,
    }
    remote = _git(cwd, "remote", "get-url", "origin")
    # A remote URL may carry a token (https://user:token@host/...): keep only the host part on.
    info["remote"] = _URL_CREDENTIALS.sub(r"\1", remote.strip()) if remote else None
    return info


def env_variables() -> dict[str, str]:
    out = {}
    for key in ENV_ALLOW_LIST:
        value = os.environ.get(key)
        if value:
            out[key] = value if len(value) <= MAX_ENV_VALUE else value[: MAX_ENV_VALUE - 3] + "..."
    return out


def gpu_info() -> list[dict[str, Any]] | None:
    """NVIDIA GPUs from nvidia-smi when it is installed; None otherwise."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=GPU_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    gpus = []
    for line in done.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            try:
                gpus.append({"index": int(parts[0]), "name": parts[1], "memory_total_mb": float(parts[2]),
                             "driver_version": parts[3]})
            except ValueError:
                continue
    return gpus or None
