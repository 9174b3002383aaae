"""runicorn_lite: a fast local experiment tracker that reads Runicorn run directories.

A script written for Runicorn (``import runicorn as rn``) runs with ``import runicorn_lite as
rn``: ``init``, the run's methods, and the switch (``set_enabled`` …). Importing this package
imports no machine-learning framework; the integrations live in ``runicorn_lite.integrations``.
"""

from __future__ import annotations

from runicorn_lite.sdk import Run, init
from runicorn_lite.switch import enabled, get_active_run, is_enabled, reset_enabled, set_enabled
from runicorn_lite.version import __version__

__all__ = ["Run", "__version__", "enabled", "get_active_run", "init", "is_enabled", "reset_enabled", "set_enabled"]
