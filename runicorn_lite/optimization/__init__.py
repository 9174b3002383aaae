"""The optimization runs API (``/api/iris/optimization``): keys, runs, iterations, statistics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from runicorn_lite.settings import Settings


def create_app(settings: Settings) -> Starlette:
    """The sub-app, mounted by the main app. Imported on call: the main app's middleware uses
    this package's rate limiter, and this package uses that middleware."""
    from runicorn_lite.optimization.app import create_app as create

    return create(settings)


__all__ = ["create_app"]
