"""In-process replays for tests: a rule set loaded once, replayed over worlds and events given as files or dicts.

    rules = load_rules("rules/")
    result = rules.replay(world="world.json", events=[added("ann@example.com", "Q4 Webinar", "Registered")])
    result["runs"], result.world, result.errors      # the REPLAY.md result
    result.initial_world                             # the world before the first event, same shape

The pytest plugin (`engine.testing.plugin`) wraps this as the `campaign_rules` fixture. Outside pytest, the
problems are exceptions: `RuleSetError` (the rules have errors) and `ReplayInputError` (unusable world or events).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from engine.language import ast
from engine.language.diagnostics import render_all
from engine.language.loader import RuleSetNotFound, load_rule_set
from engine.model.events import Event
from engine.model.loading import InputError, _explain, load_world, parse_event_line
from engine.model.world import World, as_utc
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay
from engine.runtime.interpreter import DEFAULT_MAX_DEPTH, Tracer

__all__ = [
    "CampaignRules",
    "EventsInput",
    "ReplayInputError",
    "ReplayResult",
    "RuleSetError",
    "TracerFactory",
    "WorldInput",
    "load_rules",
    "run_replay",
]

PathLike = str | os.PathLike[str]
WorldInput = PathLike | Mapping[str, Any] | World | None
EventsInput = PathLike | Iterable[Mapping[str, Any] | Event]

# Events given as a list are "<events>" line N (N = the list index) inside the engine, "events[N]" to the user.
_LIST_FILE = "<events>"
_LIST_WHERE = re.compile(re.escape(_LIST_FILE) + r":(\d+):")


class ReplayInputError(Exception):
    """Unusable world or events: the message names the file and line (or `events[N]`, `world`) and the field."""


class RuleSetError(Exception):
    """The rule set has errors; the message is every error, rendered as FILE:LINE:COL with the source line."""


class TracerFactory(Protocol):
    """Makes the tracer of one replay (rule coverage)."""

    def tracer(self) -> Tracer: ...


class ReplayResult(dict[str, Any]):
    """The REPLAY.md result (`runs`, `world`, `errors`, and any field replay adds), a dict, plus what a snapshot needs.

    `initial_world` is the world before the first event, in the same shape as `world` (loaded into the local org,
    programs linked to their campaigns: that first sync is set-up, not a change), so that the changes can be shown
    as a diff; `warnings` are what the replay would have printed on stderr (an event earlier than the clock).
    """

    def __init__(
        self,
        result: Mapping[str, Any],
        *,
        initial_world: Mapping[str, Any] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        super().__init__(result)
        self.initial_world: dict[str, Any] | None = dict(initial_world) if initial_world is not None else None
        self.warnings: list[str] = list(warnings)

    @property
    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self["runs"]
        return runs

    @property
    def world(self) -> dict[str, Any]:
        world: dict[str, Any] = self["world"]
        return world

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = self["errors"]
        return errors

    def members(self, campaign: str) -> dict[str, str]:
        """The members of an SFDC campaign after the replay, email -> status (a campaign not in the world: {})."""
        for entry in self.world.get("sfdc_campaigns", []):
            if entry["name"] == campaign:
                return dict(entry.get("members", {}))
        return {}

    def program_members(self, program: str) -> dict[str, str]:
        """The members of a program after the replay, email -> status."""
        return dict(self.world.get("programs", {}).get(program, {}))

    def runs_of(self, campaign: str) -> list[dict[str, Any]]:
        """The runs of one smart campaign, in start order."""
        return [run for run in self.runs if run["campaign"] == campaign]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict copy (JSON-ready), as `smartcampaign replay` prints it."""
        copied: dict[str, Any] = json.loads(json.dumps(dict(self)))
        return copied

    def render(self) -> str:
        """The readable text the snapshot extension stores (see `engine.testing.render`)."""
        from engine.testing.render import render_result

        return render_result(self, initial_world=self.initial_world, warnings=self.warnings)


def _user_where(message: str) -> str:
    return _LIST_WHERE.sub(lambda m: f"events[{m.group(1)}]:", message)


def _resolve(path: PathLike, base: Path | None) -> Path:
    given = Path(path)
    if given.is_absolute() or base is None:
        return given
    return Path(os.path.normpath(base / given))  # `tests/../rules` reads as `rules` in messages and coverage


def coerce_world(world: WorldInput, base: Path | None = None) -> World:
    """A world from a path (relative to `base`), a dict (e.g. from `engine.testing.world.world`), or None."""
    if world is None:
        return World()
    if isinstance(world, World):
        return world
    if isinstance(world, Mapping):
        try:
            return World.model_validate(dict(world))
        except ValidationError as error:
            raise ReplayInputError(f"world: {_explain(error)}") from None
    if isinstance(world, (str, os.PathLike)):
        try:
            return load_world(str(_resolve(world, base)))
        except InputError as error:
            raise ReplayInputError(str(error)) from None
    raise ReplayInputError(f"world: expected a path, a dict or None, got {type(world).__name__}")


