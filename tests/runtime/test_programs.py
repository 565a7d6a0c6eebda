"""Programs and the program to SFDC campaign sync (LANGUAGE.md "Programs and channels", "Program to SFDC
campaign sync"; REPLAY.md `program_status_changed`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from replay_helpers import ANN, BOB, CAT, DAN, added, at, changed, program_event, removed, world

from engine.language.loader import load_rule_set
from engine.model.loading import InputError
from engine.store.store import Store

# The built-in "Webinar" channel: Invited 10, Registered 20, No Show 30, Attended 30 (success),
# Attended On-demand 40 (success); "Not in Program" is step 0.
WEBINAR_STATUSES = ["Invited", "Registered", "No Show", "Attended", "Attended On-demand"]

UNSYNCED = """
program "Q4" { channel "Webinar" }
"""

SYNCED = """
program "Q4" {
    channel "Webinar"
    sync with sfdc campaign "Q4 Campaign"
    cost 2026-10 5000 "Venue deposit"
    cost 2026-11 1200
}
"""


def q4_world(members: dict[str, str] | None = None, statuses: list[str] | None = None, **kwargs) -> dict:
    campaign = {"name": "Q4 Campaign", "id": "701000000000010AAA", "members": dict(members or {})}
    campaign["statuses"] = statuses if statuses is not None else list(WEBINAR_STATUSES)
    campaign.update(kwargs.pop("campaign_fields", {}))
    return world(extra_campaigns=[campaign], **kwargs)


def on_program(trigger: str, *filters: str, name: str = "P", qualify: str = "qualify every time") -> str:
    lines = "\n".join(f"    filter {f}" for f in filters)
    return f"""
