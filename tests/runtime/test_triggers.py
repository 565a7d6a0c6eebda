"""Triggers (LANGUAGE.md "Triggers", "Campaign references", "Status matches"; REPLAY.md "Events").

Every test replays events over the standard world and checks who entered which flow, as a user would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_helpers import (
    ANN,
    BOB,
    CAT,
    DAN,
    NURTURE_ID,
    WEBINAR_ID,
    added,
    at,
    changed,
    load_rules,
    removed,
    world,
)

from engine.crm.local import LocalOrg
from engine.model.world import World
from engine.replay.run import seed_world
from engine.runtime.interpreter import Interpreter
from engine.store.store import Store
from engine.sync.programs import program_sync


def campaign(trigger: str, name: str = "C", qualify: str = "qualify every time") -> str:
    """A campaign with one trigger line whose flow adds the person to "VIP"."""
    return f"""
campaign "{name}" {{
    trigger {trigger}
    {qualify}
    flow {{ add to sfdc campaign "VIP" with status "Sent" }}
}}
"""


# ------------------------------------------------------------------------------ added to


class TestAddedTo:
    def test_fires_on_an_addition_with_any_status(self, replay):
        result = replay(campaign('added to sfdc campaign "Webinar"'), [added(ANN, "Webinar", "Registered", at(2))])
        assert result.ran("C") == [ANN]
        run = result.runs[0]
        assert run["trigger"] == {
            "type": "added_to_sfdc_campaign",
            "campaign": "Webinar",
            "previous_status": None,
            "status": "Registered",
            "origin": "event",
        }
        assert run["at"] == at(2)
        assert result.members("VIP") == {ANN: "Sent"}

    def test_with_status_fires_only_for_that_status(self, replay):
        rules = campaign('added to sfdc campaign "Webinar" with status "Attended"')
        result = replay(rules, [added(ANN, "Webinar", "Registered"), added(BOB, "Webinar", "Attended")])
        assert result.ran("C") == [BOB]

    def test_with_status_in_list(self, replay):
        rules = campaign('added to sfdc campaign "Webinar" with status in ("Attended", "No Show")')
        result = replay(
            rules,
            [added(ANN, "Webinar", "Registered"), added(BOB, "Webinar", "Attended"), added(CAT, "Webinar", "No Show")],
        )
        assert result.ran("C") == [BOB, CAT]

    def test_with_status_not_in_list(self, replay):
        rules = campaign('added to sfdc campaign "Webinar" with status not in ("Attended", "No Show")')
        result = replay(
            rules,
            [added(ANN, "Webinar", "Registered"), added(BOB, "Webinar", "Attended"), added(CAT, "Webinar", "Sent")],
        )
        assert result.ran("C") == [ANN, CAT]

    def test_does_not_fire_for_another_campaign(self, replay):
        result = replay(campaign('added to sfdc campaign "Webinar"'), [added(ANN, "Nurture", "Sent")])
        assert result.runs == []

    def test_does_not_fire_on_a_status_change(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        result = replay(rules, [changed(ANN, "Webinar", "Attended")], world({"Webinar": {ANN: "Registered"}}))
        assert result.runs == []

    def test_does_not_fire_on_a_removal(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        result = replay(rules, [removed(ANN, "Webinar")], world({"Webinar": {ANN: "Registered"}}))
        assert result.runs == []


# ------------------------------------------------------------------------------ removed from


class TestRemovedFrom:
    def test_fires_when_a_member_is_removed(self, replay):
        rules = campaign('removed from sfdc campaign "Webinar"')
        result = replay(rules, [removed(ANN, "Webinar", at(3))], world({"Webinar": {ANN: "Registered"}}))
        assert result.ran("C") == [ANN]
        assert result.runs[0]["trigger"] == {
            "type": "removed_from_sfdc_campaign",
            "campaign": "Webinar",
            "previous_status": "Registered",
            "status": None,
            "origin": "event",
        }
        assert result.members("Webinar") == {}

    def test_with_status_matches_the_status_it_had(self, replay):
        rules = campaign('removed from sfdc campaign "Webinar" with status "Attended"')
        result = replay(
            rules,
            [removed(ANN, "Webinar"), removed(BOB, "Webinar")],
            world({"Webinar": {ANN: "Registered", BOB: "Attended"}}),
        )
        assert result.ran("C") == [BOB]

    def test_with_status_in_and_not_in(self, replay):
        rules = campaign(
            'removed from sfdc campaign "Webinar" with status in ("Sent", "No Show")', name="In"
        ) + campaign('removed from sfdc campaign "Webinar" with status not in ("Sent", "No Show")', name="NotIn")
        members = {ANN: "Sent", BOB: "No Show", CAT: "Attended"}
        result = replay(rules, [removed(p, "Webinar") for p in (ANN, BOB, CAT)], world({"Webinar": members}))
        assert result.ran("In") == [ANN, BOB]
        assert result.ran("NotIn") == [CAT]

    def test_removal_of_a_non_member_fires_nothing(self, replay):
        result = replay(campaign('removed from sfdc campaign "Webinar"'), [removed(ANN, "Webinar")])
        assert result.runs == []


# ------------------------------------------------------------------------------ status changed in


class TestStatusChanged:
    WORLD = world({"Webinar": {ANN: "Registered", BOB: "Sent", CAT: "Registered"}})

    def test_fires_on_any_status_change(self, replay):
        rules = campaign('status changed in sfdc campaign "Webinar"')
        result = replay(rules, [changed(ANN, "Webinar", "Attended", at(4))], self.WORLD)
        assert result.ran("C") == [ANN]
        assert result.runs[0]["trigger"] == {
            "type": "status_changed_in_sfdc_campaign",
            "campaign": "Webinar",
            "previous_status": "Registered",
            "status": "Attended",
            "origin": "event",
        }
        assert result.members("Webinar")[ANN] == "Attended"

    def test_from_and_to(self, replay):
        rules = campaign('status changed in sfdc campaign "Webinar" from "Registered" to "Attended"')
        events = [
            changed(ANN, "Webinar", "Attended"),  # Registered -> Attended: fires
            changed(BOB, "Webinar", "Attended"),  # Sent -> Attended: wrong from
            changed(CAT, "Webinar", "No Show"),  # Registered -> No Show: wrong to
        ]
        assert replay(rules, events, self.WORLD).ran("C") == [ANN]

    def test_from_only(self, replay):
        rules = campaign('status changed in sfdc campaign "Webinar" from "Registered"')
        events = [
            changed(ANN, "Webinar", "Attended"),
            changed(BOB, "Webinar", "Attended"),
            changed(CAT, "Webinar", "No Show"),
        ]
        assert replay(rules, events, self.WORLD).ran("C") == [ANN, CAT]

    def test_to_only(self, replay):
        rules = campaign('status changed in sfdc campaign "Webinar" to "Attended"')
        events = [
            changed(ANN, "Webinar", "Attended"),
            changed(BOB, "Webinar", "Attended"),
            changed(CAT, "Webinar", "No Show"),
        ]
        assert replay(rules, events, self.WORLD).ran("C") == [ANN, BOB]

    def test_from_in_to_not_in(self, replay):
        rules = campaign(
            'status changed in sfdc campaign "Webinar" from in ("Sent", "Registered") to not in ("No Show")'
        )
        events = [
            changed(ANN, "Webinar", "Attended"),
            changed(BOB, "Webinar", "Registered"),
            changed(CAT, "Webinar", "No Show"),
        ]
        assert replay(rules, events, self.WORLD).ran("C") == [ANN, BOB]

    def test_does_not_fire_on_an_addition(self, replay):
        rules = campaign('status changed in sfdc campaign "Webinar"')
        assert replay(rules, [added(ANN, "Webinar", "Registered")]).runs == []


# ------------------------------------------------------------------------------ campaign references


class TestCampaignReferences:
    def test_by_name_is_exact(self, replay):
        rules = campaign('added to sfdc campaign "webinar"')  # case differs: no such campaign
        assert replay(rules, [added(ANN, "Webinar", "Registered")]).runs == []

    @pytest.mark.parametrize("ref", [WEBINAR_ID, WEBINAR_ID[:15]], ids=["18-chars", "15-chars"])
    def test_by_id(self, replay, ref):
        rules = campaign(f'added to sfdc campaign id "{ref}"')
        result = replay(rules, [added(ANN, "Webinar", "Registered"), added(BOB, "Nurture", "Sent")])
        assert result.ran("C") == [ANN]

    def test_event_naming_the_campaign_by_id_fires_a_trigger_by_name(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        result = replay(rules, [added(ANN, None, "Registered", campaign_id=WEBINAR_ID[:15])])
        assert result.ran("C") == [ANN]
        assert result.runs[0]["trigger"]["campaign"] == "Webinar"

    def test_in_list(self, replay):
        rules = campaign('added to sfdc campaign in ("Webinar", "Nurture")')
        events = [added(ANN, "Webinar", "Sent"), added(BOB, "Nurture", "Sent"), added(CAT, "Customers", "Sent")]
        assert replay(rules, events).ran("C") == [ANN, BOB]

    def test_not_in_list(self, replay):
        rules = campaign('added to sfdc campaign not in ("Webinar", "Nurture")', qualify="qualify once")
        events = [added(ANN, "Webinar", "Sent"), added(BOB, "Nurture", "Sent"), added(CAT, "Customers", "Sent")]
        assert replay(rules, events).ran("C") == [CAT]

    def test_any(self, replay):
        rules = campaign("added to any sfdc campaign", qualify="qualify once")
        events = [added(ANN, "Webinar", "Sent"), added(BOB, "Nurture", "Sent"), added(CAT, "Customers", "Sent")]
        assert replay(rules, events).ran("C") == [ANN, BOB, CAT]

    def test_any_with_status(self, replay):
        rules = campaign('status changed in any sfdc campaign to "Responded"', qualify="qualify once")
        events = [
            changed(ANN, "Nurture", "Responded"),
            changed(BOB, "Customers", "Responded"),
            changed(CAT, "Nurture", "Sent"),
        ]
        result = replay(rules, events, world({"Nurture": {ANN: "Sent", CAT: "Responded"}, "Customers": {BOB: "Sent"}}))
        assert result.ran("C") == [ANN, BOB]

    def test_several_triggers_fire_one_run(self, replay):
        rules = """
