"""The optimization runs API (``/api/iris/optimization``): keys, runs, iterations, statistics."""

from __future__ import annotations

from runicorn_lite.optimization.app import create_app

__all__ = ["create_app"]
