"""Hover words for the issue-12 forms: the requested trigger, schedules, limits, time zones, campaign kinds."""

from __future__ import annotations

from engine.language import ast
from engine.lsp import words


def test_requested_trigger() -> None:
    text = words.trigger(ast.Trigger("requested"))
    assert "request campaign" in text and "POST /campaigns/{name}/request" in text
    assert "None" not in text


def test_schedules() -> None:
    assert "every monday at 09:00, Europe/Berlin time" in words.schedule(
        ast.Schedule("weekly", time="09:00", weekday="monday"), "Europe/Berlin"
    )
    assert "once, at 2026-12-10T09:00" in words.schedule(ast.Schedule("once", at="2026-12-10T09:00"), "UTC")
    assert "every day at 07:00" in words.schedule(ast.Schedule("daily", time="07:00"), "UTC")
    assert "last day" in words.schedule(ast.Schedule("monthly", time="09:00", day=31), "UTC")


def test_limit_and_time_zone() -> None:
    assert words.limit(1) == "Each batch run takes at most 1 person, in order of email."
    assert "500 persons" in words.limit(500)
    assert "the rule set's" in words.timezone("UTC", rule_set=True)
    assert "this campaign's" in words.timezone("Asia/Tokyo", rule_set=False)


def test_campaign_kinds() -> None:
    batch = ast.Campaign("B", schedule=ast.Schedule("daily", time="09:00"))
    requested = ast.Campaign("R", triggers=(ast.Trigger("requested"),))
    plain = ast.Campaign("P", triggers=(ast.Trigger("added", ast.CampaignRef("any")),), active=False)
    assert words.campaign_kind(batch) == "batch campaign"
    assert words.campaign_kind(requested) == "trigger campaign, can be requested"
    assert words.campaign_kind(plain) == "trigger campaign, inactive"
