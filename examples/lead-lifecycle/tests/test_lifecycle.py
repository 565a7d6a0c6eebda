"""Tests of the lead lifecycle rules: the whole event stream as a snapshot."""

RULES = "../rules"
WORLD = "../world.json"


def test_the_whole_stream(campaign_rules, snapshot):
    result = campaign_rules(RULES).replay(world=WORLD, events="../events.jsonl")
    assert result.errors == []
    assert result == snapshot
