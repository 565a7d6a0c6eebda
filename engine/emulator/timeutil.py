"""Salesforce's date-time wire format (`2026-11-28T21:40:00.000+0000`) and the clock of the emulator."""

from __future__ import annotations

import re
import threading
from datetime import UTC, date, datetime, timedelta

_DATETIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?\s*(Z|[+-]\d{2}:?\d{2})?:?$"
)


def format_datetime(value: datetime) -> str:
    """`2026-11-28T21:40:00.000+0000`, always in UTC, always milliseconds."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def format_date(value: date) -> str:
    return value.isoformat()


def parse_datetime(text: str) -> datetime | None:
    """Reads the date-times clients send: ISO 8601 with `Z`, `+00:00` or `+0000`, with or without fractions;
    no zone means UTC (simple-salesforce sends a naive date-time with a trailing colon)."""
    match = _DATETIME_RE.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=UTC)
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        value = value - sign * offset
    return value


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def floor_minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


class Clock:
    """Real UTC time plus an adjustable offset (tests move the emulator's time forward with the admin API).

    Never goes backwards: two calls in the same millisecond still get increasing times, so SystemModstamp
    orders writes the way they happened."""

    def __init__(self, offset_s: float = 0.0) -> None:
        self._offset = timedelta(seconds=offset_s)
        self._last = datetime.min.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    @property
    def offset_s(self) -> float:
        return self._offset.total_seconds()

    def set_offset(self, seconds: float) -> None:
        """Moves the clock; moving it back is allowed (a reset, a test that sets an exact offset)."""
        with self._lock:
            self._offset = timedelta(seconds=seconds)
            self._last = datetime.min.replace(tzinfo=UTC)

    def now(self) -> datetime:
        with self._lock:
            value = datetime.now(UTC) + self._offset
            value = value.replace(microsecond=(value.microsecond // 1000) * 1000)
            if value <= self._last:
                value = self._last + timedelta(milliseconds=1)
            self._last = value
            return value