campaign "{name}" {{
    trigger {trigger}
{lines}
    {qualify}
    flow {{ add to sfdc campaign "VIP" with status "Sent" }}
}}
"""


# ------------------------------------------------------------------------------ program events and triggers


class TestProgramTriggers:
    def test_program_event_sets_the_status(self, replay):
        result = replay(UNSYNCED, [program_event(ANN, "Q4", "Registered")])
        assert result.program("Q4") == {ANN: "Registered"}

    def test_not_in_program_leaves(self, replay):
        result = replay(
            UNSYNCED, [program_event(ANN, "Q4", "Not in Program")], world(programs={"Q4": {ANN: "Registered"}})
        )
        assert result.program("Q4") == {}

    def test_any_status_change(self, replay):
        rules = UNSYNCED + on_program('status changed in program "Q4"')
        result = replay(
            rules, [program_event(ANN, "Q4", "Registered", at(2)), program_event(ANN, "Q4", "Attended", at(3))]
        )
        assert result.ran("P") == [ANN, ANN]
        assert result.runs[0]["trigger"] == {
            "type": "program_status_changed",
            "program": "Q4",
            "previous_status": None,
            "status": "Registered",
            "origin": "event",
        }
        assert result.runs[1]["trigger"]["previous_status"] == "Registered"
        assert result.runs[1]["trigger"]["status"] == "Attended"

    def test_joining_is_a_change_from_not_in_program(self, replay):
        rules = UNSYNCED + on_program('status changed in program "Q4" from "Not in Program"')
        events = [
            program_event(ANN, "Q4", "Registered"),
            program_event(ANN, "Q4", "Attended"),
            program_event(BOB, "Q4", "Invited"),
        ]
        assert replay(rules, events).ran("P") == [ANN, BOB]

    def test_leaving_is_a_change_to_not_in_program(self, replay):
        rules = UNSYNCED + on_program('status changed in program "Q4" to "Not in Program"')
        events = [program_event(ANN, "Q4", "Not in Program"), program_event(BOB, "Q4", "Attended")]
        result = replay(rules, events, world(programs={"Q4": {ANN: "Registered", BOB: "Registered"}}))
        assert result.ran("P") == [ANN]
        assert result.runs[0]["trigger"]["status"] is None

    def test_from_to_and_lists(self, replay):
        rules = UNSYNCED + on_program(
            'status changed in program "Q4" from in ("Invited", "Registered") to not in ("No Show")'
        )
        events = [
            program_event(ANN, "Q4", "Attended"),
            program_event(BOB, "Q4", "No Show"),
            program_event(CAT, "Q4", "Attended"),
        ]
        start = world(programs={"Q4": {ANN: "Registered", BOB: "Registered", CAT: "No Show"}})
        assert replay(rules, events, start).ran("P") == [ANN]

    def test_the_same_status_again_fires_nothing(self, replay):
        rules = UNSYNCED + on_program('status changed in program "Q4"')
        events = [program_event(ANN, "Q4", "Registered"), program_event(ANN, "Q4", "Registered")]
        assert replay(rules, events).ran("P") == [ANN]

    def test_only_the_named_program(self, replay):
        rules = UNSYNCED + 'program "Other" { channel "Webinar" }' + on_program('status changed in program "Q4"')
        assert replay(rules, [program_event(ANN, "Other", "Registered")]).runs == []

    def test_an_unknown_person_is_created_not_in_salesforce(self, replay):
        result = replay(UNSYNCED, [program_event("new@example.com", "Q4", "Invited")])
        new = result.person("new@example.com")
        assert new is not None and "sfdc_id" not in new
        assert result.program("Q4") == {"new@example.com": "Invited"}

    def test_unknown_program_in_an_event_is_unusable_input(self, replay):
        with pytest.raises(InputError, match='no program "Nope"'):
            replay(UNSYNCED, [program_event(ANN, "Nope", "Invited")])

    def test_status_not_in_the_channel_is_unusable_input(self, replay):
        with pytest.raises(InputError, match='"Sent" is not a status of channel "Webinar"'):
            replay(UNSYNCED, [program_event(ANN, "Q4", "Sent")])


class TestProgramFilters:
    def test_member_of_program(self, replay):
        rules = UNSYNCED + on_program('added to sfdc campaign "Webinar"', 'member of program "Q4"')
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB)]
        assert replay(rules, events, world(programs={"Q4": {BOB: "Invited"}})).ran("P") == [BOB]

    def test_member_of_program_with_status(self, replay):
        rules = UNSYNCED + on_program(
            'added to sfdc campaign "Webinar"',
            'member of program "Q4" with status in ("Attended", "Attended On-demand")',
        )
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB, CAT)]
        start = world(programs={"Q4": {ANN: "Attended", BOB: "Registered", CAT: "Attended On-demand"}})
        assert replay(rules, events, start).ran("P") == [ANN, CAT]

    def test_not_member_of_program(self, replay):
        rules = UNSYNCED + on_program('added to sfdc campaign "Webinar"', 'not member of program "Q4"')
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB)]
        assert replay(rules, events, world(programs={"Q4": {BOB: "Invited"}})).ran("P") == [ANN]

    def test_program_filter_in_a_choice(self, replay):
        rules = (
            UNSYNCED
            + """
campaign "C" {
    trigger added to sfdc campaign "Webinar"
    flow {
        if member of program "Q4" with status "Attended" { add to sfdc campaign "VIP" with status "Sent" }
        else { add to sfdc campaign "Nurture" with status "Sent" }
    }
}
"""
        )
        events = [added(p, "Webinar", "Sent") for p in (ANN, BOB)]
        result = replay(rules, events, world(programs={"Q4": {ANN: "Attended"}}))
        assert result.members("VIP") == {ANN: "Sent"}
        assert result.members("Nurture") == {BOB: "Sent"}


# ------------------------------------------------------------------------------ flow: change program status


def program_flow(*steps: str) -> str:
    body = "\n        ".join(steps)
    return f"""
