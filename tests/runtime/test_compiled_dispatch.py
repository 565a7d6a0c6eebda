"""The fast paths of dispatch against the plain definitions they stand in for.

`compile_filters` (what the interpreter runs) must decide exactly as `evaluate` (what explain and the
tracer run), and `TriggerIndex.candidates` exactly as a straightforward merge of every matching trigger;
both are checked on many generated cases. The replays at the end check that filters see what runs of
the same change did before them (memberships and program statuses are read again after a run).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from replay_helpers import ANN, BOB, added, world

from engine.language import ast
from engine.runtime.filters import FilterContext, compile_filters, evaluate
from engine.runtime.triggers import Candidate, Change, TriggerIndex, ref_matches, trigger_matches
from engine.store.store import CampaignInfo, Person, Store

NAMES = ("A", "B", "C", "D")  # in the catalog; "Gone" is not
STATUSES = ("Sent", "Registered", "Attended")
PROGRAMS = ("P1", "P2")


def status_match(rng: random.Random) -> ast.StatusMatch | None:
    kind = rng.choice(("none", "is", "in", "not_in"))
    if kind == "none":
        return None
    count = 1 if kind == "is" else rng.randint(1, 2)
    return ast.StatusMatch(kind, tuple(rng.sample(STATUSES, count)))  # type: ignore[arg-type]


def campaign_ref(rng: random.Random, ids: dict[str, str]) -> ast.CampaignRef:
    kind = rng.choice(("name", "name", "id", "id15", "in", "not_in", "any", "gone"))
    if kind == "gone":
        return ast.CampaignRef("name", ("Gone",))
    if kind in ("id", "id15"):
        sfdc_id = ids[rng.choice(NAMES)]
        return ast.CampaignRef("id", (sfdc_id[:15] if kind == "id15" else sfdc_id,))
    if kind == "name":
        return ast.CampaignRef("name", (rng.choice(NAMES),))
    if kind == "any":
        return ast.CampaignRef("any")
    return ast.CampaignRef(kind, tuple(rng.sample((*NAMES, "Gone"), rng.randint(1, 3))))  # type: ignore[arg-type]


def expression(rng: random.Random, ids: dict[str, str], depth: int = 0) -> ast.FilterExpr:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return ast.MembershipFilter(campaign_ref(rng, ids), status_match(rng))
    if roll < 0.55:
        return ast.ProgramMembershipFilter(rng.choice(PROGRAMS), status_match(rng))
    if roll < 0.7:
        return ast.Not(expression(rng, ids, depth + 1))
    operands = tuple(expression(rng, ids, depth + 1) for _ in range(rng.randint(2, 5)))
    return ast.And(operands) if roll < 0.85 else ast.Or(operands)


@pytest.fixture
def store() -> Iterator[Store]:
    opened = Store.open()
    for number, name in enumerate(NAMES, start=1):
        opened.add_campaign(name, f"701{number:012d}AAA", STATUSES)
    yield opened
    opened.close()


def test_compiled_filters_decide_as_evaluate(store: Store) -> None:
    rng = random.Random(11)
    ids = {name: info.sfdc_id for name in NAMES if (info := store.campaign_by_name(name)) is not None}
    persons = []
    for number in range(40):
        person = store.add_person(f"p{number}@example.com")
        for name in rng.sample(NAMES, rng.randint(0, len(NAMES))):
            info = store.campaign_by_name(name)
            assert info is not None
            store.set_membership(person.id, info.id, rng.choice(STATUSES), 0.0)
        for program in rng.sample(PROGRAMS, rng.randint(0, len(PROGRAMS))):
            store.set_program_status(person.id, store.program_id(program), rng.choice(STATUSES), 0.0)
        persons.append(person)
    for _ in range(400):
        lines = tuple(expression(rng, ids) for _ in range(rng.randint(1, 4)))
        test = compile_filters(lines, store)
        for person in persons:
            ctx = FilterContext(store, person.id, store.program_id)
            expected = all(evaluate(line, FilterContext(store, person.id, store.program_id)) for line in lines)
            assert test(ctx.memberships, ctx) is expected, (lines, ctx.memberships)


def test_no_filter_lines_pass_everyone(store: Store) -> None:
    person = store.add_person("nobody@example.com")
    ctx = FilterContext(store, person.id, store.program_id)
    assert compile_filters((), store)(ctx.memberships, ctx) is True


# ------------------------------------------------------------------------------------------ trigger index


def reference_candidates(campaigns: tuple[ast.Campaign, ...], change: Change) -> list[Candidate]:
    """Every campaign with a trigger that fires on the change, once, in declaration order; the trigger given
    is the first that fires among those naming the campaign, then those giving its id, then the others."""
    pools: list[list[Candidate]] = [[], [], []]
    for order, campaign in enumerate(campaigns):
        for trigger in campaign.triggers:
            ref = trigger.campaign
            if trigger.kind != change.kind:
                continue
            if trigger.kind == "program_status_changed":
                if trigger.program == change.program:
                    pools[0].append(Candidate(order, campaign, trigger))
            elif ref is not None and change.campaign is not None and ref_matches(ref, change.campaign):
                pool = {"name": 0, "in": 0, "id": 1}.get(ref.kind, 2)
                pools[pool].append(Candidate(order, campaign, trigger))
    found: dict[int, Candidate] = {}
    for pool in pools:
        for candidate in pool:
            if candidate.order not in found and trigger_matches(candidate.trigger, change):
                found[candidate.order] = candidate
    return [found[order] for order in sorted(found)]


def random_trigger(rng: random.Random, ids: dict[str, str]) -> ast.Trigger:
    kind = rng.choice(("added", "added", "removed", "status_changed", "program_status_changed"))
    if kind == "program_status_changed":
        return ast.Trigger(
            kind, program=rng.choice(PROGRAMS), from_status=status_match(rng), to_status=status_match(rng)
        )
    ref = campaign_ref(rng, ids) if rng.random() < 0.4 else ast.CampaignRef("name", (rng.choice(NAMES),))
    if kind == "status_changed":
        return ast.Trigger(kind, ref, from_status=status_match(rng), to_status=status_match(rng))
    return ast.Trigger(kind, ref, status=status_match(rng) if rng.random() < 0.5 else None)  # type: ignore[arg-type]


def test_candidates_are_every_fired_campaign_once_in_declaration_order() -> None:
    rng = random.Random(7)
    catalog = [
        CampaignInfo(n, f"701{n:012d}AAA", name, STATUSES, STATUSES[0], frozenset())
        for n, name in enumerate(NAMES, start=1)
    ]
    ids = {c.name: c.sfdc_id for c in catalog}
    person = Person(1, "ann@example.com", None, None)
    for _ in range(200):
        campaigns = tuple(
            ast.Campaign(f"C{n}", triggers=tuple(random_trigger(rng, ids) for _ in range(rng.randint(1, 3))))
            for n in range(rng.randint(1, 12))
        )
        index = TriggerIndex(campaigns)
        for _ in range(20):
            kind = rng.choice(("added", "removed", "status_changed", "program_status_changed"))
            previous, status = rng.choice((None, *STATUSES)), rng.choice((None, *STATUSES))
            if kind == "program_status_changed":
                change = Change(kind, person, None, rng.choice(PROGRAMS), previous, status, "event", 0, (), 0.0)
            else:
                change = Change(kind, person, rng.choice(catalog), None, previous, status, "event", 0, (), 0.0)
            assert list(index.candidates(change)) == reference_candidates(campaigns, change)


# ------------------------------------------------------------------------------------------ what filters see


def test_filters_see_program_statuses_set_by_an_earlier_run_of_the_same_change(replay) -> None:
    rules = """
