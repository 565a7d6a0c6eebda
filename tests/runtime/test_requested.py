"""Issue 12: requested campaigns (`trigger campaign is requested`), by a flow's `request campaign` or by a
`campaign_requested` event; `execute campaign` (inline runs, nested)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import ANN, BOB, CAT, Result, added, at, load_rules, world

from engine.language import ast
from engine.model.events import Event
from engine.model.loading import InputError
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay


def requested(person: str, campaign: str, when: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "campaign_requested", "person": person, "campaign": campaign}
    if when is not None:
        data["at"] = when
    return data


def view(steps: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(s["action"], s["outcome"], s["detail"]) for s in steps]


REQUEST = """
campaign "On webinar" {
    trigger added to sfdc campaign "Webinar"
    qualify every time
    flow {
        request campaign "Send kit"
        add to sfdc campaign "Nurture" with status "Sent"
    }
}

campaign "Send kit" {
    trigger campaign is requested
    filter member of sfdc campaign "Customers"
    qualify every time
    flow { add to sfdc campaign "VIP" with status "Sent" }
}

campaign "Other requested" {
    trigger campaign is requested
    qualify every time
    flow { add to sfdc campaign "DNC" with status "Sent" }
}
"""


class TestRequestByFlow:
    def test_filters_passing_the_requested_campaign_runs_after_the_requesting_flow(self, replay):
        result = replay(REQUEST, [added(ANN, "Webinar", "Sent", at(2))], world({"Customers": {ANN: "Sent"}}))
        assert [r["campaign"] for r in result.runs] == ["On webinar", "Send kit"]
        assert view(result.steps("On webinar"))[0] == ("request_campaign", "done", 'queued for "Send kit"')
        assert result.steps("On webinar")[0]["campaign"] == "Send kit"
        assert result.runs_of("Send kit")[0]["trigger"] == {
            "type": "campaign_requested",
            "campaign": "Send kit",
            "origin": "flow",
            "by": "On webinar",
        }
        assert result.members("VIP") == {ANN: "Sent"}
        # only the campaign requested runs, never the other requested ones
        assert result.ran("Other requested") == []
        assert result.members("DNC") == {}

    def test_filters_failing_the_request_is_queued_and_nothing_runs(self, replay):
        result = replay(REQUEST, [added(BOB, "Webinar", "Sent", at(2))])
        assert view(result.steps("On webinar"))[0] == ("request_campaign", "done", 'queued for "Send kit"')
        assert result.ran("Send kit") == []
        assert result.members("VIP") == {}
        assert result.members("Nurture") == {BOB: "Sent"}


class TestRequestByEvent:
    def test_the_event_runs_the_campaign_with_origin_event(self, replay):
        result = replay(REQUEST, [requested(CAT, "Send kit", at(3))], world({"Customers": {CAT: "Sent"}}))
        (run,) = result.runs
        assert run["campaign"] == "Send kit" and run["person"] == CAT
        assert run["trigger"] == {"type": "campaign_requested", "campaign": "Send kit", "origin": "event"}
        assert run["at"] == at(3)
        assert result.members("VIP") == {CAT: "Sent"}

    def test_filters_failing_nothing_runs(self, replay):
        result = replay(REQUEST, [requested(CAT, "Send kit", at(3))])
        assert result.runs == []

    def test_qualification_applies(self, replay):
        rules = REQUEST.replace('filter member of sfdc campaign "Customers"\n    qualify every time', "")
        result = replay(rules, [requested(CAT, "Send kit", at(3)), requested(CAT, "Send kit", at(4))])
        assert result.ran("Send kit") == [CAT]

    @pytest.mark.parametrize(
        ("event", "expected"),
        [
            (requested(ANN, "Nope"), 'events.jsonl:1: campaign: the rules have no campaign "Nope"'),
            (requested(ANN, "On webinar"), 'events.jsonl:1: campaign: "On webinar" cannot be requested'),
            (
                requested("zed@example.com", "Send kit"),
                "events.jsonl:1: person: no person zed@example.com in the world",
            ),
        ],
    )
    def test_bad_input(self, replay, event, expected):
        with pytest.raises(InputError) as caught:
            replay(REQUEST, [event])
        assert str(caught.value).startswith(expected)

    def test_a_person_an_earlier_event_brings_is_known(self, replay):
        result = replay(
            REQUEST,
            [added("zed@example.com", "Customers", "Sent", at(2)), requested("zed@example.com", "Send kit", at(3))],
        )
        assert result.ran("Send kit") == ["zed@example.com"]

    @pytest.mark.parametrize(
        "data",
        [
            {"type": "campaign_requested", "person": ANN},
            {"type": "campaign_requested", "person": ANN, "campaign": "X", "status": "Sent"},
            {"type": "campaign_requested", "person": ANN, "campaign": "X", "program": "P"},
            {"type": "campaign_requested", "person": ANN, "campaign_id": "701000000000001AAA"},
        ],
    )
    def test_event_fields_are_validated(self, data):
        with pytest.raises(ValueError):
            Event.model_validate(data)


EXECUTE = """
campaign "Parent" {
    trigger added to sfdc campaign "Webinar"
    qualify every time
    flow {
        execute campaign "Score"
        if member of sfdc campaign "VIP" {
            add to sfdc campaign "Nurture" with status "Sent"
        }
    }
}

campaign "Score" {
    trigger campaign is requested
    filter member of sfdc campaign "Customers"
    flow {
        add to sfdc campaign "VIP" with status "Sent"
    }
}

