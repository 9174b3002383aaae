"""ISO-8601 UTC timestamps with milliseconds and ``Z``: the one format the API speaks and stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_iso(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for an aware datetime (converted to UTC).

    Built by hand because ``strftime('%Y')`` does not zero-pad years below 1000 on glibc, and
    fixed width is what keeps stored timestamps sortable as text.
    """
    dt = dt.astimezone(UTC)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}.{dt.microsecond // 1000:03d}Z"
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def now_iso() -> str:
    return format_iso(now_utc())


def parse_iso(text: str, *, end_of_day: bool = False) -> datetime | None:
    """Parse an ISO-8601 date or date-time; naive values are taken as UTC. None if invalid.

    A bare date means the start of that UTC day, or its last millisecond with ``end_of_day``
    (so that ``end_date=2025-11-23`` includes runs created on the 23rd).
    """
    text = text.strip()
    if not text or len(text) > 64:
        return None
    try:
        if len(text) == 10 and text[4] == "-":
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, UTC)
            if end_of_day:
                moment += timedelta(days=1) - timedelta(milliseconds=1)
            return moment
        dt = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def iso_to_ms(text: str) -> int:
    """Milliseconds since the epoch of a stored timestamp (for durations)."""
    return (datetime.fromisoformat(text) - _EPOCH) // timedelta(milliseconds=1)
