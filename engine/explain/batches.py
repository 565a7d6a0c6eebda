"""The explain tracer's part for batch runs: a record per run of a batch campaign at a slot of its schedule
(its counts), and for the explained person whether the run picked them and why not (each filter line, the
qualification at the slot, the limit), the run that followed, or the skip when their turn came."""

from __future__ import annotations

from typing import Any

from engine.explain.model import BatchPersonDecision, BatchRecord, RunRecord
from engine.explain.runs import LiveRun, TracerState, filter_lines, qualification_decision
from engine.explain.words import deciding_clause, describe_qualification, local_time, location, ordinal
from engine.language import ast
from engine.runtime.batch import Selector
from engine.runtime.interpreter import RunContext
from engine.store.store import Person


class BatchTracing(TracerState):
    """`ExplainTracer`'s handlers of the "batch" and "batch_skip" events, and of a batch run's "run"."""

    def _on_batch(
        self,
        campaign: ast.Campaign,
        slot: float,
        passed: frozenset[int],
        qualified: frozenset[int],
        ordered: list[Person],
        selected: list[Person],
        **_: Any,
    ) -> None:
        if campaign.name not in self._names or self.interp is None or campaign.schedule is None:
            return
        zone = self.interp.rules.zone_of(campaign)
        self._order += 1
        record = BatchRecord(
            campaign.name,
            location(campaign.name_span),
            slot,
            zone,
            local_time(slot, zone),
            campaign.schedule.describe(),
            campaign.limit,
            len(Selector(self.interp.store).everyone()),
            len(passed),
            len(qualified),
            len(selected),
            order=self._order,
        )
        if self.person is not None:
            record.person = self._batch_person(campaign, slot, passed, qualified, ordered, selected)
            if record.person.picked:
                self._picked[campaign.name] = record.person
            else:
                self._picked.pop(campaign.name, None)
        self.batches.append(record)

    def _batch_person(
        self,
        campaign: ast.Campaign,
        slot: float,
        passed: frozenset[int],
        qualified: frozenset[int],
        ordered: list[Person],
        selected: list[Person],
    ) -> BatchPersonDecision:
        assert self.interp is not None and self.person is not None
        store = self.interp.store
        person = store.person(self.person)
        if person is None:
            return BatchPersonDecision(
                self.person, "unknown_person", "not picked: no such person yet (not in the world, no event before)"
            )
        decision = BatchPersonDecision(person.email, "picked", "picked")
        decision.filters, failing = filter_lines(campaign.filters, store, person.id, short_circuit=False)
        if person.id not in passed:
            decision.result = "filtered_out"
            if failing is None:  # the selection and the clauses disagree: should not happen
                decision.summary = "not picked: the filters did not select this person"
            else:
                number, clause = failing
                decision.summary = f"not picked: filter line {number} is false: {deciding_clause(clause)}"
            return decision
        rule = campaign.qualification
        ok = person.id in qualified
        decision.qualification = qualification_decision(rule, ok, store.qualification(campaign.name, person.id))
        if not ok:
            decision.result = "not_qualified"
            decision.summary = f"not picked: {describe_qualification(rule)} blocked it: {decision.qualification.reason}"
            return decision
        ids = [p.id for p in ordered]
        position = ids.index(person.id) + 1 if person.id in ids else None
        decision.position = position
        place = f"{ordinal(position)} by email order" if position is not None else "?"
        if campaign.limit is not None:
            if any(p.id == person.id for p in selected):
                decision.limit = f"limit {campaign.limit}: {place}, within it"
            else:
                decision.limit = f"limit {campaign.limit} reached: {place}"
                decision.result = "limit"
                decision.summary = f"not picked: {decision.limit}"
                return decision
        decision.summary = f"picked ({place} of {len(ordered)})"
        return decision

    def _batch_run(self, run: RunContext) -> None:
        if not self._wanted(run.person.email):
            return
        decision = self._picked.pop(run.campaign.name, None)
        if decision is None:
            return
        record = RunRecord(run.run_id, self.interp.clock if self.interp is not None else 0.0)
        decision.run = record
        decision.summary += f", ran (run #{run.run_id})"
        self._runs[run.run_id] = LiveRun(record, run.campaign)

    def _on_batch_skip(self, campaign: ast.Campaign, person: Person, **_: Any) -> None:
        if not self._wanted(person.email):
            return
        decision = self._picked.pop(campaign.name, None)
        if decision is None:
            return
        text = describe_qualification(campaign.qualification)
        decision.result = "skipped"
        decision.summary = f"picked, but not run: {text} blocked it when its turn came (a run since the selection)"
