"""The answers V1 and V2 share (JSON rendered by orjson: NaN and infinities come out as null)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from runicorn_lite.db.big_answers import BigAnswers, Ticket
from runicorn_lite.http.responses import JSONResponse, dumps
from runicorn_lite.queries.steptable import StepTable

if TYPE_CHECKING:
    from runicorn_lite.api.context import Outcome

__all__ = [
    "BigAnswers", "JSONResponse", "Ticket", "batch_answer", "dumps", "orjson_loads", "rows_response",
]


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


# Answers of more rows than this stream out a batch at a time; smaller ones go in one piece
# (with a Content-Length).
STREAM_ROWS = 20_000


def rows_response(head: bytes, table: StepTable, picks: list[int] | None, tail: bytes,
                  headers: dict[str, str] | None = None, ticket: Ticket | None = None) -> Response:
    """``head`` + the table's rows (JSON objects, comma-separated) + ``tail``: the body of an
    answer with every point of a run, in bounded memory however many rows it has. ``ticket``
    is handed over to the answer and given back once the last byte is out (or the answer is
    dropped)."""
    if ticket is not None:
        ticket.hand_over()
    rows = len(table) if picks is None else len(picks)
    if rows <= STREAM_ROWS:
        body = head + b"".join(table.json_rows(picks)) + tail
        if ticket is not None:
            ticket.release()
        return Response(body, media_type="application/json", headers=headers)

    def pieces() -> Iterator[bytes]:
        try:
            yield head
            yield from table.json_rows(picks)
            yield tail
        finally:
            if ticket is not None:
                ticket.release()

    return StreamingResponse(iterate_in_threadpool(pieces()), media_type="application/json", headers=headers)
