"""Request bodies read with a size limit that holds while they arrive.

A body is refused as soon as its declared length, or the bytes received so far, pass the limit:
a client cannot make the server hold more than the limit in memory, however much it sends.
"""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLarge(Exception):
    """The request body is larger than the endpoint accepts (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} bytes")
        self.limit = limit


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or :class:`BodyTooLarge` once it passes ``max_bytes`` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)
