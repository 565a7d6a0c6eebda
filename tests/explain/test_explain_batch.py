"""`explain` for batch, requested and executed campaigns: why a batch run picked a person or not (each filter
line, qualification at the slot, the limit), each run's counts, requests' wording, executed campaigns' decisions.

Every test replays in-process and reads what a rule author reads: the text output, or the records behind it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from engine.explain import Explanation, explain, render_text
from engine.language.loader import load_rule_set
from engine.model.events import Event
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay
from engine.runtime.interpreter import Interpreter

AMY, BEA, CARL, DORA, ZED = (
    "amy@example.com",
    "Bea@example.com",
    "carl@example.com",
    "dora@example.com",
    "zed@example.com",
)

CAMPAIGNS: list[dict[str, Any]] = [
    {"name": "Webinar", "id": "701000000000001AAA", "statuses": ["Registered", "Attended", "No Show"]},
    {"name": "Follow-up", "id": "701000000000002AAA", "statuses": ["Sent"]},
    {"name": "Customers", "id": "701000000000003AAA", "statuses": ["Sent"]},
    {"name": "VIP", "id": "701000000000004AAA", "statuses": ["Sent"]},
    {"name": "Nurture", "id": "701000000000005AAA", "statuses": ["Sent"]},
    {"name": "Kit", "id": "701000000000006AAA", "statuses": ["Sent"]},
    {"name": "DNC", "id": "701000000000007AAA", "statuses": ["Sent"]},
]


def world(members: dict[str, dict[str, str]], now: str = "2026-11-08T00:00:00Z") -> World:
    persons = [
        {"email": e, "sfdc_type": "Lead", "sfdc_id": f"00Q00000000000{n}AAA"}
        for n, e in enumerate([AMY, BEA, CARL, DORA, ZED], 1)
    ]
    campaigns = [dict(c, members=dict(members.get(c["name"], {}))) for c in CAMPAIGNS]
    return World.model_validate({"now": now, "persons": persons, "sfdc_campaigns": campaigns})


NO_SHOWS = {"Webinar": {AMY: "No Show", BEA: "No Show", CARL: "No Show", DORA: "No Show", ZED: "Attended"}}

WEEKLY = """\
campaign "No-show follow-up" {
    schedule every week on monday at 09:00
    filter member of sfdc campaign "Webinar" with status "No Show"
    filter not member of sfdc campaign "DNC"
    limit 2
    qualify once
    flow {
        add to sfdc campaign "Follow-up" with status "Sent"
    }
}
"""


def status(person: str, campaign: str, value: str, at: str) -> dict[str, Any]:
    return {
        "type": "status_changed_in_sfdc_campaign",
        "person": person,
        "campaign": campaign,
        "status": value,
        "at": at,
    }


def run(
    tmp_path: Path,
    rules: str,
    events: list[dict[str, Any]] = [],  # noqa: B006 - never mutated
    members: dict[str, dict[str, str]] | None = None,
    **options: Any,
) -> Explanation:
    path = tmp_path / "rules.campaign"
    path.write_text(rules, encoding="utf-8")
    loaded = load_rule_set([path], use_cache=False)
    assert not loaded.errors, "\n".join(d.header() for d in loaded.errors)
    inputs = [ReplayInputEvent(Event.model_validate(e), n, "events.jsonl") for n, e in enumerate(events, 1)]
    return explain(loaded.rule_set, world(NO_SHOWS if members is None else members), inputs, **options)


def text(explanation: Explanation) -> str:
    out = io.StringIO()
    render_text(explanation, Console(file=out, width=200, color_system=None, force_terminal=False))
    return out.getvalue()


UNTIL_2_RUNS = {"until": __import__("datetime").datetime.fromisoformat("2026-11-16T12:00:00+00:00")}


# ------------------------------------------------------------------------------ picked / not picked
def test_picked_with_its_position_and_run(tmp_path: Path) -> None:
    explanation = run(tmp_path, WEEKLY, person=AMY, **UNTIL_2_RUNS)
    first = explanation.batches[0]
    assert first.person is not None
    assert first.person.result == "picked"
    assert first.person.position == 1
    assert first.person.run is not None
    assert [s.text for s in first.person.run.steps] == ['add to sfdc campaign "Follow-up" with status "Sent"']
    out = text(explanation)
    assert 'batch run of "No-show follow-up" (schedule every week on monday at 09:00; UTC)' in out
    assert f"✓ {AMY} — picked (1st by email order of 4), ran (run #1)" in out
    assert "✓ limit 2: 1st by email order, within it" in out
    assert 'filter member of sfdc campaign "Webinar" with status "No Show" → true (status "No Show")' in out


def test_not_picked_by_the_limit_says_which_place(tmp_path: Path) -> None:
    explanation = run(tmp_path, WEEKLY, person=CARL, **UNTIL_2_RUNS)
    first = explanation.batches[0]
    assert first.person is not None and first.person.result == "limit"
    assert first.person.run is None
    out = text(explanation)
    assert f"✗ {CARL} — not picked: limit 2 reached: 3rd by email order" in out
    # the next week, the two before carl have run once (qualify once): carl is first now
    second = explanation.batches[1]
    assert second.person is not None and second.person.result == "picked"
    assert second.person.summary.startswith("picked (1st by email order of 2)")


def test_not_picked_by_qualification_says_when_it_ran(tmp_path: Path) -> None:
    explanation = run(tmp_path, WEEKLY, person=AMY, **UNTIL_2_RUNS)
    second = explanation.batches[1]
    assert second.person is not None and second.person.result == "not_qualified"
    out = text(explanation)
    assert f"✗ {AMY} — not picked: qualify once blocked it: already ran once, last at 2026-11-09 09:00" in out
    assert "✗ qualify once → blocked: already ran once, last at 2026-11-09 09:00" in out


def test_not_picked_by_a_filter_names_the_false_clause_at_the_slot(tmp_path: Path) -> None:
    events = [status(DORA, "Webinar", "Attended", "2026-11-12T10:00:00Z")]
    members = {**NO_SHOWS, "DNC": {BEA: "Sent"}}
    explanation = run(tmp_path, WEEKLY, events, members, person=DORA, **UNTIL_2_RUNS)
    first, second = explanation.batches
    assert first.person is not None and first.person.result == "limit"  # amy, carl before her (bea is DNC)
    assert second.person is not None and second.person.result == "filtered_out"
    assert second.person.qualification is None  # not reached
    assert [(f.evaluated, f.value) for f in second.person.filters] == [(True, False), (True, True)]
    out = text(explanation)
    assert (
        f'✗ {DORA} — not picked: filter line 1 is false: member of sfdc campaign "Webinar" with status "No Show" '
        '→ false (member with status "Attended")'
    ) in out

    bea = run(tmp_path, WEEKLY, events, members, person=BEA, **UNTIL_2_RUNS).batches[0].person
    assert bea is not None
    assert bea.summary == (
        'not picked: filter line 2 is false: not member of sfdc campaign "DNC" → false (member, status "Sent")'
    )


def test_without_a_person_each_run_with_its_counts_only(tmp_path: Path) -> None:
    members = {**NO_SHOWS, "DNC": {BEA: "Sent"}}
    explanation = run(tmp_path, WEEKLY, members=members, **UNTIL_2_RUNS)
    assert [b.person for b in explanation.batches] == [None, None]
    first = explanation.batches[0]
    assert (first.everyone, first.passed, first.qualified, first.selected, first.cut) == (5, 3, 3, 2, 1)
    out = text(explanation)
    assert "Why: every person, every campaign (3 changes, 2 batch runs)" in out
    assert "5 persons: 3 passed the filters, 3 qualified, 2 selected (limit 2: 1 cut)" in out
    assert "5 persons: 3 passed the filters, 1 qualified, 1 selected (limit 2: 0 cut)" in out
    assert "picked" not in out
    # a batch campaign (no trigger) is not listed under each change
    assert "no trigger matches" not in out


def test_the_runs_are_the_replays(tmp_path: Path) -> None:
    """explain runs the replay's own driver: the same slots, the same persons, up to --until."""
    explanation = run(tmp_path, WEEKLY, **UNTIL_2_RUNS)
    path = tmp_path / "rules.campaign"
    rule_set = load_rule_set([path], use_cache=False).rule_set
    result = replay(rule_set, world(NO_SHOWS), [], ReplayOptions(until=UNTIL_2_RUNS["until"]))
    slots = sorted({r["trigger"]["slot"] for r in result["runs"]})
    assert (
        [b.to_json()["slot"] for b in explanation.batches] == slots == ["2026-11-09T09:00:00Z", "2026-11-16T09:00:00Z"]
    )
    assert sum(b.selected for b in explanation.batches) == len(result["runs"])
    # without --until: the slots up to the last event's time only (none here)
    assert run(tmp_path, WEEKLY).batches == []


