"""Rule coverage: which triggers, filter clauses, choice branches and flow steps the replays exercised.

A rule set's coverage points, each pinned to a file, line and column (the node's span):

- every `trigger` line: fired (a change matched it, whether or not the person then ran the flow);
- every filter clause, the `member of ...` leaves inside `filter` lines and `if` / `else if` conditions, twice:
  seen true and seen false (every leaf of a line or condition is evaluated when the engine evaluates that line);
- every branch of every choice taken, and, for a choice without `else`, "no branch" taken too;
- every other flow step (add, change status, remove, change program status, wait) executed, whatever its outcome.

100% means every point was hit. `CoverageCollector` gathers the points of the rule sets it is shown and the
hits of the replays it traces (`CoverageCollector.tracer()` is an `engine.runtime.interpreter.Tracer`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.language import ast
from engine.language.describe import describe_filter, describe_step
from engine.language.describe import describe_trigger as describe_any_trigger
from engine.runtime.filters import FilterContext, evaluate
from engine.store.store import Store

__all__ = ["CoverageCollector", "CoverageTracer", "FileCoverage", "Point", "percent"]

Kind = Literal["trigger", "filter", "branch", "step"]
PointKey = tuple[str, str, int, int, str]  # kind, file, line, column (of the node), facet

_KIND_ORDER = {"trigger": 0, "filter": 1, "branch": 2, "step": 3}


@dataclass
class Point:
    """One thing to cover. `line`/`column` is where to look; `text` says what it is."""

    kind: Kind
    file: str
    line: int
    column: int
    facet: str  # filter: "true" | "false"; branch: "1".."n" | "none"; otherwise ""
    campaign: str
    text: str
    hits: int = 0

    @property
    def covered(self) -> bool:
        return self.hits > 0

    def sort_key(self) -> tuple[int, int, int, int]:
        facet = {"": 0, "true": 0, "false": 1, "none": 1_000_000}.get(self.facet)
        return (self.line, self.column, _KIND_ORDER[self.kind], int(self.facet) if facet is None else facet)

    def describe_miss(self) -> str:
        """What was never exercised, in words."""
        if self.kind == "trigger":
            return f"trigger never fired: {self.text}"
        if self.kind == "filter":
            return f"{self.text} never {self.facet}"
        if self.kind == "branch":
            return f"{self.text} never taken"
        return f"step never executed: {self.text}"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "line": self.line, "column": self.column}
        if self.kind == "filter":
            out["when"] = self.facet
        if self.kind == "branch":
            out["branch"] = None if self.facet == "none" else int(self.facet)
        out.update({"campaign": self.campaign, "text": self.text, "hits": self.hits})
        return out


def percent(covered: int, total: int) -> float:
    return 100.0 if total == 0 else 100.0 * covered / total


def shown_percent(value: float) -> str:
    """Rounded down, so that 99.9% never shows as 100%."""
    return f"{math.floor(value + 1e-9)}%"


@dataclass
class FileCoverage:
    file: str
    points: list[Point]

    @property
    def total(self) -> int:
        return len(self.points)

    @property
    def covered(self) -> int:
        return sum(1 for p in self.points if p.covered)

    @property
    def percent(self) -> float:
        return percent(self.covered, self.total)

    @property
    def missed(self) -> list[Point]:
        return [p for p in self.points if not p.covered]


# ------------------------------------------------------------------------------------------ AST walking
def _key(kind: str, span: ast.Span, facet: str = "") -> PointKey:
    return (kind, span.file, span.line, span.column, facet)


def leaves(expr: ast.FilterExpr) -> Iterator[ast.MembershipFilter | ast.ProgramMembershipFilter]:
    """The `member of ...` clauses of a filter expression, left to right."""
    if isinstance(expr, (ast.MembershipFilter, ast.ProgramMembershipFilter)):
        yield expr
    elif isinstance(expr, ast.Not):
        yield from leaves(expr.operand)
    else:
        for operand in expr.operands:
            yield from leaves(operand)


def describe_trigger(trigger: ast.Trigger) -> str:
    return "trigger " + describe_any_trigger(trigger)


def rule_set_points(rule_set: ast.RuleSet) -> Iterator[tuple[PointKey, Point]]:
    """Every coverage point of the campaigns of a rule set, with its key."""
    for campaign in rule_set.campaigns:
        name = campaign.name
        for trigger in campaign.triggers:
            span = trigger.span
            point = Point("trigger", span.file, span.line, span.column, "", name, describe_trigger(trigger))
            yield _key("trigger", span), point
        for expr in campaign.filters:
            yield from _filter_points(expr, name, "filter clause")
        yield from _flow_points(campaign.flow, name)


def _filter_points(expr: ast.FilterExpr, campaign: str, where: str) -> Iterator[tuple[PointKey, Point]]:
    for leaf in leaves(expr):
        span = leaf.span
        for facet in ("true", "false"):
            text = f"{where} `{describe_filter(leaf)}`"
            yield _key("filter", span, facet), Point("filter", span.file, span.line, span.column, facet, campaign, text)


def _flow_points(steps: tuple[ast.FlowStep, ...], campaign: str) -> Iterator[tuple[PointKey, Point]]:
    for step in steps:
        span = step.span
        if not isinstance(step, ast.Choice):
            point = Point("step", span.file, span.line, span.column, "", campaign, describe_step(step))
            yield _key("step", span), point
            continue
        for number, branch in enumerate(step.branches):
            if branch.condition is not None:
                yield from _filter_points(branch.condition, campaign, "condition")
                label = ("if " if number == 0 else "else if ") + describe_filter(branch.condition)
            else:
                label = "else"
            where = branch.span if branch.span.line else span
            text = f"branch {number + 1} ({label}) of the choice at line {span.line}"
            point = Point("branch", where.file, where.line, where.column, str(number), campaign, text)
            yield _key("branch", span, str(number)), point
            yield from _flow_points(branch.steps, campaign)
        if step.branches and step.branches[-1].condition is not None:
            text = f"no branch (none applies; the choice at line {span.line} has no else)"
            # where an `else` would go: the end of the choice
            line, column = span.end_line or span.line, span.end_column or span.column
            point = Point("branch", span.file, line, column, "none", campaign, text)
            yield _key("branch", span, "none"), point


# ------------------------------------------------------------------------------------------ collecting
class CoverageCollector:
    """The coverage points of every rule set shown to it, and the hits of every replay it traced."""

    def __init__(self) -> None:
        self.points: dict[PointKey, Point] = {}

    def add_rule_set(self, rule_set: ast.RuleSet) -> None:
        """Adds the points of a rule set (a point already known, e.g. the same file loaded twice, is kept)."""
        for key, point in rule_set_points(rule_set):
            self.points.setdefault(key, point)

    def hit(self, key: PointKey) -> None:
        point = self.points.get(key)
        if point is not None:
            point.hits += 1

    def tracer(self) -> CoverageTracer:
        return CoverageTracer(self)

    # ------------------------------------------------------------------ results
    def files(self, root: Path | None = None) -> list[FileCoverage]:
        """Per rule file, in path order; files shown relative to `root` when under it."""
        grouped: dict[str, list[Point]] = {}
        for point in self.points.values():
            grouped.setdefault(point.file, []).append(point)
        out = [
            FileCoverage(_display(file, root), sorted(points, key=Point.sort_key)) for file, points in grouped.items()
        ]
        return sorted(out, key=lambda f: f.file)

    @property
    def total(self) -> int:
        return len(self.points)

    @property
    def covered(self) -> int:
        return sum(1 for p in self.points.values() if p.covered)

    @property
    def percent(self) -> float:
        return percent(self.covered, self.total)

    def report(self, root: Path | None = None) -> dict[str, Any]:
        """The JSON report: totals, then per file its totals and every point with its hits."""
        return {
            "total": {"items": self.total, "covered": self.covered, "percent": round(self.percent, 2)},
            "files": {
                f.file: {
                    "items": f.total,
                    "covered": f.covered,
                    "percent": round(f.percent, 2),
                    "points": [p.as_dict() for p in f.points],
                }
                for f in self.files(root)
            },
        }

    def table(self, root: Path | None = None) -> list[str]:
        """The terminal report: a line per rule file, the total, then every uncovered point as FILE:LINE."""
        files = self.files(root)
        if not files:
            return ["no rule sets were loaded through the campaign_rules fixture: nothing to cover"]
        width = max(len("TOTAL"), len("rule file"), *(len(f.file) for f in files))
        lines = [f"{'rule file'.ljust(width)}  {'items':>6}  {'covered':>7}  {'cover':>6}"]
        for f in files:
            lines.append(f"{f.file.ljust(width)}  {f.total:>6}  {f.covered:>7}  {shown_percent(f.percent):>6}")
        lines.append("-" * len(lines[0]))
        lines.append(f"{'TOTAL'.ljust(width)}  {self.total:>6}  {self.covered:>7}  {shown_percent(self.percent):>6}")
        missed = [(f.file, p) for f in files for p in f.missed]
        if missed:
            lines.append("")
            lines.append("not covered:")
            for file, point in missed:
                lines.append(f'  {file}:{point.line}: {point.describe_miss()}  [campaign "{point.campaign}"]')
        return lines


def _display(file: str, root: Path | None) -> str:
    if root is None:
        return file
    try:
        return Path(file).relative_to(root).as_posix()
    except ValueError:
        return file


class CoverageTracer:
    """An interpreter tracer that records coverage hits, for one replay.

    Filter clauses are evaluated on the replay's store, which the interpreter hands over with its first event
    ("start"). Without it, a line or condition that is one clause (or `not` one clause) still counts, from the
    value the interpreter reports.
    """

    def __init__(self, collector: CoverageCollector, store: Store | None = None) -> None:
        self.collector = collector
        self.store = store
        self._looked = store is not None

    def event(self, kind: str, **data: Any) -> None:
        if kind == "start":
            self.store = data["interpreter"].store
            self._looked = True
            return
        if kind == "trigger":
            self.collector.hit(_key("trigger", data["trigger"].span))
        elif kind == "filter":
            self._clauses(data["expr"], data["value"], data["change"].person.id)
        elif kind == "choice_condition":
            self._clauses(data["expr"], data["value"], data["run"].person.id)
        elif kind == "choice":
            branch = data["branch"]
            self.collector.hit(_key("branch", data["choice"].span, "none" if branch is None else str(branch)))
        elif kind == "step":
            self.collector.hit(_key("step", data["step"].span))

    def _clauses(self, expr: ast.FilterExpr, value: bool, person_id: int) -> None:
        if self.store is None:
            if isinstance(expr, ast.Not):
                expr, value = expr.operand, not value
            if isinstance(expr, (ast.MembershipFilter, ast.ProgramMembershipFilter)):
                self.collector.hit(_key("filter", expr.span, "true" if value else "false"))
            return
        ctx = FilterContext(self.store, person_id, self.store.program_id)
        for leaf in leaves(expr):
            leaf_value = evaluate(leaf, ctx)
            self.collector.hit(_key("filter", leaf.span, "true" if leaf_value else "false"))
