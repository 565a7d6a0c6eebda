"""`explain`: why a person did or did not go through a campaign (engine/explain: trace, words, render, model).

Every test replays events over the standard world of `replay_helpers` and reads the explanation the way a
rule author would: the trigger, the qualification, each filter clause with its value, choices, steps.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import ANN, BOB, CAT, added, at, changed, load_rules, world
from rich.console import Console

from engine.explain import Explanation, explain, render_text
from engine.model.events import Event
from engine.model.loading import InputError
from engine.model.world import World
from engine.replay.run import ReplayInputEvent

RULES = """\
campaign "Attendees" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    trigger added to sfdc campaign "Webinar" with status "Attended"
    filter member of sfdc campaign "Customers"
    filter not member of sfdc campaign "DNC"
    qualify once
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        if member of sfdc campaign "VIP" {
            change status in sfdc campaign "VIP" to "Responded"
        } else {
            add to sfdc campaign "Prospects" with status "Sent"
        }
        wait 2 days
        change status in sfdc campaign "Nurture" to "Responded"
    }
}

campaign "No-shows" {
    trigger status changed in sfdc campaign "Webinar" to "No Show"
    qualify every time
    flow {
        add to sfdc campaign "Prospects" with status "Sent"
    }
}

campaign "Paused" {
    inactive
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    flow {
        add to sfdc campaign "Prospects" with status "Sent"
    }
}
"""

MEMBERS = {
    "Webinar": {ANN: "Registered", BOB: "Registered", CAT: "Registered"},
    "Customers": {ANN: "Sent", CAT: "Responded"},
}


def run(
    tmp_path: Path,
    events: list[dict[str, Any]],
    rules: str = RULES,
    members: dict[str, dict[str, str]] | None = None,
    **options: Any,
) -> Explanation:
    rule_set = load_rules(tmp_path, rules)
    model = World.model_validate(world(members if members is not None else MEMBERS))
    inputs = [
        ReplayInputEvent(Event.model_validate(data), line=number, file="events.jsonl")
        for number, data in enumerate(events, start=1)
    ]
    return explain(rule_set, model, inputs, **options)


def first_event_change(explanation: Explanation, person: str) -> Any:
    """The change the first event made for `person` (origin event)."""
    return next(c for c in explanation.changes if c.person == person and c.origin == "event")


def test_a_person_who_ran(tmp_path: Path) -> None:
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Attended", at(3, 9))], person=ANN)
    change = first_event_change(explanation, ANN)
    assert change.text == 'status changed in "Webinar" Registered → Attended (event)'
    decision = change.campaign("Attendees")
    assert decision.result == "ran"
    assert decision.triggered
    assert decision.trigger is not None
    assert decision.trigger.location.endswith("rules.campaign:2")
    assert decision.trigger.text == 'status changed in sfdc campaign "Webinar" to "Attended"'
    assert decision.qualification is not None
    assert decision.qualification.ok
    assert decision.qualification.last_run_at is None
    assert [(f.text, f.value) for f in decision.filters] == [
        ('member of sfdc campaign "Customers"', True),
        ('not member of sfdc campaign "DNC"', True),
    ]
    assert decision.filters[0].clause is not None
    assert decision.filters[0].clause.detail == 'status "Sent"'
    assert decision.run is not None
    steps = [(s.kind, s.text, s.outcome, s.detail) for s in decision.run.steps]
    assert steps[0] == ("action", 'add to sfdc campaign "Nurture" with status "Sent"', "done", "added")
    assert steps[1][0] == "choice"
    assert steps[2] == ("action", 'add to sfdc campaign "Prospects" with status "Sent"', "done", "added")
    assert steps[3][:3] == ("wait", "wait 2 days", "done")


def test_a_person_filtered_out_names_the_false_clause(tmp_path: Path) -> None:
    explanation = run(tmp_path, [changed(BOB, "Webinar", "Attended", at(3, 9))], person=BOB)
    decision = first_event_change(explanation, BOB).campaign("Attendees")
    assert decision.result == "filtered_out"
    assert decision.run is None
    first, second = decision.filters
    assert (first.evaluated, first.value) == (True, False)
    assert first.clause is not None
    assert (first.clause.text, first.clause.value, first.clause.detail) == (
        'member of sfdc campaign "Customers"',
        False,
        "not a member",
    )
    assert (second.evaluated, second.value, second.clause) == (False, None, None)
    assert 'member of sfdc campaign "Customers" → false (not a member)' in decision.summary


def test_filter_clauses_see_memberships_at_that_moment(tmp_path: Path) -> None:
    rules = """\