def test_slot_in_the_campaigns_time_zone(tmp_path: Path) -> None:
    rules = WEEKLY.replace("    schedule", '    timezone "Europe/Berlin"\n    schedule')
    explanation = run(tmp_path, rules, **UNTIL_2_RUNS)
    first = explanation.batches[0]
    assert first.to_json()["slot"] == "2026-11-09T08:00:00Z"
    assert (first.zone, first.local) == ("Europe/Berlin", "2026-11-09 09:00 CET")
    assert "(schedule every week on monday at 09:00; Europe/Berlin: 2026-11-09 09:00 CET)" in text(explanation)


def test_qualification_window_at_the_slot(tmp_path: Path) -> None:
    rules = WEEKLY.replace("qualify once", "qualify once every 10 days").replace("limit 2\n", "")
    until = {"until": __import__("datetime").datetime.fromisoformat("2026-11-23T12:00:00+00:00")}
    explanation = run(tmp_path, rules, person=AMY, **until)
    results = [b.person.result for b in explanation.batches if b.person is not None]
    assert results == ["picked", "not_qualified", "picked"]
    blocked = explanation.batches[1].person
    assert blocked is not None and blocked.qualification is not None
    assert blocked.qualification.reason == "last run 2026-11-09 09:00 (once): not again before 2026-11-19 09:00"


