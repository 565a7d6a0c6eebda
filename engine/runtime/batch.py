"""Batch campaigns: who a schedule's run selects, and the run itself, durable.

Selection works on sets of person ids, not a person at a time: each `member of` line is one query on the
memberships (by campaign, through `ix_memberships_campaign`), each program line one query on the program
memberships (`ix_program_memberships_program`); `not` is every person minus, `and` an intersection, `or` a
union; the filter lines of a campaign are and-ed (none: everyone). Then qualification (one query on the
campaign's qualification rows), the order (email, case-insensitively, then as written) and `limit N`.

A run is recorded in the store (`batch_runs`, `batch_members`) before anyone runs: each member is marked done
in the transaction of their run, and the store commits every `CHUNK` members. A run interrupted at any point
(a crash, an exception from the CRM) resumes with its remaining members, never its selection again, and never
runs anyone twice; a finished run at a slot never runs again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.language import ast
from engine.store.store import Person, Store

if TYPE_CHECKING:
    from engine.runtime.interpreter import Interpreter, Tracer

CHUNK = 200  # members run between two commits of a batch run
_IN_CHUNK = 500  # values in one `IN (...)`


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What `run_batch` did: `selected` persons in the run (resumed: in the run begun before), `ran` of them
    now, `skipped` now (qualification checked again), `remaining` before this call."""

    campaign: str
    slot: float
    selected: int
    ran: int
    skipped: int
    resumed: bool  # an interrupted run went on
    already_finished: bool  # the run at this slot had finished before: nobody ran

    @property
    def remaining(self) -> int:
        return self.ran + self.skipped


def _marks(values: Iterable[object]) -> str:
    return ", ".join("?" for _ in values)


def _status_clause(match: ast.StatusMatch | None) -> tuple[str, tuple[str, ...]]:
    if match is None:
        return "", ()
    negate = "NOT " if match.kind == "not_in" else ""
    return f" AND status {negate}IN ({_marks(match.values)})", match.values


class Selector:
    """Filter expressions as sets of person ids, against one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._everyone: frozenset[int] | None = None

    def everyone(self) -> frozenset[int]:
        if self._everyone is None:
            self._everyone = frozenset(int(row[0]) for row in self.store.fetchall("SELECT id FROM persons"))
        return self._everyone

    def _ids(self, sql: str, params: tuple[object, ...]) -> set[int]:
        return {int(row[0]) for row in self.store.fetchall(sql, params)}

    def select(self, filters: Iterable[ast.FilterExpr]) -> set[int]:
        """The persons who pass every filter line (everyone, without one)."""
        chosen: set[int] | None = None
        for expr in filters:
            found = self.expr(expr)
            chosen = found if chosen is None else chosen & found
            if not chosen:
                return set()
        return set(self.everyone()) if chosen is None else chosen

    def expr(self, expr: ast.FilterExpr) -> set[int]:
        if isinstance(expr, ast.MembershipFilter):
            return self.member_of(expr)
        if isinstance(expr, ast.ProgramMembershipFilter):
            pid = self.store.program_id(expr.program)
            clause, values = _status_clause(expr.status)
            return self._ids(f"SELECT person_id FROM program_memberships WHERE program_id = ?{clause}", (pid, *values))
        if isinstance(expr, ast.Not):
            return set(self.everyone() - self.expr(expr.operand))
        if isinstance(expr, ast.And):
            out: set[int] | None = None
            for operand in expr.operands:
                found = self.expr(operand)
                out = found if out is None else out & found
                if not out:
                    return set()
            return out or set()
        union: set[int] = set()
        for operand in expr.operands:
            union |= self.expr(operand)
        return union

    def member_of(self, flt: ast.MembershipFilter) -> set[int]:
        """`member of ...`: someone with one membership that matches both the campaign reference and the status."""
        ref = flt.campaign
        clause, values = _status_clause(flt.status)
        if ref.kind == "any":
            where = clause.removeprefix(" AND ")
            return self._ids(f"SELECT DISTINCT person_id FROM memberships{' WHERE ' + where if where else ''}", values)
        if ref.is_single:
            info = (
                self.store.campaign_by_name(ref.values[0])
                if ref.kind == "name"
                else self.store.campaign_by_sfdc_id(ref.values[0])
            )
            if info is None:  # not in the catalog: nobody is a member
                return set()
            return self._ids(f"SELECT person_id FROM memberships WHERE campaign_id = ?{clause}", (info.id, *values))
        ids = sorted({c.id for name in ref.values if (c := self.store.campaign_by_name(name)) is not None})
        if ref.kind == "in":
            found: set[int] = set()
            for start in range(0, len(ids), _IN_CHUNK):
                part = ids[start : start + _IN_CHUNK]
                found |= self._ids(
                    f"SELECT person_id FROM memberships WHERE campaign_id IN ({_marks(part)}){clause}", (*part, *values)
                )
            return found
        # not in (...): a membership of a campaign not listed
        if not ids:
            return self.member_of(ast.MembershipFilter(ast.CampaignRef("any"), flt.status))
        return self._ids(
            f"SELECT DISTINCT person_id FROM memberships WHERE campaign_id NOT IN ({_marks(ids)}){clause}",
            (*ids, *values),
        )


def qualified(store: Store, campaign: ast.Campaign, person_ids: set[int], slot: float) -> set[int]:
    """The persons of `person_ids` the campaign's qualification lets run at `slot`."""
    rule = campaign.qualification
    if rule.kind == "every_time" or not person_ids:
        return person_ids
    rows = store.fetchall("SELECT person_id, last_started_at FROM qualifications WHERE campaign = ?", (campaign.name,))
    if rule.kind == "once":
        return person_ids - {int(row[0]) for row in rows}
    window = rule.window_seconds
    return person_ids - {int(row[0]) for row in rows if slot < float(row[1]) + window}


