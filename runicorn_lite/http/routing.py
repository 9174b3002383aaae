"""Routing pieces Starlette lacks."""

from __future__ import annotations

import re
from typing import Any

from starlette.routing import Mount as _StarletteMount


class Mount(_StarletteMount):
    """Starlette's Mount, for paths with a newline (``%0A``) too.

    Its ``{path:path}`` is ``.*``, which stops at a newline: such a request never reached the
    mounted app, and the outer app answered it in its own error shape, before authentication.
    """

    def __init__(self, path: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, *args, **kwargs)
        self.path_regex = re.compile(self.path_regex.pattern, re.DOTALL)
