"""The checks of batch campaigns and timed steps: time zones, schedules, limits, dates and times of day."""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator
from datetime import datetime

from engine.language import ast
from engine.language.checks_walk import _NO_STEPS, _at, _did_you_mean, _Steps, _where
from engine.language.diagnostics import Diagnostic

ZONE_EXAMPLE = "Europe/Berlin"
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?")


@functools.lru_cache(maxsize=256)
def is_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this Python can load (`zoneinfo`)."""
    if not name or name != name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def valid_datetime(text: str) -> bool:
    """`YYYY-MM-DDTHH:MM[:SS]` naming a real date and time (no 2026-02-30, no 25:00)."""
    if _DATETIME.fullmatch(text) is None:
        return False
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S" if text.count(":") == 2 else "%Y-%m-%dT%H:%M")
    except ValueError:
        return False
    return True


def valid_clock(text: str) -> bool:
    """`HH:MM` with hours 00..23 and minutes 00..59."""
    hours, _, minutes = text.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours.isdigit() and minutes.isdigit()):
        return False
    return int(hours) < 24 and int(minutes) < 60


def _tail(span: ast.Span, length: int) -> ast.Span:
    """The last `length` characters of a node's span: the token a statement ends with (a time, a name)."""
    if span.line <= 0 or span.end_column - length < 1:
        return span
    return ast.Span(span.file, span.end_line, span.end_column - length, span.end_line, span.end_column)


def _zone_problem(name: str, span: ast.Span) -> Diagnostic | None:
    if is_time_zone(name):
        return None
    try:
        known = sorted(zoneinfo.available_timezones())
    except OSError:  # pragma: no cover - no time zone data at all
        known = []
    by_lower = {zone.lower(): zone for zone in known}
    hint = f'; did you mean "{by_lower[name.lower()]}"?' if name.lower() in by_lower else _did_you_mean(name, known)
    quoted = len(name) + 2 + name.count('"') + name.count("\\")
    return _at(
        "error",
        "unknown-timezone",
        f'unknown time zone "{name}"{hint}',
        _tail(span, quoted),
        f'time zones are IANA names, e.g. "{ZONE_EXAMPLE}", "America/New_York" or "UTC"',
    )


def _time_zones(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    first: ast.TimeZone | None = None
    for rule_file in rule_set.files:
        for declaration in rule_file.declarations:
            if not isinstance(declaration, ast.TimeZone):
                continue
            problem = _zone_problem(declaration.name, declaration.span)
            if problem is not None:
                yield problem
            if first is None:
                first = declaration
            elif declaration.name != first.name:
                yield _at(
                    "error",
                    "timezone-conflict",
                    f'the rule set\'s time zone is already "{first.name}" ({_where(first.span)}): '
                    f'one time zone per rule set, not "{declaration.name}" too',
                    declaration.span,
                    'a campaign with another zone says so itself: `timezone "..."` inside the campaign',
                )
    for campaign in rule_set.campaigns:
        if campaign.timezone is not None:
            problem = _zone_problem(campaign.timezone, campaign.timezone_span)
            if problem is not None:
                yield problem


def _time_problems(step_or_schedule: ast.Schedule | ast.WaitUntil | ast.WaitWindow) -> Iterator[Diagnostic]:
    node = step_or_schedule
    if isinstance(node, ast.WaitUntil) or (isinstance(node, ast.Schedule) and node.kind == "once"):
        at = node.at if isinstance(node, ast.WaitUntil) else node.at or ""
        if not valid_datetime(at):
            yield _at(
                "error",
                "bad-datetime",
                f"{at} is not a date and time (YYYY-MM-DDTHH:MM, a real day, hours 00-23, minutes 00-59)",
                _tail(node.span, len(at)),
            )
        return
    clock = node.time or ""
    if not valid_clock(clock):
        yield _at(
            "error",
            "bad-time",
            f"{clock} is not a time of day (HH:MM, hours 00-23, minutes 00-59)",
            _tail(node.span, len(clock)),
        )
    if isinstance(node, ast.Schedule) and node.kind == "monthly" and not 1 <= (node.day or 0) <= 31:
        yield _at(
            "error",
            "bad-day",
            f"day {node.day} is not a day of the month: use 1 to 31 (a day past a month's end runs on its last day)",
            node.span,
        )


def _batches(rule_set: ast.RuleSet, steps: dict[int, _Steps]) -> Iterator[Diagnostic]:
    for campaign in rule_set.campaigns:
        schedule = campaign.schedule
        if schedule is not None:
            yield from _time_problems(schedule)
            if campaign.triggers:
                yield _at(
                    "error",
                    "schedule-with-trigger",
                    f'campaign "{campaign.name}" has a schedule and a trigger: a batch campaign runs on its '
                    "schedule over everyone its filters let through, a trigger campaign when a trigger fires",
                    schedule.span,
                    "keep the `schedule` or the `trigger` lines, not both (`trigger campaign is requested` too)",
                )
        if campaign.limit is not None:
            if schedule is None:
                yield _at(
                    "error",
                    "limit-without-schedule",
                    f'campaign "{campaign.name}" has a `limit` but no `schedule`: limits apply to batch runs',
                    campaign.limit_span,
                )
            elif campaign.limit <= 0:
                yield _at(
                    "error",
                    "zero-limit",
                    f"`limit {campaign.limit}` lets no one through: a limit is at least 1 (or leave it out)",
                    campaign.limit_span,
                )
        for timed in steps.get(id(campaign), _NO_STEPS).timed:
            yield from _time_problems(timed)
