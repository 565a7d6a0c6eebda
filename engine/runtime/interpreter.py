"""The interpreter: observations in, changes out, smart campaigns run through a CRM adapter, cascades.

One change, end to end: an observation is diffed against the mirror; the change goes on the cascade
queue; the trigger index names the campaigns it fires (declaration order); each checks qualification and
filters and runs its flow; flow actions go to the CRM adapter and their changes go back on the queue,
one level deeper. Waits park the rest of a flow as a continuation due later (event time, never the clock).

Besides changes: a requested campaign runs for a `request campaign` step or a `campaign_requested` event (a
change of its own kind that fires only the campaign named); `execute campaign` runs another campaign's flow
inline, before the next step; a batch campaign runs when its schedule comes, over everyone its filters select
(`run_batch`, durable: see `engine.runtime.batch`).
"""

from __future__ import annotations

import gc
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from engine.language import ast
from engine.language.describe import describe_filter
from engine.runtime import adapter as p
from engine.runtime import batch as batches
from engine.runtime import calendar
from engine.runtime.adapter import CrmAdapter
from engine.runtime.filters import Compiled, FilterContext, compile_filters, evaluate, pass_all
from engine.runtime.programs import NoProgramSync, ProgramSyncFactory, ProgramSyncHook, change_program_status
from engine.runtime.triggers import Candidate, Change, TriggerIndex
from engine.store.store import CampaignInfo, Continuation, Person, Store

DEFAULT_MAX_DEPTH = 10

