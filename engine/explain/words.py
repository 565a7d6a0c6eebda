"""The explanation's wording: changes, triggers, qualifications and filter clauses in sentences.

`explain_filter` evaluates a filter for a person now, read-only, every clause with the membership that
decided it; the console words its campaign pages with it, `describe_qualification` and `when`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.explain.model import Clause, TriggerInfo
from engine.language import ast
from engine.language.describe import describe_filter, describe_match
from engine.model.events import Event
from engine.runtime import calendar
from engine.runtime.filters import FilterContext
from engine.runtime.triggers import Change, ref_matches
from engine.store.store import Store


def when(ts: float) -> str:
    """2026-11-03 09:00 (seconds only when there are some)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def location(span: ast.Span) -> str:
    return f"{span.file}:{span.line}"


def _match_miss(label: str, value: str | None, match: ast.StatusMatch) -> str:
    shown = f'"{value}"' if value is not None else "none"
    if match.kind == "is":
        return f"{label} {shown} is not {describe_match(match)}"
    if match.kind == "in":
        return f"{label} {shown} is not one of ({', '.join(_quoted(v) for v in match.values)})"
    return f"{label} {shown} is one of the excluded ({', '.join(_quoted(v) for v in match.values)})"


def _quoted(value: str) -> str:
    return f'"{value}"'


def describe_qualification(rule: ast.Qualification) -> str:
    if rule.kind == "every_time":
        return "qualify every time"
    if rule.kind == "once":
        return "qualify once"
    return f"qualify once every {rule.amount} {rule.unit}{'' if rule.amount == 1 else 's'}"


_KIND_WORDS = {
    "added": "an addition",
    "removed": "a removal",
    "status_changed": "a status change",
    "program_status_changed": "a program status change",
    "requested": "a request",
}

MISS_RANK = {"kind": 0, "campaign": 1, "program": 1, "status": 2}


def describe_change(change: Change) -> str:
    """`status changed in "Q4 Webinar" Registered → Attended (event)` and the like; a request:
    `"Send kit" requested (event)`, `"Send kit" requested by "Signup" (flow of "Signup", depth 1)`."""
    if change.kind == "requested":
        text = f'"{change.requested}" requested' + (f' by "{change.by}"' if change.by is not None else "")
        if change.origin == "event":
            return f"{text} (event)"
        return f'{text} (flow of "{change.chain[-1] if change.chain else "?"}", depth {change.depth})'
    where = f'"{change.campaign.name}"' if change.campaign is not None else f'"{change.program}"'
    if change.kind == "added":
        text = f'added to {where} with status "{change.status}"'
    elif change.kind == "removed":
        text = f'removed from {where} (had status "{change.previous_status}")'
    elif change.kind == "status_changed":
        text = f"status changed in {where} {change.previous_status} → {change.status}"
    else:
        before = change.previous_status or ast.NOT_IN_PROGRAM
        after = change.status or ast.NOT_IN_PROGRAM
        text = f"program status changed in {where} {before} → {after}"
    if change.origin == "event":
        suffix = "event"
    elif change.origin == "flow":
        by = change.chain[-1] if change.chain else "?"
        suffix = f'flow of "{by}", depth {change.depth}'
    else:
        suffix = "program sync" + (f", depth {change.depth}" if change.depth else "")
    return f"{text} ({suffix})"


def trigger_miss(trigger: ast.Trigger, change: Change, campaign: ast.Campaign | None = None) -> tuple[str, str] | None:
    """None when `trigger` fires on `change`, else (what differs, a short reason why not).

    What differs: "kind" (of change), "campaign", "program" or "status" (the near misses). A request fires
    only the campaign it names (`campaign`: the trigger's own campaign)."""
    if trigger.kind != change.kind:
        return "kind", f"wants {_KIND_WORDS[trigger.kind]}, this is {_KIND_WORDS[change.kind]}"
    if trigger.kind == "requested":
        if campaign is not None and change.requested != campaign.name:
            return "campaign", f'the request is for "{change.requested}"'
        return None
    if trigger.kind == "program_status_changed":
        if trigger.program != change.program:
            return "program", f'different program ("{change.program}")'
        previous: str | None = change.previous_status or ast.NOT_IN_PROGRAM
        current: str | None = change.status or ast.NOT_IN_PROGRAM
    else:
        if change.campaign is None or trigger.campaign is None or not ref_matches(trigger.campaign, change.campaign):
            name = change.campaign.name if change.campaign is not None else "?"
            return "campaign", f'different campaign ("{name}")'
        previous, current = change.previous_status, change.status
    if trigger.kind == "added":
        if trigger.status is not None and not trigger.status.matches(current):
            return "status", _match_miss("status", current, trigger.status)
        return None
    if trigger.kind == "removed":
        if trigger.status is not None and not trigger.status.matches(previous):
            return "status", _match_miss("had status", previous, trigger.status)
        return None
    if trigger.from_status is not None and not trigger.from_status.matches(previous):
        return "status", _match_miss("from", previous, trigger.from_status)
    if trigger.to_status is not None and not trigger.to_status.matches(current):
        return "status", _match_miss("to", current, trigger.to_status)
    return None


def explain_filter(expr: ast.FilterExpr, store: Store, person_id: int) -> Clause:
    """Every node of `expr` with its value for the person now, leaves with the membership that decided them.

    Read-only (it never creates a program row, unlike `FilterContext.member_of_program`)."""
    return _clause(expr, FilterContext(store, person_id, store.program_id), _program_ids(store))


def _program_ids(store: Store) -> dict[str, int]:
    return {name: pid for pid, name in store.program_names()}


