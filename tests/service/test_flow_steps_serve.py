"""The new flow steps in the service (in-process app, SQLite store, one worker thread): request campaign,
execute campaign, remove from flow, wait until and a weekday window run through POST /events as in a replay."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from service_helpers import query, wait_until

from engine.service.app import Service, ServiceConfig, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's TestClient on httpx
    from fastapi.testclient import TestClient

TOKEN = "steps-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

RULES = """
campaign "Drip" {
    trigger added to sfdc campaign "Webinar" with status "Registered"
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
        wait 2 days then until weekday monday..friday at 09:00
        change status in sfdc campaign "Nurture" to "Active"
    }
}

campaign "Attended" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    flow {
        remove from flow of campaign "Drip"
        execute campaign "Score"
        if member of sfdc campaign "VIP" {
            request campaign "Kit"
        }
        wait until 2020-01-01T09:00
        add to sfdc campaign "Seen" with status "Sent"
    }
}

campaign "Score" {
    trigger campaign is requested
    filter member of sfdc campaign "Customers"
    flow { add to sfdc campaign "VIP" with status "Sent" }
}

campaign "Kit" {
    trigger campaign is requested
    flow { add to sfdc campaign "Kit" with status "Sent" }
}
"""

STATUSES = {
    "Webinar": ["Registered", "Attended"],
    "Nurture": ["Queued", "Active"],
    "Customers": ["Sent"],
    "VIP": ["Sent"],
    "Kit": ["Sent"],
    "Seen": ["Sent"],
}
WORLD = {
    "now": "2030-01-01T00:00:00Z",
    "persons": [
        {"email": "ann@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
        {"email": "bob@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000002AAA"},
    ],
    "sfdc_campaigns": [
        {
            "name": name,
            "id": f"70100000000000{n}AAA",
            "statuses": statuses,
            "members": {"ann@example.com": "Sent"} if name == "Customers" else {},
        }
        for n, (name, statuses) in enumerate(STATUSES.items(), start=1)
    ],
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    (tmp_path / "rules.campaign").write_text(RULES)
    (tmp_path / "world.json").write_text(json.dumps(WORLD))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    config = ServiceConfig(
        rules=[str(tmp_path / "rules.campaign")], db_url=url, world=str(tmp_path / "world.json"), token=TOKEN
    )
    with TestClient(create_app(Service(config))) as client:
        yield client, url


def members(url: str, campaign: str) -> dict[str, str]:
    rows = query(
        url,
        "SELECT p.email, m.status FROM memberships m JOIN persons p ON p.id = m.person_id "
        "JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = ?",
        (campaign,),
    )
    return {str(email): str(status) for email, status in rows}


def waiting(url: str) -> list[tuple[str, str, str]]:
    rows = query(
        url,
        "SELECT c.campaign, p.email, c.due_at FROM continuations c JOIN persons p ON p.id = c.person_id ORDER BY 2",
    )
    return [(str(c), str(e), datetime.fromtimestamp(float(d), UTC).strftime("%Y-%m-%dT%H:%MZ")) for c, e, d in rows]


def pending(url: str) -> int:
    return int(query(url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL")[0][0])


def post(client: TestClient, events: list[dict[str, str]]) -> None:
    answer = client.post("/events", json=events, headers=AUTH)
    assert answer.status_code == 202, answer.text


def test_new_flow_steps_run_in_the_service(api: tuple[TestClient, str]) -> None:
    client, url = api
    # Friday 2030-01-04 15:00Z: two days later is Sunday, so the window opens on Monday 09:00
    registered = "2030-01-04T15:00:00Z"
    post(
        client,
        [
            {
                "type": "added_to_sfdc_campaign",
                "person": p,
                "campaign": "Webinar",
                "status": "Registered",
                "at": registered,
            }
            for p in ("ann@example.com", "bob@example.com")
        ],
    )
    wait_until(lambda: pending(url) == 0, 20, what="the registrations")
    assert members(url, "Nurture") == {"ann@example.com": "Queued", "bob@example.com": "Queued"}
    assert waiting(url) == [
        ("Drip", "ann@example.com", "2030-01-07T09:00Z"),
        ("Drip", "bob@example.com", "2030-01-07T09:00Z"),
    ]

    # ann attends: her Drip run is dropped; Score runs inline (she is a customer), so the choice after it
    # sees her in VIP and requests Kit; the wait until a past date goes on at once
    attended = {"type": "status_changed_in_sfdc_campaign", "campaign": "Webinar", "status": "Attended"}
    post(client, [{**attended, "person": "ann@example.com", "at": "2030-01-05T10:00:00Z"}])
    wait_until(lambda: pending(url) == 0, 20, what="ann's attendance")
    assert waiting(url) == [("Drip", "bob@example.com", "2030-01-07T09:00Z")]
    assert members(url, "VIP") == {"ann@example.com": "Sent"}
    assert members(url, "Kit") == {"ann@example.com": "Sent"}
    assert members(url, "Seen") == {"ann@example.com": "Sent"}

    # bob is no customer: Score is skipped, no VIP, no Kit; his Drip run is dropped too
    post(client, [{**attended, "person": "bob@example.com", "at": "2030-01-05T11:00:00Z"}])
    wait_until(lambda: pending(url) == 0, 20, what="bob's attendance")
    assert waiting(url) == []
    assert "bob@example.com" not in members(url, "VIP") and "bob@example.com" not in members(url, "Kit")
    assert members(url, "Seen") == {"ann@example.com": "Sent", "bob@example.com": "Sent"}
    assert members(url, "Nurture") == {"ann@example.com": "Queued", "bob@example.com": "Queued"}  # never Active
    runs = query(url, "SELECT campaign, COUNT(*) FROM runs GROUP BY campaign ORDER BY campaign")
    assert dict((str(c), int(n)) for c, n in runs) == {"Attended": 2, "Drip": 2, "Kit": 1, "Score": 1}
