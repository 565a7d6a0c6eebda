"""The explanation's data: what `explain` recorded for each change and campaign, and its JSON form.

`Explanation.to_json()` gives a stable, JSON-ready dict (each record's `to_json()` its part of it). Batch
runs and executed campaigns added keys ("batches", a step's "executed") only where they apply, so the JSON
of rule sets without them is what it was: the version stays 1.

JSON shape (`version` 1; keys are never renamed or dropped, only added):

    {
      "version": 1,
      "person": "ann@example.com" | null,          # the --person filter
      "campaign": "Webinar follow-up" | null,      # the --campaign filter
      "changes": [Change, ...],                    # in dispatch order
      "unchanged_events": [UnchangedEvent, ...],   # events that dispatched no change
      "errors": [{"message": str, "at": ISO}],     # the replay's errors (cascade cuts, sync problems)
      "notes": [str, ...],                         # e.g. the person was never seen
      "batches": [Batch, ...]                      # only when the explained campaigns include a batch campaign
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
            "conditions": [{"branch": int, "text": str, "value": bool, "clause": Clause}],  # choices
            "executed": Executed}                  # only on `execute campaign` steps
    Executed = {"campaign": name, "location": "file:line" | null, "by": name,
                "result": "ran" | "inactive" | "not_qualified" | "filtered_out" | "error", "summary": str,
                "qualification": Qualification | null, "filters": [FilterLine, ...], "run": Run | null}
    Batch = {                                      # one run of a batch campaign, in time order
      "campaign": name, "location": "file:line", "slot": ISO, "zone": IANA name,
      "local": "2026-11-10 10:00 CET",             # the slot in the campaign's time zone
      "schedule": "schedule every week on monday at 09:00", "limit": int | null,
      "counts": {"persons": int, "passed_filters": int, "qualified": int, "selected": int, "cut_by_limit": int},
      "person": BatchPerson | null                 # with --person
    }
    BatchPerson = {"person": email,
                   "result": "picked" | "filtered_out" | "not_qualified" | "limit" | "skipped" | "unknown_person",
                   "picked": bool, "summary": str,
                   "filters": [FilterLine, ...],   # every line, as the selection evaluates them all
                   "qualification": Qualification | null,  # null: filtered out before it
                   "position": int | null,         # 1-based in email order among the qualified
                   "limit": str | null, "run": Run | null}
    UnchangedEvent = {"file": str, "line": int, "at": ISO, "person": email, "reason": str}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.runtime.interpreter import iso

JSON_VERSION = 1

RESULTS = ("ran", "no_trigger", "inactive", "not_qualified", "filtered_out", "cascade_cut")


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
    executed: ExecutedDecision | None = None  # `execute campaign` steps: the executed campaign's decision

    def to_json(self) -> dict[str, Any]:
        out = {
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
        if self.executed is not None:  # only on `execute campaign` steps
            out["executed"] = self.executed.to_json()
        return out


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
class ExecutedDecision:
    """`execute campaign "X"`: X's decision for the person when the step ran, and X's run (inline)."""

    campaign: str
    location: str | None  # None: the rules have no such campaign
    by: str  # the executing campaign
    result: str  # ran | inactive | not_qualified | filtered_out | error
    summary: str
    qualification: QualificationDecision | None = None
    filters: list[FilterLine] = field(default_factory=list)
    run: RunRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "location": self.location,
            "by": self.by,
            "result": self.result,
            "summary": self.summary,
            "qualification": self.qualification.to_json() if self.qualification is not None else None,
            "filters": [f.to_json() for f in self.filters],
            "run": self.run.to_json() if self.run is not None else None,
        }


@dataclass
class BatchPersonDecision:
    """Why the explained person was or was not picked by one batch run."""

    person: str
    result: str  # picked | filtered_out | not_qualified | limit | skipped | unknown_person
    summary: str
    filters: list[FilterLine] = field(default_factory=list)
    qualification: QualificationDecision | None = None
    position: int | None = None  # 1-based, in email order among the qualified
    limit: str | None = None  # the limit's decision in words, null: no limit (or not reached)
    run: RunRecord | None = None

    @property
    def picked(self) -> bool:
        return self.result in ("picked", "skipped")

    def to_json(self) -> dict[str, Any]:
        return {
            "person": self.person,
            "result": self.result,
            "picked": self.picked,
            "summary": self.summary,
            "filters": [f.to_json() for f in self.filters],
            "qualification": self.qualification.to_json() if self.qualification is not None else None,
            "position": self.position,
            "limit": self.limit,
            "run": self.run.to_json() if self.run is not None else None,
        }


@dataclass
class BatchRecord:
    """One run of a batch campaign at a slot of its schedule: its counts, and the explained person's decision."""

    campaign: str
    location: str
    slot: float
    zone: str
    local: str  # the slot in the campaign's time zone: 2026-11-10 10:00 CET
    schedule: str  # the schedule in the rule language's words
    limit: int | None
    everyone: int  # persons in the store at the slot
    passed: int  # passed the filter lines
    qualified: int  # of them, qualified at the slot
    selected: int  # of them, within the limit: the run's members
    person: BatchPersonDecision | None = None  # with --person
    order: int = 0

    @property
    def cut(self) -> int:
        return self.qualified - self.selected

    def to_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "location": self.location,
            "slot": iso(self.slot),
            "zone": self.zone,
            "local": self.local,
            "schedule": self.schedule,
            "limit": self.limit,
            "counts": {
                "persons": self.everyone,
                "passed_filters": self.passed,
                "qualified": self.qualified,
                "selected": self.selected,
                "cut_by_limit": self.cut,
            },
            "person": self.person.to_json() if self.person is not None else None,
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
    batches: list[BatchRecord] = field(default_factory=list)
    has_batch: bool = False  # the explained campaigns include a batch campaign: "batches" is in the JSON

    def decisions(self, campaign: str) -> list[tuple[ChangeRecord, CampaignDecision]]:
        """Every (change, decision) for one campaign, in dispatch order."""
        out = []
        for change in self.changes:
            for decision in change.campaigns:
                if decision.campaign == campaign:
                    out.append((change, decision))
        return out

    def batch_runs(self, campaign: str) -> list[BatchRecord]:
        """Every run of one batch campaign, in time order."""
        return [b for b in self.batches if b.campaign == campaign]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": JSON_VERSION,
            "person": self.person,
            "campaign": self.campaign,
            "changes": [c.to_json() for c in self.changes],
            "unchanged_events": [e.to_json() for e in self.unchanged_events],
            "errors": list(self.errors),
            "notes": list(self.notes),
            **({"batches": [b.to_json() for b in self.batches]} if self.has_batch else {}),
        }
