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


PATCH_FIELDS = ("alias", "tags", "description")
MAX_TAGS = 100


def meta_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The meta.json changes of a PATCH body (V1's and V2's), as Runicorn 0.7.2 reads it: a
    field that is absent or null is left as it is; an alias (or description) that is empty after
    trimming clears it; tags are trimmed and empty ones dropped (and, here, duplicates too)."""
    changes: dict[str, Any] = {}
    alias = body.get("alias")
    if alias is not None:
        if not isinstance(alias, str) or len(alias) > 200:
            raise bad_request("Field 'alias' must be a string of at most 200 characters, or null")
        changes["alias"] = check_text(alias, "alias").strip() or None
    desc = body.get("description")
    if desc is not None:
        if not isinstance(desc, str) or len(desc) > 10_000:
            raise bad_request("Field 'description' must be a string of at most 10000 characters, or null")
        changes["description"] = check_text(desc, "description", multiline=True).strip() or None
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) and len(t.strip()) <= 100 for t in tags):
            raise bad_request("Field 'tags' must be a list of strings (at most 100 characters each)")
        if len(tags) > MAX_TAGS:
            raise bad_request(f"Field 'tags' takes at most {MAX_TAGS} tags")
        for tag in tags:
            check_text(tag, "tags")
        changes["tags"] = list(dict.fromkeys(t.strip() for t in tags if t.strip()))
    return changes
