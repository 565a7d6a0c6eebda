"""Tests of the event drip rules: the stream up to a date, then to the end of every wait."""

RULES = "../rules"
WORLD = "../world.json"


def test_the_stream_until_the_first_reminders(campaign_rules, snapshot):
    result = campaign_rules(RULES).replay(world=WORLD, events="../events.jsonl", until="2026-11-10T00:00:00Z")
    assert result.errors == []
    assert result == snapshot


def test_every_wait_ends(campaign_rules, snapshot):
    result = campaign_rules(RULES).replay(world=WORLD, events="../events.jsonl")
    assert result["waiting"] == []
    assert result == snapshot
