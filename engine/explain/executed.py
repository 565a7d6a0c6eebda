"""The explain tracer's part for executed campaigns: under an `execute campaign` step, the executed campaign's
decision for the person (inactive, qualification, filter lines) and the run it made."""

from __future__ import annotations

from engine.explain.model import ExecutedDecision, RunRecord
from engine.explain.runs import LiveRun, TracerState, filter_lines, qualification_decision
from engine.explain.words import deciding_clause, describe_qualification, location
from engine.language import ast
from engine.runtime.interpreter import RunContext


class ExecutedTracing(TracerState):
    """`ExplainTracer`'s decisions and runs of the campaigns an `execute campaign` step runs inline."""

    def _executed(self, run: RunContext, step: ast.ExecuteCampaign, outcome: str, detail: str) -> ExecutedDecision:
        """The executed campaign's decision for the person, now: the interpreter has just taken it, on this state."""
        name, by = step.campaign, run.campaign.name
        target = self.interp.campaigns.get(name) if self.interp is not None else None
        where = location(target.name_span) if target is not None else None
        if outcome == "error" or target is None or self.interp is None:
            return ExecutedDecision(name, where, by, "error", f"not run: {detail}")
        if not target.active:
            summary = "not run: the campaign is inactive (it takes no new runs)"
            return ExecutedDecision(name, where, by, "inactive", summary)
        store, person_id = self.interp.store, run.person.id
        rule = target.qualification
        ok = self.interp.qualifies_at(target, person_id, self.interp.clock)
        last = store.qualification(name, person_id)
        decision = ExecutedDecision(
            name, where, by, "ran", f'executed by "{by}"', qualification_decision(rule, ok, last)
        )
        if not ok:
            decision.result, decision.summary = "not_qualified", f"not run: {describe_qualification(rule)} blocked it"
            return decision
        decision.filters, failing = filter_lines(target.filters, store, person_id, short_circuit=True)
        if failing is not None:
            number, clause = failing
            decision.result = "filtered_out"
            decision.summary = f"not run: filter line {number} is false: {deciding_clause(clause)}"
        return decision

    def _executed_run(self, run: RunContext, parent: RunContext) -> None:
        live = self._runs.get(parent.run_id)
        if live is None or not live.record.steps:
            return
        executed = live.record.steps[-1].executed
        if executed is None or executed.campaign != run.campaign.name:
            return
        record = RunRecord(run.run_id, self.interp.clock if self.interp is not None else live.record.at)
        executed.run = record
        executed.summary = f'ran (run #{run.run_id}), executed by "{parent.campaign.name}"'
        self._runs[run.run_id] = LiveRun(record, run.campaign)
