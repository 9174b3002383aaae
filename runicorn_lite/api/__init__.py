"""The HTTP API: one Starlette app over the index, the run directories and the primary store."""

from __future__ import annotations

from runicorn_lite.api.app import create_app

__all__ = ["create_app"]
