"""The interpreter: observations in, changes out, smart campaigns run through a CRM adapter, cascades.

One change, end to end: an observation is diffed against the mirror; the change goes on the cascade
queue; the trigger index names the campaigns it fires (declaration order); each checks qualification and
filters and runs its flow; flow actions go to the CRM adapter and their changes go back on the queue,
one level deeper. Waits park the rest of a flow as a continuation due later (event time, never the clock).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.language import ast
from engine.language.describe import describe_filter
from engine.runtime import adapter as p
from engine.runtime.adapter import CrmAdapter
from engine.runtime.filters import Compiled, FilterContext, compile_filters, evaluate, pass_all
from engine.runtime.programs import NoProgramSync, ProgramSyncFactory, ProgramSyncHook, change_program_status
from engine.runtime.triggers import Candidate, Change, TriggerIndex
from engine.store.store import CampaignInfo, Continuation, Person, Store

DEFAULT_MAX_DEPTH = 10

ACTIVITY_ADD = "Add to SFDC Campaign"
ACTIVITY_REMOVE = "Remove from SFDC Campaign"
ACTIVITY_CHANGE = "Change Status in SFDC Campaign"
ACTIVITY_SYNC_LEAD = "Sync Lead to SFDC"
ACTIVITY_PROGRESSION = "Change Status in Progression"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def keep_out_of_gc() -> None:
    """For long runs (the replay command, a service worker): everything alive now, the rule set above all,
    leaves the cyclic collector's scans. With 1,000 campaigns every full collection cost ~50 ms scanning it.
    A process-wide switch, so entry points call it, never the library on its own."""
    gc.collect()
    gc.freeze()


class Recorder(Protocol):
    """Where runs, steps and errors go (the replay result, the service's metrics, explain)."""

    def run_started(self, run_id: int, campaign: str, person: Person, trigger: dict[str, Any], at: float) -> None: ...

    def step(self, run_id: int, step: dict[str, Any]) -> None: ...

    def error(self, message: str, at: float) -> None: ...


class NullRecorder:
    def run_started(self, run_id: int, campaign: str, person: Person, trigger: dict[str, Any], at: float) -> None:
        pass

    def step(self, run_id: int, step: dict[str, Any]) -> None:
        pass

    def error(self, message: str, at: float) -> None:
        pass


class Tracer(Protocol):
    """Optional: why a campaign did or did not run (used by `explain` and rule coverage).

    The first event is "start" with the interpreter itself, so a tracer can read its store.
    """

    def event(self, kind: str, **data: Any) -> None: ...


@dataclass
class RunContext:
    run_id: int
    campaign: ast.Campaign
    person: Person
    depth: int  # depth of the change that triggered the run
    chain: tuple[str, ...]


@dataclass
class StepOutcome:
    outcome: str  # done | skipped | error
    detail: str
    changes: list[Change] = field(default_factory=list)


class Interpreter:
    def __init__(
        self,
        rule_set: ast.RuleSet,
        store: Store,
        crm: CrmAdapter,
        *,
        recorder: Recorder | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        program_sync: ProgramSyncFactory | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.rules = rule_set
        self.store = store
        self.crm = crm
        self.recorder: Recorder = recorder or NullRecorder()
        self.max_depth = max_depth
        self.index = TriggerIndex(rule_set.campaigns)
        self.campaigns = {c.name: c for c in rule_set.campaigns}
        self.queue: deque[Change] = deque()
        self.clock = 0.0
        self.tracer = tracer
        self.programs: ProgramSyncHook = program_sync(self) if program_sync is not None else NoProgramSync()
        self._compiled_filters: dict[str, Compiled] = {}
        self._compiled_version = -1
        if tracer is not None:
            tracer.event("start", interpreter=self)

    # ------------------------------------------------------------------------------ time
    def set_clock(self, ts: float) -> None:
        self.clock = ts
        if hasattr(self.crm, "clock"):
            self.crm.clock = ts

    def run_due(self, upto: float | None) -> int:
        """Runs every continuation due at or before `upto` (all of them when None), in due order."""
        count = 0
        while True:
            due = self.store.next_due(upto)
            if due is None:
                return count
            self.store.delete_continuation(due.id)
            if due.due_at > self.clock:
                self.set_clock(due.due_at)
            self._resume(due)
            self.drain()
            count += 1

    # ------------------------------------------------------------------------------ observations
    def observe_membership(self, person: Person, campaign: CampaignInfo, status: str | None, at: float) -> bool:
        """An observation of Salesforce ("is a member with S" / "is not a member"), diffed against the mirror."""
        current = self.store.memberships(person.id).get(campaign.id)
        if status == current:
            return False
        if status is None:
            self.store.remove_membership(person.id, campaign.id)
            kind = "removed"
        else:
            self.store.set_membership(person.id, campaign.id, status, at)
            kind = "added" if current is None else "status_changed"
        self.emit(Change(kind, person, campaign, None, current, status, "event", 0, (), at))
        return True

    def observe_program_status(self, person: Person, program: str, status: str | None, at: float) -> bool:
        pid = self.store.program_id(program)
        current = self.store.program_status(person.id, pid)
        if current == status:
            return False
        self.store.set_program_status(person.id, pid, status, at)
        self._log(person, ACTIVITY_PROGRESSION, None, program, status or ast.NOT_IN_PROGRAM, "event", "done", None)
        self.emit(Change("program_status_changed", person, None, program, current, status, "event", 0, (), at))
        return True

    def emit(self, change: Change) -> None:
        """Queues a change and mirrors it through the program sync at once."""
        self.queue.append(change)
        self.programs.mirror(change)

    def drain(self) -> None:
        while self.queue:
            self._dispatch(self.queue.popleft())

    # ------------------------------------------------------------------------------ dispatch
    def _dispatch(self, change: Change) -> None:
        if self.tracer:
            self.tracer.event("change", change=change)
        candidates = self.index.candidates(change)
        if not candidates:
            return
        if change.depth > self.max_depth:
            names = ", ".join(f'"{c.campaign.name}"' for c in candidates)
            chain = " -> ".join(change.chain)
            message = (
                f"cascade deeper than {self.max_depth}: {chain} -> ... ({change.person.email}: "
                f"the triggers of {names} were not run)"
            )
            self.recorder.error(message, change.at)
            self.store.log_error(change.at, message)
            if self.tracer:
                self.tracer.event("cascade_cut", change=change, message=message)
            return
        if self.tracer is None:
            self._run_candidates(change, candidates)
            return
        for candidate in candidates:
            campaign = candidate.campaign
            self.tracer.event("trigger", change=change, campaign=campaign, trigger=candidate.trigger)
            if not campaign.active:
                self.tracer.event("inactive", change=change, campaign=campaign)
                continue
            if not self._qualifies(campaign, change):
                continue
            ctx = FilterContext(self.store, change.person.id, self.store.program_id)
            passed = True
            for expr in campaign.filters:
                value = evaluate(expr, ctx)
                self.tracer.event("filter", change=change, campaign=campaign, expr=expr, value=value)
                if not value:
                    passed = False
                    break
            if not passed:
                continue
            self._start_run(campaign, change)

    def _run_candidates(self, change: Change, candidates: Sequence[Candidate]) -> None:
        """Untraced dispatch, same decisions: filters first (tests on the memberships, read once per change),
        then qualification (a query), then the run. A run may change the person's memberships and program
        statuses, or the catalog, so they are read again after one."""
        tests = self._filter_tests()
        ctx: FilterContext | None = None
        for candidate in candidates:
            campaign = candidate.campaign
            if not campaign.active:
                continue
            test = tests.get(campaign.name)
            if test is None:
                test = tests[campaign.name] = compile_filters(campaign.filters, self.store)
            if test is not pass_all:
                if ctx is None:
                    ctx = FilterContext(self.store, change.person.id, self.store.program_id)
                if not test(ctx.memberships, ctx):
                    continue
            if not self._qualifies(campaign, change):
                continue
            self._start_run(campaign, change)
            ctx = None
            tests = self._filter_tests()

    def _filter_tests(self) -> dict[str, Compiled]:
        """Each campaign's compiled filters (by name) for the current campaign catalog, compiled when first used."""
        self.store.campaign_by_name("")  # loads the catalog (and bumps its version) when it changed
        if self._compiled_version != self.store.catalog_version:
            self._compiled_filters.clear()
            self._compiled_version = self.store.catalog_version
        return self._compiled_filters

    def _qualifies(self, campaign: ast.Campaign, change: Change) -> bool:
        rule = campaign.qualification
        if rule.kind == "every_time":
            if self.tracer:
                self.tracer.event("qualification", change=change, campaign=campaign, ok=True, last=None)
            return True
        last = self.store.qualification(campaign.name, change.person.id)
        if last is None:
            ok = True
        elif rule.kind == "once":
            ok = False
        else:
            ok = change.at >= last[0] + rule.window_seconds
        if self.tracer:
            self.tracer.event("qualification", change=change, campaign=campaign, ok=ok, last=last)
        return ok

    def _start_run(self, campaign: ast.Campaign, change: Change) -> None:
        trigger = change.describe()
        run_id = self.store.start_run(campaign.name, change.person.id, change.at, trigger)
        self.recorder.run_started(run_id, campaign.name, change.person, trigger, change.at)
        ctx = RunContext(run_id, campaign, change.person, change.depth, change.chain)
        if self.tracer:
            self.tracer.event("run", run=ctx, change=change)
        self._execute(ctx, [(campaign.flow, 0, ())])

    def _resume(self, due: Continuation) -> None:
        campaign = self.campaigns.get(due.campaign)
        if campaign is None:  # the campaign was removed from the rules while this run waited
            self.recorder.error(f'campaign "{due.campaign}" no longer exists: its waiting run was dropped', due.due_at)
            return
        person = self.store.person_by_id(due.person_id)
        ctx = RunContext(due.run_id, campaign, person, due.depth, due.chain)
        frames = _frames_for(campaign.flow, due.path)
        if frames is None:
            self.recorder.error(f'campaign "{campaign.name}" changed while a run waited: it was dropped', due.due_at)
            return
        self._execute(ctx, frames)

    # ------------------------------------------------------------------------------ flows
    def _execute(self, ctx: RunContext, frames: list[tuple[tuple[ast.FlowStep, ...], int, tuple[int, ...]]]) -> None:
        """Runs steps until the flow ends or waits. Frames: (steps, next index, path prefix), innermost last."""
        while frames:
            steps, index, prefix = frames.pop()
            while index < len(steps):
                step = steps[index]
                if isinstance(step, ast.Choice):
                    taken = self._choose(ctx, step)
                    frames.append((steps, index + 1, prefix))
                    if taken is not None:
                        frames.append((step.branches[taken].steps, 0, (*prefix, index, taken)))
                    break
                if isinstance(step, ast.Wait):
                    due = self.clock + step.seconds
                    self._record(ctx, {"action": "wait", "outcome": "done", "detail": f"until {iso(due)}"})
                    if self.tracer:
                        self.tracer.event("step", run=ctx, step=step, outcome="done", detail=f"until {iso(due)}")
                    resume = (*prefix, index + 1)
                    # the rest of the enclosing frames is implied by the path
                    self.store.add_continuation(
                        ctx.run_id, ctx.campaign.name, ctx.person.id, due, resume, ctx.depth, ctx.chain
                    )
                    return
                outcome = self._act(ctx, step)
                if self.tracer:
                    self.tracer.event("step", run=ctx, step=step, outcome=outcome.outcome, detail=outcome.detail)
                index += 1
                for change in outcome.changes:
                    self.emit(change)

    def _choose(self, ctx: RunContext, choice: ast.Choice) -> int | None:
        fctx = FilterContext(self.store, ctx.person.id, self.store.program_id)
        for number, branch in enumerate(choice.branches):
            if branch.condition is None:
                detail = "else" if len(choice.branches) > 1 else "always"
            else:
                value = evaluate(branch.condition, fctx)
                if self.tracer:
                    self.tracer.event("choice_condition", run=ctx, branch=number, expr=branch.condition, value=value)
                if not value:
                    continue
                detail = ("if " if number == 0 else "else if ") + describe_filter(branch.condition)
            self._record(ctx, {"action": "choice", "outcome": "done", "detail": detail, "branch": number + 1})
            if self.tracer:
                self.tracer.event("choice", run=ctx, choice=choice, branch=number)
            return number
        self._record(ctx, {"action": "choice", "outcome": "skipped", "detail": "no branch applies", "branch": None})
        if self.tracer:
            self.tracer.event("choice", run=ctx, choice=choice, branch=None)
        return None

    def _record(self, ctx: RunContext, step: dict[str, Any]) -> None:
        step.setdefault("at", iso(self.clock))
        self.recorder.step(ctx.run_id, step)

    def _act(self, ctx: RunContext, step: ast.FlowStep) -> StepOutcome:
        if isinstance(step, ast.ChangeProgramStatus):
            outcome = change_program_status(self, ctx, step)
            self._record(
                ctx,
                {
                    "action": "change_program_status",
                    "program": step.program,
                    "status": step.status,
                    "outcome": outcome.outcome,
                    "detail": outcome.detail,
                },
            )
            return outcome
        assert isinstance(step, (ast.AddToCampaign, ast.ChangeStatusInCampaign, ast.RemoveFromCampaign))
        campaign = self.resolve(step.campaign)
        status = getattr(step, "status", None)
        if isinstance(step, ast.AddToCampaign):
            action, activity = "add_to_sfdc_campaign", ACTIVITY_ADD
        elif isinstance(step, ast.ChangeStatusInCampaign):
            action, activity = "change_status_in_sfdc_campaign", ACTIVITY_CHANGE
        else:
            action, activity = "remove_from_sfdc_campaign", ACTIVITY_REMOVE
        if campaign is None:
            outcome = StepOutcome("error", f"unknown SFDC campaign: no {step.campaign.describe()}")
        elif status is not None and status not in campaign.statuses:
            outcome = StepOutcome(
                "error",
                f'status "{status}" is not a member status of "{campaign.name}" ({", ".join(campaign.statuses)})',
            )
        else:
            outcome = self.write_membership(
                ctx.person,
                campaign,
                status,
                origin="flow",
                depth=ctx.depth + 1,
                chain=(*ctx.chain, ctx.campaign.name),
                smart_campaign=ctx.campaign.name,
                add_only=isinstance(step, ast.AddToCampaign),
            )
            if outcome.changes:
                ctx.person = outcome.changes[-1].person
        target = campaign.name if campaign is not None else (step.campaign.values or ("?",))[0]
        self._log(ctx.person, activity, ctx.campaign.name, target, status, "flow", outcome.outcome, outcome.detail)
        record: dict[str, Any] = {"action": action, "campaign": target}
        if status is not None:
            record["status"] = status
        record.update({"outcome": outcome.outcome, "detail": outcome.detail})
        self._record(ctx, record)
        return outcome

    # ------------------------------------------------------------------------------ CRM writes
    def resolve(self, ref: ast.CampaignRef) -> CampaignInfo | None:
        if ref.kind == "name":
            return self.store.campaign_by_name(ref.values[0])
        if ref.kind == "id":
            return self.store.campaign_by_sfdc_id(ref.values[0])
        return None

    def ensure_in_salesforce(
        self, person: Person, smart_campaign: str | None, origin: str
    ) -> tuple[Person | None, str | None]:
        """Sync Person to SFDC: creates a Lead for a person not in Salesforce. (person, detail) or (None, error)."""
        if person.sfdc_id:
            return person, None
        first_name, last_name, company = self.store.person_names(person.id)
        result = self.crm.execute(
            [
                p.CreateLead(
                    person.email,
                    last_name=last_name or p.NOT_PROVIDED,
                    company=company or p.NOT_PROVIDED,
                    first_name=first_name,
                )
            ]
        )[0]
        if not result.ok or not result.id:
            reason = f"cannot create lead: {result.message or result.code}"
            self._log(person, ACTIVITY_SYNC_LEAD, smart_campaign, None, None, origin, "error", reason)
            return None, reason
        updated = (
            self.store.person(person.email) or person
            if self.crm.shares_mirror
            else self.store.set_person_sfdc(person, result.id, "Lead", p.NOT_PROVIDED, p.NOT_PROVIDED)
        )
        self._log(updated, ACTIVITY_SYNC_LEAD, smart_campaign, None, None, origin, "done", f"created lead {result.id}")
        return updated, f"created lead {result.id}"

    def write_membership(
        self,
        person: Person,
        campaign: CampaignInfo,
        status: str | None,
        *,
        origin: str,
        depth: int,
        chain: tuple[str, ...],
        smart_campaign: str | None,
        add_only: bool = False,
    ) -> StepOutcome:
        """Makes `person` a member of `campaign` with `status` (None: not a member), through the CRM.

        `add_only` is Add to SFDC Campaign: an existing member is left as is.
        """
        # the person may have been put into Salesforce since the run started (an earlier campaign, the sync)
        person = self.store.person(person.email) or person
        current = self.store.memberships(person.id).get(campaign.id)
        if status is None:
            if current is None:
                return StepOutcome("skipped", "not a member")
            if not person.sfdc_id:
                return StepOutcome("skipped", "not a member")
            result = self.crm.execute([p.RemoveMember(person.sfdc_id, campaign.sfdc_id)])[0]
            if not result.ok:
                if result.code == p.NOT_A_MEMBER:
                    if not self.crm.shares_mirror:
                        self.store.remove_membership(person.id, campaign.id)
                    return StepOutcome("skipped", "not a member")
                return StepOutcome("error", result.message or str(result.code))
            if not self.crm.shares_mirror:
                self.store.remove_membership(person.id, campaign.id)
            change = Change("removed", person, campaign, None, current, None, origin, depth, chain, self.clock)
            return StepOutcome("done", "removed", [change])
        if current is not None and add_only:
            return StepOutcome("skipped", f'already a member (status "{current}")')
        if current == status:
            return StepOutcome("skipped", f'already has status "{status}"')
        notes: list[str] = []
        if current is None:
            synced, note = self.ensure_in_salesforce(person, smart_campaign, origin)
            if synced is None:
                return StepOutcome("error", note or "cannot create lead")
            person = synced
            if note:
                notes.append(note)
        assert person.sfdc_id is not None
        op: p.Operation = (
            p.AddMember(person.sfdc_id, campaign.sfdc_id, status)
            if current is None
            else p.UpdateMemberStatus(person.sfdc_id, campaign.sfdc_id, status)
        )
        result = self.crm.execute([op])[0]
        if not result.ok:
            if result.code == p.DUPLICATE_VALUE:
                return StepOutcome("skipped", "already a member")
            return StepOutcome("error", result.message or str(result.code))
        if not self.crm.shares_mirror:
            self.store.set_membership(person.id, campaign.id, status, self.clock)
        if current is None:
            notes.append(f'added with status "{status}"' if not add_only else "added")
            change = Change("added", person, campaign, None, None, status, origin, depth, chain, self.clock)
        else:
            notes.append(f'status "{current}" -> "{status}"')
            change = Change("status_changed", person, campaign, None, current, status, origin, depth, chain, self.clock)
        return StepOutcome("done", "; ".join(notes), [change])

    def _log(
        self,
        person: Person,
        kind: str,
        smart_campaign: str | None,
        target: str | None,
        status: str | None,
        origin: str,
        outcome: str,
        reason: str | None,
    ) -> None:
        self.store.log_activity(person.id, self.clock, kind, smart_campaign, target, status, origin, outcome, reason)

    def log_activity(self, person: Person, kind: str, **fields: Any) -> None:
        self._log(
            person,
            kind,
            fields.get("smart_campaign"),
            fields.get("target"),
            fields.get("status"),
            fields.get("origin", "flow"),
            fields.get("outcome", "done"),
            fields.get("reason"),
        )


def _frames_for(
    flow: tuple[ast.FlowStep, ...], path: tuple[int, ...]
) -> list[tuple[tuple[ast.FlowStep, ...], int, tuple[int, ...]]] | None:
    """The execution frames that resume a flow at `path` (step, branch, step, ..., next step)."""
    frames: list[tuple[tuple[ast.FlowStep, ...], int, tuple[int, ...]]] = []
    steps = flow
    prefix: tuple[int, ...] = ()
    k = 0
    while k < len(path) - 1:
        i, b = path[k], path[k + 1]
        if i >= len(steps) or not isinstance(steps[i], ast.Choice):
            return None
        choice = steps[i]
        assert isinstance(choice, ast.Choice)
        if b >= len(choice.branches):
            return None
        frames.append((steps, i + 1, prefix))
        prefix = (*prefix, i, b)
        steps = choice.branches[b].steps
        k += 2
    if not path or path[-1] > len(steps):
        return None
    frames.append((steps, path[-1], prefix))
    return frames


Clock = Callable[[], float]