campaign "Flow" {{
    trigger added to sfdc campaign "Webinar"
    qualify every time
    flow {{
        {body}
    }}
}}
"""


class TestChangeProgramStatus:
    def test_moves_forward(self, replay):
        result = replay(
            UNSYNCED + program_flow('change program status in program "Q4" to "Registered"'),
            [added(ANN, "Webinar", "Sent")],
        )
        assert result.program("Q4") == {ANN: "Registered"}
        [step] = result.steps("Flow")
        assert step["action"] == "change_program_status"
        assert (step["program"], step["status"], step["outcome"]) == ("Q4", "Registered", "done")
        assert step["detail"] == '"Not in Program" -> "Registered"'

    def test_never_moves_backward(self, replay):
        result = replay(
            UNSYNCED + program_flow('change program status in program "Q4" to "Registered"'),
            [added(ANN, "Webinar", "Sent")],
            world(programs={"Q4": {ANN: "Attended"}}),
        )
        assert result.program("Q4") == {ANN: "Attended"}
        [step] = result.steps("Flow")
        assert step["outcome"] == "skipped"
        assert "backward" in step["detail"]
        assert '"Attended" (step 30)' in step["detail"] and '"Registered" (step 20)' in step["detail"]

    def test_a_flow_cannot_take_a_person_out_of_a_program(self, replay):
        result = replay(
            UNSYNCED + program_flow('change program status in program "Q4" to "Not in Program"'),
            [added(ANN, "Webinar", "Sent")],
            world(programs={"Q4": {ANN: "Invited"}}),
        )
        assert result.program("Q4") == {ANN: "Invited"}
        assert result.steps("Flow")[0]["outcome"] == "skipped"

    def test_may_switch_between_statuses_of_the_same_step(self, replay):
        result = replay(
            UNSYNCED + program_flow('change program status in program "Q4" to "Attended"'),
            [added(ANN, "Webinar", "Sent")],
            world(programs={"Q4": {ANN: "No Show"}}),
        )
        assert result.program("Q4") == {ANN: "Attended"}
        assert result.steps("Flow")[0]["outcome"] == "done"

    def test_same_status_is_skipped(self, replay):
        result = replay(
            UNSYNCED + program_flow('change program status in program "Q4" to "Attended"'),
            [added(ANN, "Webinar", "Sent")],
            world(programs={"Q4": {ANN: "Attended"}}),
        )
        assert result.steps("Flow")[0]["outcome"] == "skipped"

    def test_status_not_in_the_channel_is_a_rule_error(self, tmp_path: Path):
        """Caught when the rules are loaded, so no replay can run it."""
        path = tmp_path / "bad.campaign"
        path.write_text(UNSYNCED + program_flow('change program status in program "Q4" to "Sent"'), encoding="utf-8")
        loaded = load_rule_set([path], use_cache=False)
        [error] = loaded.errors
        assert '"Sent" is not a status of channel "Webinar"' in error.message
        assert error.line == 8

    def test_the_change_fires_program_triggers_with_origin_flow(self, replay):
        rules = (
            UNSYNCED
            + program_flow('change program status in program "Q4" to "Attended"')
            + on_program('status changed in program "Q4" to "Attended"', name="Attendees")
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent")])
        [run] = result.runs_of("Attendees")
        assert run["trigger"]["origin"] == "flow"
        assert run["trigger"]["previous_status"] is None

    def test_a_change_from_outside_may_move_backward(self, replay):
        result = replay(UNSYNCED, [program_event(ANN, "Q4", "Invited")], world(programs={"Q4": {ANN: "Attended"}}))
        assert result.program("Q4") == {ANN: "Invited"}


# ------------------------------------------------------------------------------ the sync


class TestFirstLink:
    def test_an_empty_campaign_is_made_to_match_the_channel(self, replay, tmp_path: Path):
        channel = """
