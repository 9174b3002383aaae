"""The optimization runs API (``/api/iris/optimization``): keys, runs, iterations, statistics."""

from __future__ import annotations

from runicorn_lite.optimization.app import create_app

# Where the server mounts this API (the document's paths).
PREFIX = "/api/iris/optimization"

__all__ = ["PREFIX", "create_app"]
