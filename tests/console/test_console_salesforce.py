"""The Salesforce page against the HTTPS emulator, in Chromium: the org, API calls against the limit, calls by
endpoint, and an action Salesforce refused, retried from the page once the cause is fixed in Salesforce."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from console_helpers import Serve, browser, chromium_or_skip, wait_until

from engine.emulator.testing import RunningEmulator

TOKEN = "console-sf-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RULES = """
campaign "Welcome" {
    trigger added to sfdc campaign "Signups"
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
    }
}
"""


@pytest.fixture
def org(tmp_path: Path) -> Iterator[RunningEmulator]:
    with RunningEmulator(tmp_path / "sf") as running:
        yield running


def make_campaign(sf: object, name: str, statuses: list[str]) -> str:
    campaign_id = str(sf.Campaign.create({"Name": name})["id"])  # type: ignore[attr-defined]
    for position, label in enumerate(statuses):
        sf.CampaignMemberStatus.create(  # type: ignore[attr-defined]
            {"CampaignId": campaign_id, "Label": label, "SortOrder": 10 + position, "IsDefault": position == 0}
        )
    return campaign_id


def outcomes(db: Path) -> dict[str | None, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome").fetchall())


def mirror(db: Path, email: str) -> str | None:
    """The person's Nurture status in the engine's mirror of Salesforce."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT m.status FROM memberships m JOIN persons p ON p.id = m.person_id "
            "JOIN campaigns c ON c.id = m.campaign_id WHERE p.email = ? AND c.name = 'Nurture'",
            (email,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_refused_action_is_listed_and_retried_from_the_page(org: RunningEmulator, tmp_path: Path) -> None:
    chromium_or_skip()
    sf = org.client()
    nurture = make_campaign(sf, "Nurture", ["Active", "Queued"])
    make_campaign(sf, "Signups", ["Signed Up"])
    for email in ("ann@example.com", "bob@example.com"):
        sf.Lead.create({"LastName": "L", "Company": "C", "Email": email})
    rules = tmp_path / "rules.campaign"
    rules.write_text(RULES)
    db = tmp_path / "store.db"
    env = {
        "SMARTCAMPAIGN_SFDC_INSTANCE_URL": org.instance_url,
        "SMARTCAMPAIGN_SFDC_SESSION_ID": org.token,
        "SMARTCAMPAIGN_SFDC_CA_FILE": org.ca_file,
        "SMARTCAMPAIGN_SFDC_STATUS_TTL": "0",  # member statuses read for every flush: the deletion is seen at once
    }
    args = ["--rules", str(rules), "--db", f"sqlite:///{db}", "--token", TOKEN, "--crm", "salesforce",
            "--poll-interval", "3600"]  # fmt: skip
    serve = Serve(args, tmp_path / "serve.log", env)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    try:
        # ann goes through; then an admin removes the "Queued" status in Salesforce (the store's catalog still
        # has it, so the engine decides as before) and bob's add is refused
        signup = {"type": "added_to_sfdc_campaign", "campaign": "Signups", "status": "Signed Up"}
        posted = requests.post(f"{serve.base}/events", json={**signup, "person": "ann@example.com"}, headers=AUTH,
                               timeout=10)  # fmt: skip
        assert posted.status_code == 202, posted.text
        wait_until(lambda: outcomes(db).get("done") == 1, 30, 0.05, "ann's add to be sent")
        queued = sf.query(f"SELECT Id FROM CampaignMemberStatus WHERE CampaignId = '{nurture}' AND Label = 'Queued'")
        sf.CampaignMemberStatus.delete(queued["records"][0]["Id"])
        posted = requests.post(f"{serve.base}/events", json={**signup, "person": "bob@example.com"}, headers=AUTH,
                               timeout=10)  # fmt: skip
        assert posted.status_code == 202, posted.text
        wait_until(lambda: outcomes(db).get("failed") == 1, 30, 0.05, "bob's add to be refused")
        assert mirror(db, "bob@example.com") is None  # the refusal put the mirror back

        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1300, "height": 900})
            page.goto(serve.base + "/console/salesforce")
            page.fill("#secret", TOKEN)
            page.click("form.signin button[type=submit]")
            page.wait_for_url(serve.base + "/console/salesforce")
            org_text = page.locator("#org").inner_text()
            assert org.instance_url in org_text and "Salesforce reachable" in org_text
            usage = page.locator("#usage")
            meter = usage.locator("svg.meter")
            assert meter.count() == 1 and re.search(r"\d+ of 100,000", meter.text_content() or "")
            endpoints = usage.locator("svg.chart:not(.meter)")
            assert "POST composite/sobjects" in (endpoints.text_content() or "")
            assert int(endpoints.get_attribute("data-points") or 0) >= 2
            refused = page.locator("#refused tbody tr")
            assert refused.count() == 1
            row = refused.first.inner_text()
            assert (
                "Add to SFDC Campaign" in row
                and "bob@example.com" in row
                and "Nurture" in row
                and "INVALID_STATUS" in row
            )
            assert 'status "Queued" is not a member status' in row
            page.screenshot(path=str(shots / "salesforce.png"), full_page=True)

            # the admin puts the status back; Retry queues the action again and the flusher sends it
            make_status = {"CampaignId": nurture, "Label": "Queued", "SortOrder": 30, "IsDefault": False}
            sf.CampaignMemberStatus.create(make_status)
            refused.first.locator("button", has_text="Retry").click()
            page.wait_for_selector("#message")
            assert "is queued again" in page.locator("#message").inner_text()
            wait_until(lambda: outcomes(db) == {"done": 2}, 30, 0.05, "the retried add to be sent")
            members = sf.query(f"SELECT Status FROM CampaignMember WHERE CampaignId = '{nurture}'")["records"]
            assert sorted(m["Status"] for m in members) == ["Queued", "Queued"]
            assert mirror(db, "bob@example.com") == "Queued"  # and the retry put the membership back in the mirror
            page.reload()
            assert "Salesforce refused nothing." in page.locator("#refused").inner_text()
            # the same retry again (a resubmitted form) changes nothing
            again = requests.post(f"{serve.base}/console/salesforce/retry", data={"id": "2"}, headers=AUTH, timeout=10)
            assert again.status_code == 200 and "cannot be retried" in again.text
            assert outcomes(db) == {"done": 2}
    finally:
        serve.close()
    assert "Traceback" not in serve.output()