channel "Custom" {
    status "Late" step 30
    status "Early" step 10 success
    status "Middle" step 20
}
program "Q4" { channel "Custom" sync with sfdc campaign "Q4 Campaign" }
"""
        url = f"sqlite:///{tmp_path / 'store.db'}"
        result = replay(channel, [], q4_world(statuses=["Sent", "Middle", "Responded"]), store_url=url)
        # by step: the lowest step is first, the default
        assert result.campaign("Q4 Campaign")["statuses"] == ["Early", "Middle", "Late"]
        assert result.errors == []
        store = Store.open(url)
        try:
            info = store.campaign_by_name("Q4 Campaign")
            assert info is not None
            assert info.default_status == "Early"
            assert info.responded == frozenset({"Early"})
        finally:
            store.close()

    def test_an_empty_campaign_is_fixed_then_gets_the_program_members(self, replay):
        start = q4_world(statuses=["Sent", "Responded"], programs={"Q4": {ANN: "Attended", BOB: "Invited"}})
        result = replay(SYNCED, [], start)
        assert result.errors == []
        assert result.campaign("Q4 Campaign")["statuses"] == WEBINAR_STATUSES
        assert result.members("Q4 Campaign") == {ANN: "Attended", BOB: "Invited"}

    def test_type_is_the_channel_name_and_actual_cost_the_sum_of_costs(self, replay):
        result = replay(SYNCED, [], q4_world())
        campaign = result.campaign("Q4 Campaign")
        assert campaign["type"] == "Webinar"
        assert campaign["actual_cost"] == 6200

    def test_type_and_cost_changed_in_salesforce_are_overwritten(self, replay):
        result = replay(SYNCED, [], q4_world(campaign_fields={"type": "Other", "actual_cost": 1}))
        campaign = result.campaign("Q4 Campaign")
        assert (campaign["type"], campaign["actual_cost"]) == ("Webinar", 6200)

    def test_a_program_without_costs_has_actual_cost_zero(self, replay):
        rules = 'program "Q4" { channel "Webinar" sync with sfdc campaign "Q4 Campaign" }'
        assert replay(rules, [], q4_world()).campaign("Q4 Campaign")["actual_cost"] == 0

    def test_mismatch_with_members_is_an_error_and_nothing_moves(self, replay):
        start = q4_world({ANN: "Sent"}, statuses=["Sent", "Responded"], programs={"Q4": {CAT: "Invited"}})
        events = [program_event(BOB, "Q4", "Registered"), removed(ANN, "Q4 Campaign")]
        result = replay(SYNCED + on_program('added to sfdc campaign "Q4 Campaign"'), events, start)
        [error] = result.error_messages
        assert '"Q4"' in error and '"Q4 Campaign"' in error
        for status in [*WEBINAR_STATUSES, "Sent", "Responded"]:
            assert status in error
        # nothing of it moves: no copy either way, no mirroring, no statuses or fields written
        assert result.members("Q4 Campaign") == {}
        assert result.program("Q4") == {BOB: "Registered", CAT: "Invited"}
        campaign = result.campaign("Q4 Campaign")
        assert campaign["statuses"] == ["Sent", "Responded"]
        assert "type" not in campaign and "actual_cost" not in campaign

    def test_mismatch_message_names_the_missing_statuses_on_each_side(self, replay):
        start = q4_world({ANN: "Invited"}, statuses=["Invited", "Registered", "No Show", "Attended", "Waitlisted"])
        [error] = replay(SYNCED, [], start).error_messages
        assert "only in the program: Attended On-demand" in error
        assert "only in the campaign: Waitlisted" in error

    def test_members_on_one_side_only_are_copied_without_firing_triggers(self, replay):
        rules = (
            SYNCED
            + on_program('added to sfdc campaign "Q4 Campaign"', name="Added")
            + on_program('status changed in program "Q4"', name="Program")
        )
        start = q4_world({ANN: "Registered"}, programs={"Q4": {BOB: "Attended"}})
        result = replay(rules, [], start)
        assert result.members("Q4 Campaign") == {ANN: "Registered", BOB: "Attended"}
        assert result.program("Q4") == {ANN: "Registered", BOB: "Attended"}
        assert result.runs == []

    def test_a_person_on_both_sides_takes_the_program_status(self, replay):
        start = q4_world({ANN: "Invited"}, programs={"Q4": {ANN: "Attended"}})
        result = replay(SYNCED, [], start)
        assert result.members("Q4 Campaign") == {ANN: "Attended"}
        assert result.program("Q4") == {ANN: "Attended"}

    def test_a_program_member_not_in_salesforce_is_created_as_a_lead(self, replay):
        result = replay(SYNCED, [], q4_world(programs={"Q4": {DAN: "Registered", "new@example.com": "Invited"}}))
        assert result.members("Q4 Campaign") == {DAN: "Registered", "new@example.com": "Invited"}
        for email in (DAN, "new@example.com"):
            person = result.person(email)
            assert person is not None and person["sfdc_id"].startswith("00Q")


class TestMirroring:
    def test_program_to_campaign_with_origin_program_sync(self, replay):
        rules = SYNCED + on_program('added to sfdc campaign "Q4 Campaign" with status "Registered"', name="Added")
        result = replay(rules, [program_event(ANN, "Q4", "Registered", at(2))], q4_world())
        assert result.members("Q4 Campaign") == {ANN: "Registered"}
        [run] = result.runs
        assert run["trigger"] == {
            "type": "added_to_sfdc_campaign",
            "campaign": "Q4 Campaign",
            "previous_status": None,
            "status": "Registered",
            "origin": "program_sync",
        }

    def test_campaign_to_program_with_origin_program_sync(self, replay):
        rules = SYNCED + on_program('status changed in program "Q4" from "Not in Program"', name="Joined")
        result = replay(rules, [added(ANN, "Q4 Campaign", "Invited")], q4_world())
        assert result.program("Q4") == {ANN: "Invited"}
        [run] = result.runs
        assert run["trigger"]["type"] == "program_status_changed"
        assert run["trigger"]["origin"] == "program_sync"

    def test_status_changes_and_removals_both_ways(self, replay):
        events = [
            changed(ANN, "Q4 Campaign", "Attended", at(2)),
            program_event(BOB, "Q4", "No Show", at(3)),
            removed(CAT, "Q4 Campaign", at(4)),
            program_event(ANN, "Q4", "Not in Program", at(5)),
        ]
        start = q4_world({ANN: "Registered", BOB: "Registered", CAT: "Invited"})
        result = replay(SYNCED, events, start)
        assert result.members("Q4 Campaign") == {BOB: "No Show"}
        assert result.program("Q4") == {BOB: "No Show"}

    def test_a_backward_change_from_salesforce_is_mirrored_as_it_is(self, replay):
        result = replay(SYNCED, [changed(ANN, "Q4 Campaign", "Invited")], q4_world({ANN: "Attended"}))
        assert result.program("Q4") == {ANN: "Invited"}

    def test_a_program_member_not_in_salesforce_becomes_a_lead(self, replay):
        result = replay(SYNCED, [program_event("eve@example.com", "Q4", "Registered")], q4_world())
        eve = result.person("eve@example.com")
        assert eve is not None and eve["sfdc_type"] == "Lead" and eve["sfdc_id"].startswith("00Q")
        assert result.members("Q4 Campaign") == {"eve@example.com": "Registered"}

    def test_a_flow_program_change_is_mirrored_to_the_campaign(self, replay):
        rules = (
            SYNCED
            + program_flow('change program status in program "Q4" to "Attended"')
            + on_program('status changed in sfdc campaign "Q4 Campaign" to "Attended"', name="Watcher")
        )
        result = replay(rules, [added(ANN, "Webinar", "Sent")], q4_world({ANN: "Registered"}))
        assert result.members("Q4 Campaign") == {ANN: "Attended"}
        [run] = result.runs_of("Watcher")
        assert run["trigger"]["origin"] == "program_sync"

    def test_a_flow_campaign_change_is_mirrored_to_the_program(self, replay):
        rules = SYNCED + program_flow('change status in sfdc campaign "Q4 Campaign" to "Attended"')
        result = replay(rules, [added(ANN, "Webinar", "Sent")], q4_world())
        assert result.program("Q4") == {ANN: "Attended"}

    def test_mirrored_changes_keep_the_cascade_depth(self, replay):
        """A mirror is at the same depth: with max_depth 0, the mirrored change of the event still fires."""
        rules = SYNCED + on_program('status changed in program "Q4"', name="Program")
        result = replay(rules, [added(ANN, "Q4 Campaign", "Invited")], q4_world(), max_depth=0)
        assert result.ran("Program") == [ANN]
        assert result.errors == []

    def test_no_program_sync_option_moves_nothing(self, replay):
        start = q4_world(
            {ANN: "Registered"}, statuses=["Sent", "Responded", *WEBINAR_STATUSES], programs={"Q4": {BOB: "Invited"}}
        )
        events = [program_event(CAT, "Q4", "Invited"), added(DAN, "Q4 Campaign", "Registered")]
        result = replay(SYNCED, events, start, program_sync=False)
        assert result.members("Q4 Campaign") == {ANN: "Registered", DAN: "Registered"}
        assert result.program("Q4") == {BOB: "Invited", CAT: "Invited"}
        campaign = result.campaign("Q4 Campaign")
        assert "type" not in campaign
        assert campaign["statuses"] == ["Sent", "Responded", *WEBINAR_STATUSES]

    def test_sync_disabled_for_one_program(self, replay):
        result = replay(SYNCED, [program_event(CAT, "Q4", "Invited")], q4_world(), sync_disabled=frozenset({"Q4"}))
        assert result.members("Q4 Campaign") == {}
        assert result.program("Q4") == {CAT: "Invited"}


class TestPersonPutIntoSalesforceDuringARun:
    """A person put into Salesforce by one flow step must be seen as in Salesforce by the next steps."""

    def test_remove_after_another_campaign_created_the_lead(self, replay):
        rules = (
            UNSYNCED
            + """