def coerce_events(events: EventsInput, base: Path | None = None) -> list[ReplayInputEvent]:
    """Events from a .jsonl path (relative to `base`) or a list of event dicts / `Event` objects."""
    if isinstance(events, (str, os.PathLike)):
        return _read_event_file(events, base)
    if isinstance(events, (Mapping, Event)):
        raise ReplayInputError("events: expected a list of events or the path of a .jsonl file, got one event")
    out: list[ReplayInputEvent] = []
    for index, item in enumerate(events):
        if isinstance(item, Event):
            event = item
        elif isinstance(item, Mapping):
            try:
                event = Event.model_validate(dict(item))
            except ValidationError as error:
                raise ReplayInputError(f"events[{index}]: {_explain(error)}") from None
        else:
            raise ReplayInputError(f"events[{index}]: expected an event dict, got {type(item).__name__}: {item!r}")
        out.append(ReplayInputEvent(event, index, _LIST_FILE))
    return out


def _read_event_file(path: PathLike, base: Path | None) -> list[ReplayInputEvent]:
    shown = os.fspath(path)  # as the test wrote it: messages (and snapshots of warnings) stay machine-independent
    resolved = _resolve(path, base)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplayInputError(f"{shown}: no such events file (looked for {resolved})") from None
    except IsADirectoryError:
        raise ReplayInputError(f"{shown}: is a folder, expected an events file (.jsonl)") from None
    except UnicodeDecodeError:
        raise ReplayInputError(f"{shown}: not UTF-8 text") from None
    except OSError as error:
        raise ReplayInputError(f"{shown}: cannot read: {error.strerror}") from None
    out: list[ReplayInputEvent] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            out.append(ReplayInputEvent(parse_event_line(stripped, shown, number), number, shown))
        except InputError as error:
            raise ReplayInputError(str(error)) from None
    return out


def coerce_time(value: str | datetime | None, what: str = "until") -> datetime | None:
    if value is None or isinstance(value, datetime):
        return as_utc(value) if value is not None else None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise ReplayInputError(f"{what}: got {value!r}, expected an ISO 8601 time like 2026-11-03T09:00:00Z") from None


def run_replay(
    rule_set: ast.RuleSet,
    world: World,
    events: Sequence[ReplayInputEvent],
    *,
    until: datetime | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    tracing: TracerFactory | None = None,
    world_source: str = "world",
) -> ReplayResult:
    """`engine.replay.run.replay` itself (the result is exactly what `smartcampaign replay` prints), plus the
    world as it stands before the first event: the same world replayed over no events (loaded, programs linked).
    """
    warnings: list[str] = []
    try:
        initial = replay(rule_set, world, [], ReplayOptions(world_source=world_source))["world"]
        result = replay(
            rule_set,
            world,
            events,
            ReplayOptions(
                until=until,
                max_depth=max_depth,
                warn=lambda message: warnings.append(_user_where(message)),
                tracer=tracing.tracer() if tracing is not None else None,
                world_source=world_source,
            ),
        )
    except InputError as error:
        raise ReplayInputError(_user_where(str(error))) from None
    return ReplayResult(result, initial_world=initial, warnings=warnings)


class CampaignRules:
    """A loaded rule set, ready to replay. Relative world and event paths resolve against `base`."""

    def __init__(self, rule_set: ast.RuleSet, path: Path, *, base: Path | None = None) -> None:
        self.rule_set = rule_set
        self.path = path
        self.base = base
        self.tracing: TracerFactory | None = None

    def __repr__(self) -> str:
        return f"CampaignRules({str(self.path)!r}, campaigns={len(self.rule_set.campaigns)})"

    def replay(
        self,
        world: WorldInput = None,
        events: EventsInput = (),
        *,
        until: str | datetime | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
    ) -> ReplayResult:
        """Replays `events` over `world` (REPLAY.md); `until` runs waits due by then, `max_depth` cuts cascades."""
        return run_replay(
            self.rule_set,
            coerce_world(world, self.base),
            coerce_events(events, self.base),
            until=coerce_time(until),
            max_depth=max_depth,
            tracing=self.tracing,
            world_source=os.fspath(world) if isinstance(world, (str, os.PathLike)) else "world",
        )


def load_rules(path: PathLike, *, base: Path | None = None) -> CampaignRules:
    """Loads a `.campaign` file or a folder of them; `RuleSetError` when the rules have errors."""
    resolved = _resolve(path, base).absolute()
    try:
        loaded = load_rule_set([resolved], use_cache=False)
    except RuleSetNotFound:
        raise ReplayInputError(f"{os.fspath(path)}: no such rule file or folder (looked for {resolved})") from None
    if loaded.errors:
        raise RuleSetError(render_all(loaded.errors, loaded.sources))
    return CampaignRules(loaded.rule_set, resolved, base=base)