campaign "C" {
    trigger added to sfdc campaign "Webinar"
    trigger added to sfdc campaign in ("Webinar", "Nurture")
    trigger added to sfdc campaign not in ("Nurture")
    trigger added to sfdc campaign id "701000000000001AAA"
    qualify every time
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Sent")])
        # one run for the Webinar addition; the flow's own VIP addition fires `not in` once more
        assert result.ran("C") == [ANN, ANN]
        assert [r["trigger"]["campaign"] for r in result.runs] == ["Webinar", "VIP"]

    def test_any_trigger_of_a_campaign_makes_a_candidate(self, replay):
        rules = """
campaign "C" {
    trigger added to sfdc campaign "Webinar" with status "Attended"
    trigger removed from sfdc campaign "Nurture"
    qualify every time
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        events = [added(ANN, "Webinar", "Registered"), removed(ANN, "Nurture"), added(BOB, "Webinar", "Attended")]
        result = replay(rules, events, world({"Nurture": {ANN: "Sent"}}))
        assert result.ran("C") == [ANN, BOB]
        assert result.runs[0]["trigger"]["type"] == "removed_from_sfdc_campaign"


# ------------------------------------------------------------------------------ observations are diffed


class TestObservations:
    def test_same_status_twice_fires_nothing_the_second_time(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"') + campaign(
            'status changed in sfdc campaign "Webinar"', name="Changed"
        )
        events = [added(ANN, "Webinar", "Registered", at(2)), added(ANN, "Webinar", "Registered", at(3))]
        result = replay(rules, events)
        assert result.ran("C") == [ANN]
        assert result.ran("Changed") == []

    def test_status_changed_event_with_the_current_status_fires_nothing(self, replay):
        rules = campaign('status changed in sfdc campaign "Webinar"')
        result = replay(rules, [changed(ANN, "Webinar", "Registered")], world({"Webinar": {ANN: "Registered"}}))
        assert result.runs == []

    def test_added_event_for_a_member_with_another_status_is_a_status_change(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"', name="Added") + campaign(
            'status changed in sfdc campaign "Webinar" from "Registered" to "Attended"', name="Changed"
        )
        result = replay(rules, [added(ANN, "Webinar", "Attended")], world({"Webinar": {ANN: "Registered"}}))
        assert result.ran("Added") == []
        assert result.ran("Changed") == [ANN]
        assert result.members("Webinar") == {ANN: "Attended"}

    def test_status_changed_event_for_a_non_member_is_an_addition(self, replay):
        rules = campaign('added to sfdc campaign "Webinar" with status "Attended"', name="Added") + campaign(
            'status changed in sfdc campaign "Webinar"', name="Changed"
        )
        result = replay(rules, [changed(ANN, "Webinar", "Attended")])
        assert result.ran("Added") == [ANN]
        assert result.ran("Changed") == []
        assert result.members("Webinar") == {ANN: "Attended"}

    def test_removed_event_for_a_non_member_fires_nothing_and_changes_nothing(self, replay):
        rules = campaign("removed from any sfdc campaign")
        result = replay(rules, [removed(ANN, "Webinar")], world({"Nurture": {ANN: "Sent"}}))
        assert result.runs == []
        assert result.members("Nurture") == {ANN: "Sent"}

    def test_duplicate_event_ids_are_ignored(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"') + campaign('removed from sfdc campaign "Webinar"', "R")
        events = [
            added(ANN, "Webinar", "Registered", at(2), id="e1"),
            removed(ANN, "Webinar", at(3), id="e2"),
            added(ANN, "Webinar", "Registered", at(4), id="e1"),  # delivered again: ignored
        ]
        result = replay(rules, events)
        assert result.ran("C") == [ANN]
        assert result.ran("R") == [ANN]
        assert result.members("Webinar") == {}

    def test_events_without_ids_are_never_duplicates(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        events = [added(ANN, "Webinar", "Registered"), removed(ANN, "Webinar"), added(ANN, "Webinar", "Registered")]
        assert replay(rules, events).ran("C") == [ANN, ANN]

    def test_person_emails_compare_case_insensitively(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        result = replay(rules, [added("ANN@Example.COM", "Webinar", "Registered")])
        assert result.ran("C") == [ANN]
        assert result.members("Webinar") == {ANN: "Registered"}
        assert [p["email"] for p in result.world["persons"]].count(ANN) == 1


class TestUnknownPersons:
    def test_unknown_person_is_created_in_salesforce_with_a_deterministic_id(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        events = [added("eve@example.com", "Webinar", "Registered"), added("fay@example.com", "Webinar", "Sent")]
        first = replay(rules, events)
        second = replay(rules, events)
        eve = first.person("eve@example.com")
        assert eve is not None
        assert eve["sfdc_type"] == "Lead"
        assert eve["sfdc_id"].startswith("00Q") and len(eve["sfdc_id"]) == 18
        fay = first.person("fay@example.com")
        assert fay is not None and fay["sfdc_id"] != eve["sfdc_id"]
        assert first.world == second.world
        assert first.ran("C") == ["eve@example.com", "fay@example.com"]
        # the ids never collide with the world's own
        assert eve["sfdc_id"] not in {"00Q000000000001AAA", "00Q000000000002AAA"}

    def test_known_person_not_in_salesforce_is_put_there_by_a_salesforce_event(self, replay):
        result = replay(campaign('added to sfdc campaign "Webinar"'), [added(DAN, "Webinar", "Sent")])
        dan = result.person(DAN)
        assert dan is not None and dan["sfdc_id"].startswith("00Q")
        assert result.members("Webinar") == {DAN: "Sent"}


class TestEventTimes:
    def test_the_first_event_without_at_takes_the_world_now(self, replay):
        result = replay(campaign('added to sfdc campaign "Webinar"'), [added(ANN, "Webinar", "Sent")])
        assert result.runs[0]["at"] == "2026-11-01T00:00:00Z"

    def test_an_event_earlier_than_the_clock_runs_at_the_clock_with_a_warning(self, replay):
        rules = campaign('added to sfdc campaign "Webinar"')
        events = [added(ANN, "Webinar", "Sent", at(5)), added(BOB, "Webinar", "Sent", at(3))]
        result = replay(rules, events)
        assert [r["at"] for r in result.runs] == [at(5), at(5)]
        [warning] = result.warnings
        assert warning.startswith("events.jsonl:2: warning:")
        assert at(3) in warning and at(5) in warning

    def test_an_event_before_the_world_now_runs_at_the_world_now(self, replay):
        result = replay(campaign('added to sfdc campaign "Webinar"'), [added(ANN, "Webinar", "Sent", at(1, month=10))])
        assert result.runs[0]["at"] == "2026-11-01T00:00:00Z"
        assert len(result.warnings) == 1


class TestWorldIds:
    def test_campaigns_without_an_id_get_deterministic_ids_that_avoid_the_given_ones(self, replay):
        campaigns = [
            {"name": "No Id", "statuses": ["Sent"]},
            {"name": "Given", "id": "701000000000001AAA", "statuses": ["Sent"]},
            {"name": "Also No Id"},
        ]
        first = replay("", [], world(campaigns=campaigns))
        second = replay("", [], world(campaigns=campaigns))
        ids = {c["name"]: c["id"] for c in first.world["sfdc_campaigns"]}
        assert ids["Given"] == "701000000000001AAA"
        assert ids["No Id"].startswith("701") and ids["Also No Id"].startswith("701")
        assert len(set(ids.values())) == 3
        assert first.world == second.world
        assert first.campaign("Also No Id")["statuses"] == ["Sent", "Responded"]

    def test_a_world_member_naming_no_person_creates_that_person_in_salesforce(self, replay):
        result = replay("", [], world({"Webinar": {"new@example.com": "Sent"}}))
        new = result.person("new@example.com")
        assert new is not None and new["sfdc_id"].startswith("00Q")
        assert result.members("Webinar") == {"new@example.com": "Sent"}

    def test_the_result_world_is_sorted_by_name(self, replay):
        result = replay("", [added("aaa@example.com", "Webinar", "Sent")])
        emails = [p["email"] for p in result.world["persons"]]
        names = [c["name"] for c in result.world["sfdc_campaigns"]]
        assert emails == sorted(emails)
        assert names == sorted(names)


# ------------------------------------------------------------------------------ flow-made changes


class TestFlowMadeChanges:
    def test_a_flow_change_fires_another_campaign_with_origin_flow(self, replay):
        rules = """
campaign "First" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
campaign "Second" {
    trigger added to sfdc campaign "Nurture" with status "Sent"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Registered")])
        assert [r["campaign"] for r in result.runs] == ["First", "Second"]
        assert result.runs[1]["trigger"] == {
            "type": "added_to_sfdc_campaign",
            "campaign": "Nurture",
            "previous_status": None,
            "status": "Sent",
            "origin": "flow",
        }
        assert result.members("VIP") == {ANN: "Sent"}

    def test_flow_removals_and_status_changes_fire_too(self, replay):
        rules = """
campaign "First" {
    trigger added to sfdc campaign "Webinar"
    flow {
        change status in sfdc campaign "Nurture" to "Responded"
        remove from sfdc campaign "Customers"
    }
}
campaign "Changed" {
    trigger status changed in sfdc campaign "Nurture" from "Sent" to "Responded"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
campaign "Removed" {
    trigger removed from sfdc campaign "Customers" with status "Responded"
    flow { add to sfdc campaign "Prospects" with status "Sent" }
}
"""
        result = replay(
            rules,
            [added(ANN, "Webinar", "Registered")],
            world({"Nurture": {ANN: "Sent"}, "Customers": {ANN: "Responded"}}),
        )
        assert [r["campaign"] for r in result.runs] == ["First", "Changed", "Removed"]
        assert {r["trigger"]["origin"] for r in result.runs[1:]} == {"flow"}
        assert result.members("VIP") == {ANN: "Sent"}
        assert result.members("Prospects") == {ANN: "Sent"}

    def test_a_flow_change_fires_its_own_campaign(self, replay):
        rules = """
campaign "Self" {
    trigger added to sfdc campaign "Nurture"
    trigger status changed in sfdc campaign "Nurture" to "Responded"
    qualify every time
    flow {
        if member of sfdc campaign "Nurture" with status "Sent" {
            change status in sfdc campaign "Nurture" to "Responded"
        } else {
            add to sfdc campaign "VIP" with status "Sent"
        }
    }
}
"""
        result = replay(rules, [added(ANN, "Nurture", "Sent")])
        assert result.ran("Self") == [ANN, ANN]
        assert result.runs[0]["trigger"]["origin"] == "event"
        assert result.runs[1]["trigger"]["origin"] == "flow"
        assert result.runs[1]["trigger"]["status"] == "Responded"
        assert result.members("Nurture") == {ANN: "Responded"}
        assert result.members("VIP") == {ANN: "Sent"}


# ------------------------------------------------------------------------------ inactive


class TestInactive:
    def test_an_inactive_campaign_takes_no_runs(self, replay):
        rules = """
campaign "Off" {
    inactive
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
campaign "On" {
    trigger added to sfdc campaign "Webinar"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(rules, [added(ANN, "Webinar", "Registered")])
        assert result.ran("Off") == []
        assert result.ran("On") == [ANN]
        assert result.members("VIP") == {}

    def test_a_run_already_waiting_carries_on_after_the_campaign_is_made_inactive(self, tmp_path: Path):
        active = """
campaign "Drip" {
    trigger added to sfdc campaign "Webinar"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        wait 2 days
        change status in sfdc campaign "Nurture" to "Responded"
    }
}
"""
        inactive = active.replace("{\n    trigger", "{\n    inactive\n    trigger", 1)
        assert "inactive" in inactive
        url = f"sqlite:///{tmp_path / 'store.db'}"
        start = World.model_validate(world()).now.timestamp()

        store = Store.open(url)
        org = LocalOrg(store)
        rules_on = load_rules(tmp_path, active, "on.campaign")
        seed_world(store, org, World.model_validate(world()), rules_on)
        interp = Interpreter(rules_on, store, org, program_sync=program_sync())
        interp.set_clock(start)
        ann = store.person(ANN)
        webinar = store.campaign_by_name("Webinar")
        assert ann is not None and webinar is not None
        interp.observe_membership(ann, webinar, "Registered", start)
        interp.drain()
        assert store.pending_continuations() == 1
        store.close()

        # the campaign is switched off while ann waits; bob's new addition takes no run, ann's run goes on
        store = Store.open(url)
        org = LocalOrg(store)
        rules_off = load_rules(tmp_path, inactive, "off.campaign")
        interp = Interpreter(rules_off, store, org, program_sync=program_sync())
        later = start + 86400
        interp.set_clock(later)
        bob = store.person(BOB)
        webinar = store.campaign_by_name("Webinar")
        assert bob is not None and webinar is not None
        interp.observe_membership(bob, webinar, "Registered", later)
        interp.drain()
        assert interp.run_due(None) == 1
        nurture = store.campaign_by_name("Nurture")
        assert nurture is not None
        ann = store.person(ANN)
        assert ann is not None
        assert store.memberships(ann.id).get(nurture.id) == "Responded"
        assert nurture.id not in store.memberships(bob.id)
        store.close()


def test_trigger_by_id_of_the_second_campaign(replay):
    """Sanity: an id reference picks exactly the campaign with that id, not a neighbour."""
    rules = campaign(f'added to sfdc campaign id "{NURTURE_ID}"')
    result = replay(rules, [added(ANN, "Webinar", "Sent"), added(BOB, "Nurture", "Sent")])
    assert result.ran("C") == [BOB]
