"""What the explain tracer's parts share: a run as the tracer follows it (`LiveRun`), the tracer's state they
read (`TracerState`), and the decision records of a campaign's qualification and filter lines for a person now."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.explain.model import (
    BatchPersonDecision,
    BatchRecord,
    Clause,
    Condition,
    FilterLine,
    QualificationDecision,
    RunRecord,
)
from engine.explain.words import describe_qualification, explain_filter, location, qualification_reason
from engine.language import ast
from engine.language.describe import describe_filter
from engine.runtime.interpreter import Interpreter
from engine.store.store import Store


@dataclass
class LiveRun:
    record: RunRecord
    campaign: ast.Campaign
    segment: int = 0
    waiting: float | None = None  # due time of a wait whose continuation has not run yet
    conditions: list[Condition] = field(default_factory=list)


class TracerState:
    """The state `ExplainTracer` keeps (set in its `__init__`) that its parts for batch runs and executed
    campaigns read and write."""

    interp: Interpreter | None
    person: str | None
    batches: list[BatchRecord]
    _names: set[str]
    _picked: dict[str, BatchPersonDecision]  # batch campaign -> the person's decision, while it runs
    _runs: dict[int, LiveRun]
    _order: int

    def _wanted(self, email: str) -> bool:
        return self.person is None or email.lower() == self.person


def qualification_decision(rule: ast.Qualification, ok: bool, last: tuple[float, int] | None) -> QualificationDecision:
    """The qualification decision's record, from the last run it counted (started at, runs)."""
    return QualificationDecision(
        describe_qualification(rule),
        ok,
        qualification_reason(rule, ok, last),
        last[0] if last is not None else None,
        last[1] if last is not None else 0,
    )


def filter_lines(
    filters: tuple[ast.FilterExpr, ...], store: Store, person_id: int, *, short_circuit: bool
) -> tuple[list[FilterLine], tuple[int, Clause] | None]:
    """Each filter line with its value for the person now, and the first false one (1-based, its clause).

    `short_circuit`: lines after the first false one are listed as not evaluated (a person at a time, as the
    interpreter does); else every line is evaluated (a batch selection evaluates them all, as sets)."""
    lines: list[FilterLine] = []
    failing: tuple[int, Clause] | None = None
    for number, expr in enumerate(filters, start=1):
        if failing is not None and short_circuit:
            lines.append(FilterLine(location(expr.span), describe_filter(expr), False))
            continue
        clause = explain_filter(expr, store, person_id)
        lines.append(FilterLine(location(expr.span), describe_filter(expr), True, clause.value, clause))
        if not clause.value and failing is None:
            failing = (number, clause)
    return lines, failing
