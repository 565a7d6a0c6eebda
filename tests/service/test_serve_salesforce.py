"""`smartcampaign serve --crm salesforce` as a real process against the HTTPS emulator: webhook events delivered
twice take effect once; `kill -9` of the whole service mid-batch, three times, followed by a restart, loses
nothing, doubles nothing and never makes a second Lead for one email (counted in the emulator afterwards)."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from service_helpers import Proc, free_port, query, wait_until
from test_outbox_flush import leads, sent
from test_salesforce import emulator, env, make_campaign, members, org  # noqa: F401

from engine.emulator.testing import RunningEmulator

TOKEN = "sf-serve-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RULES = """
campaign "Welcome" {
    trigger added to sfdc campaign "Signups"
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
    }
}

program "Summit" {
    channel "Event"
}

campaign "Summit Registration" {
    trigger status changed in program "Summit" to "Registered"
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
    }
}
"""


def delivered(url: str) -> int:
    """Webhook events processed (the poller's own observations of what the engine wrote are not counted)."""
    return int(query(url, "SELECT COUNT(*) FROM service_inbox WHERE source = 'api' AND processed_at IS NOT NULL")[0][0])


def serve(url: str, org: RunningEmulator, log: Path, *extra: str) -> tuple[Proc, str]:
    rules = log.parent / "rules.campaign"
    rules.write_text(RULES)
    port = free_port()
    args = ["serve", "--rules", str(rules), "--db", url, "--port", str(port), "--token", TOKEN, "--crm", "salesforce",
            "--poll-interval", "3600", *extra]  # fmt: skip
    proc = Proc(args, log, env(org))
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.alive(), proc.output()
        try:
            return requests.get(f"{base}/readyz", headers=AUTH, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(up, 30, 0.1, "the service to be ready")
    # the first sync (the catalog, what Salesforce holds) is done before events are taken into account
    wait_until(lambda: query(url, "SELECT COUNT(*) FROM service_cursors WHERE name LIKE 'salesforce.%%'")[0][0] >= 1,
               30, 0.05, "the initial load")  # fmt: skip
    return proc, base


def post(base: str, events: list[dict[str, Any]], chunk: int = 50) -> tuple[int, int]:
    """Delivers events as a webhook sender would; returns (accepted, duplicates) as the service answered."""
    accepted = duplicates = 0
    with requests.Session() as session:
        for start in range(0, len(events), chunk):
            answer = session.post(f"{base}/events", json=events[start : start + chunk], headers=AUTH, timeout=30)
            assert answer.status_code == 202, answer.text
            accepted += int(answer.json()["accepted"])
            duplicates += int(answer.json()["duplicates"])
    return accepted, duplicates


def signup(email: str) -> dict[str, Any]:
    return {"type": "added_to_sfdc_campaign", "person": email, "campaign": "Signups", "status": "Signed Up",
            "id": f"signup:{email}"}  # fmt: skip


def registration(email: str) -> dict[str, Any]:
    return {"type": "program_status_changed", "person": email, "program": "Summit", "status": "Registered",
            "id": f"summit:{email}"}  # fmt: skip


def assert_once_each(sf: Any, nurture: str, emails: list[str]) -> None:
    """Every person exactly one Lead and exactly one Nurture membership, none deleted, in Salesforce."""
    counted = Counter(str(r["Email"]).lower() for r in sf.query_all("SELECT Email FROM Lead")["records"])
    assert {e: counted[e] for e in emails} == dict.fromkeys(emails, 1), "a Lead missing or made twice"
    rows = members(sf, nurture)
    assert len(rows) == len(emails), f"{len(rows)} Nurture memberships for {len(emails)} people"
    assert not any(row["IsDeleted"] for row in rows)
    assert len({row["LeadId"] for row in rows}) == len(rows)
    assert {row["Status"] for row in rows} == {"Queued"}


def test_duplicate_webhook_delivery_acts_once(org: RunningEmulator, pg_url: str, tmp_path: Path) -> None:
    sf = org.client()
    nurture = make_campaign(sf, "Nurture", ["Queued", "Active"])
    make_campaign(sf, "Signups", ["Signed Up"])
    emails = [f"dup{n:03d}@example.com" for n in range(120)]
    leads(sf, emails)
    events = [signup(e) for e in emails]
    proc, base = serve(pg_url, org, tmp_path / "serve.log")
    try:
        assert post(base, events) == (120, 0)
        assert post(base, events) == (0, 120)  # redelivered while the first delivery is being worked
        wait_until(lambda: sent(pg_url) == 120, 60, 0.05, "the outbox to drain")
        assert post(base, events[:30], chunk=7) == (0, 30)  # redelivered after it took effect
        time.sleep(0.5)
        assert proc.terminate() == 0, proc.output()
    finally:
        proc.close()
    assert query(pg_url, "SELECT COUNT(*) FROM service_inbox WHERE source = 'api'")[0][0] == 120
    assert dict(query(pg_url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome")) == {"done": 120}
    assert_once_each(sf, nurture, emails)


def test_kill_9_of_serve_mid_batch_then_restart(org: RunningEmulator, pg_url: str, tmp_path: Path) -> None:
    sf = org.client()
    nurture = make_campaign(sf, "Nurture", ["Queued", "Active"])
    make_campaign(sf, "Signups", ["Signed Up"])
    old = [f"old{n:03d}@example.com" for n in range(150)]  # Leads already: a sign-up adds them to Nurture
    new = [f"new{n:03d}@example.com" for n in range(150)]  # not in Salesforce: a Lead is made, then the add
    leads(sf, old)
    events = [item for pair in zip((signup(e) for e in old), (registration(e) for e in new), strict=True)
              for item in pair]  # fmt: skip
    total_ops = len(old) + 2 * len(new)
    org.set_faults(latency_ms=20, endpoints=["composite"])  # writes in flight long enough to be cut off
    rng = random.Random(7)
    options = ("--batch-size", "25", "--outbox-batch", "40")
    for attempt in range(3):
        proc, base = serve(pg_url, org, tmp_path / f"serve{attempt}.log", *options)
        try:
            post(base, events)  # the sender delivers again what it has no acknowledgement of: all of it
            goal = (attempt + 1) * total_ops // 4
            wait_until(lambda g=goal: sent(pg_url) >= g, 60, 0.005, "sending")
            time.sleep(rng.uniform(0.0, 0.03))
            proc.kill9()
        finally:
            proc.close()
    assert sent(pg_url) < total_ops, "the last kill came after everything was done: nothing was tested"
    proc, base = serve(pg_url, org, tmp_path / "final.log", *options)
    try:
        post(base, events)
        wait_until(lambda: delivered(pg_url) == len(events) and sent(pg_url) == total_ops, 90, 0.1, "the drain")
        assert proc.terminate() == 0, proc.output()
    finally:
        proc.close()
    org.clear_faults()
    stored = query(pg_url, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM service_inbox WHERE source = 'api'")[0]
    assert stored == (len(events), len(events))  # each delivered four times, stored once
    assert dict(query(pg_url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome")) == {"done": total_ops}
    assert_once_each(sf, nurture, old + new)
    assert query(pg_url, "SELECT COUNT(*) FROM persons WHERE sfdc_id LIKE '~%%'")[0][0] == 0
