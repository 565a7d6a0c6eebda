"""Filter evaluation: `member of` is existential over one membership; not / and / or combine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


Memberships = dict[int, str]  # campaign id -> status: one person's memberships, as the store gives them
Compiled = Callable[[Memberships, FilterContext], bool]


def pass_all(memberships: Memberships, ctx: FilterContext) -> bool:
    """The test of a campaign without filter lines (callers may skip reading memberships for it)."""
    return True


def compile_filters(exprs: Sequence[ast.FilterExpr], store: Store) -> Compiled:
    """A campaign's filter lines as one test (all must hold, checked in order); `pass_all` when it has none.

    Campaign references are resolved once against the store's current campaign catalog, so each `member of`
    is a set or dict lookup on the person's memberships (read once per change by the caller). Same meaning
    as `evaluate`; the interpreter compiles each campaign's filters once per campaign catalog.
    """
    if not exprs:
        return pass_all
    return _joined([compile_expr(expr, store) for expr in exprs], every=True)


def compile_expr(expr: ast.FilterExpr, store: Store) -> Compiled:
    """One filter expression, compiled (see `compile_filters`)."""
    if isinstance(expr, ast.MembershipFilter):
        return _compile_member_of(expr, store, negate=False)
    if isinstance(expr, ast.ProgramMembershipFilter):
        flt = expr
        return lambda m, ctx: ctx.member_of_program(flt)
    if isinstance(expr, ast.Not):
        if isinstance(expr.operand, ast.MembershipFilter):
            return _compile_member_of(expr.operand, store, negate=True)
        return _negated(compile_expr(expr.operand, store))
    parts = [compile_expr(operand, store) for operand in expr.operands]
    return _joined(parts, every=isinstance(expr, ast.And))


def _negated(test: Compiled) -> Compiled:
    return lambda m, ctx: not test(m, ctx)


def _joined(parts: list[Compiled], *, every: bool) -> Compiled:
    """`and` (`every` part holds) or `or` of parts, short-circuiting in order, without a generator for 2 or 3."""
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        if every:
            return lambda m, ctx: a(m, ctx) and b(m, ctx)
        return lambda m, ctx: a(m, ctx) or b(m, ctx)
    if len(parts) == 3:
        a, b, c = parts
        if every:
            return lambda m, ctx: a(m, ctx) and b(m, ctx) and c(m, ctx)
        return lambda m, ctx: a(m, ctx) or b(m, ctx) or c(m, ctx)
    if every:
        return lambda m, ctx: all(part(m, ctx) for part in parts)
    return lambda m, ctx: any(part(m, ctx) for part in parts)


def _compile_member_of(flt: ast.MembershipFilter, store: Store, *, negate: bool) -> Compiled:
    """`member of ...` (`not member of ...` when `negate`) as set and dict tests on the memberships."""
    ref = flt.campaign
    match = flt.status
    if not ref.is_single:
        test = _member_of_many(ref, match, store)
        return _negated(test) if negate else test
    campaign = store.campaign_by_name(ref.values[0]) if ref.kind == "name" else store.campaign_by_sfdc_id(ref.values[0])
    if campaign is None:  # not in the catalog: never a membership
        return lambda m, ctx: negate
    cid = campaign.id
    if match is None:
        if negate:
            return lambda m, ctx: cid not in m
        return lambda m, ctx: cid in m
    # a missing membership (None) never matches a status
    accepted: frozenset[str | None] = frozenset(match.values)
    if match.kind == "not_in":
        refused: frozenset[str | None] = accepted | {None}
        if negate:
            return lambda m, ctx: m.get(cid) in refused
        return lambda m, ctx: m.get(cid) not in refused
    if negate:
        return lambda m, ctx: m.get(cid) not in accepted
    return lambda m, ctx: m.get(cid) in accepted


def _member_of_many(ref: ast.CampaignRef, match: ast.StatusMatch | None, store: Store) -> Compiled:
    """`member of any sfdc campaign` / `... [not] in (...)`: some one membership matches reference and status."""
    if ref.kind == "any":
        if match is None:
            return lambda m, ctx: bool(m)
        values = frozenset(match.values)
        if match.kind == "not_in":
            return lambda m, ctx: not values.issuperset(m.values())
        return lambda m, ctx: not values.isdisjoint(m.values())
    ids = frozenset(c.id for name in ref.values if (c := store.campaign_by_name(name)) is not None)
    inside = ref.kind == "in"
    if match is None:
        if inside:
            return lambda m, ctx: not ids.isdisjoint(m)
        return lambda m, ctx: not ids.issuperset(m)
    status_ok = _status_test(match)
    return lambda m, ctx: any((cid in ids) == inside and status_ok(status) for cid, status in m.items())


def _status_test(match: ast.StatusMatch) -> Callable[[str], bool]:
    values = frozenset(match.values)
    if match.kind == "not_in":
        return lambda status: status not in values
    return lambda status: status in values


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
