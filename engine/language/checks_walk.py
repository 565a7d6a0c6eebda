"""What the semantic checks share: walking a rule set's AST (filters, steps, the steps the later checks read)
and wording a diagnostic (where, `_at`, did you mean)."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass

from engine.language import ast
from engine.language.diagnostics import Diagnostic


def _where(span: ast.Span) -> str:
    return f"{span.file}:{span.line}:{span.column}"


def _at(severity: str, code: str, message: str, span: ast.Span, *notes: str) -> Diagnostic:
    return Diagnostic(
        severity,  # type: ignore[arg-type]
        code,
        message,
        span.file,
        span.line,
        span.column,
        span.end_line,
        span.end_column,
        tuple(notes),
    )


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


# ------------------------------------------------------------------------------- walking the AST


def iter_filters(expr: ast.FilterExpr) -> Iterator[ast.MembershipFilter | ast.ProgramMembershipFilter]:
    """The `member of` leaves of an expression, left to right (no recursion: nesting depth is unbounded)."""
    stack: list[ast.FilterExpr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.MembershipFilter, ast.ProgramMembershipFilter)):
            yield node
        elif isinstance(node, ast.Not):
            stack.append(node.operand)
        else:
            stack.extend(reversed(node.operands))


def iter_steps(steps: tuple[ast.FlowStep, ...]) -> Iterator[ast.FlowStep]:
    """Every step of a flow, choices included (depth first, in order, without recursion)."""
    stack: list[ast.FlowStep] = list(reversed(steps))
    while stack:
        step = stack.pop()
        yield step
        if isinstance(step, ast.Choice):
            for branch in reversed(step.branches):
                stack.extend(reversed(branch.steps))


def campaign_filters(campaign: ast.Campaign) -> Iterator[ast.MembershipFilter | ast.ProgramMembershipFilter]:
    for expr in campaign.filters:
        yield from iter_filters(expr)
    for step in iter_steps(campaign.flow):
        if isinstance(step, ast.Choice):
            for branch in step.branches:
                if branch.condition is not None:
                    yield from iter_filters(branch.condition)


@dataclass
class _Steps:
    """The steps of one campaign's flow that the checks of batch, requested and executed campaigns read."""

    timed: tuple[ast.WaitUntil | ast.WaitWindow, ...] = ()
    calls: tuple[ast.RequestCampaign | ast.ExecuteCampaign, ...] = ()
    removals: tuple[ast.RemoveFromFlow, ...] = ()

    def note(self, step: ast.FlowStep) -> None:
        if isinstance(step, (ast.RequestCampaign, ast.ExecuteCampaign)):
            self.calls = (*self.calls, step)
        elif isinstance(step, ast.RemoveFromFlow):
            self.removals = (*self.removals, step)
        elif isinstance(step, (ast.WaitUntil, ast.WaitWindow)):
            self.timed = (*self.timed, step)


_NO_STEPS = _Steps()  # a flow without any of them (never noted into)


_NOTED = (ast.WaitUntil, ast.WaitWindow, ast.RequestCampaign, ast.ExecuteCampaign, ast.RemoveFromFlow)


def _index_steps(rule_set: ast.RuleSet) -> dict[int, _Steps]:
    """One walk over every flow, by campaign (`id`: names may be declared twice)."""
    index: dict[int, _Steps] = {}
    for campaign in rule_set.campaigns:
        for step in iter_steps(campaign.flow):
            if isinstance(step, _NOTED):
                index.setdefault(id(campaign), _Steps()).note(step)
    return index
