"""The ``search=`` text of the run list as SQL: every word somewhere in a run's searchable text
(FTS5 trigrams on SQLite, pg_trgm on PostgreSQL)."""

from __future__ import annotations

import itertools
from typing import Any

from runicorn_lite.db.dialect import on_postgres

MIN_TRIGRAM = 3


def search_clause(text: str) -> tuple[str, list[Any]]:
    """Every word must occur (case-insensitively) somewhere in the searchable text.

    Words of three characters or more go through the FTS5 trigram index (which folds case,
    Unicode included); shorter words cannot use trigrams and are checked on the rows the longer
    words left (or on all rows when the query has only short words). SQLite's ``lower()`` folds
    ASCII only, so a short word is matched as any of its case variants instead.
    """
    words = list(dict.fromkeys(w for w in text.split() if w))
    if on_postgres():
        return _pg_search_clause(words)
    long_words = [w for w in words if len(w) >= MIN_TRIGRAM]
    short_words = [w for w in words if len(w) < MIN_TRIGRAM]
    inner: list[str] = []
    params: list[Any] = []
    if long_words:
        inner.append("experiments_fts MATCH ?")
        params.append(" AND ".join('"' + w.replace('"', '""') + '"' for w in long_words))
    for word in short_words:
        variants = case_variants(word)
        inner.append("(" + " OR ".join(["instr(body, ?) > 0"] * len(variants)) + ")")
        params.extend(variants)
    return f"pk IN (SELECT rowid FROM experiments_fts WHERE {' AND '.join(inner)})", params


def _pg_search_clause(words: list[str]) -> tuple[str, list[Any]]:
    """PostgreSQL: the searchable text is kept lowercased (by Python, as FTS5 folds case) under a
    pg_trgm index, and each word is a LIKE on it (words of three characters or more use the
    index; shorter ones are checked on the rows the others left, as on SQLite)."""
    inner = ["body LIKE ? ESCAPE '\\'"] * len(words)
    params = ["%" + w.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
    return f"pk IN (SELECT rowid FROM experiments_fts WHERE {' AND '.join(inner)})", params


def case_variants(word: str) -> list[str]:
    """Every spelling of a short ``word`` that differs only in letter case ("ü" → "ü", "Ü")."""
    choices = [sorted({v for v in (c, c.lower(), c.upper()) if len(v) == 1}) for c in word]
    return ["".join(p) for p in itertools.product(*choices)]
