"""Shared by the tests of the pytest plugin: a small user project (rules, world, a snapshot test)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RULES = """\
campaign "Webinar follow-up" {
    trigger status changed in sfdc campaign "Q4 Webinar" to "Attended"
    filter not member of sfdc campaign "Do Not Contact"
    flow {
        add to sfdc campaign "Nurture 2026" with status "Sent"
        if member of sfdc campaign "Customers" {
            add to sfdc campaign "Customer Check-in" with status "Sent"
        }
        wait 2 days
        change status in sfdc campaign "Nurture 2026" to "Responded"
    }
}
"""

WORLD = {
    "now": "2026-11-01T00:00:00Z",
    "persons": [
        {"email": "ann@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
        {"email": "bob@example.com", "sfdc_type": "Contact", "sfdc_id": "003000000000002AAA"},
    ],
    "sfdc_campaigns": [
        {
            "name": "Q4 Webinar",
            "id": "701000000000001AAA",
            "statuses": ["Registered", "Attended"],
            "members": {"ann@example.com": "Registered", "bob@example.com": "Registered"},
        },
        {"name": "Nurture 2026", "id": "701000000000002AAA"},
        {"name": "Customers", "id": "701000000000003AAA"},
        {"name": "Customer Check-in", "id": "701000000000004AAA"},
        {"name": "Do Not Contact", "id": "701000000000005AAA"},
    ],
}

USER_TEST = """\
from engine.testing.events import status_changed


def test_attendees_are_nurtured(campaign_rules, snapshot):
    result = campaign_rules("rules/").replay(world="world.json", events=[
        status_changed("ann@example.com", "Q4 Webinar", "Attended", at="2026-11-03T09:00:00Z"),
    ])
    assert result == snapshot
"""


@dataclass
class CampaignProject:
    root: Path

    @property
    def rules(self) -> Path:
        return self.root / "rules" / "webinar.campaign"

    def edit_rules(self, old: str, new: str) -> None:
        text = self.rules.read_text(encoding="utf-8")
        assert old in text
        self.rules.write_text(text.replace(old, new), encoding="utf-8")

    def snapshot_file(self, test_module: str = "test_webinar") -> str:
        return (self.root / "__snapshots__" / f"{test_module}.ambr").read_text(encoding="utf-8")
