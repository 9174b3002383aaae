"""The answers V1 and V2 share (JSON rendered by orjson: NaN and infinities come out as null)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from runicorn_lite.http.responses import JSONResponse, dumps

if TYPE_CHECKING:
    from runicorn_lite.api.context import Outcome

__all__ = ["JSONResponse", "batch_answer", "dumps", "orjson_loads"]


def orjson_loads(text: str | bytes | None) -> Any:
    """A JSON document stored as text in the index (None stays None)."""
    return None if text is None else orjson.loads(text)


def batch_answer(verb: str, outcomes: dict[str, Outcome], *, delete_shape: bool = False) -> JSONResponse:
    """``{verb: n, "failed": m, "results": {id: bool}, "errors": {id: reason}}``, the answer of
    every V2 batch endpoint (``errors`` names only the ids that failed).

    ``delete_shape`` adds ``deleted`` (the same count): V2's batch-restore answers in the
    batch-delete shape, so clients written for that shape read it.
    """
    results = {exp_id: o.ok for exp_id, o in outcomes.items()}
    errors = {exp_id: o.error or "failed" for exp_id, o in outcomes.items() if not o.ok}
    ok = sum(results.values())
    body: dict[str, Any] = {verb: ok, "failed": len(results) - ok, "results": results, "errors": errors}
    if delete_shape:
        body["deleted"] = ok
    return JSONResponse(body)
