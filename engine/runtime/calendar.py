"""Local times in IANA time zones: when a batch schedule comes, when a dated or weekday wait ends.

Everything here is a pure function of its arguments (timestamps are UTC seconds), so the replay clock and the
service's clock give the same answers. Daylight saving time follows the zone's rules: a local time skipped by the
clock moving forward happens at the moment after the gap (02:30 on the spring change is 03:30), a local time that
happens twice when the clock moves back is the first of the two.
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.language import ast

MAX_SLOTS = 100_000  # a guard for `slots_between` over a very long span


class UnknownTimeZone(ValueError):
    """A time zone name that is not in the IANA database."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UnknownTimeZone(f'unknown time zone "{name}" (an IANA name such as "Europe/Berlin" or "UTC")') from error


def is_zone(name: str) -> bool:
    try:
        zone(name)
    except UnknownTimeZone:
        return False
    return True


def parse_local(text: str) -> datetime:
    """`2026-12-10T09:00` (or with `:SS`) as a naive local datetime; ValueError when it is no such moment."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S" if text.count(":") == 2 else "%Y-%m-%dT%H:%M")


def parse_clock(text: str) -> tuple[int, int]:
    """`09:00` as (hour, minute); ValueError outside 00:00..23:59."""
    hour, minute = (int(part) for part in text.split(":"))
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ValueError(f'"{text}" is not a time of day (00:00 to 23:59)')
    return hour, minute


def to_utc(local: datetime, tz: str) -> float:
    """A naive local datetime in zone `tz` as UTC seconds (DST gaps move forward, repeated times take the first)."""
    # fold=0: in a gap, the offset from before the change (so the time lands after the gap); when a time
    # happens twice, the first of the two.
    return local.replace(tzinfo=zone(tz), fold=0).timestamp()


def local_date(ts: float, tz: str) -> date:
    return datetime.fromtimestamp(ts, zone(tz)).date()


def at_clock(day: date, clock: str, tz: str) -> float:
    hour, minute = parse_clock(clock)
    return to_utc(datetime(day.year, day.month, day.day, hour, minute), tz)


def _monthly_day(year: int, month: int, day: int) -> date:
    """Day `day` of the month, or its last day when the month is shorter."""
    return date(year, month, min(day, _calendar.monthrange(year, month)[1]))


def _days_from(start: date) -> Iterator[date]:
    day = start
    while True:
        yield day
        day += timedelta(days=1)


def next_slot(schedule: ast.Schedule, tz: str, after: float) -> float | None:
    """The first time the schedule comes strictly after `after` (None: a one-time schedule already past)."""
    if schedule.kind == "once":
        assert schedule.at is not None
        at = to_utc(parse_local(schedule.at), tz)
        return at if at > after else None
    assert schedule.time is not None
    start = local_date(after, tz) - timedelta(days=1)  # a slot may fall on the previous local date's evening
    if schedule.kind == "monthly":
        assert schedule.day is not None
        year, month = start.year, start.month
        for _ in range(14):
            at = at_clock(_monthly_day(year, month, schedule.day), schedule.time, tz)
            if at > after:
                return at
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        raise AssertionError("unreachable: a monthly schedule comes within 14 months")
    for day in _days_from(start):
        if schedule.kind == "weekly" and ast.WEEKDAYS[day.weekday()] != schedule.weekday:
            continue
        at = at_clock(day, schedule.time, tz)
        if at > after:
            return at
    raise AssertionError("unreachable")


def slots_between(schedule: ast.Schedule, tz: str, after: float, upto: float) -> list[float]:
    """Every time the schedule comes in (after, upto], in order."""
    slots: list[float] = []
    cursor = after
    while len(slots) < MAX_SLOTS:
        slot = next_slot(schedule, tz, cursor)
        if slot is None or slot > upto:
            break
        slots.append(slot)
        cursor = slot
    return slots


def last_slot(schedule: ast.Schedule, tz: str, after: float, upto: float) -> tuple[float | None, int]:
    """The latest time the schedule came in (after, upto] and how many times it came: missed runs run once."""
    slots = slots_between(schedule, tz, after, upto)
    return (slots[-1] if slots else None), len(slots)


def wait_until(step: ast.WaitUntil, tz: str, now: float) -> float:
    """When `wait until ...` ends: the moment itself, or now when it is already past."""
    return max(now, to_utc(parse_local(step.at), tz))


def wait_window(step: ast.WaitWindow, tz: str, now: float) -> float:
    """When `wait N units then until weekday A..B at HH:MM` ends: the first such moment at or after now + N units."""
    start = now + step.seconds
    days = set(step.weekdays)
    for day in _days_from(local_date(start, tz) - timedelta(days=1)):
        if day.weekday() not in days:
            continue
        at = at_clock(day, step.time, tz)
        if at >= start:
            return at
    raise AssertionError("unreachable: a weekday window comes within a week")


def iso_local(ts: float, tz: str) -> str:
    """A moment as local time with its offset, for people: `2026-12-14T09:00+01:00 (Europe/Berlin)`."""
    moment = datetime.fromtimestamp(ts, zone(tz))
    text = moment.isoformat(timespec="minutes")
    return text if tz == "UTC" else f"{text} ({tz})"