# Fault injection, to rehearse a crash: the process exits at once (code 137, as after kill -9) right after the Nth
# run it started has executed its first step, before anything after it is committed.
FAULT_EXIT_AFTER_RUNS = "SMARTCAMPAIGN_FAULT_EXIT_AFTER_RUNS"
_runs_in_process = 0

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

    The first event is "start" with the interpreter itself, so a tracer can read its store. "run" comes with
    `change` for a triggered run, with `change=None` and `slot` for a batch run's member, with `change=None` and
    `parent` (the executing run) for an executed campaign's run. A batch run tells "batch" once, before anyone
    runs (its stages: `passed`, `qualified`, `ordered`, `selected`), and "batch_skip" for a selected person
    whose qualification failed when their turn came.
    """

    def event(self, kind: str, **data: Any) -> None: ...


@dataclass
class RunContext:
    run_id: int
    campaign: ast.Campaign
    person: Person
    depth: int  # depth of the change that triggered the run
    chain: tuple[str, ...]
    execute_depth: int = 0  # executed campaigns: how deep this run is nested (0: not executed)


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
        fault = os.environ.get(FAULT_EXIT_AFTER_RUNS, "").strip()
        self._fault_after = int(fault) if fault.isdigit() else None
        self._fault_run: int | None = None
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
            self.run_continuation(due)
            count += 1

    def run_continuation(self, due: Continuation) -> None:
        """One waiting run goes on (the clock moves to its due time when that is later), then its cascade."""
        self.store.delete_continuation(due.id)
        if due.due_at > self.clock:
            self.set_clock(due.due_at)
        self._resume(due)
        self.drain()

    # ------------------------------------------------------------------------------ batch campaigns
    def run_batch(self, campaign: ast.Campaign, slot: float) -> batches.BatchOutcome:
        """The batch campaign's run at `slot` of its schedule, durable: selects (or resumes an interrupted run's
        remaining members), runs each selected person, commits every `batch.CHUNK` members. A finished run at
        this slot never runs again."""
        return batches.run_batch(self, campaign, slot)

    def run_batch_member(self, campaign: ast.Campaign, person: Person, slot: float) -> bool:
        """One selected person's run of a batch campaign at `slot`: qualification is checked again (filters are
        not), then the flow and its cascade. Whether the person ran."""
        if not campaign.active or campaign.schedule is None:
            return False
        if slot > self.clock:
            self.set_clock(slot)
        if not self.qualifies_at(campaign, person.id, self.clock):
            if self.tracer:
                self.tracer.event("batch_skip", campaign=campaign, person=person, slot=slot)
            return False
        trigger: dict[str, Any] = {
            "type": "batch",
            "schedule": campaign.schedule.describe(),
            "slot": iso(slot),
            "origin": "schedule",
        }
        ctx = self._open_run(campaign, person, trigger, self.clock, 0, ())
        if self.tracer:
            self.tracer.event("run", run=ctx, change=None, slot=slot)
        self._execute(ctx, [(campaign.flow, 0, ())])
        self._fault_check(ctx)
        self.drain()
        return True

    def abandon(self) -> None:
        """After a failure mid-transaction: the queued changes and everything not committed are dropped."""
        self.queue.clear()
        self.store.rollback()

    def qualifies_at(self, campaign: ast.Campaign, person_id: int, at: float) -> bool:
        """Qualification of a person for a campaign at `at` (no tracer)."""
        rule = campaign.qualification
        if rule.kind == "every_time":
            return True
        last = self.store.qualification(campaign.name, person_id)
        if last is None:
            return True
        return rule.kind == "window" and at >= last[0] + rule.window_seconds

    # ------------------------------------------------------------------------------ requests
    def request(self, person: Person, campaign: str, at: float) -> None:
        """A `campaign_requested` event: the person is queued for the requested campaign (origin event)."""
        self.emit(Change("requested", person, None, None, None, None, "event", 0, (), at, campaign))

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
        ctx = self._open_run(campaign, change.person, change.describe(), change.at, change.depth, change.chain)
        if self.tracer:
            self.tracer.event("run", run=ctx, change=change)
        self._execute(ctx, [(campaign.flow, 0, ())])
        self._fault_check(ctx)

    def _open_run(
        self,
        campaign: ast.Campaign,
        person: Person,
        trigger: dict[str, Any],
        at: float,
        depth: int,
        chain: tuple[str, ...],
        execute_depth: int = 0,
    ) -> RunContext:
        global _runs_in_process
        run_id = self.store.start_run(campaign.name, person.id, at, trigger)
        self.recorder.run_started(run_id, campaign.name, person, trigger, at)
        _runs_in_process += 1
        if self._fault_after is not None and _runs_in_process == self._fault_after:
            self._fault_run = run_id
        return RunContext(run_id, campaign, person, depth, chain, execute_depth)

    def _fault_check(self, ctx: RunContext) -> None:
        """The fault injection's run ended without a step: exit now."""
        if self._fault_run is not None and self._fault_run == ctx.run_id:
            os._exit(137)

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
                if isinstance(step, (ast.Wait, ast.WaitUntil, ast.WaitWindow)):
                    if ctx.execute_depth > 0:  # `check` refuses it; a wait that gets here anyway ends the flow
                        detail = (
                            f'a wait cannot run in an executed campaign: the rest of "{ctx.campaign.name}" was not run'
                        )
                        self._record(ctx, {"action": "wait", "outcome": "error", "detail": detail})
                        if self.tracer:
                            self.tracer.event("step", run=ctx, step=step, outcome="error", detail=detail)
                        return
                    due, detail = self._wait_end(ctx.campaign, step)
                    if due <= self.clock:  # a dated wait already past: go on at once
                        self._record(ctx, {"action": "wait", "outcome": "done", "detail": detail})
                        if self.tracer:
                            self.tracer.event("step", run=ctx, step=step, outcome="done", detail=detail)
                        index += 1
                        continue
                    self._record(ctx, {"action": "wait", "outcome": "done", "detail": detail})
                    if self.tracer:
                        self.tracer.event("step", run=ctx, step=step, outcome="done", detail=detail)
                    resume = (*prefix, index + 1)
                    # the rest of the enclosing frames is implied by the path
                    self.store.add_continuation(
                        ctx.run_id, ctx.campaign.name, ctx.person.id, due, resume, ctx.depth, ctx.chain
                    )
                    return
                if isinstance(step, ast.ExecuteCampaign):
                    self._execute_campaign(ctx, step)
                    index += 1
                    continue
                outcome = self._act(ctx, step)
                if self.tracer:
                    self.tracer.event("step", run=ctx, step=step, outcome=outcome.outcome, detail=outcome.detail)
                index += 1
                for change in outcome.changes:
                    self.emit(change)

    def _wait_end(self, campaign: ast.Campaign, step: ast.Wait | ast.WaitUntil | ast.WaitWindow) -> tuple[float, str]:
        """When a wait ends, and its step's detail."""
        if isinstance(step, ast.Wait):
            due = self.clock + step.seconds
            return due, f"until {iso(due)}"
        tz = self.rules.zone_of(campaign)
        if isinstance(step, ast.WaitUntil):
            due = calendar.wait_until(step, tz, self.clock)
            if due <= self.clock:
                return due, f"already past ({step.at} {tz}): went on at once"
            return due, f"until {iso(due)}"
        due = calendar.wait_window(step, tz, self.clock)
        if due <= self.clock:
            return due, f"already in the window ({iso(due)}): went on at once"
        return due, f"until {iso(due)}"

    def _execute_campaign(self, ctx: RunContext, step: ast.ExecuteCampaign) -> None:
        """`execute campaign "X"`: X's qualification and filters for this person now; if they pass, X's run, whose
        flow runs here, before the parent's next step."""
        name = step.campaign
        target = self.campaigns.get(name)
        outcome, detail = "done", f'ran "{name}"'
        if ctx.execute_depth + 1 > ast.MAX_EXECUTE_DEPTH:
            outcome = "error"
            detail = f'executed campaigns nest deeper than {ast.MAX_EXECUTE_DEPTH}: "{name}" was not run'
        elif target is None:
            outcome, detail = "error", f'no campaign "{name}"'
        elif not target.is_requestable:
            outcome, detail = "error", f'"{name}" cannot be executed: it has no trigger `campaign is requested`'
        elif not target.active:
            outcome, detail = "skipped", f'"{name}" is inactive'
        elif not self.qualifies_at(target, ctx.person.id, self.clock):
            outcome, detail = "skipped", self._not_qualified(target)
        else:
            failing = self._first_failing_filter(target, ctx.person)
            if failing is not None:
                outcome, detail = "skipped", f'filters of "{name}" not met: {describe_filter(failing)}'
        self._record(ctx, {"action": "execute_campaign", "campaign": name, "outcome": outcome, "detail": detail})
        if self.tracer:
            self.tracer.event("step", run=ctx, step=step, outcome=outcome, detail=detail)
        if outcome != "done" or target is None:
            return
        trigger: dict[str, Any] = {"type": "campaign_executed", "by": ctx.campaign.name, "origin": "flow"}
        child = self._open_run(
            target,
            ctx.person,
            trigger,
            self.clock,
            ctx.depth,
            (*ctx.chain, ctx.campaign.name),
            ctx.execute_depth + 1,
        )
        if self.tracer:
            self.tracer.event("run", run=child, change=None, parent=ctx)
        self._execute(child, [(target.flow, 0, ())])
        self._fault_check(child)
        ctx.person = child.person

    def _not_qualified(self, campaign: ast.Campaign) -> str:
        rule = campaign.qualification
        if rule.kind == "window":
            unit = rule.unit + ("s" if rule.amount != 1 else "")
            return (
                f'"{campaign.name}" ran for this person less than {rule.amount} {unit} ago '
                f"(qualify once every {rule.amount} {unit})"
            )
        return f'"{campaign.name}" already ran for this person (qualify once)'

    def _first_failing_filter(self, campaign: ast.Campaign, person: Person) -> ast.FilterExpr | None:
        ctx = FilterContext(self.store, person.id, self.store.program_id)
        for expr in campaign.filters:
            if not evaluate(expr, ctx):
                return expr
        return None

    def _request_campaign(self, ctx: RunContext, step: ast.RequestCampaign) -> StepOutcome:
        name = step.campaign
        target = self.campaigns.get(name)
        if target is None:
            outcome = StepOutcome("error", f'no campaign "{name}"')
        elif not target.is_requestable:
            outcome = StepOutcome("error", f'"{name}" cannot be requested: it has no trigger `campaign is requested`')
        else:
            change = Change(
                "requested",
                ctx.person,
                None,
                None,
                None,
                None,
                "flow",
                ctx.depth + 1,
                (*ctx.chain, ctx.campaign.name),
                self.clock,
                name,
                ctx.campaign.name,
            )
            outcome = StepOutcome("done", f'queued for "{name}"', [change])
        self._record(
            ctx, {"action": "request_campaign", "campaign": name, "outcome": outcome.outcome, "detail": outcome.detail}
        )
        return outcome

    def _remove_from_flow(self, ctx: RunContext, step: ast.RemoveFromFlow) -> StepOutcome:
        name = step.campaign or ctx.campaign.name
        dropped = self.store.drop_continuations(ctx.person.id, name)
        for run_id in dropped:
            self.recorder.step(
                run_id,
                {
                    "action": "removed_from_flow",
                    "outcome": "done",
                    "detail": f'by "{ctx.campaign.name}"',
                    "at": iso(self.clock),
                },
            )
        if dropped:
            outcome = StepOutcome("done", f"{len(dropped)} waiting run{'s' if len(dropped) != 1 else ''} dropped")
        else:
            outcome = StepOutcome("skipped", f'not waiting in "{name}"')
        self._record(
            ctx, {"action": "remove_from_flow", "campaign": name, "outcome": outcome.outcome, "detail": outcome.detail}
        )
        return outcome

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
        if self._fault_run is not None and self._fault_run == ctx.run_id:
            os._exit(137)  # fault injection: as a kill -9, nothing after this is committed

    def _act(self, ctx: RunContext, step: ast.FlowStep) -> StepOutcome:
        if isinstance(step, ast.RequestCampaign):
            return self._request_campaign(ctx, step)
        if isinstance(step, ast.RemoveFromFlow):
            return self._remove_from_flow(ctx, step)
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
