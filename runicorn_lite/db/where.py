"""The one way a WHERE clause is built: bound terms added one by one, never SQL text edited.

Identifiers in a term come from a whitelist of the module that adds it; every value is a bound
``?`` parameter (PostgreSQL's placeholders are translated by ``db/postgres.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any


def placeholders(n: int) -> str:
    """``?,?,...``: the placeholders of an ``IN (...)`` list of ``n`` values."""
    return ",".join("?" * n)


@dataclass(frozen=True)
class Where:
    """Terms joined by AND, with their parameters in order; no terms is ``TRUE``."""

    terms: tuple[str, ...] = ()
    args: tuple[Any, ...] = ()

    def and_(self, term: str, *args: Any) -> Where:
        """This clause and ``term`` (whose ``?`` placeholders take ``args``)."""
        return Where((*self.terms, term), (*self.args, *args))

    def and_in(self, column: str, values: Collection[Any]) -> Where:
        """This clause and ``column IN (?, ...)`` of ``values`` (none: false)."""
        return self.and_(f"{column} IN ({placeholders(len(values))})", *values) if values else self.and_("FALSE")

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) if self.terms else "TRUE"

    def parts(self) -> tuple[str, list[Any]]:
        """(SQL, parameters) for callers that splice the clause into a larger statement."""
        return self.sql, list(self.args)
