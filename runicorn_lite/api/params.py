"""Request bodies of V1/V2: a JSON object, its text fields free of control characters; a 400
that names the field otherwise. (Query parameters are declared per endpoint: http/query.py.)"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from runicorn_lite.api.errors import bad_request
from runicorn_lite.http.body import read_body
from runicorn_lite.http.text import control_character


async def json_object(request: Request, max_bytes: int = 1 << 20) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says why not; a body over ``max_bytes``
    is refused with 413 while it arrives (:class:`BodyTooLarge`), never read whole."""
    body = await read_body(request, max_bytes)
    if not body.strip():
        raise bad_request("Request body is required: a JSON object")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise bad_request("Request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    return data


def check_text(value: str, name: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or a 400 naming field ``name`` when it holds a control character
    (NUL included; tab and line breaks are allowed in ``multiline`` fields). Such characters
    make runs unsearchable and break the files and terminals that show them."""
    at = control_character(value, multiline=multiline)
    if at is not None:
        raise bad_request(f"Field '{name}' contains a control character (U+{ord(value[at]):04X}) at position {at}")
    return value
