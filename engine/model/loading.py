"""Reading world and event files with messages that name the file, the line or JSON path, and the field."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.model.events import Event
from engine.model.world import World


class InputError(Exception):
    """Unusable input: the message names the file, the line (or JSON path), the field and what was expected."""


def _read_text(path: str, what: str) -> tuple[str, str]:
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return Path(path).read_text(encoding="utf-8"), path
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a {what} file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read: {error.strerror}") from None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    message = str(first["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    kind = first.get("type", "")
    if kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "literal_error":
        message = f"got {first.get('input')!r}, expected one of: {message.split('Input should be ')[-1]}"
    elif kind.startswith("datetime"):
        message = f"got {first.get('input')!r}, expected an ISO 8601 time like 2026-11-03T09:00:00Z"
    field = _loc(loc)
    if ": " in message and not loc:
        field, message = message.split(": ", 1)
    extra = f" (and {len(error.errors()) - 1} more problems)" if len(error.errors()) > 1 else ""
    return f"{field}: {message}{extra}"


def load_world(path: str | None) -> World:
    if path is None:
        return World()
    text, name = _read_text(path, "world")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{name}:{error.lineno}: not valid JSON: {error.msg} (column {error.colno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{name}: (top level): expected a JSON object with persons, sfdc_campaigns, programs")
    try:
        return World.model_validate(data)
    except ValidationError as error:
        raise InputError(f"{name}: {_explain(error)}") from None


@dataclass(frozen=True)
class EventLine:
    event: Event
    line: int
    file: str


def parse_event_line(raw: str, name: str, number: int) -> Event:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(f"{name}:{number}: not valid JSON: {error.msg} (column {error.colno})") from None
    if not isinstance(data, dict):
        raise InputError(f"{name}:{number}: (line): expected a JSON object, one event per line")
    try:
        return Event.model_validate(data)
    except ValidationError as error:
        raise InputError(f"{name}:{number}: {_explain(error)}") from None


def iter_events(path: str) -> Iterator[EventLine]:
    text, name = _read_text(path, "events")
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        yield EventLine(parse_event_line(stripped, name, number), number, name)


def load_events(path: str) -> list[EventLine]:
    return list(iter_events(path))
