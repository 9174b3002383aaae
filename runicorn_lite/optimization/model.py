"""The optimization runs' own terms: allowed values, limits, queries, and what can go wrong.

The store (``queries``) raises the errors below; the HTTP layer chooses their status codes.
Validation, the store and the OpenAPI document all take enums and limits from here.
"""

from __future__ import annotations

from dataclasses import dataclass

OPTIMIZER_TYPES = ("bayesian", "grid_search", "random_search", "genetic", "gradient_descent")
STATUSES = ("pending", "running", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset(("completed", "failed", "cancelled"))
DIRECTIONS = ("maximize", "minimize")
ORDER_BY = ("created_at", "final_score", "duration_ms")
ORDERS = ("asc", "desc")
# JavaScript's safe integers: what a client of a JSON API can round-trip, and far inside
# SQLite's 64-bit range (so nothing a client sends can overflow a bound parameter).
MAX_INT = 2**53 - 1
MAX_RUN_NAME = 200
MAX_ERROR_MESSAGE = 10_000
MAX_PROJECT_ID = 200
MAX_BATCH = 1000
LIMIT_DEFAULT, LIMIT_MIN, LIMIT_MAX = 50, 1, 100
UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


@dataclass(frozen=True)
class ListQuery:
    status: str | None
    optimizer_type: str | None
    limit: int
    offset: int
    order_by: str
    order: str


@dataclass(frozen=True)
class StatsQuery:
    status: str | None
    optimizer_type: str | None
    start_date: str | None
    end_date: str | None


class OptimizationError(Exception):
    """Something the store refused, in the store's terms."""


class RunNotFound(OptimizationError):
    """No such run in this project (runs of other projects are not found either)."""


class InvalidTransition(OptimizationError):
    """A status change the run's lifecycle does not allow."""

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(f"A run cannot move from '{current}' to '{requested}'")
        self.current = current
        self.requested = requested


class RunFinished(OptimizationError):
    """The run is in a terminal status and takes no more iterations."""

    def __init__(self, status: str) -> None:
        super().__init__(f"A run in status '{status}' does not accept iterations")
        self.status = status


class DuplicateIteration(OptimizationError):
    """An iteration number the run already has (or that a batch repeats)."""

    def __init__(self, number: int | None) -> None:
        which = f"Iteration {number}" if number is not None else "An iteration_number"
        super().__init__(f"{which} already exists for this run")
        self.number = number
