"""Explain: why did (or didn't) a person go through a smart campaign?

`explain()` runs a replay (REPLAY.md) with a tracer and records, for every change the interpreter
dispatched (optionally only one person's) and every campaign of the rule set (optionally only one):

- whether a trigger matched, which one (`file:line` and its text), or why none did;
- whether the campaign was inactive;
- the qualification decision and the last run it counted;
- each filter line with its value, and the value of every clause inside it, evaluated against the
  person's memberships at the moment the interpreter evaluated that line; lines after the first false
  one are listed as not evaluated;
- the run: each choice (every condition evaluated, the branch taken), each step with its outcome and
  detail, and the steps a wait's continuation ran later (attached to the same run).

Events that changed nothing (a duplicate id, an observation equal to the mirror) are listed too: they
are a common answer to "why didn't it trigger?".

`Explanation.to_json()` gives a stable, JSON-ready dict; `render_text()` prints an indented Rich tree.

JSON shape (`version` 1; keys are never renamed or dropped, only added):

    {
      "version": 1,
      "person": "ann@example.com" | null,          # the --person filter
      "campaign": "Webinar follow-up" | null,      # the --campaign filter
      "changes": [Change, ...],                    # in dispatch order
      "unchanged_events": [UnchangedEvent, ...],   # events that dispatched no change
      "errors": [{"message": str, "at": ISO}],     # the replay's errors (cascade cuts, sync problems)
      "notes": [str, ...]                          # e.g. the person was never seen
    }
    Change = {
      "at": ISO, "person": email, "type": "added_to_sfdc_campaign" | "removed_from_sfdc_campaign" |
      "status_changed_in_sfdc_campaign" | "program_status_changed",
      "sfdc_campaign": name | null, "program": name | null,
      "previous_status": str | null, "status": str | null,
      "origin": "event" | "flow" | "program_sync", "depth": int, "chain": [campaign, ...],
      "text": one-line description, "cascade_cut": message | null,
      "campaigns": [CampaignDecision, ...]         # declaration order
    }
    CampaignDecision = {
      "campaign": name, "location": "file:line", "active": bool,
      "result": "ran" | "no_trigger" | "inactive" | "not_qualified" | "filtered_out" | "cascade_cut",
      "summary": one-line reason,
      "triggered": bool,
      "trigger": Trigger | null,                   # the trigger the interpreter matched
      "triggers": [Trigger, ...],                  # every trigger of the campaign, matched or not
      "qualification": Qualification | null,       # null: not reached
      "filters": [FilterLine, ...],                # empty: not reached (or the campaign has none)
      "run": Run | null
    }
    Trigger = {"location": "file:line", "text": str, "matched": bool, "reason": str | null}
    Qualification = {"rule": "qualify once" | ..., "ok": bool, "reason": str,
                     "last_run": {"at": ISO, "runs": int} | null}
    FilterLine = {"location": "file:line", "text": str, "evaluated": bool, "value": bool | null,
                  "clause": Clause | null}
    Clause = {"kind": "member_of" | "member_of_program" | "not" | "and" | "or", "text": str,
              "value": bool, "detail": str | null, "operands": [Clause, ...]}
    Run = {"run_id": int, "at": ISO, "steps": [Step, ...], "waiting_until": ISO | null}
    Step = {"kind": "action" | "wait" | "choice", "text": str, "location": "file:line", "at": ISO,
            "outcome": "done" | "skipped" | "error", "detail": str,
            "level": int,                          # nesting: 0 top level, 1 inside a branch, ...
            "segment": int,                        # 0 the run's start, n the continuation after the n-th wait
            "branch": int | null,                  # choices: the branch taken (1-based), null none
            "conditions": [{"branch": int, "text": str, "value": bool, "clause": Clause}]}  # choices
    UnchangedEvent = {"file": str, "line": int, "at": ISO, "person": email, "reason": str}
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from engine.crm.local import LocalOrg
from engine.language import ast
from engine.language.describe import describe_filter, describe_match, describe_step, describe_trigger
from engine.model.events import Event
from engine.model.loading import InputError
from engine.model.world import World, as_utc
from engine.replay.run import ReplayInputEvent, ResultRecorder, process_event, seed_world, validate_events
from engine.runtime.filters import FilterContext
from engine.runtime.interpreter import DEFAULT_MAX_DEPTH, Interpreter, RunContext, iso
from engine.runtime.triggers import KIND_NAMES, Change, ref_matches
from engine.store.store import MEMORY_URL, Store
from engine.sync.programs import program_sync as sync_hook

JSON_VERSION = 1

RESULTS = ("ran", "no_trigger", "inactive", "not_qualified", "filtered_out", "cascade_cut")


# ---------------------------------------------------------------------------------------------- model
@dataclass
class Clause:
    """One node of a filter expression with its value at the moment it was evaluated."""

    kind: str  # member_of | member_of_program | not | and | or
    text: str
    value: bool
    detail: str | None = None  # leaves: the person's membership that decided it
    operands: list[Clause] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "value": self.value,
            "detail": self.detail,
            "operands": [o.to_json() for o in self.operands],
        }


@dataclass
class TriggerInfo:
    location: str
    text: str
    matched: bool
    reason: str | None = None  # why it did not match
    mismatch: str | None = None  # what differs: kind | campaign | program | status

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "text": self.text,
            "matched": self.matched,
            "reason": self.reason,
            "mismatch": self.mismatch,
        }


@dataclass
class QualificationDecision:
    rule: str
    ok: bool
    reason: str
    last_run_at: float | None = None
    runs: int = 0

    def to_json(self) -> dict[str, Any]:
        last = None if self.last_run_at is None else {"at": iso(self.last_run_at), "runs": self.runs}
        return {"rule": self.rule, "ok": self.ok, "reason": self.reason, "last_run": last}


@dataclass
class FilterLine:
    location: str
    text: str
    evaluated: bool
    value: bool | None = None
    clause: Clause | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "text": self.text,
            "evaluated": self.evaluated,
            "value": self.value,
            "clause": self.clause.to_json() if self.clause is not None else None,
        }


@dataclass
class Condition:
    branch: int
    text: str
    value: bool
    clause: Clause

    def to_json(self) -> dict[str, Any]:
        return {"branch": self.branch + 1, "text": self.text, "value": self.value, "clause": self.clause.to_json()}


@dataclass
class StepRecord:
    kind: str  # action | wait | choice
    text: str
    location: str
    at: float
    outcome: str
    detail: str
    level: int = 0
    segment: int = 0
    branch: int | None = None
    conditions: list[Condition] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "text": self.text,
            "location": self.location,
            "at": iso(self.at),
            "outcome": self.outcome,
            "detail": self.detail,
            "level": self.level,
            "segment": self.segment,
            "branch": None if self.branch is None else self.branch + 1,
            "conditions": [c.to_json() for c in self.conditions],
        }


@dataclass
class RunRecord:
    run_id: int
    at: float
    steps: list[StepRecord] = field(default_factory=list)
    waiting_until: float | None = None  # a wait whose continuation had not run when the replay ended

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "at": iso(self.at),
            "steps": [s.to_json() for s in self.steps],
            "waiting_until": iso(self.waiting_until) if self.waiting_until is not None else None,
        }


@dataclass
class CampaignDecision:
    campaign: str
    location: str
    active: bool
    result: str = "no_trigger"
    summary: str = ""
    triggered: bool = False
    trigger: TriggerInfo | None = None
    triggers: list[TriggerInfo] = field(default_factory=list)
    qualification: QualificationDecision | None = None
    filters: list[FilterLine] = field(default_factory=list)
    run: RunRecord | None = None

    @property
    def ran(self) -> bool:
        return self.result == "ran"

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "location": self.location,
            "active": self.active,
            "result": self.result,
            "summary": self.summary,
            "triggered": self.triggered,
            "trigger": self.trigger.to_json() if self.trigger is not None else None,
            "triggers": [t.to_json() for t in self.triggers],
            "qualification": self.qualification.to_json() if self.qualification is not None else None,
            "filters": [f.to_json() for f in self.filters],
            "run": self.run.to_json() if self.run is not None else None,
        }


@dataclass
class ChangeRecord:
    at: float
    person: str
    type: str
    sfdc_campaign: str | None
    program: str | None
    previous_status: str | None
    status: str | None
    origin: str
    depth: int
    chain: tuple[str, ...]
    text: str
    campaigns: list[CampaignDecision] = field(default_factory=list)
    cascade_cut: str | None = None
    order: int = 0  # position among changes and unchanged events, for the text rendering

    def campaign(self, name: str) -> CampaignDecision:
        for decision in self.campaigns:
            if decision.campaign == name:
                return decision
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "person": self.person,
            "type": self.type,
            "sfdc_campaign": self.sfdc_campaign,
            "program": self.program,
            "previous_status": self.previous_status,
            "status": self.status,
            "origin": self.origin,
            "depth": self.depth,
            "chain": list(self.chain),
            "text": self.text,
            "cascade_cut": self.cascade_cut,
            "campaigns": [c.to_json() for c in self.campaigns],
        }


@dataclass
class UnchangedEvent:
    file: str
    line: int
    at: float
    person: str
    reason: str
    order: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "at": iso(self.at), "person": self.person, "reason": self.reason}


@dataclass
class Explanation:
    person: str | None
    campaign: str | None
    changes: list[ChangeRecord] = field(default_factory=list)
    unchanged_events: list[UnchangedEvent] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def decisions(self, campaign: str) -> list[tuple[ChangeRecord, CampaignDecision]]:
        """Every (change, decision) for one campaign, in dispatch order."""
        out = []
        for change in self.changes:
            for decision in change.campaigns:
                if decision.campaign == campaign:
                    out.append((change, decision))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "person": self.person,
            "campaign": self.campaign,
            "changes": [c.to_json() for c in self.changes],
            "unchanged_events": [e.to_json() for e in self.unchanged_events],
            "errors": list(self.errors),
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------- words
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
}

MISS_RANK = {"kind": 0, "campaign": 1, "program": 1, "status": 2}


def describe_change(change: Change) -> str:
    """`status changed in "Q4 Webinar" Registered → Attended (event)` and the like."""
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


def trigger_miss(trigger: ast.Trigger, change: Change) -> tuple[str, str] | None:
    """None when `trigger` fires on `change`, else (what differs, a short reason why not).

    What differs: "kind" (of change), "campaign", "program" or "status" (the near misses)."""
    if trigger.kind != change.kind:
        return "kind", f"wants {_KIND_WORDS[trigger.kind]}, this is {_KIND_WORDS[change.kind]}"
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


# ---------------------------------------------------------------------------------------------- filters
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


# ---------------------------------------------------------------------------------------------- tracer
@dataclass
class _StepPlace:
    level: int
    rest: bool  # something follows this step (in its branch or after the enclosing choices)


def _places(flow: tuple[ast.FlowStep, ...]) -> dict[int, _StepPlace]:
    """id(step node) -> where it sits in the flow."""
    out: dict[int, _StepPlace] = {}

    def walk(steps: tuple[ast.FlowStep, ...], level: int, rest_after: bool) -> None:
        for number, step in enumerate(steps):
            following = number < len(steps) - 1 or rest_after
            out[id(step)] = _StepPlace(level, following)
            if isinstance(step, ast.Choice):
                for branch in step.branches:
                    walk(branch.steps, level + 1, following)

    walk(flow, 0, False)
    return out


@dataclass
class _LiveRun:
    record: RunRecord
    campaign: ast.Campaign
    segment: int = 0
    waiting: float | None = None  # due time of a wait whose continuation has not run yet
    conditions: list[Condition] = field(default_factory=list)


class ExplainTracer:
    """The interpreter's tracer for `explain`: builds the explanation as the replay runs.

    Set `interp` before the first event: filter clauses are evaluated against its store when the
    interpreter evaluates the line."""

    def __init__(self, rule_set: ast.RuleSet, campaigns: list[ast.Campaign], person: str | None) -> None:
        self.rule_set = rule_set
        self.campaigns = campaigns
        self.person = person.lower() if person else None
        self.interp: Interpreter | None = None
        self.changes: list[ChangeRecord] = []
        self.unchanged: list[UnchangedEvent] = []
        self._current: ChangeRecord | None = None
        self._current_change: Change | None = None
        self._runs: dict[int, _LiveRun] = {}
        self._places: dict[int, _StepPlace] = {}
        for campaign in rule_set.campaigns:
            self._places.update(_places(campaign.flow))
        self._order = 0
        self._event_changes = 0

    # -------------------------------------------------------------------------- the Tracer protocol
    def event(self, kind: str, **data: Any) -> None:
        handler = getattr(self, "_on_" + kind, None)
        if handler is not None:
            handler(**data)

    def _wanted(self, email: str) -> bool:
        return self.person is None or email.lower() == self.person

    def _decision(self, change: Change, campaign: ast.Campaign) -> CampaignDecision | None:
        if self._current is None or self._current_change is not change:
            return None
        for decision in self._current.campaigns:
            if decision.campaign == campaign.name:
                return decision
        return None

    def _on_change(self, change: Change, **_: Any) -> None:
        if change.origin == "event" and change.depth == 0:
            self._event_changes += 1
        if not self._wanted(change.person.email):
            self._current, self._current_change = None, None
            return
        self._order += 1
        record = ChangeRecord(
            at=change.at,
            person=change.person.email,
            type=KIND_NAMES[change.kind],
            sfdc_campaign=change.campaign.name if change.campaign is not None else None,
            program=change.program,
            previous_status=change.previous_status,
            status=change.status,
            origin=change.origin,
            depth=change.depth,
            chain=change.chain,
            text=describe_change(change),
            order=self._order,
        )
        for campaign in self.campaigns:
            triggers = []
            for trigger in campaign.triggers:
                miss = trigger_miss(trigger, change)
                triggers.append(
                    TriggerInfo(
                        location(trigger.span),
                        describe_trigger(trigger),
                        miss is None,
                        miss[1] if miss is not None else None,
                        miss[0] if miss is not None else None,
                    )
                )
            decision = CampaignDecision(campaign.name, location(campaign.name_span), campaign.active, triggers=triggers)
            decision.summary = _no_trigger_summary(triggers, [t.kind for t in campaign.triggers], change.kind)
            record.campaigns.append(decision)
        self.changes.append(record)
        self._current, self._current_change = record, change

    def _on_cascade_cut(self, change: Change, message: str, **_: Any) -> None:
        if self._current is None or self._current_change is not change:
            return
        self._current.cascade_cut = message
        for decision in self._current.campaigns:
            if any(t.matched for t in decision.triggers):
                decision.result = "cascade_cut"
                decision.triggered = True
                decision.trigger = next(t for t in decision.triggers if t.matched)
                decision.summary = "trigger matched, but not run: the cascade went deeper than the limit"

    def _on_trigger(self, change: Change, campaign: ast.Campaign, trigger: ast.Trigger, **_: Any) -> None:
        decision = self._decision(change, campaign)
        if decision is None:
            return
        decision.triggered = True
        for info, node in zip(decision.triggers, campaign.triggers, strict=True):
            if node is trigger:
                info.matched, info.reason, info.mismatch = True, None, None
                decision.trigger = info
        if decision.trigger is None:  # not one of the campaign's own nodes: should not happen
            decision.trigger = TriggerInfo(location(trigger.span), describe_trigger(trigger), True)
        decision.result = "ran"
        decision.summary = "trigger matched"

    def _on_inactive(self, change: Change, campaign: ast.Campaign, **_: Any) -> None:
        decision = self._decision(change, campaign)
        if decision is not None:
            decision.result = "inactive"
            decision.summary = "trigger matched, but the campaign is inactive (it takes no new runs)"

    def _on_qualification(
        self, change: Change, campaign: ast.Campaign, ok: bool, last: tuple[float, int] | None, **_: Any
    ) -> None:
        decision = self._decision(change, campaign)
        if decision is None:
            return
        rule = campaign.qualification
        text = describe_qualification(rule)
        if rule.kind == "every_time":
            if last is None and self.interp is not None:  # the interpreter does not look; the record still helps
                last = self.interp.store.qualification(campaign.name, change.person.id)
            reason = "every trigger qualifies"
            if last is not None:
                reason += f" (ran {_times(last[1])} before, last at {when(last[0])})"
        elif last is None:
            reason = "never ran through this campaign before"
        elif rule.kind == "once":
            reason = f"already ran {_times(last[1])}, last at {when(last[0])}"
        elif ok:
            reason = (
                f"last run {when(last[0])} ({_times(last[1])}): the window ended {when(last[0] + rule.window_seconds)}"
            )
        else:
            reason = (
                f"last run {when(last[0])} ({_times(last[1])}): not again before {when(last[0] + rule.window_seconds)}"
            )
        decision.qualification = QualificationDecision(
            text, ok, reason, last[0] if last is not None else None, last[1] if last is not None else 0
        )
        if not ok:
            decision.result = "not_qualified"
            decision.summary = f"trigger matched, but {text} blocked it"

    def _on_filter(self, change: Change, campaign: ast.Campaign, expr: ast.FilterExpr, value: bool, **_: Any) -> None:
        decision = self._decision(change, campaign)
        if decision is None or self.interp is None:
            return
        clause = explain_filter(expr, self.interp.store, change.person.id)
        clause.value = value  # the interpreter's own verdict for the line
        decision.filters.append(FilterLine(location(expr.span), describe_filter(expr), True, value, clause))
        if value:
            return
        number = len(decision.filters)
        for later in campaign.filters[number:]:
            decision.filters.append(FilterLine(location(later.span), describe_filter(later), False))
        decision.result = "filtered_out"
        decision.summary = f"trigger matched, but filter line {number} is false: {_deciding(clause)}"

    def _on_run(self, run: RunContext, change: Change, **_: Any) -> None:
        decision = self._decision(change, run.campaign)
        if decision is None:
            return
        record = RunRecord(run.run_id, change.at)
        decision.run = record
        decision.result = "ran"
        decision.summary = f"ran (run #{run.run_id})"
        self._runs[run.run_id] = _LiveRun(record, run.campaign)

    def _live(self, run: RunContext) -> _LiveRun | None:
        live = self._runs.get(run.run_id)
        if live is None:
            return None
        if live.waiting is not None:  # the first thing after a wait: its continuation
            live.waiting = None
            live.segment += 1
        return live

    def _on_choice_condition(self, run: RunContext, branch: int, expr: ast.FilterExpr, value: bool, **_: Any) -> None:
        live = self._live(run)
        if live is None or self.interp is None:
            return
        clause = explain_filter(expr, self.interp.store, run.person.id)
        clause.value = value
        prefix = "if " if branch == 0 else "else if "
        live.conditions.append(Condition(branch, prefix + describe_filter(expr), value, clause))

    def _on_choice(self, run: RunContext, choice: ast.Choice, branch: int | None, **_: Any) -> None:
        live = self._live(run)
        if live is None:
            return
        if branch is None:
            outcome, detail = "skipped", "no branch applies"
        else:
            condition = choice.branches[branch].condition
            if condition is None:
                arm = "else" if len(choice.branches) > 1 else "always"
            else:
                arm = ("if " if branch == 0 else "else if ") + describe_filter(condition)
            outcome, detail = "done", f"branch {branch + 1} of {len(choice.branches)}: {arm}"
        self._add_step(live, choice, "choice", outcome, detail, branch=branch, conditions=live.conditions)
        live.conditions = []

    def _on_step(self, run: RunContext, step: ast.FlowStep, outcome: str, detail: str, **_: Any) -> None:
        live = self._live(run)
        if live is None:
            return
        kind = "wait" if isinstance(step, ast.Wait) else "action"
        self._add_step(live, step, kind, outcome, detail)
        if isinstance(step, ast.Wait) and self.interp is not None:
            place = self._places.get(id(step))
            if place is None or place.rest:
                live.waiting = self.interp.clock + step.seconds

    def _add_step(
        self,
        live: _LiveRun,
        step: ast.FlowStep,
        kind: str,
        outcome: str,
        detail: str,
        *,
        branch: int | None = None,
        conditions: list[Condition] | None = None,
    ) -> None:
        place = self._places.get(id(step))
        at = self.interp.clock if self.interp is not None else live.record.at
        live.record.steps.append(
            StepRecord(
                kind,
                describe_step(step),
                location(step.span),
                at,
                outcome,
                detail,
                place.level if place is not None else 0,
                live.segment,
                branch,
                list(conditions or []),
            )
        )

    # -------------------------------------------------------------------------- around each event
    def before_event(self) -> None:
        self._event_changes = 0

    def after_event(self, item: ReplayInputEvent, duplicate: bool, at: float) -> None:
        """Notes an event that dispatched no change (a duplicate, or an observation equal to the mirror)."""
        event = item.event
        if self._event_changes or not self._wanted(event.person):
            return
        self._order += 1
        self.unchanged.append(
            UnchangedEvent(item.file, item.line, at, event.person, _unchanged_reason(event, duplicate), self._order)
        )

    def finish(self) -> None:
        for live in self._runs.values():
            live.record.waiting_until = live.waiting


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _no_trigger_summary(triggers: list[TriggerInfo], kinds: list[str], change_kind: str) -> str:
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


def _deciding(clause: Clause) -> str:
    """The clause that made a false line false, with its value: `member of ... → false (not a member)`."""
    if clause.kind == "and":
        for operand in clause.operands:
            if not operand.value:
                return _deciding(operand)
    if clause.kind == "not" and clause.operands and not clause.operands[0].operands:
        inner = clause.operands[0]
        detail = f"member, {inner.detail}" if inner.value and inner.detail else inner.detail
        return f"{clause.text} → {_bool(clause.value)} ({detail})"
    detail = f" ({clause.detail})" if clause.detail else ""
    return f"{clause.text} → {_bool(clause.value)}{detail}"


def _bool(value: bool | None) -> str:
    return "true" if value else "false"


def _unchanged_reason(event: Event, duplicate: bool) -> str:
    if duplicate:
        return f'ignored: an event with id "{event.id}" was seen before (duplicate delivery)'
    target = event.campaign or event.campaign_id
    if event.type == "program_status_changed":
        return f'no change: already has status "{event.status}" in program "{event.program}", so no trigger fires'
    if event.type == "removed_from_sfdc_campaign":
        return f'no change: not a member of "{target}", so no trigger fires'
    return f'no change: already a member of "{target}" with status "{event.status}", so no trigger fires'


# ---------------------------------------------------------------------------------------------- explain
def select_campaigns(rule_set: ast.RuleSet, name: str | None) -> list[ast.Campaign]:
    """Every campaign, or the one named (exactly, else case-insensitively); InputError naming the known ones."""
    if name is None:
        return list(rule_set.campaigns)
    found = rule_set.campaign(name)
    if found is None:
        folded = [c for c in rule_set.campaigns if c.name.casefold() == name.casefold()]
        found = folded[0] if len(folded) == 1 else None
    if found is None:
        known = ", ".join(f'"{c.name}"' for c in rule_set.campaigns) or "none"
        raise InputError(f'--campaign: the rules declare no campaign "{name}" (campaigns: {known})')
    return [found]


def explain(
    rule_set: ast.RuleSet,
    world: World,
    events: Iterable[ReplayInputEvent | Event],
    *,
    person: str | None = None,
    campaign: str | None = None,
    until: datetime | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    program_sync: bool = True,
    warn: Callable[[str], None] | None = None,
) -> Explanation:
    """Replays `events` over `world` and explains every campaign decision (for `person`, for `campaign`).

    Raises InputError for unusable input (as `replay` does) and for a `campaign` the rules do not declare.
    """
    items = [e if isinstance(e, ReplayInputEvent) else ReplayInputEvent(e, n) for n, e in enumerate(events, 1)]
    selected = select_campaigns(rule_set, campaign)
    explanation = Explanation(person, selected[0].name if campaign is not None else None)
    tracer = ExplainTracer(rule_set, selected, person)
    recorder = ResultRecorder()
    store = Store.open(MEMORY_URL)
    try:
        org = LocalOrg(store)
        seed_world(store, org, world, rule_set)
        validate_events(items, store, rule_set)
        interp = Interpreter(
            rule_set,
            store,
            org,
            recorder=recorder,
            max_depth=max_depth,
            program_sync=sync_hook(enabled=program_sync),
            tracer=tracer,
        )
        tracer.interp = interp
        interp.set_clock(as_utc(world.now).timestamp())
        interp.programs.link_all()
        for item in items:
            duplicate = item.event.id is not None and store.seen_event(item.event.id)
            tracer.before_event()
            process_event(interp, item, warn or (lambda message: None))
            tracer.after_event(item, duplicate, interp.clock)
        until_ts = as_utc(until).timestamp() if until is not None else None
        interp.run_due(until_ts)
        tracer.finish()
        if person is not None and not tracer.changes:
            if store.person(person) is None:
                explanation.notes.append(f"{person}: no such person in the world or the events")
            else:
                explanation.notes.append(f"{person}: no event or flow changed this person's memberships")
    finally:
        store.close()
    explanation.changes = tracer.changes
    explanation.unchanged_events = tracer.unchanged
    explanation.errors = recorder.errors
    return explanation


# ---------------------------------------------------------------------------------------------- text
_OUTCOME = {"done": ("✓", "green"), "skipped": ("↷", "yellow"), "error": ("✗", "bold red")}
_ISO = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?Z")


def _pretty_times(text: str) -> str:
    """2026-11-14T17:05:00Z -> 2026-11-14 17:05 (seconds kept when not zero)."""
    return _ISO.sub(lambda m: f"{m[1]} {m[2]}" + (m[3] if m[3] and m[3] != ":00" else ""), text)


def _mark(ok: bool | None) -> Text:
    if ok is None:
        return Text("· ", style="dim")
    return Text("✓ ", style="green") if ok else Text("✗ ", style="red")


def _is_leaf(clause: Clause) -> bool:
    return not clause.operands or (clause.kind == "not" and not clause.operands[0].operands)


def _clause_label(clause: Clause, prefix: str = "", value: bool | None = None) -> Text:
    """One line: `member of sfdc campaign "X" → true (status "Sent")`; `not` of a leaf folds into one line."""
    detail = clause.detail if _is_leaf(clause) else None
    if clause.kind == "not" and clause.operands and not clause.operands[0].operands:
        inner = clause.operands[0]
        detail = f"member, {inner.detail}" if inner.value and inner.detail else inner.detail
    value = clause.value if value is None else value
    label = _mark(value)
    label.append(prefix + clause.text)
    label.append(f" → {_bool(value)}", style="bold")
    if detail:
        label.append(f" ({detail})", style="italic")
    return label


def _add_clause_children(node: Tree, clause: Clause) -> None:
    """The operands of a compound clause, recursively (a leaf's line says it all)."""
    if _is_leaf(clause):
        return
    if clause.kind == "not":  # not (a or b): the inner compound, then its operands
        clause = clause.operands[0]
        node = node.add(_clause_label(clause))
    for operand in clause.operands:
        _add_clause_children(node.add(_clause_label(operand)), operand)


def _files_of(explanation: Explanation) -> set[str]:
    locations: list[str] = []
    for change in explanation.changes:
        for decision in change.campaigns:
            locations.append(decision.location)
            locations += [t.location for t in decision.triggers]
            locations += [f.location for f in decision.filters]
            if decision.run is not None:
                locations += [s.location for s in decision.run.steps]
    return {loc.rpartition(":")[0] for loc in locations}


class _TextRenderer:
    """Builds the Rich trees; `file:line` locations are shown relative to the rule files' common folder."""

    def __init__(self, explanation: Explanation) -> None:
        files = _files_of(explanation)
        self.base = ""
        if files:
            common = os.path.commonpath([os.path.dirname(f) or "." for f in files]) if len(files) > 1 else ""
            self.base = common if len(files) > 1 else os.path.dirname(next(iter(files)))

    def where(self, loc: str) -> Text:
        if self.base and loc.startswith(self.base + os.sep):
            loc = loc[len(self.base) + 1 :]
        return Text(f"  {loc}", style="dim")

    def filter_node(self, parent: Tree, line: FilterLine) -> None:
        if not line.evaluated or line.clause is None:
            label = _mark(None)
            label.append(f"filter {line.text}", style="dim")
            label.append(" → not evaluated (an earlier filter line was false)", style="dim")
        else:
            label = _clause_label(line.clause, "filter ", line.value)
        label.append_text(self.where(line.location))
        node = parent.add(label)
        if line.clause is not None:
            _add_clause_children(node, line.clause)

    def step_label(self, step: StepRecord) -> Text:
        mark, style = _OUTCOME.get(step.outcome, ("?", ""))
        label = Text(mark + " ", style=style)
        if step.kind == "choice":
            label.append("choice")
            label.append(f" → {step.detail}" if step.outcome == "done" else f" → skipped: {step.detail}")
        else:
            label.append(step.text)
            label.append(f" → {step.outcome}", style=style)
            if step.detail:
                label.append(f": {_pretty_times(step.detail)}")
        label.append_text(self.where(step.location))
        return label

    def run_node(self, parent: Tree, run: RunRecord) -> None:
        node = parent.add(Text.assemble(("run ", "bold"), f"#{run.run_id} started {when(run.at)}"))
        stack: list[Tree] = [node]
        segment = 0
        for step in run.steps:
            if step.segment != segment:
                segment = step.segment
                stack = [node.add(Text(f"⏵ resumed {when(step.at)} after the wait", style="cyan"))]
            child = stack[min(step.level, len(stack) - 1)].add(self.step_label(step))
            if step.kind == "choice":
                for condition in step.conditions:
                    prefix = "if " if condition.branch == 0 else "else if "
                    label = _clause_label(condition.clause, prefix, condition.value)
                    _add_clause_children(child.add(label), condition.clause)
                del stack[step.level + 1 :]
                stack.append(child)
        if run.waiting_until is not None:
            node.add(Text(f"⏳ still waiting when the replay ended (due {when(run.waiting_until)})", style="cyan"))

    def campaign_node(self, parent: Tree, decision: CampaignDecision) -> None:
        label = _mark(decision.ran)
        label.append(decision.campaign, style="bold")
        label.append(f" — {decision.summary}")
        node = parent.add(label)
        if not decision.triggered:
            return
        if decision.trigger is not None:
            line = Text.assemble(_mark(True), f"trigger {decision.trigger.text}")
            line.append_text(self.where(decision.trigger.location))
            node.add(line)
        if decision.result == "inactive":
            node.add(Text.assemble(_mark(False), "inactive: the campaign takes no new runs"))
        if decision.qualification is not None:
            q = decision.qualification
            node.add(Text.assemble(_mark(q.ok), q.rule, (" → ok" if q.ok else " → blocked", "bold"), f": {q.reason}"))
        for filter_line in decision.filters:
            self.filter_node(node, filter_line)
        if decision.run is not None:
            self.run_node(node, decision.run)

    def change_tree(self, change: ChangeRecord) -> Tree:
        label = Text.assemble((when(change.at), "cyan"), " ", (change.person, "bold"), f": {change.text}")
        tree = Tree(label, guide_style="dim")
        if change.cascade_cut:
            tree.add(Text(f"✗ cascade cut: {change.cascade_cut}", style="bold red"))
        for decision in change.campaigns:
            self.campaign_node(tree, decision)
        return tree


def change_tree(change: ChangeRecord) -> Tree:
    """One change as a Rich tree (locations as given)."""
    return _TextRenderer(Explanation(None, None, [change])).change_tree(change)


def render_text(explanation: Explanation, console: Console | None = None) -> None:
    """Prints the explanation as indented trees: one per change, campaigns beneath, details beneath them."""
    console = console or Console()
    renderer = _TextRenderer(explanation)
    who = explanation.person or "every person"
    what = f'campaign "{explanation.campaign}"' if explanation.campaign else "every campaign"
    count = len(explanation.changes)
    console.print(Text(f"Why: {who}, {what} ({count} change{'' if count == 1 else 's'})", style="bold"))
    for note in explanation.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    entries: list[tuple[int, ChangeRecord | UnchangedEvent]] = [(c.order, c) for c in explanation.changes]
    entries += [(e.order, e) for e in explanation.unchanged_events]
    for _, entry in sorted(entries, key=lambda pair: pair[0]):
        console.print()
        if isinstance(entry, ChangeRecord):
            console.print(renderer.change_tree(entry))
        else:
            console.print(
                Text.assemble(
                    (when(entry.at), "cyan"),
                    " ",
                    (entry.person, "bold"),
                    f": {entry.file}:{entry.line}: ",
                    (entry.reason, "yellow"),
                )
            )
    if explanation.errors:
        console.print()
        console.print(Text(f"Errors ({len(explanation.errors)})", style="bold red"))
        for error in explanation.errors:
            console.print(Text(f"  {_pretty_times(error['at'])}  {error['message']}"))
