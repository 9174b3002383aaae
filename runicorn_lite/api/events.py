"""``GET /api/v2/events``: the live event stream (Server-Sent Events) of the index.

Every client is one subscriber of the app's :class:`~runicorn_lite.api.event_hub.EventHub`; the
response below only moves what the hub queued for it onto the connection. It is Starlette's
``StreamingResponse`` pattern (send the body as it comes while a second task listens for
``http.disconnect``) written out, so that unsubscribing happens in a ``finally`` of the request
itself, at once, whatever ends the stream: the client leaving, the server stopping, an error.
"""

from __future__ import annotations

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from runicorn_lite import rundir
from runicorn_lite.api import access
from runicorn_lite.api.context import context
from runicorn_lite.api.errors import not_found
from runicorn_lite.api.event_hub import EventHub
from runicorn_lite.http.query import Param, Query

# How long a browser waits before it reconnects (EventSource's retry field), in ms.
RETRY_MS = 2000
EVENTS_QUERY = Query.of(
    Param("experiment_id", "string", "Only the events of this run (it need not exist yet)",
          pattern=rundir.RUN_ID_PATTERN),
    Param("last_event_id", "string", "Resume after this event (the Last-Event-ID header wins): for a page"
          " that kept the id, since EventSource cannot set headers"),
)


class EventStreamResponse(Response):
    """One client's stream: what it missed (or a reset), then events as the hub queues them,
    a comment after every ``hub.keepalive`` seconds of quiet."""

    media_type = "text/event-stream"

    def __init__(self, hub: EventHub, exp_id: str | None, last_event_id: str | None,
                 project: str | None = None) -> None:
        # Not Response.__init__: with no body it would announce Content-Length: 0.
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.hub = hub
        self.exp_id = exp_id
        self.last_event_id = last_event_id
        self.project = project

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hub = self.hub
        subscriber, missed = hub.subscribe(self.exp_id, self.last_event_id, self.project)
        try:
            async with anyio.create_task_group() as tasks:

                async def until_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tasks.cancel_scope.cancel()

                tasks.start_soon(until_disconnect)
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                opening = f"retry: {RETRY_MS}\n: events after {hub.last_id}\n\n".encode()
                await send({"type": "http.response.body", "body": opening + missed, "more_body": True})
                while (chunk := await subscriber.next(hub.keepalive)) is not None:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                tasks.cancel_scope.cancel()
        finally:
            hub.unsubscribe(subscriber)


async def events(request: Request) -> Response:
    """Live events of every run, or of one (``experiment_id``)."""
    q = EVENTS_QUERY.parse(request.query_params)
    exp_id: str | None = q["experiment_id"]
    if exp_id is not None and not rundir.is_valid_run_id(exp_id):
        raise not_found(f"Experiment {exp_id[:200]} not found")
    # Browsers send the header when they reconnect (a blank one is no id).
    last = (request.headers.get("last-event-id") or "").strip() or q["last_event_id"]
    key = access.who(request)  # a key of one project hears of that project's runs only
    return EventStreamResponse(context(request).events, exp_id, last, None if key is None else key.project_id)


def routes() -> list[Route]:
    return [Route("/api/v2/events", events, methods=["GET"])]
