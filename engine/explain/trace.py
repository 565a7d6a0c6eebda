"""The tracing: the tracer hooked into the interpreter during a replay, and the replay it drives.

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

A batch campaign's run at a slot of its schedule is not a change: it gets a record of its own (`BatchRecord`)
with its counts (passed the filters, qualified, selected, cut by the limit) and, for the explained person,
whether the run picked them and why not (each filter line, the qualification at the slot, the limit), and the
run that followed. An `execute campaign` step carries the executed campaign's decision and its run.

By job: this module has the tracer's core (changes, triggers, qualification, filters, runs and their steps) and
the replay it drives; `batches` traces batch runs, `executed` executed campaigns, `runs` has what they share.

The replay is the replay's own driver (`Schedules`, `ReplayDriver`) on an in-memory store, so explain sees
what `replay` does: continuations and schedule slots in time order, up to `until`.

Events that changed nothing (a duplicate id, an observation equal to the mirror) are listed too: they
are a common answer to "why didn't it trigger?".

`Explanation.to_json()` (model) gives a stable, JSON-ready dict; `render_text()` (render) prints an indented Rich tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.crm.local import LocalOrg
from engine.explain.batches import BatchTracing
from engine.explain.executed import ExecutedTracing
from engine.explain.model import (
    CampaignDecision,
    ChangeRecord,
    Condition,
    Explanation,
    FilterLine,
    RunRecord,
    StepRecord,
    TriggerInfo,
    UnchangedEvent,
)
from engine.explain.runs import LiveRun, qualification_decision
from engine.explain.words import (
    deciding_clause,
    describe_change,
    describe_qualification,
    explain_filter,
    location,
    no_trigger_summary,
    trigger_miss,
    unchanged_reason,
)
from engine.language import ast
from engine.language.describe import describe_filter, describe_step, describe_trigger
from engine.model.events import Event
from engine.model.loading import InputError
from engine.model.world import World, as_utc
from engine.replay.run import (
    ReplayDriver,
    ReplayInputEvent,
    ResultRecorder,
    Schedules,
    process_event,
    seed_world,
    validate_events,
)
from engine.runtime.interpreter import DEFAULT_MAX_DEPTH, Interpreter, RunContext
from engine.runtime.triggers import KIND_NAMES, Change
from engine.store.store import MEMORY_URL, Store
from engine.sync.programs import program_sync as sync_hook


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


class ExplainTracer(BatchTracing, ExecutedTracing):
    """The interpreter's tracer for `explain`: builds the explanation as the replay runs.

    Set `interp` before the first event: filter clauses are evaluated against its store when the
    interpreter evaluates the line. Batch runs (`BatchTracing`, batches.py) and executed campaigns
    (`ExecutedTracing`, executed.py) are traced by the parts it inherits."""

    def __init__(self, rule_set: ast.RuleSet, campaigns: list[ast.Campaign], person: str | None) -> None:
        self.rule_set = rule_set
        self.campaigns = campaigns
        self.person = person.lower() if person else None
        self.interp = None
        self.changes: list[ChangeRecord] = []
        self.unchanged: list[UnchangedEvent] = []
        self.batches = []
        self._names = {c.name for c in campaigns}
        self._picked = {}
        self._current: ChangeRecord | None = None
        self._current_change: Change | None = None
        self._runs = {}
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
            if campaign.is_batch and not campaign.triggers:  # runs on its schedule only: see the batch records
                continue
            triggers = []
            for trigger in campaign.triggers:
                miss = trigger_miss(trigger, change, campaign)
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
            decision.summary = no_trigger_summary(triggers, [t.kind for t in campaign.triggers], change.kind)
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
        if rule.kind == "every_time" and last is None and self.interp is not None:
            last = self.interp.store.qualification(campaign.name, change.person.id)  # the interpreter does not look
        decision.qualification = qualification_decision(rule, ok, last)
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
        decision.summary = f"trigger matched, but filter line {number} is false: {deciding_clause(clause)}"

    def _on_run(
        self,
        run: RunContext,
        change: Change | None,
        slot: float | None = None,
        parent: RunContext | None = None,
        **_: Any,
    ) -> None:
        if change is None:
            if parent is not None:
                self._executed_run(run, parent)
            elif slot is not None:
                self._batch_run(run)
            return
        decision = self._decision(change, run.campaign)
        if decision is None:
            return
        record = RunRecord(run.run_id, change.at)
        decision.run = record
        decision.result = "ran"
        decision.summary = f"ran (run #{run.run_id})"
        self._runs[run.run_id] = LiveRun(record, run.campaign)

    def _live(self, run: RunContext) -> LiveRun | None:
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
        if isinstance(step, ast.ExecuteCampaign):
            live.record.steps[-1].executed = self._executed(run, step, outcome, detail)
        if isinstance(step, ast.Wait) and self.interp is not None:
            place = self._places.get(id(step))
            if place is None or place.rest:
                live.waiting = self.interp.clock + step.seconds

    def _add_step(
        self,
        live: LiveRun,
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
            UnchangedEvent(item.file, item.line, at, event.person, unchanged_reason(event, duplicate), self._order)
        )

    def finish(self) -> None:
        for live in self._runs.values():
            live.record.waiting_until = live.waiting


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
        start = as_utc(world.now).timestamp()
        interp.set_clock(start)
        interp.programs.link_all()
        driver = ReplayDriver(interp, Schedules(interp, start, {}), durable=False)
        for item in items:
            duplicate = item.event.id is not None and store.seen_event(item.event.id)
            tracer.before_event()
            process_event(interp, item, warn or (lambda message: None), advance=lambda at: driver.run_until(at, at))
            tracer.after_event(item, duplicate, interp.clock)
        until_ts = as_utc(until).timestamp() if until is not None else None
        driver.run_until(until_ts, until_ts if until_ts is not None else interp.clock)
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
    explanation.batches = tracer.batches
    explanation.has_batch = any(c.is_batch for c in selected)
    explanation.errors = recorder.errors
    return explanation
