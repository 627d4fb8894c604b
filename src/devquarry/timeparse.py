"""Timestamps from every source, as timezone-aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

# Formats seen in the wild besides ISO 8601: the Stack Overflow study's CSV ("2025/1/21 18:30").
EXTRA_FORMATS = ("%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d", "%d/%m/%Y %H:%M")


def _strptime_any(text: str, formats: tuple[str, ...]) -> datetime | None:
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    return None


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace(" UTC", "+00:00"))
    except ValueError:
        return None


def parse_time(value, formats: tuple[str, ...] = ()) -> datetime | None:
    """Parse a timestamp; naive times are taken as UTC. Raises ValueError when unparseable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, float) and value != value:  # NaN from JSON or a spreadsheet
        return None
    elif isinstance(value, bool):
        raise ValueError(f"not a date or time: {value}")
    elif isinstance(value, (int, float)):
        try:
            dt = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"not a time: {str(value)[:40]} is out of range as seconds since 1970") from None
    else:
        text = str(value).strip()
        if not text or text.lower() in {"none", "null", "nan", "nat"}:
            return None
        dt = _strptime_any(text, formats) or _iso(text) or _strptime_any(text, EXTRA_FORMATS)
        if dt is None:
            raise ValueError(f"not a date or time: {text[:40]!r}")
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's ends
        raise ValueError(f"not a time: {str(value)[:40]} is out of range") from None
