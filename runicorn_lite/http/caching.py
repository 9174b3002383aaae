"""Strong ETags and ``If-None-Match`` evaluation (RFC 9110 §8.8.3, §13.1.2)."""

from __future__ import annotations

import hashlib
import re

NO_STORE = "no-store"


def private_cache(max_age_s: int) -> str:
    """Cache-Control of an answer one client may keep ``max_age_s`` seconds, then revalidate."""
    return f"private, max-age={max_age_s}, must-revalidate"


# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, in a comma-separated list (whitespace allowed).
_ETAG_ITEM = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*(?:,|$)')


def strong_etag(payload: bytes) -> str:
    """A strong validator over the stable part of an answer (its bytes without ``metadata``)."""
    return '"' + hashlib.blake2b(payload, digest_size=16).hexdigest() + '"'


def if_none_match_hits(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` matches ``etag`` under weak comparison (so: answer 304).

    ``*`` matches any current representation. Members that do not parse as entity-tags are
    skipped rather than failing the request, as a lenient recipient should.
    """
    if header is None:
        return False
    header = header.strip()
    if not header:
        return False
    if header == "*":
        return True
    opaque = etag.removeprefix("W/")
    pos = 0
    while pos < len(header):
        match = _ETAG_ITEM.match(header, pos)
        if match is None:
            # Skip a malformed member up to the next comma.
            comma = header.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        if f'"{match.group(2)}"' == opaque:
            return True
        pos = match.end()
    return False