campaign "A" {
    trigger status changed in program "Q4"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
campaign "B" {
    trigger status changed in program "Q4"
    flow { remove from sfdc campaign "Nurture" }
}
"""
        )
        result = replay(rules, [program_event(DAN, "Q4", "Invited")])
        assert result.steps("B")[0]["outcome"] == "done"
        assert result.members("Nurture") == {}

    def test_change_status_after_another_campaign_created_the_lead(self, replay):
        rules = (
            UNSYNCED
            + """
campaign "A" {
    trigger status changed in program "Q4"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
campaign "B" {
    trigger status changed in program "Q4"
    flow { change status in sfdc campaign "Nurture" to "Responded" }
}
"""
        )
        result = replay(rules, [program_event(DAN, "Q4", "Invited")])
        assert result.members("Nurture") == {DAN: "Responded"}

    def test_change_status_after_the_program_sync_created_the_lead_in_the_same_flow(self, replay):
        rules = (
            SYNCED
            + """
campaign "Flow" {
    trigger status changed in program "Other"
    flow {
        change program status in program "Q4" to "Registered"
        change status in sfdc campaign "Q4 Campaign" to "Attended"
    }
}
program "Other" { channel "Content" }
"""
        )
        result = replay(rules, [program_event(DAN, "Other", "Member")], q4_world())
        assert result.members("Q4 Campaign") == {DAN: "Attended"}
        assert result.program("Q4") == {DAN: "Attended"}


class TestEventStatusValidation:
    def test_status_not_of_the_campaign_is_unusable_when_the_sync_cannot_fix_the_statuses(self, replay):
        start = q4_world({ANN: "Sent"}, statuses=["Sent", "Responded"])
        with pytest.raises(InputError, match="is not a member status"):
            replay(SYNCED, [added(BOB, "Q4 Campaign", "Registered")], start)

    def test_status_not_of_the_campaign_is_unusable_when_the_sync_is_off(self, replay):
        start = q4_world(statuses=["Sent", "Responded"])
        with pytest.raises(InputError, match="is not a member status"):
            replay(SYNCED, [added(BOB, "Q4 Campaign", "Registered")], start, program_sync=False)

    def test_channel_status_is_accepted_for_an_empty_campaign_the_sync_will_fix(self, replay):
        result = replay(SYNCED, [added(BOB, "Q4 Campaign", "Registered")], q4_world(statuses=["Sent", "Responded"]))
        assert result.members("Q4 Campaign") == {BOB: "Registered"}
        assert result.program("Q4") == {BOB: "Registered"}