program "Q4" { channel "Webinar" }
campaign "Register" {
    trigger added to sfdc campaign "Webinar"
    filter not member of program "Q4"
    flow { change program status in program "Q4" to "Registered" }
}
campaign "Registered only" {
    trigger added to sfdc campaign "Webinar"
    filter member of program "Q4" with status "Registered"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
    result = replay(rules, [added(ANN, "Webinar", "Registered")])
    assert [r["campaign"] for r in result.runs] == ["Register", "Registered only"]
    assert result.members("VIP") == {ANN: "Sent"}


def test_a_run_between_two_candidates_is_seen_only_by_the_later_one(replay) -> None:
    rules = """
campaign "Not yet VIP" {
    trigger added to sfdc campaign "Webinar"
    filter not member of sfdc campaign "VIP"
    flow { add to sfdc campaign "Customers" with status "Sent" }
}
campaign "Make VIP" {
    trigger added to sfdc campaign "Webinar"
    filter not member of sfdc campaign "DNC"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
campaign "Still not VIP" {
    trigger added to sfdc campaign "Webinar"
    filter not member of sfdc campaign "VIP"
    flow { add to sfdc campaign "Prospects" with status "Sent" }
}
"""
    result = replay(rules, [added(ANN, "Webinar", "Registered"), added(BOB, "Webinar", "Registered")], world())
    assert [r["campaign"] for r in result.runs] == ["Not yet VIP", "Make VIP"] * 2
    assert result.members("Prospects") == {}
