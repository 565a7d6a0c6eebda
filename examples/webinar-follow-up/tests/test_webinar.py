"""Tests of the webinar follow-up rules: the whole event stream as a snapshot, and the rules one by one."""

from engine.testing.events import status_changed

RULES = "../rules"
WORLD = "../world.json"


def test_the_whole_stream(campaign_rules, snapshot):
    result = campaign_rules(RULES).replay(world=WORLD, events="../events.jsonl")
    assert result.errors == []
    assert result == snapshot


def test_an_attendee_is_nurtured_and_routed(campaign_rules):
    result = campaign_rules(RULES).replay(
        world=WORLD,
        events=[status_changed("bob@example.com", "2026 Q4 Webinar", "Attended", at="2026-11-12T17:05:00Z")],
        until="2026-11-20T00:00:00Z",
    )
    assert [run["campaign"] for run in result.runs] == ["Webinar Attendees to Nurture"]
    assert result.members("Nurture 2026")["bob@example.com"] == "Active"


def test_do_not_contact_stops_the_follow_up(campaign_rules):
    result = campaign_rules(RULES).replay(
        world=WORLD,
        events=[status_changed("dan@example.com", "2026 Q4 Webinar", "Attended", at="2026-11-12T17:05:00Z")],
    )
    assert result.runs == []