campaign "First" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    flow { add to sfdc campaign "DNC" with status "Sent" }
}
campaign "Second" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    filter not member of sfdc campaign "DNC" or member of sfdc campaign "VIP" with status in ("Sent", "Responded")
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Attended", at(3, 9))], rules=rules, person=ANN)
    decision = first_event_change(explanation, ANN).campaign("Second")
    assert decision.result == "filtered_out"
    clause = decision.filters[0].clause
    assert clause is not None
    assert clause.kind == "or"
    negated, vip = clause.operands
    assert (negated.kind, negated.value) == ("not", False)
    assert negated.operands[0].detail == 'status "Sent"'  # "First" added ann to DNC just before
    assert (vip.value, vip.detail) == (False, "not a member")


def test_qualify_once_names_the_last_run(tmp_path: Path) -> None:
    events = [
        changed(ANN, "Webinar", "Attended", at(3, 9)),
        changed(ANN, "Webinar", "No Show", at(4, 9)),
        changed(ANN, "Webinar", "Attended", at(5, 9)),
    ]
    explanation = run(tmp_path, events, person=ANN, campaign="Attendees")
    decisions = [d for c, d in explanation.decisions("Attendees") if c.origin == "event"]
    assert [d.result for d in decisions] == ["ran", "no_trigger", "not_qualified"]
    blocked = decisions[2].qualification
    assert blocked is not None
    assert not blocked.ok
    assert blocked.rule == "qualify once"
    assert blocked.runs == 1
    assert blocked.last_run_at is not None
    assert "already ran once, last at 2026-11-03 09:00" in blocked.reason
    assert decisions[2].filters == []  # not reached
    assert decisions[2].to_json()["qualification"]["last_run"] == {"at": at(3, 9), "runs": 1}


def test_a_trigger_that_did_not_match_says_why(tmp_path: Path) -> None:
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Attended", at(3, 9))], person=ANN)
    change = first_event_change(explanation, ANN)
    no_shows = change.campaign("No-shows")
    assert no_shows.result == "no_trigger"
    assert not no_shows.triggered
    assert no_shows.triggers[0].mismatch == "status"
    assert no_shows.summary == 'no trigger matches: to "Attended" is not "No Show"'
    attendees = change.campaign("Attendees")
    assert [t.matched for t in attendees.triggers] == [True, False]
    assert attendees.triggers[1].reason == "wants an addition, this is a status change"
    nurture = next(c for c in explanation.changes if c.sfdc_campaign == "Nurture" and c.type.startswith("added"))
    assert nurture.origin == "flow"
    assert nurture.campaign("Attendees").summary == 'no trigger matches: different campaign ("Nurture")'


def test_inactive_campaign(tmp_path: Path) -> None:
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Attended", at(3, 9))], person=ANN, campaign="Paused")
    decision = first_event_change(explanation, ANN).campaign("Paused")
    assert (decision.triggered, decision.result, decision.active) == (True, "inactive", False)
    assert decision.qualification is None


def test_person_and_campaign_filters(tmp_path: Path) -> None:
    events = [changed(ANN, "Webinar", "Attended", at(3, 9)), changed(BOB, "Webinar", "Attended", at(3, 10))]
    everyone = run(tmp_path, events)
    assert {c.person for c in everyone.changes} == {ANN, BOB}
    assert all(len(c.campaigns) == 3 for c in everyone.changes)

    only_bob = run(tmp_path, events, person="BOB@Example.com", campaign="no-shows")
    assert {c.person for c in only_bob.changes} == {BOB}
    assert all([d.campaign for d in c.campaigns] == ["No-shows"] for c in only_bob.changes)
    assert only_bob.to_json()["campaign"] == "No-shows"

    with pytest.raises(InputError, match=r'no campaign "Nope".*"Attendees", "No-shows", "Paused"'):
        run(tmp_path, events, campaign="Nope")

    nobody = run(tmp_path, events, person="zed@example.com")
    assert nobody.changes == []
    assert nobody.notes == ["zed@example.com: no such person in the world or the events"]


