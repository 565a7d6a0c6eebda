"""Issue 12: batch campaigns in the replay: who a schedule's run selects, in what order, when the slots come
(time zones, DST), and how slots interleave with waiting runs and events."""

from __future__ import annotations

from datetime import UTC, datetime

from replay_helpers import ANN, BOB, CAT, DAN, added, at, world


def until(day: int, hour: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


WEEKLY = """
campaign "Weekly attendees" {
    schedule every week on monday at 09:00
    filter member of sfdc campaign "Webinar" with status "Attended"
    QUALIFY
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
    }
}

campaign "On nurture" {
    trigger added to sfdc campaign "Nurture"
    flow {
        wait 1 day
        add to sfdc campaign "VIP" with status "Sent"
    }
}
"""

ATTENDED = {"Webinar": {ANN: "Attended", BOB: "Attended", CAT: "Registered"}}


def weekly(qualify: str = "qualify every time") -> str:
    return WEEKLY.replace("QUALIFY", qualify)


class TestWeekly:
    def test_members_with_the_status_run_at_each_slot(self, replay):
        # world now: Sunday 1 November 2026; Mondays 2, 9, 16 November at 09:00 UTC (the rule set's zone)
        result = replay(weekly(), [], world(ATTENDED), until=until(16, 12))
        runs = result.runs_of("Weekly attendees")
        assert [(r["person"], r["at"]) for r in runs] == [
            (ANN, at(2, 9)),
            (BOB, at(2, 9)),
            (ANN, at(9, 9)),
            (BOB, at(9, 9)),
            (ANN, at(16, 9)),
            (BOB, at(16, 9)),
        ]
        assert runs[0]["trigger"] == {
            "type": "batch",
            "schedule": "schedule every week on monday at 09:00",
            "slot": at(2, 9),
            "origin": "schedule",
        }
        assert runs[0]["steps"] == [
            {
                "action": "add_to_sfdc_campaign",
                "campaign": "Nurture",
                "status": "Sent",
                "outcome": "done",
                "detail": "added",
                "at": at(2, 9),
            }
        ]
        # later weeks: already members
        assert runs[2]["steps"][0]["detail"] == 'already a member (status "Sent")'
        # the flow's changes cascade as for any run, waits included
        assert result.ran("On nurture") == [ANN, BOB]
        assert result.runs_of("On nurture")[0]["trigger"]["origin"] == "flow"
        assert result.steps("On nurture", ANN)[1]["at"] == at(3, 9)
        assert result.members("VIP") == {ANN: "Sent", BOB: "Sent"}

    def test_qualify_once_runs_a_person_once(self, replay):
        result = replay(
            weekly("qualify once"), [added(CAT, "Webinar", "Attended", at(5))], world(ATTENDED), until=until(16, 12)
        )
        assert [(r["person"], r["at"]) for r in result.runs_of("Weekly attendees")] == [
            (ANN, at(2, 9)),
            (BOB, at(2, 9)),
            (CAT, at(9, 9)),
        ]

    def test_qualify_window(self, replay):
        result = replay(weekly("qualify once every 10 days"), [], world(ATTENDED), until=until(16, 12))
        assert [r["at"] for r in result.runs_of("Weekly attendees", ANN)] == [at(2, 9), at(16, 9)]

    def test_a_slot_at_or_before_the_world_now_never_runs(self, replay):
        result = replay(weekly(), [], world(ATTENDED, now=at(2, 9)), until=until(3))
        assert result.runs == []

    def test_without_until_slots_run_up_to_the_last_event(self, replay):
        events = [added(DAN, "Customers", "Sent", at(10))]
        result = replay(weekly(), events, world(ATTENDED))
        assert [r["at"] for r in result.runs_of("Weekly attendees")] == [at(2, 9), at(2, 9), at(9, 9), at(9, 9)]
        # continuations keep their rule: all remaining run
        assert result.raw["waiting"] == []

    def test_inactive_batch_campaign_never_runs(self, replay):
        result = replay(
            weekly().replace("schedule every week", "inactive\n    schedule every week"),
            [],
            world(ATTENDED),
            until=until(16, 12),
        )
        assert result.ran("Weekly attendees") == []


class TestLimitAndOrder:
    def test_limit_takes_the_first_by_email_case_insensitively(self, replay):
        persons = [
            {"email": "Zed@example.com", "sfdc_id": "00Q000000000011AAA"},
            {"email": "amy@example.com", "sfdc_id": "00Q000000000012AAA"},
            {"email": "Bea@example.com", "sfdc_id": "00Q000000000013AAA"},
            {"email": "carl@example.com", "sfdc_id": "00Q000000000014AAA"},
        ]
        rules = """
campaign "Sample" {
    schedule at 2026-11-05T10:00
    limit 3
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(rules, [], world(persons=persons), until=until(6))
        assert result.ran("Sample") == ["amy@example.com", "Bea@example.com", "carl@example.com"]
        assert result.runs_of("Sample")[0]["trigger"]["schedule"] == "schedule at 2026-11-05T10:00"

    def test_no_filters_selects_everyone(self, replay):
        rules = """
campaign "All" {
    schedule at 2026-11-05T10:00
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(rules, [], world(), until=until(6))
        assert result.ran("All") == [ANN, BOB, CAT, DAN]
        # dan was not in Salesforce: the flow made him a Lead
        assert result.person(DAN)["sfdc_type"] == "Lead"


class TestTimeZones:
    def test_dst_inside_a_daily_schedule(self, replay):
        """Europe/Berlin moves to summer time on the last Sunday of March (29 March 2026): 09:00 is 08:00Z before,
        07:00Z from that day on."""
        rules = """
timezone "Europe/Berlin"

campaign "Daily" {
    schedule every day at 09:00
    qualify every time
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(
            rules,
            [],
            world(persons=[{"email": ANN, "sfdc_id": "00Q000000000001AAA"}], now="2026-03-27T12:00:00Z"),
            until=datetime(2026, 3, 30, 12, tzinfo=UTC),
        )
        assert [r["trigger"]["slot"] for r in result.runs] == [
            "2026-03-28T08:00:00Z",
            "2026-03-29T07:00:00Z",
            "2026-03-30T07:00:00Z",
        ]

    def test_a_campaign_zone_overrides_the_rule_set_zone(self, replay):
        rules = """
timezone "Europe/Berlin"

campaign "NY" {
    schedule at 2026-11-05T09:00
    timezone "America/New_York"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        result = replay(rules, [], world(persons=[{"email": ANN, "sfdc_id": "00Q000000000001AAA"}]), until=until(6))
        assert [r["at"] for r in result.runs] == ["2026-11-05T14:00:00Z"]


INTERLEAVE = """
campaign "Drip" {
    trigger added to sfdc campaign "Webinar"
    flow {
        wait WAIT
        add to sfdc campaign "VIP" with status "Sent"
    }
}

campaign "VIP sweep" {
    schedule at 2026-11-05T09:00
    filter member of sfdc campaign "VIP"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""


class TestInterleaving:
    def test_a_continuation_due_at_the_slot_runs_first(self, replay):
        # ann waits from 4 Nov 09:00 for exactly one day: due at the very slot
        result = replay(INTERLEAVE.replace("WAIT", "1 day"), [added(ANN, "Webinar", "Sent", at(4, 9))], until=until(6))
        assert [r["campaign"] for r in result.runs] == ["Drip", "VIP sweep"]
        assert result.members("Nurture") == {ANN: "Sent"}

    def test_a_continuation_due_after_the_slot_runs_after(self, replay):
        result = replay(
            INTERLEAVE.replace("WAIT", "25 hours"), [added(ANN, "Webinar", "Sent", at(4, 9))], until=until(6)
        )
        assert result.ran("VIP sweep") == []
        assert result.members("VIP") == {ANN: "Sent"}

    def test_slots_run_before_a_later_event(self, replay):
        rules = """
campaign "Sweep" {
    schedule at 2026-11-05T09:00
    filter member of sfdc campaign "Customers"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""
        # bob becomes a customer after the slot: not selected
        events = [added(ANN, "Customers", "Sent", at(4)), added(BOB, "Customers", "Sent", at(5, 10))]
        result = replay(rules, events)
        assert result.ran("Sweep") == [ANN]