def _clause(expr: ast.FilterExpr, ctx: FilterContext, programs: dict[str, int]) -> Clause:
    if isinstance(expr, ast.MembershipFilter):
        value, detail = _membership(expr, ctx)
        return Clause("member_of", describe_filter(expr), value, detail)
    if isinstance(expr, ast.ProgramMembershipFilter):
        pid = programs.get(expr.program)
        current = ctx.store.program_statuses(ctx.person_id).get(pid) if pid is not None else None
        if current is None:
            return Clause("member_of_program", describe_filter(expr), False, "not in the program")
        value = expr.status is None or expr.status.matches(current)
        return Clause("member_of_program", describe_filter(expr), value, f'status "{current}"')
    if isinstance(expr, ast.Not):
        inner = _clause(expr.operand, ctx, programs)
        return Clause("not", describe_filter(expr), not inner.value, None, [inner])
    operands = [_clause(op, ctx, programs) for op in expr.operands]
    if isinstance(expr, ast.And):
        return Clause("and", describe_filter(expr), all(o.value for o in operands), None, operands)
    return Clause("or", describe_filter(expr), any(o.value for o in operands), None, operands)


def _membership(flt: ast.MembershipFilter, ctx: FilterContext) -> tuple[bool, str]:
    value = ctx.member_of(flt)
    ref, status = flt.campaign, flt.status
    store = ctx.store
    if ref.is_single:
        info = store.campaign_by_name(ref.values[0]) if ref.kind == "name" else store.campaign_by_sfdc_id(ref.values[0])
        if info is None:
            return value, "no such campaign"
        current = ctx.memberships.get(info.id)
        if current is None:
            return value, "not a member"
        if value:
            return value, f'status "{current}"'
        return value, f'member with status "{current}"'
    hits: list[str] = []
    misses: list[str] = []
    for campaign_id, current in sorted(ctx.memberships.items()):
        info = store.campaign(campaign_id)
        if not ref_matches(ref, info):
            continue
        entry = f'"{info.name}" with status "{current}"'
        (hits if status is None or status.matches(current) else misses).append(entry)
    if value and hits:
        more = f" and {len(hits) - 1} more" if len(hits) > 1 else ""
        return value, f"member of {hits[0]}{more}"
    if misses:
        more = f" and {len(misses) - 1} more" if len(misses) > 1 else ""
        return value, f"member of {misses[0]}{more}"
    return value, "not a member of any of them" if ref.kind == "in" else "no membership matches"


def times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def no_trigger_summary(triggers: list[TriggerInfo], kinds: list[str], change_kind: str) -> str:
    """The closest misses only: a status that differs beats a campaign that differs beats a kind of change."""
    if not triggers:
        return "no trigger matches (the campaign has no triggers)"
    best = max(MISS_RANK.get(t.mismatch or "", 0) for t in triggers)
    closest = [t for t in triggers if MISS_RANK.get(t.mismatch or "", 0) == best]
    if best == 0:
        wanted = list(dict.fromkeys(_KIND_WORDS[kind] for kind in kinds))
        return f"no trigger matches: wants {' or '.join(wanted)}, this is {_KIND_WORDS[change_kind]}"
    reasons = list(dict.fromkeys(t.reason or "" for t in closest))
    return "no trigger matches: " + "; ".join(reasons)


def deciding_clause(clause: Clause) -> str:
    """The clause that made a false line false, with its value: `member of ... → false (not a member)`."""
    if clause.kind == "and":
        for operand in clause.operands:
            if not operand.value:
                return deciding_clause(operand)
    if clause.kind == "not" and clause.operands and not clause.operands[0].operands:
        inner = clause.operands[0]
        detail = f"member, {inner.detail}" if inner.value and inner.detail else inner.detail
        return f"{clause.text} → {truth(clause.value)} ({detail})"
    detail = f" ({clause.detail})" if clause.detail else ""
    return f"{clause.text} → {truth(clause.value)}{detail}"


def truth(value: bool | None) -> str:
    return "true" if value else "false"


def unchanged_reason(event: Event, duplicate: bool) -> str:
    if duplicate:
        return f'ignored: an event with id "{event.id}" was seen before (duplicate delivery)'
    target = event.campaign or event.campaign_id
    if event.type == "program_status_changed":
        return f'no change: already has status "{event.status}" in program "{event.program}", so no trigger fires'
    if event.type == "removed_from_sfdc_campaign":
        return f'no change: not a member of "{target}", so no trigger fires'
    return f'no change: already a member of "{target}" with status "{event.status}", so no trigger fires'


def qualification_reason(rule: ast.Qualification, ok: bool, last: tuple[float, int] | None) -> str:
    """Why the qualification let the person run or not, from the last run it counted (started at, runs)."""
    if rule.kind == "every_time":
        reason = "every trigger qualifies"
        if last is not None:
            reason += f" (ran {times(last[1])} before, last at {when(last[0])})"
        return reason
    if last is None:
        return "never ran through this campaign before"
    if rule.kind == "once":
        return f"already ran {times(last[1])}, last at {when(last[0])}"
    if ok:
        return f"last run {when(last[0])} ({times(last[1])}): the window ended {when(last[0] + rule.window_seconds)}"
    return f"last run {when(last[0])} ({times(last[1])}): not again before {when(last[0] + rule.window_seconds)}"


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st."""
    if 10 <= number % 100 <= 20:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def local_time(ts: float, zone: str) -> str:
    """The moment in a time zone: `2026-11-10 10:00 CET` (seconds only when there are some)."""
    moment = datetime.fromtimestamp(ts, calendar.zone(zone))
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z" if moment.second else "%Y-%m-%d %H:%M %Z")
