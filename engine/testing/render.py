"""The readable text of a replay result, as snapshots store it.

    clock: 2026-11-01T00:00:00Z -> 2026-11-03T09:00:00Z
    runs:
      1. "Webinar follow-up" for ann@example.com at 2026-11-03T09:00:00Z
         trigger: status changed in sfdc campaign "Q4 Webinar" from "Registered" to "Attended" (event)
         - add to sfdc campaign "Nurture 2026" with status "Sent": done (added)
         - wait: done (until 2026-11-05T09:00:00Z)
         at 2026-11-05T09:00:00Z:
         - remove from sfdc campaign "Q4 Webinar": done (removed)
    memberships:
      "Nurture 2026":
        + ann@example.com "Sent"
      "Q4 Webinar":
        - ann@example.com (was "Attended")
    errors: (none)

Runs are numbered in start order, each with its trigger and its steps in order; a step that ran later than
the one before it (after a wait) is preceded by the time it ran; flows still waiting at the end are listed
under `waiting:`. The world is shown as what changed between
the world as loaded and the world after the replay: memberships, program statuses, persons and campaign fields
(`+` new, `-` gone, `~` changed), in name order. Every time comes from the world and the events; nothing from
the wall clock. Salesforce ids are the local org's, which are deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_result"]

_INDENT = "  "
_EMPTY_WORLD: dict[str, Any] = {"persons": [], "sfdc_campaigns": [], "programs": {}}

_TRIGGER_VERBS = {
    "added_to_sfdc_campaign": "added to",
    "removed_from_sfdc_campaign": "removed from",
    "status_changed_in_sfdc_campaign": "status changed in",
    "program_status_changed": "status changed in",
}
_ORIGINS = {"event": "event", "flow": "flow", "program_sync": "program sync"}
NOT_IN_PROGRAM = "Not in Program"


def _q(value: object) -> str:
    """A name or status in double quotes, as the rule language writes it."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _value(value: object) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def render_trigger(trigger: Mapping[str, Any]) -> str:
    kind = str(trigger.get("type", "?"))
    verb = _TRIGGER_VERBS.get(kind, kind)
    previous = trigger.get("previous_status")
    status = trigger.get("status")
    if kind == "program_status_changed":
        text = f"{verb} program {_q(trigger.get('program', '?'))}"
        text += f" from {_q(previous or NOT_IN_PROGRAM)} to {_q(status or NOT_IN_PROGRAM)}"
    else:
        text = f"{verb} sfdc campaign {_q(trigger.get('campaign', '?'))}"
        if kind == "added_to_sfdc_campaign":
            text += f" with status {_q(status)}"
        elif kind == "removed_from_sfdc_campaign":
            text += f" (was {_q(previous)})" if previous is not None else ""
        else:
            text += f" from {_q(previous)} to {_q(status)}"
    origin = trigger.get("origin")
    if origin is not None:
        text += f" ({_ORIGINS.get(str(origin), str(origin))})"
    return text


_STEP_KEYS = frozenset({"action", "campaign", "program", "status", "outcome", "detail", "at", "branch"})


def render_step(step: Mapping[str, Any]) -> str:
    action = str(step.get("action", "?"))
    campaign = step.get("campaign")
    status = step.get("status")
    if action == "add_to_sfdc_campaign":
        what = f"add to sfdc campaign {_q(campaign)} with status {_q(status)}"
    elif action == "change_status_in_sfdc_campaign":
        what = f"change status in sfdc campaign {_q(campaign)} to {_q(status)}"
    elif action == "remove_from_sfdc_campaign":
        what = f"remove from sfdc campaign {_q(campaign)}"
    elif action == "change_program_status":
        what = f"change program status in program {_q(step.get('program'))} to {_q(status)}"
    elif action in ("wait", "choice"):
        what = action
    else:
        what = action.replace("_", " ")
        for key in ("campaign", "program", "status"):
            if key in step:
                what += f" {key} {_value(step[key])}"
    extras = [f"{key}={_value(step[key])}" for key in sorted(step) if key not in _STEP_KEYS]
    text = f"{what}: {step.get('outcome', '?')}"
    detail = step.get("detail")
    if detail:
        text += f" ({detail})"
    if action == "choice" and step.get("branch") is not None:
        text += f" -> branch {int(step['branch'])}"
    if extras:
        text += " [" + ", ".join(extras) + "]"
    return text


