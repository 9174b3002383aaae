"""Whether the process that wrote a "running" run is still alive (on this host only)."""

from __future__ import annotations

import os
import socket

HOSTNAME = socket.gethostname()


def pid_is_gone(pid: int | None, hostname: str | None) -> bool:
    """True when ``pid`` ran on this host and no such process exists any more."""
    if pid is None or pid <= 0 or hostname != HOSTNAME:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError, ValueError):  # not ours to signal, or not a pid at all
        return False
    return False
