"""runicorn_lite: a fast local experiment tracker that reads Runicorn run directories."""

from __future__ import annotations

__version__ = "0.1.0"

from runicorn_lite.sdk import Run, init

__all__ = ["Run", "__version__", "init"]