def _render_runs(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    if not runs:
        return ["runs: (none)"]
    out = ["runs:"]
    width = len(str(len(runs)))
    for number, run in enumerate(runs, start=1):
        label = f"{number}.".ljust(width + 1)
        pad = _INDENT + " " * (len(label) + 1)
        out.append(f"{_INDENT}{label} {_q(run.get('campaign'))} for {run.get('person')} at {run.get('at')}")
        trigger = run.get("trigger")
        if isinstance(trigger, Mapping):
            out.append(f"{pad}trigger: {render_trigger(trigger)}")
        clock = run.get("at")
        steps = run.get("steps") or []
        if not steps:
            out.append(f"{pad}(no steps)")
        for step in steps:
            at = step.get("at")
            if at is not None and at != clock:
                out.append(f"{pad}at {at}:")
                clock = at
            out.append(f"{pad}- {render_step(step)}")
    return out


def _members_diff(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """`+ email "S"`, `- email (was "S")`, `~ email "A" -> "B"`, by email (case-insensitive)."""
    old = {email.lower(): (email, status) for email, status in before.items()}
    new = {email.lower(): (email, status) for email, status in after.items()}
    lines: list[tuple[str, str]] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            email, status = new[key]
            lines.append((key, f"+ {email} {_q(status)}"))
        elif key not in new:
            email, status = old[key]
            lines.append((key, f"- {email} (was {_q(status)})"))
        elif old[key][1] != new[key][1]:
            email = new[key][0]
            lines.append((key, f"~ {email} {_q(old[key][1])} -> {_q(new[key][1])}"))
    return [text for _, text in lines]


def _grouped(title: str, groups: list[tuple[str, list[str]]], empty: str | None) -> list[str]:
    groups = [(name, lines) for name, lines in groups if lines]
    if not groups:
        return [f"{title}: {empty}"] if empty is not None else []
    out = [f"{title}:"]
    for name, lines in groups:
        out.append(f"{_INDENT}{_q(name)}:")
        out.extend(f"{_INDENT * 2}{line}" for line in lines)
    return out


def _campaigns(world: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c["name"]): c for c in world.get("sfdc_campaigns", []) or []}


def _render_memberships(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    old, new = _campaigns(before), _campaigns(after)
    groups = [
        (name, _members_diff((old.get(name) or {}).get("members", {}), (new.get(name) or {}).get("members", {})))
        for name in sorted(set(old) | set(new))
    ]
    return _grouped("memberships", groups, "(no changes)")


def _render_programs(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    old = before.get("programs", {}) or {}
    new = after.get("programs", {}) or {}
    groups = [(name, _members_diff(old.get(name, {}), new.get(name, {}))) for name in sorted(set(old) | set(new))]
    return _grouped("programs", groups, None)


def _fields_diff(before: Mapping[str, Any], after: Mapping[str, Any], skip: frozenset[str]) -> list[str]:
    changes = []
    for key in [k for k in before if k not in skip] + [k for k in after if k not in skip and k not in before]:
        if before.get(key) != after.get(key):
            changes.append(f"{key} {_value(before.get(key))} -> {_value(after.get(key))}")
    return changes


def _in_salesforce(person: Mapping[str, Any]) -> str:
    if person.get("sfdc_id"):
        return f"{person.get('sfdc_type') or 'Lead'} {person['sfdc_id']}"
    return "not in Salesforce"


def _render_persons(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    old = {str(p["email"]).lower(): p for p in before.get("persons", []) or []}
    new = {str(p["email"]).lower(): p for p in after.get("persons", []) or []}
    lines: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key not in old:
            lines.append(f"+ {new[key]['email']}: {_in_salesforce(new[key])}")
        elif key not in new:
            lines.append(f"- {old[key]['email']}")
        else:
            changes = []
            if _in_salesforce(old[key]) != _in_salesforce(new[key]):
                changes.append(f"{_in_salesforce(old[key])} -> {_in_salesforce(new[key])}")
            changes.extend(_fields_diff(old[key], new[key], frozenset({"email", "sfdc_id", "sfdc_type"})))
            if changes:
                lines.append(f"~ {new[key]['email']}: " + "; ".join(changes))
    if not lines:
        return []
    return ["persons:", *(f"{_INDENT}{line}" for line in lines)]


def _render_campaign_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    old, new = _campaigns(before), _campaigns(after)
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            lines.append(f"+ {_q(name)}: " + "; ".join(_fields_diff({}, new[name], frozenset({"name", "members"}))))
        elif name not in new:
            lines.append(f"- {_q(name)}")
        else:
            changes = _fields_diff(old[name], new[name], frozenset({"name", "members"}))
            if changes:
                lines.append(f"~ {_q(name)}: " + "; ".join(changes))
    if not lines:
        return []
    return ["campaigns:", *(f"{_INDENT}{line}" for line in lines)]


def render_result(
    result: Mapping[str, Any],
    *,
    initial_world: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
) -> str:
    """The readable text of a REPLAY.md result; the world as a diff from `initial_world` (None: an empty world)."""
    after: Mapping[str, Any] = result.get("world") or _EMPTY_WORLD
    before: Mapping[str, Any] = initial_world if initial_world is not None else _EMPTY_WORLD
    out: list[str] = []
    if before.get("now") is not None or after.get("now") is not None:
        start, end = before.get("now"), after.get("now")
        out.append(f"clock: {start}" if start == end else f"clock: {start or '(none)'} -> {end}")
    out.extend(_render_runs(result.get("runs") or []))
    out.extend(_render_memberships(before, after))
    out.extend(_render_programs(before, after))
    out.extend(_render_persons(before, after))
    out.extend(_render_campaign_fields(before, after))
    waiting = result.get("waiting") or []
    if waiting:
        out.append("waiting:")
        for entry in waiting:
            run = f"run {entry['run']} " if entry.get("run") is not None else ""
            out.append(f"{_INDENT}- {run}{_q(entry.get('campaign'))} for {entry.get('person')}: due {entry.get('due')}")
    errors = result.get("errors") or []
    if not errors:
        out.append("errors: (none)")
    else:
        out.append("errors:")
        out.extend(f"{_INDENT}- {error.get('at')}: {error.get('message')}" for error in errors)
    if warnings:
        out.append("warnings:")
        out.extend(f"{_INDENT}- {warning}" for warning in warnings)
    return "\n".join(line.rstrip() for line in out)
