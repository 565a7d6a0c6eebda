"""Issue 12: Remove from Flow while waiting; dated waits (`wait until`) and weekday windows, in the campaign's
time zone, on the replay's event clock."""

from __future__ import annotations

from datetime import UTC, datetime

from replay_helpers import ANN, BOB, added, at, removed

DRIP = """
campaign "Drip" {
    trigger added to sfdc campaign "Webinar"
    qualify every time
    flow {
        wait 3 days
        add to sfdc campaign "Nurture" with status "Sent"
    }
}

campaign "Stop" {
    trigger added to sfdc campaign "Customers"
    qualify every time
    flow { remove from flow of campaign "Drip" }
}
"""


def view(steps):
    return [(s["action"], s["outcome"], s["detail"]) for s in steps]


class TestRemoveFromFlow:
    def test_waiting_runs_are_dropped_and_show_why(self, replay):
        events = [
            added(ANN, "Webinar", "Sent", at(2)),
            removed(ANN, "Webinar", at(2, 1)),
            added(ANN, "Webinar", "Sent", at(2, 2)),
            added(BOB, "Webinar", "Sent", at(2, 3)),
            added(ANN, "Customers", "Sent", at(3)),
        ]
        result = replay(DRIP, events)
        (stop,) = result.steps("Stop")
        assert (stop["action"], stop["campaign"], stop["outcome"], stop["detail"]) == (
            "remove_from_flow",
            "Drip",
            "done",
            "2 waiting runs dropped",
        )
        for run in result.runs_of("Drip", ANN):
            assert view(run["steps"]) == [
                ("wait", "done", f"until {at(5)}" if run["at"] == at(2) else f"until {at(5, 2)}"),
                ("removed_from_flow", "done", 'by "Stop"'),
            ]
            assert run["steps"][-1]["at"] == at(3)
        # bob still waits, and goes on
        assert result.members("Nurture") == {BOB: "Sent"}
        assert result.raw["waiting"] == []

    def test_not_waiting_is_skipped(self, replay):
        result = replay(DRIP, [added(ANN, "Customers", "Sent", at(3))])
        assert view(result.steps("Stop")) == [("remove_from_flow", "skipped", 'not waiting in "Drip"')]

    def test_this_campaign_a_new_entry_drops_the_earlier_wait(self, replay):
        rules = """
campaign "Reminder" {
    trigger added to sfdc campaign "Webinar"
    trigger status changed in sfdc campaign "Webinar"
    qualify every time
    flow {
        remove from flow of this campaign
        wait 2 days
        add to sfdc campaign "Nurture" with status "Sent"
    }
}
"""
        result = replay(
            rules,
            [
                added(ANN, "Webinar", "Sent", at(2)),
                {
                    "type": "status_changed_in_sfdc_campaign",
                    "person": ANN,
                    "campaign": "Webinar",
                    "status": "Registered",
                    "at": at(3),
                },
            ],
        )
        first, second = result.runs_of("Reminder")
        assert view(first["steps"]) == [
            ("remove_from_flow", "skipped", 'not waiting in "Reminder"'),
            ("wait", "done", f"until {at(4)}"),
            ("removed_from_flow", "done", 'by "Reminder"'),
        ]
        assert view(second["steps"])[0] == ("remove_from_flow", "done", "1 waiting run dropped")
        assert second["steps"][-1]["at"] == at(5)  # the second wait ended and its flow went on
        assert result.members("Nurture") == {ANN: "Sent"}


def dated(step: str, zone: str = "Europe/Berlin") -> str:
    return f"""
timezone "{zone}"

campaign "Dated" {{
    trigger added to sfdc campaign "Webinar"
    flow {{
        {step}
        add to sfdc campaign "Nurture" with status "Sent"
    }}
}}
"""


class TestWaitUntil:
    def test_already_past_goes_on_at_once(self, replay):
        result = replay(dated("wait until 2026-10-01T09:00"), [added(ANN, "Webinar", "Sent", at(2))])
        assert view(result.steps("Dated")) == [
            ("wait", "done", "already past (2026-10-01T09:00 Europe/Berlin): went on at once"),
            ("add_to_sfdc_campaign", "done", "added"),
        ]
        assert result.steps("Dated")[1]["at"] == at(2)

    def test_in_the_future_waits_till_then_in_the_zone(self, replay):
        # 09:00 in Berlin on 24 December is 08:00 UTC (winter time)
        result = replay(
            dated("wait until 2026-12-24T09:00"),
            [added(ANN, "Webinar", "Sent", at(2)), added(BOB, "Webinar", "Sent", at(20, month=12))],
        )
        steps = result.steps("Dated", ANN)
        assert view(steps)[0] == ("wait", "done", "until 2026-12-24T08:00:00Z")
        assert steps[1]["at"] == "2026-12-24T08:00:00Z"
        # bob's run, four days before the end, waits for the same moment
        assert result.steps("Dated", BOB)[1]["at"] == "2026-12-24T08:00:00Z"
        assert result.members("Nurture") == {ANN: "Sent", BOB: "Sent"}

    def test_the_event_clock_runs_the_wait_before_a_later_event(self, replay):
        events = [added(ANN, "Webinar", "Sent", at(2)), added(BOB, "Customers", "Sent", "2026-12-24T08:00:00Z")]
        result = replay(dated("wait until 2026-12-24T09:00"), events, until=datetime(2026, 12, 1, tzinfo=UTC))
        # --until is before the wait's end, but an event at the very moment it ends comes later
        assert result.members("Nurture") == {ANN: "Sent"}

    def test_until_before_the_end_keeps_it_waiting(self, replay):
        result = replay(
            dated("wait until 2026-12-24T09:00"),
            [added(ANN, "Webinar", "Sent", at(2))],
            until=datetime(2026, 12, 24, 7, 59, tzinfo=UTC),
        )
        assert result.members("Nurture") == {}
        assert result.raw["waiting"] == [{"campaign": "Dated", "person": ANN, "due": "2026-12-24T08:00:00Z", "run": 1}]


class TestWeekdayWindow:
    def test_across_a_weekend(self, replay):
        # Friday 6 November 2026, 15:00 UTC: one day later is Saturday 15:00, the window opens Monday 09:00
        result = replay(
            dated("wait 1 day then until weekday monday..friday at 09:00", zone="UTC"),
            [added(ANN, "Webinar", "Sent", at(6, 15))],
        )
        steps = result.steps("Dated")
        assert view(steps)[0] == ("wait", "done", "until 2026-11-09T09:00:00Z")
        assert steps[1]["at"] == "2026-11-09T09:00:00Z"

    def test_within_the_week_it_is_the_next_morning(self, replay):
        # Monday 2 November 2026, 10:00 Berlin (09:00 UTC): the next window is Tuesday 09:00 Berlin, 08:00 UTC
        result = replay(dated("wait until weekday monday..friday at 09:00"), [added(ANN, "Webinar", "Sent", at(2, 9))])
        assert view(result.steps("Dated"))[0] == ("wait", "done", "until 2026-11-03T08:00:00Z")