campaign "On VIP" {
    trigger added to sfdc campaign "VIP"
    qualify every time
    flow { add to sfdc campaign "Prospects" with status "Sent" }
}
"""


class TestExecute:
    def test_filters_passing_the_flow_runs_inline_before_the_next_step(self, replay):
        result = replay(EXECUTE, [added(ANN, "Webinar", "Sent", at(2))], world({"Customers": {ANN: "Sent"}}))
        assert view(result.steps("Parent")) == [
            ("execute_campaign", "done", 'ran "Score"'),
            ("choice", "done", 'if member of sfdc campaign "VIP"'),
            ("add_to_sfdc_campaign", "done", "added"),
        ]
        assert result.steps("Parent")[0]["campaign"] == "Score"
        assert [r["campaign"] for r in result.runs] == ["Parent", "Score", "On VIP"]
        assert result.runs_of("Score")[0]["trigger"] == {"type": "campaign_executed", "by": "Parent", "origin": "flow"}
        # the change Score's step caused was queued as usual, one level deeper
        assert result.runs_of("On VIP")[0]["trigger"]["origin"] == "flow"
        assert result.members("Nurture") == {ANN: "Sent"}
        assert result.members("Prospects") == {ANN: "Sent"}

    def test_filters_failing_is_skipped_with_the_filter_in_words(self, replay):
        result = replay(EXECUTE, [added(BOB, "Webinar", "Sent", at(2))])
        assert view(result.steps("Parent")) == [
            ("execute_campaign", "skipped", 'filters of "Score" not met: member of sfdc campaign "Customers"'),
            ("choice", "skipped", "no branch applies"),
        ]
        assert result.ran("Score") == []

    def test_qualify_once(self, replay):
        events = [
            added(ANN, "Webinar", "Sent", at(2)),
            {"type": "removed_from_sfdc_campaign", "person": ANN, "campaign": "Webinar", "at": at(3)},
            added(ANN, "Webinar", "Sent", at(4)),
        ]
        result = replay(EXECUTE, events, world({"Customers": {ANN: "Sent"}}))
        second = result.runs_of("Parent")[1]["steps"][0]
        assert (second["outcome"], second["detail"]) == (
            "skipped",
            '"Score" already ran for this person (qualify once)',
        )
        assert result.ran("Score") == [ANN]

    def test_inactive(self, replay):
        rules = EXECUTE.replace(
            "trigger campaign is requested\n    filter", "trigger campaign is requested\n    inactive\n    filter"
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent", at(2))], world({"Customers": {ANN: "Sent"}}))
        assert view(result.steps("Parent"))[0] == ("execute_campaign", "skipped", '"Score" is inactive')


def _run(tmp_path: Path, rule_set: ast.RuleSet, events: list[dict[str, Any]], world_data: dict[str, Any]) -> Result:
    inputs = [ReplayInputEvent(Event.model_validate(e), n, "events.jsonl") for n, e in enumerate(events, 1)]
    return Result(replay(rule_set, World.model_validate(world_data), inputs, ReplayOptions()))


def _chain(tmp_path: Path, length: int) -> ast.RuleSet:
    """Parent executes L1, L1 executes L2, ... L<length> adds to VIP (built by hand: `check` refuses > 3)."""
    text = """
campaign "Parent" {
    trigger added to sfdc campaign "Webinar"
    flow { execute campaign "L1" }
}
"""
    for level in range(1, length + 1):
        step = f'execute campaign "L{level + 1}"' if level < length else 'add to sfdc campaign "VIP" with status "Sent"'
        text += f"""
campaign "L{level}" {{
    trigger campaign is requested
    flow {{ {step} }}
}}
"""
    if length <= ast.MAX_EXECUTE_DEPTH:
        return load_rules(tmp_path, text)
    # one level too deep: the last link is added by hand
    shallow = load_rules(
        tmp_path, text.replace(f'execute campaign "L{length}"', 'add to sfdc campaign "DNC" with status "Sent"')
    )
    campaigns = tuple(
        dataclasses.replace(c, flow=(ast.ExecuteCampaign(f"L{length}"),)) if c.name == f"L{length - 1}" else c
        for c in shallow.campaigns
    )
    return dataclasses.replace(shallow, campaigns=campaigns)


class TestNestedExecute:
    def test_three_levels_run(self, tmp_path):
        result = _run(tmp_path, _chain(tmp_path, 3), [added(ANN, "Webinar", "Sent", at(2))], world())
        assert [r["campaign"] for r in result.runs] == ["Parent", "L1", "L2", "L3"]
        assert [r["trigger"]["by"] for r in result.runs[1:]] == ["Parent", "L1", "L2"]
        assert result.members("VIP") == {ANN: "Sent"}

    def test_deeper_than_three_is_an_error_step_not_a_crash(self, tmp_path):
        result = _run(tmp_path, _chain(tmp_path, 4), [added(ANN, "Webinar", "Sent", at(2))], world())
        assert [r["campaign"] for r in result.runs] == ["Parent", "L1", "L2", "L3"]
        (step,) = result.steps("L3")
        assert (step["action"], step["outcome"]) == ("execute_campaign", "error")
        assert step["detail"] == 'executed campaigns nest deeper than 3: "L4" was not run'
        assert result.members("VIP") == {}

    def test_a_wait_reached_in_an_executed_flow_is_an_error_and_stops_that_flow(self, tmp_path):
        base = _chain(tmp_path, 1)
        campaigns = tuple(
            dataclasses.replace(c, flow=(ast.Wait(1, "day"), *c.flow)) if c.name == "L1" else c for c in base.campaigns
        )
        rule_set = dataclasses.replace(base, campaigns=campaigns)
        result = _run(tmp_path, rule_set, [added(ANN, "Webinar", "Sent", at(2))], world())
        assert view(result.steps("L1")) == [
            ("wait", "error", 'a wait cannot run in an executed campaign: the rest of "L1" was not run')
        ]
        assert result.raw["waiting"] == []
        assert result.members("VIP") == {}