def select_batch(interp: Interpreter, campaign: ast.Campaign, slot: float) -> list[Person]:
    """Who the batch campaign's run at `slot` selects: filters, qualification, order by email, `limit`."""
    if not campaign.active:
        return []
    store = interp.store
    chosen = qualified(store, campaign, Selector(store).select(campaign.filters), slot)
    if not chosen:
        return []
    people = _in_email_order(store, chosen)
    if campaign.limit is not None:
        people = people[: campaign.limit]
    return people


def _in_email_order(store: Store, chosen: set[int]) -> list[Person]:
    """The persons of `chosen` ordered by email, case-insensitively, then as written."""
    people: list[tuple[str, str, Person]] = []
    for pid, key, display, sfdc_id, sfdc_type in store.fetchall(
        "SELECT id, email, display_email, sfdc_id, sfdc_type FROM persons"
    ):
        if int(pid) in chosen:
            people.append((str(key), str(display), Person(int(pid), str(display), sfdc_id, sfdc_type)))
    people.sort(key=lambda entry: (entry[0], entry[1]))
    return [entry[2] for entry in people]


def _traced_selection(interp: Interpreter, campaign: ast.Campaign, slot: float, tracer: Tracer) -> list[Person]:
    """`select_batch` step by step, told to the tracer (event "batch") before anyone runs; the same selection."""
    store = interp.store
    passed = Selector(store).select(campaign.filters) if campaign.active else set()
    chosen = qualified(store, campaign, set(passed), slot)
    ordered = _in_email_order(store, chosen) if chosen else []
    selected = ordered[: campaign.limit] if campaign.limit is not None else list(ordered)
    tracer.event(
        "batch",
        campaign=campaign,
        slot=slot,
        passed=frozenset(passed),
        qualified=frozenset(chosen),
        ordered=ordered,
        selected=selected,
    )
    return selected


def run_batch(interp: Interpreter, campaign: ast.Campaign, slot: float, chunk: int = CHUNK) -> BatchOutcome:
    """The batch campaign's run at `slot`, durable (see the module doc). Commits what came before it first."""
    store = interp.store
    found = store.batch_run(campaign.name, slot)
    if found is not None and found[2]:
        return BatchOutcome(campaign.name, slot, found[1], 0, 0, False, True)
    if slot > interp.clock:
        interp.set_clock(slot)
    if found is None:
        tracer = interp.tracer
        selected = (
            select_batch(interp, campaign, slot)
            if tracer is None
            else _traced_selection(interp, campaign, slot, tracer)
        )
        batch_id = store.start_batch_run(campaign.name, slot, [person.id for person in selected])
        store.commit()  # the selection is kept: an interrupted run resumes it
        members: list[tuple[int, Person | int]] = list(enumerate(selected))
        count, resumed = len(selected), False
    else:
        batch_id, count, resumed = found[0], found[1], True
        members = list(store.batch_remaining(batch_id))
    ran = skipped = 0
    try:
        for number, (position, member) in enumerate(members, start=1):
            person = member if isinstance(member, Person) else store.person_by_id(member)
            if interp.run_batch_member(campaign, person, slot):
                ran += 1
            else:
                skipped += 1
            store.batch_member_done(batch_id, position)
            if number % chunk == 0:
                store.commit()
        store.finish_batch_run(batch_id)
        store.commit()
    except BaseException:
        interp.abandon()  # the chunk not committed is dropped: its members run again on resume
        raise
    return BatchOutcome(campaign.name, slot, count, ran, skipped, resumed, False)