def test_choice_branch_taken(tmp_path: Path) -> None:
    members = {**MEMBERS, "VIP": {ANN: "Sent"}}
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Attended", at(3, 9))], members=members, person=ANN)
    run_record = first_event_change(explanation, ANN).campaign("Attendees").run
    assert run_record is not None
    choice = next(s for s in run_record.steps if s.kind == "choice")
    assert choice.branch == 0
    assert choice.detail == 'branch 1 of 2: if member of sfdc campaign "VIP"'
    assert [(c.text, c.value, c.clause.detail) for c in choice.conditions] == [
        ('if member of sfdc campaign "VIP"', True, 'status "Sent"')
    ]
    inside = run_record.steps[run_record.steps.index(choice) + 1]
    assert (inside.text, inside.level, inside.detail) == (
        'change status in sfdc campaign "VIP" to "Responded"',
        1,
        'status "Sent" -> "Responded"',
    )


def test_wait_continuation_is_attached_to_its_run(tmp_path: Path) -> None:
    events = [changed(ANN, "Webinar", "Attended", at(3, 9)), changed(BOB, "Webinar", "Attended", at(10, 9))]
    explanation = run(tmp_path, events, person=ANN, campaign="Attendees")
    run_record = first_event_change(explanation, ANN).campaign("Attendees").run
    assert run_record is not None
    after = [s for s in run_record.steps if s.segment == 1]
    assert [(s.text, s.outcome) for s in after] == [('change status in sfdc campaign "Nurture" to "Responded"', "done")]
    assert after[0].to_json()["at"] == at(5, 9)
    assert run_record.waiting_until is None

    cut = run(tmp_path, events[:1], person=ANN, campaign="Attendees", until=World(now=at(4, 0)).now)
    pending = first_event_change(cut, ANN).campaign("Attendees").run
    assert pending is not None
    assert all(s.segment == 0 for s in pending.steps)
    assert pending.to_json()["waiting_until"] == at(5, 9)


