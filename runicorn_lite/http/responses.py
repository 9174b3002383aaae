"""JSON responses serialised with orjson (NaN and infinities come out as null)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse

OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def dumps(content: Any) -> bytes:
    """orjson bytes of ``content``."""
    return orjson.dumps(content, option=OPTIONS)


class JSONResponse(_StarletteJSONResponse):
    """Starlette's JSONResponse, rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