def test_campaign_option_narrows_to_the_batch_campaign(tmp_path: Path) -> None:
    rules = (
        WEEKLY
        + """
campaign "Attendees" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
    )
    events = [status(DORA, "Webinar", "Attended", "2026-11-12T10:00:00Z")]
    only_batch = run(tmp_path, rules, events, campaign="No-show follow-up", **UNTIL_2_RUNS)
    assert len(only_batch.batches) == 2
    assert all(not c.campaigns for c in only_batch.changes)
    only_trigger = run(tmp_path, rules, events, campaign="Attendees", **UNTIL_2_RUNS)
    assert only_trigger.batches == []
    data = only_trigger.to_json()
    assert "batches" not in data  # a trigger campaign's JSON is what it was
    assert "batch run" not in text(only_trigger)


def test_json_carries_the_batch_decisions(tmp_path: Path) -> None:
    data = json.loads(json.dumps(run(tmp_path, WEEKLY, person=CARL, **UNTIL_2_RUNS).to_json()))
    assert data["version"] == 1
    first = data["batches"][0]
    assert first["campaign"] == "No-show follow-up"
    assert first["schedule"] == "schedule every week on monday at 09:00"
    assert first["counts"] == {"persons": 5, "passed_filters": 4, "qualified": 4, "selected": 2, "cut_by_limit": 2}
    person = first["person"]
    assert (person["result"], person["picked"], person["position"]) == ("limit", False, 3)
    assert person["limit"] == "limit 2 reached: 3rd by email order"
    assert person["qualification"]["ok"] is True
    assert [f["value"] for f in person["filters"]] == [True, True]
    assert data["batches"][1]["person"]["run"]["steps"][0]["outcome"] == "done"


def test_a_person_picked_but_blocked_when_their_turn_came(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The selection's qualification is one query at the slot; each member's is checked again at their turn."""
    monkeypatch.setattr(Interpreter, "qualifies_at", lambda self, campaign, person_id, at: False)
    explanation = run(tmp_path, WEEKLY, person=AMY, **UNTIL_2_RUNS)
    decision = explanation.batches[0].person
    assert decision is not None and decision.result == "skipped" and decision.picked and decision.run is None
    assert "picked, but not run: qualify once blocked it when its turn came" in decision.summary


def test_an_unknown_person_at_the_slot(tmp_path: Path) -> None:
    explanation = run(tmp_path, WEEKLY, person="nobody@example.com", **UNTIL_2_RUNS)
    decision = explanation.batches[0].person
    assert decision is not None and decision.result == "unknown_person"
    assert explanation.notes == ["nobody@example.com: no such person in the world or the events"]


# ------------------------------------------------------------------------------ requested and executed
REQUESTED = """\
campaign "Signup" {
    trigger added to sfdc campaign "Webinar"
    flow {
        request campaign "Send kit"
    }
}

campaign "Send kit" {
    trigger campaign is requested
    filter not member of sfdc campaign "DNC"
    flow {
        add to sfdc campaign "Kit" with status "Sent"
    }
}

campaign "Other kit" {
    trigger campaign is requested
    flow {
        add to sfdc campaign "Kit" with status "Sent"
    }
}
"""


def test_requested_by_a_flow_and_by_an_event(tmp_path: Path) -> None:
    events = [
        {
            "type": "added_to_sfdc_campaign",
            "person": AMY,
            "campaign": "Webinar",
            "status": "Registered",
            "at": "2026-11-09T00:00:00Z",
        },
        {"type": "campaign_requested", "person": CARL, "campaign": "Send kit", "at": "2026-11-09T01:00:00Z"},
    ]
    explanation = run(tmp_path, REQUESTED, events, members={})
    by_flow = next(c for c in explanation.changes if c.type == "campaign_requested" and c.person == AMY)
    assert by_flow.text == '"Send kit" requested by "Signup" (flow of "Signup", depth 1)'
    assert by_flow.campaign("Send kit").result == "ran"
    assert by_flow.campaign("Other kit").summary == 'no trigger matches: the request is for "Send kit"'
    assert by_flow.campaign("Signup").summary == "no trigger matches: wants an addition, this is a request"
    by_event = next(c for c in explanation.changes if c.type == "campaign_requested" and c.person == CARL)
    assert by_event.text == '"Send kit" requested (event)'
    out = text(explanation)
    assert "✓ trigger campaign is requested" in out


EXECUTE = """\
campaign "Route" {
    trigger added to sfdc campaign "Webinar"
    qualify every time
    flow {
        execute campaign "Score"
        add to sfdc campaign "Nurture" with status "Sent"
    }
}

campaign "Score" {
    trigger campaign is requested
    filter member of sfdc campaign "Customers"
    flow {
        add to sfdc campaign "VIP" with status "Sent"
    }
}
"""


def _added(person: str, at: str, campaign: str = "Webinar", value: str = "Registered") -> dict[str, Any]:
    return {"type": "added_to_sfdc_campaign", "person": person, "campaign": campaign, "status": value, "at": at}


def _removed(person: str, at: str, campaign: str = "Webinar") -> dict[str, Any]:
    return {"type": "removed_from_sfdc_campaign", "person": person, "campaign": campaign, "at": at}


def test_executed_campaign_ran_under_the_step(tmp_path: Path) -> None:
    explanation = run(tmp_path, EXECUTE, [_added(AMY, "2026-11-09T00:00:00Z")], {"Customers": {AMY: "Sent"}})
    route = explanation.changes[0].campaign("Route")
    assert route.run is not None
    step = route.run.steps[0]
    assert step.executed is not None
    assert step.executed.result == "ran"
    assert step.executed.summary == 'ran (run #2), executed by "Route"'
    assert step.executed.run is not None
    assert [s.text for s in step.executed.run.steps] == ['add to sfdc campaign "VIP" with status "Sent"']
    assert step.to_json()["executed"]["run"]["run_id"] == 2
    assert "executed" not in route.run.steps[1].to_json()  # only on execute steps
    out = text(explanation)
    assert '✓ Score — ran (run #2), executed by "Route"' in out


def test_executed_campaign_skipped_by_filter_and_by_qualification(tmp_path: Path) -> None:
    events = [
        _added(BEA, "2026-11-09T00:00:00Z"),  # not a customer: Score's filter
        _added(AMY, "2026-11-09T01:00:00Z"),  # Score runs (qualify once by default)
        _removed(AMY, "2026-11-09T02:00:00Z"),
        _added(AMY, "2026-11-09T03:00:00Z"),  # Route again; Score already ran
    ]
    explanation = run(tmp_path, EXECUTE, events, {"Customers": {AMY: "Sent"}}, campaign="Route")
    runs = [d.run for _, d in explanation.decisions("Route") if d.run is not None]
    executed = [r.steps[0].executed for r in runs]
    assert [e.result for e in executed if e is not None] == ["filtered_out", "ran", "not_qualified"]
    out = text(explanation)
    assert (
        '✗ Score — not run: filter line 1 is false: member of sfdc campaign "Customers" → false (not a member)'
    ) in out
    assert "✗ Score — not run: qualify once blocked it" in out
    assert "✗ qualify once → blocked: already ran once, last at 2026-11-09 01:00" in out


def test_executed_campaign_inactive(tmp_path: Path) -> None:
    rules = EXECUTE.replace('campaign "Score" {\n', 'campaign "Score" {\n    inactive\n')
    explanation = run(tmp_path, rules, [_added(AMY, "2026-11-09T00:00:00Z")], {"Customers": {AMY: "Sent"}})
    route = explanation.changes[0].campaign("Route")
    assert route.run is not None
    executed = route.run.steps[0].executed
    assert executed is not None and executed.result == "inactive" and executed.run is None
    assert "✗ Score — not run: the campaign is inactive (it takes no new runs)" in text(explanation)
