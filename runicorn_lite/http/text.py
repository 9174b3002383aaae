"""Text that clients send: what counts as a control character, for every API's body fields."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def control_character(value: str, *, multiline: bool = False) -> int | None:
    """Position of the first control character in ``value`` (NUL, C0, DEL, C1; tab and line
    breaks are text in ``multiline`` values), or None. Such characters make runs unsearchable
    and break the files and terminals that show them."""
    match = (_CONTROL_MULTILINE if multiline else _CONTROL).search(value)
    return None if match is None else match.start()
