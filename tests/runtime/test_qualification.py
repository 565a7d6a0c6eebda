"""Qualification (LANGUAGE.md "Qualification"): once, every time, once every N units; event times only."""

from __future__ import annotations

import pytest
from replay_helpers import ANN, BOB, added, at, removed, world


def qualified(qualify: str) -> str:
    line = f"    {qualify}\n" if qualify else ""
    return f"""
campaign "Q" {{
    trigger added to sfdc campaign "Webinar"
{line}    flow {{ add to sfdc campaign "VIP" with status "Sent" }}
}}
"""


def join_leave(*times: str, person: str = ANN) -> list[dict]:
    """ann joins Webinar at each time (and leaves an hour later), so the trigger fires at each time."""
    events = []
    for time in times:
        events.append(added(person, "Webinar", "Registered", time))
        events.append(removed(person, "Webinar", time.replace("T00:", "T01:")))
    return events


class TestOnce:
    def test_once_is_the_default(self, replay):
        result = replay(qualified(""), join_leave(at(2), at(10), at(30)))
        assert result.ran("Q") == [ANN]
        assert result.runs[0]["at"] == at(2)

    def test_once_ever_per_person(self, replay):
        events = join_leave(at(2), at(3)) + join_leave(at(4), person=BOB)
        result = replay(qualified("qualify once"), events)
        assert result.ran("Q") == [ANN, BOB]

    def test_once_per_campaign(self, replay):
        rules = qualified("qualify once") + qualified("qualify once").replace('"Q"', '"Other"')
        result = replay(rules, join_leave(at(2), at(3)))
        assert result.ran("Q") == [ANN]
        assert result.ran("Other") == [ANN]

    def test_a_person_filtered_out_can_still_qualify_later(self, replay):
        rules = """
campaign "Q" {
    trigger added to sfdc campaign "Webinar"
    filter member of sfdc campaign "Customers"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""
        events = [
            *join_leave(at(2)),
            added(ANN, "Customers", "Sent", at(3)),
            *join_leave(at(4)),
            *join_leave(at(5)),
        ]
        result = replay(rules, events)
        assert [r["at"] for r in result.runs] == [at(4)]


class TestEveryTime:
    def test_every_trigger_runs(self, replay):
        result = replay(qualified("qualify every time"), join_leave(at(2), at(2, 2), at(3)))
        assert [r["at"] for r in result.runs] == [at(2), at(2, 2), at(3)]


class TestWindow:
    @pytest.mark.parametrize(
        "qualify, inside, edge",
        [
            ("qualify once every 7 days", at(8, 23, 59), at(9)),
            ("qualify once every 1 day", at(2, 23, 59), at(3)),
            ("qualify once every 2 hours", at(2, 1, 59), at(2, 2)),
            ("qualify once every 1 hour", at(2, 0, 59), at(2, 1)),
            ("qualify once every 2 weeks", at(15, 23, 59), at(16)),
            ("qualify once every 1 week", at(8, 23, 59), at(9)),
        ],
    )
    def test_one_run_per_window_from_the_start_of_the_last_run(self, replay, qualify, inside, edge):
        events = [
            added(ANN, "Webinar", "Registered", at(2)),
            removed(ANN, "Webinar", at(2, 0, 1)),
            added(ANN, "Webinar", "Registered", inside),  # still inside the window: no run
            removed(ANN, "Webinar", inside.replace(":00Z", ":30Z")),
            added(ANN, "Webinar", "Registered", edge),  # the window has passed: runs
        ]
        result = replay(qualified(qualify), events)
        assert [r["at"] for r in result.runs] == [at(2), edge]

    def test_a_month_is_30_days(self, replay):
        # October has 31 days, so 30 days after October 1st is not yet a calendar month later
        events = [
            added(ANN, "Webinar", "Registered", at(1, month=10)),
            removed(ANN, "Webinar", at(1, 1, month=10)),
            added(ANN, "Webinar", "Registered", at(30, 23, month=10)),  # 29 days 23 hours: no
            removed(ANN, "Webinar", at(30, 23, 30, month=10)),
            added(ANN, "Webinar", "Registered", at(31, month=10)),  # 30 days: yes (a calendar month: not yet)
        ]
        result = replay(qualified("qualify once every 1 month"), events, world(now="2026-09-01T00:00:00Z"))
        assert [r["at"] for r in result.runs] == [at(1, month=10), at(31, month=10)]

    def test_months_plural(self, replay):
        events = [*join_leave(at(1)), *join_leave(at(30)), *join_leave(at(31, month=12))]
        result = replay(qualified("qualify once every 2 months"), events)
        # 60 days after 2026-11-01 is 2026-12-31
        assert [r["at"] for r in result.runs] == [at(1), at(31, month=12)]

    def test_measured_from_the_last_run_not_the_last_trigger(self, replay):
        """Triggers inside the window do not move it."""
        events = [*join_leave(at(1)), *join_leave(at(5)), *join_leave(at(8)), *join_leave(at(9))]
        result = replay(qualified("qualify once every 7 days"), events)
        assert [r["at"] for r in result.runs] == [at(1), at(8)]

    def test_per_person(self, replay):
        events = [
            *join_leave(at(1)),
            *join_leave(at(2), person=BOB),
            *join_leave(at(3)),
            *join_leave(at(3), person=BOB),
        ]
        result = replay(qualified("qualify once every 7 days"), events)
        assert [(r["person"], r["at"]) for r in result.runs] == [(ANN, at(1)), (BOB, at(2))]

    def test_event_times_not_the_wall_clock(self, replay):
        """Events a year apart replay in milliseconds, and still qualify by their own times."""
        events = [
            added(ANN, "Webinar", "Registered", "2027-01-01T00:00:00Z"),
            removed(ANN, "Webinar", "2027-01-01T01:00:00Z"),
            added(ANN, "Webinar", "Registered", "2027-01-05T00:00:00Z"),
            removed(ANN, "Webinar", "2027-01-05T01:00:00Z"),
            added(ANN, "Webinar", "Registered", "2028-01-01T00:00:00Z"),
        ]
        result = replay(qualified("qualify once every 7 days"), events)
        assert [r["at"] for r in result.runs] == ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]

    def test_event_without_at_takes_the_time_of_the_one_before(self, replay):
        events = [
            added(ANN, "Webinar", "Registered", at(2)),
            removed(ANN, "Webinar"),  # at(2)
            added(ANN, "Webinar", "Registered"),  # at(2): inside the window
        ]
        result = replay(qualified("qualify once every 1 hour"), events)
        assert [r["at"] for r in result.runs] == [at(2)]