def test_cascade_cut(tmp_path: Path) -> None:
    rules = """\
campaign "Ping" {
    trigger added to sfdc campaign "VIP"
    qualify every time
    flow { remove from sfdc campaign "VIP" }
}
campaign "Pong" {
    trigger removed from sfdc campaign "VIP"
    qualify every time
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
    explanation = run(tmp_path, [added(ANN, "VIP", "Sent", at(3))], rules=rules, person=ANN, max_depth=2)
    cut = [c for c in explanation.changes if c.cascade_cut]
    assert len(cut) == 1
    assert cut[0].depth == 3
    assert [d.result for d in cut[0].campaigns if d.triggered] == ["cascade_cut"]
    assert explanation.errors


def test_an_event_that_changed_nothing_is_listed(tmp_path: Path) -> None:
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Registered", at(3))], person=ANN)
    assert explanation.changes == []
    [unchanged] = explanation.unchanged_events
    assert (unchanged.file, unchanged.line) == ("events.jsonl", 1)
    assert 'already a member of "Webinar" with status "Registered"' in unchanged.reason


def test_json_shape(tmp_path: Path) -> None:
    explanation = run(tmp_path, [changed(ANN, "Webinar", "Attended", at(3, 9))], person=ANN)
    data = json.loads(json.dumps(explanation.to_json()))
    assert set(data) == {"version", "person", "campaign", "changes", "unchanged_events", "errors", "notes"}
    assert data["version"] == 1
    change = data["changes"][0]
    assert set(change) == {
        "at",
        "person",
        "type",
        "sfdc_campaign",
        "program",
        "previous_status",
        "status",
        "origin",
        "depth",
        "chain",
        "text",
        "cascade_cut",
        "campaigns",
    }
    assert (change["type"], change["at"], change["origin"]) == ("status_changed_in_sfdc_campaign", at(3, 9), "event")
    decision = change["campaigns"][0]
    assert set(decision) == {
        "campaign",
        "location",
        "active",
        "result",
        "summary",
        "triggered",
        "trigger",
        "triggers",
        "qualification",
        "filters",
        "run",
    }
    assert set(decision["trigger"]) == {"location", "text", "matched", "reason", "mismatch"}
    assert set(decision["qualification"]) == {"rule", "ok", "reason", "last_run"}
    assert set(decision["filters"][0]) == {"location", "text", "evaluated", "value", "clause"}
    assert set(decision["filters"][0]["clause"]) == {"kind", "text", "value", "detail", "operands"}
    assert set(decision["run"]) == {"run_id", "at", "steps", "waiting_until"}
    step = decision["run"]["steps"][0]
    assert set(step) == {
        "kind",
        "text",
        "location",
        "at",
        "outcome",
        "detail",
        "level",
        "segment",
        "branch",
        "conditions",
    }
    choice = next(s for s in decision["run"]["steps"] if s["kind"] == "choice")
    assert set(choice["conditions"][0]) == {"branch", "text", "value", "clause"}


def render(explanation: Explanation) -> str:
    out = io.StringIO()
    render_text(explanation, Console(file=out, width=100, color_system=None, force_terminal=False))
    return out.getvalue()


def flat(text: str) -> str:
    """The rendered text without tree guides and line wrapping: what a reader sees, in one line."""
    return " ".join(re.sub(r"[│├└─]", " ", text).split())


def test_text_rendering_contains_the_key_lines(tmp_path: Path) -> None:
    events = [
        changed(ANN, "Webinar", "Attended", at(3, 9)),
        changed(BOB, "Webinar", "Attended", at(3, 10)),
        changed(ANN, "Webinar", "Attended", at(4, 9)),
    ]
    text = render(run(tmp_path, events, campaign="Attendees"))
    assert max(len(line) for line in text.splitlines()) <= 100
    reading = flat(text)
    for expected in (
        '2026-11-03 09:00 ann@example.com: status changed in "Webinar" Registered → Attended (event)',
        "✓ Attendees — ran (run #1)",
        '✓ trigger status changed in sfdc campaign "Webinar" to "Attended" rules.campaign:2',
        "✓ qualify once → ok: never ran through this campaign before",
        '✓ filter member of sfdc campaign "Customers" → true (status "Sent")',
        '✓ add to sfdc campaign "Nurture" with status "Sent" → done: added',
        "✓ choice → branch 2 of 2: else",
        '✗ if member of sfdc campaign "VIP" → false (not a member)',
        "✓ wait 2 days → done: until 2026-11-05 09:00",
        "⏵ resumed 2026-11-05 09:00 after the wait",
        '✗ filter member of sfdc campaign "Customers" → false (not a member)',
        '· filter not member of sfdc campaign "DNC" → not evaluated (an earlier filter line was false)',
        'ann@example.com: events.jsonl:3: no change: already a member of "Webinar" with status "Attended"',
    ):
        assert expected in reading, expected


def test_runs_agree_with_replay(tmp_path: Path) -> None:
    """explain runs the same replay: every run it explains is a run of the replay, and the other way round."""
    from replay_helpers import run_replay

    events = [
        changed(ANN, "Webinar", "Attended", at(3, 9)),
        changed(BOB, "Webinar", "No Show", at(3, 10)),
        changed(CAT, "Webinar", "Attended", at(3, 11)),
        changed(BOB, "Webinar", "Attended", at(4, 9)),
    ]
    replayed = run_replay(tmp_path, RULES, events, world(MEMBERS))
    explanation = run(tmp_path, events)
    explained = [
        (d.campaign, c.person, len(d.run.steps)) for c in explanation.changes for d in c.campaigns if d.run is not None
    ]
    assert explained == [(r["campaign"], r["person"], len(r["steps"])) for r in replayed.runs]


def test_window_qualification(tmp_path: Path) -> None:
    rules = """\
campaign "Weekly" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    qualify once every 7 days
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
    events = [
        changed(ANN, "Webinar", "Attended", at(3, 9)),
        changed(ANN, "Webinar", "No Show", at(4, 9)),
        changed(ANN, "Webinar", "Attended", at(5, 9)),
        changed(ANN, "Webinar", "No Show", at(12, 9)),
        changed(ANN, "Webinar", "Attended", at(12, 10)),
    ]
    explanation = run(tmp_path, events, rules=rules, person=ANN)
    decisions = [d for c, d in explanation.decisions("Weekly") if d.triggered]
    assert [d.result for d in decisions] == ["ran", "not_qualified", "ran"]
    blocked, allowed = decisions[1].qualification, decisions[2].qualification
    assert blocked is not None and allowed is not None
    assert blocked.reason == "last run 2026-11-03 09:00 (once): not again before 2026-11-10 09:00"
    assert allowed.reason == "last run 2026-11-03 09:00 (once): the window ended 2026-11-10 09:00"
