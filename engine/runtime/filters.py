"""Filter evaluation: `member of` is existential over one membership; not / and / or combine."""

from __future__ import annotations

from collections.abc import Callable

from engine.language import ast
from engine.store.store import CampaignInfo, Store


class FilterContext:
    """One person's memberships, read once per evaluation, with campaign lookups for references."""

    def __init__(self, store: Store, person_id: int, program_id: Callable[[str], int]) -> None:
        self.store = store
        self.person_id = person_id
        self.memberships = store.memberships(person_id)
        self._program_id = program_id
        self._programs: dict[int, str] | None = None

    def _campaign(self, ref: ast.CampaignRef) -> CampaignInfo | None:
        if ref.kind == "name":
            return self.store.campaign_by_name(ref.values[0])
        return self.store.campaign_by_sfdc_id(ref.values[0])

    def member_of(self, flt: ast.MembershipFilter) -> bool:
        ref = flt.campaign
        status = flt.status
        if ref.is_single:
            campaign = self._campaign(ref)
            if campaign is None:
                return False
            current = self.memberships.get(campaign.id)
            if current is None:
                return False
            return status is None or status.matches(current)
        for campaign_id, current in self.memberships.items():
            if status is not None and not status.matches(current):
                continue
            if ref.kind == "any":
                return True
            name = self.store.campaign(campaign_id).name
            if (ref.kind == "in") == (name in ref.values):
                return True
        return False

    def member_of_program(self, flt: ast.ProgramMembershipFilter) -> bool:
        if self._programs is None:
            self._programs = self.store.program_statuses(self.person_id)
        current = self._programs.get(self._program_id(flt.program))
        if current is None:
            return False
        return flt.status is None or flt.status.matches(current)


Compiled = Callable[[FilterContext], bool]


def compile_expr(expr: ast.FilterExpr, store: Store) -> Compiled:
    """A filter as a function of one person's memberships, with its campaign references resolved once.

    Same meaning as `evaluate`; the interpreter compiles each filter line once per campaign catalog.
    """
    if isinstance(expr, ast.MembershipFilter):
        return _compile_member_of(expr, store)
    if isinstance(expr, ast.ProgramMembershipFilter):
        flt = expr
        return lambda ctx: ctx.member_of_program(flt)
    if isinstance(expr, ast.Not):
        inner = compile_expr(expr.operand, store)
        return lambda ctx: not inner(ctx)
    parts = [compile_expr(operand, store) for operand in expr.operands]
    if isinstance(expr, ast.And):
        return lambda ctx: all(part(ctx) for part in parts)
    return lambda ctx: any(part(ctx) for part in parts)


def _status_test(match: ast.StatusMatch | None) -> Callable[[str], bool] | None:
    if match is None:
        return None
    values = frozenset(match.values)
    if match.kind == "not_in":
        return lambda status: status not in values
    return lambda status: status in values


def _compile_member_of(flt: ast.MembershipFilter, store: Store) -> Compiled:
    ref = flt.campaign
    status_ok = _status_test(flt.status)
    if ref.is_single:
        campaign = (
            store.campaign_by_name(ref.values[0]) if ref.kind == "name" else store.campaign_by_sfdc_id(ref.values[0])
        )
        if campaign is None:
            return lambda ctx: False
        cid = campaign.id
        if status_ok is None:
            return lambda ctx: cid in ctx.memberships

        def single(ctx: FilterContext) -> bool:
            current = ctx.memberships.get(cid)
            return current is not None and status_ok(current)

        return single
    if ref.kind == "any":
        if status_ok is None:
            return lambda ctx: bool(ctx.memberships)
        return lambda ctx: any(status_ok(status) for status in ctx.memberships.values())
    ids = frozenset(c.id for name in ref.values if (c := store.campaign_by_name(name)) is not None)
    inside = ref.kind == "in"

    def listed(ctx: FilterContext) -> bool:
        for campaign_id, status in ctx.memberships.items():
            if (campaign_id in ids) == inside and (status_ok is None or status_ok(status)):
                return True
        return False

    return listed


def evaluate(expr: ast.FilterExpr, ctx: FilterContext) -> bool:
    if isinstance(expr, ast.MembershipFilter):
        return ctx.member_of(expr)
    if isinstance(expr, ast.ProgramMembershipFilter):
        return ctx.member_of_program(expr)
    if isinstance(expr, ast.Not):
        return not evaluate(expr.operand, ctx)
    if isinstance(expr, ast.And):
        return all(evaluate(operand, ctx) for operand in expr.operands)
    return any(evaluate(operand, ctx) for operand in expr.operands)


def describe(expr: ast.FilterExpr) -> str:
    """A filter expression in the rule language's own words (for step details and explain)."""
    if isinstance(expr, ast.MembershipFilter):
        text = f"member of {expr.campaign.describe()}"
        return text + _status(expr.status)
    if isinstance(expr, ast.ProgramMembershipFilter):
        return f'member of program "{expr.program}"' + _status(expr.status)
    if isinstance(expr, ast.Not):
        inner = describe(expr.operand)
        return f"not ({inner})" if isinstance(expr.operand, (ast.And, ast.Or)) else f"not {inner}"
    joiner = " and " if isinstance(expr, ast.And) else " or "
    parts = [
        f"({describe(op)})" if isinstance(op, (ast.And, ast.Or)) and type(op) is not type(expr) else describe(op)
        for op in expr.operands
    ]
    return joiner.join(parts)


def _status(match: ast.StatusMatch | None) -> str:
    if match is None:
        return ""
    if match.kind == "is":
        return f' with status "{match.values[0]}"'
    listed = ", ".join(f'"{v}"' for v in match.values)
    return f" with status {'not in' if match.kind == 'not_in' else 'in'} ({listed})"
