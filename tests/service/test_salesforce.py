"""The service with Salesforce (the HTTPS emulator): the outbox delivers every action exactly once even when
the worker is killed with SIGKILL while it sends; the poller turns Salesforce changes into events."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import RULES, processed, put, query, wait_until, worker
from simple_salesforce.api import Salesforce

from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.model.settings import SalesforceSettings
from engine.service.poller import Poller, sync_catalog
from engine.service.rules import RuleBook
from engine.service.schema import prepare_database
from engine.service.worker import Worker
from engine.store.store import Store


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with RunningEmulator(tmp_path_factory.mktemp("sf")) as running:
        yield running


@pytest.fixture
def org(emulator: RunningEmulator) -> RunningEmulator:
    emulator.reset()
    return emulator


def settings(org: RunningEmulator) -> SalesforceSettings:
    return SalesforceSettings(instance_url=org.instance_url, session_id=org.token, ca_file=org.ca_file)  # type: ignore[arg-type]


def env(org: RunningEmulator) -> dict[str, str]:
    return {
        "SMARTCAMPAIGN_SFDC_INSTANCE_URL": org.instance_url,
        "SMARTCAMPAIGN_SFDC_SESSION_ID": org.token,
        "SMARTCAMPAIGN_SFDC_CA_FILE": org.ca_file,
    }


def make_campaign(sf: Salesforce, name: str, statuses: list[str]) -> str:
    campaign_id = str(sf.Campaign.create({"Name": name})["id"])
    for position, label in enumerate(s for s in statuses if s != "Sent"):
        sf.CampaignMemberStatus.create(
            {"CampaignId": campaign_id, "Label": label, "SortOrder": 10 + position, "IsDefault": position == 0}
        )
    return campaign_id


def prepare(org: RunningEmulator, url: str) -> None:
    prepare_database(url)
    store = Store.open(url)
    try:
        sync_catalog(store, SalesforceAdapter(settings(org)))
        store.commit()
    finally:
        store.close()


def members(sf: Salesforce, campaign_id: str) -> list[dict[str, Any]]:
    soql = f"SELECT Id, LeadId, Status, IsDeleted FROM CampaignMember WHERE CampaignId = '{campaign_id}'"
    return list(sf.query_all(soql, include_deleted=True)["records"])


def test_kill_9_while_sending_loses_and_duplicates_no_action(org: RunningEmulator, pg_url: str, tmp_path: Path) -> None:
    sf = org.client()
    nurture = make_campaign(sf, "Nurture", ["Queued", "Active"])
    make_campaign(sf, "Signups", ["Signed Up"])
    old = [f"old{n:03d}@example.com" for n in range(60)]
    for email in old:
        sf.Lead.create({"LastName": "Old", "Company": "Acme", "Email": email})
    new = [f"new{n:03d}@example.com" for n in range(120)]
    prepare(org, pg_url)
    events: list[dict[str, Any]] = []
    for n, email in enumerate(new):
        events.append({"type": "program_status_changed", "person": email, "program": "Summit", "status": "Registered"})
        if n < len(old):
            events.append({"type": "added_to_sfdc_campaign", "person": old[n], "campaign": "Signups",
                           "status": "Signed Up"})  # fmt: skip
    put(pg_url, events)
    total_ops = 2 * len(new) + len(old)  # a Lead and a membership for each new person, a membership for the old
    org.set_faults(latency_ms=15)

    def sent() -> int:
        return int(query(pg_url, "SELECT COUNT(*) FROM service_outbox WHERE sent_at IS NOT NULL")[0][0])

    options = ("--crm", "salesforce", "--batch-size", "10", "--outbox-batch", "8")
    rng = random.Random(11)
    for attempt in range(3):
        proc = worker(pg_url, tmp_path / f"w{attempt}.log", *options, env=env(org), name=f"w{attempt}")
        try:
            goal = (attempt + 1) * total_ops // 5
            wait_until(lambda g=goal: sent() >= g, 60, 0.01, "sending")
            time.sleep(rng.uniform(0.0, 0.03))
            proc.kill9()
        finally:
            proc.close()
    assert sent() < total_ops
    final = worker(pg_url, tmp_path / "final.log", *options, env=env(org), name="final")
    try:
        wait_until(lambda: processed(pg_url) == len(events) and sent() == total_ops, 90, 0.1, "the outbox to drain")
        assert final.terminate() == 0
    finally:
        final.close()
    org.clear_faults()
    leads = Counter(str(r["Email"]).lower() for r in sf.query_all("SELECT Email FROM Lead")["records"])
    assert {email: leads[email] for email in new + old} == dict.fromkeys(new + old, 1)
    rows = members(sf, nurture)
    assert len(rows) == len(new) + len(old)  # none lost, none twice (deleted ones included)
    assert not any(row["IsDeleted"] for row in rows)
    assert len({row["LeadId"] for row in rows}) == len(rows)
    assert {row["Status"] for row in rows} == {"Queued"}
    outcomes = dict(query(pg_url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome"))
    assert outcomes == {"done": total_ops}
    # the mirror holds the real Lead ids, no provisional ones
    assert query(pg_url, "SELECT COUNT(*) FROM persons WHERE sfdc_id LIKE '~%%'")[0][0] == 0


def test_poller_feeds_the_inbox_and_actions_reach_salesforce(org: RunningEmulator, pg_url: str) -> None:
    sf = org.client()
    make_campaign(sf, "Nurture", ["Queued", "Active"])
    signups = make_campaign(sf, "Signups", ["Signed Up"])
    before = str(sf.Lead.create({"LastName": "B", "Company": "C", "Email": "before@example.com"})["id"])
    sf.CampaignMember.create({"CampaignId": signups, "LeadId": before, "Status": "Signed Up"})
    prepare(org, pg_url)
    poller = Poller(pg_url, SalesforceAdapter(settings(org)), interval=0.2)
    book = RuleBook([RULES])
    book.load()
    work = Worker(pg_url, book, crm="salesforce", salesforce=settings(org))
    try:
        assert poller.poll_once() == 0  # the baseline: members already there fire nothing
        lead = str(sf.Lead.create({"LastName": "A", "Company": "C", "Email": "ann@example.com"})["id"])
        sf.CampaignMember.create({"CampaignId": signups, "LeadId": lead, "Status": "Signed Up"})
        assert poller.poll_once() >= 1
        assert poller.poll_once() == 0  # seen before: the inbox drops it
        for _ in range(5):
            work.step()
        records = sf.query_all("SELECT LeadId, Status, Campaign.Name FROM CampaignMember")["records"]
        statuses = {r["LeadId"]: r["Status"] for r in records if r["Campaign"]["Name"] == "Nurture"}
        assert statuses == {lead: "Queued"}  # ann went through "Welcome"; the baseline member did not
        assert query(pg_url, "SELECT COUNT(*) FROM runs WHERE campaign = 'Welcome'")[0][0] == 1
    finally:
        work.close()
        poller.close()


def test_a_crash_between_sending_and_marking_sends_again_without_duplicates(
    org: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: the first send reaches Salesforce, then the process "dies" before it marks the rows sent."""
    from engine.service import queue

    sf = org.client()
    nurture = make_campaign(sf, "Nurture", ["Queued", "Active"])
    make_campaign(sf, "Signups", ["Signed Up"])
    sf.Lead.create({"LastName": "Old", "Company": "Acme", "Email": "old@example.com"})
    url = f"sqlite:///{tmp_path / 'store.db'}"
    prepare(org, url)
    put(url, [
        {"type": "program_status_changed", "person": "new@example.com", "program": "Summit", "status": "Registered"},
        {"type": "added_to_sfdc_campaign", "person": "old@example.com", "campaign": "Signups", "status": "Signed Up"},
    ])  # fmt: skip
    book = RuleBook([RULES])
    book.load()
    work = Worker(url, book, crm="salesforce", salesforce=settings(org))
    real_mark = queue.mark_sent

    def die(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed after sending")

    try:
        monkeypatch.setattr(queue, "mark_sent", die)
        with pytest.raises(RuntimeError):
            work.step()
        work._safe_rollback()
        assert len(members(sf, nurture)) == 2  # Salesforce has them, the outbox does not know
        assert query(url, "SELECT COUNT(*) FROM service_outbox WHERE sent_at IS NULL")[0][0] == 3
        monkeypatch.setattr(queue, "mark_sent", real_mark)
        while work.step():
            pass
    finally:
        work.close()
    assert query(url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome") == [("done", 3)]
    assert len(members(sf, nurture)) == 2
    leads = Counter(str(r["Email"]) for r in sf.query_all("SELECT Email FROM Lead")["records"])
    assert leads == {"old@example.com": 1, "new@example.com": 1}
    persons = dict(query(url, "SELECT email, sfdc_id FROM persons"))
    assert persons["new@example.com"].startswith("00Q")  # the real id, found again by email


def test_poller_turns_status_changes_and_deletions_into_inbox_events(org: RunningEmulator, pg_url: str) -> None:
    """The service's poller is the sync poller with a sink: one inbox event per change, with a stable id."""
    sf = org.client()
    signups = make_campaign(sf, "Signups", ["Signed Up", "Attended"])
    lead = str(sf.Lead.create({"LastName": "A", "Company": "C", "Email": "ann@example.com"})["id"])
    prepare(org, pg_url)
    poller = Poller(pg_url, SalesforceAdapter(settings(org)), interval=0.2)
    book = RuleBook([RULES])
    book.load()
    work = Worker(pg_url, book, crm="salesforce", salesforce=settings(org))
    try:
        assert poller.poll_once() == 0  # the initial load: nothing there yet
        member = str(sf.CampaignMember.create({"CampaignId": signups, "LeadId": lead, "Status": "Signed Up"})["id"])
        assert poller.poll_once() == 1
        sf.CampaignMember.update(member, {"Status": "Attended"})
        assert poller.poll_once() == 1
        sf.CampaignMember.delete(member)
        org.advance_clock(61)  # getDeleted covers up to the server's last whole minute
        assert poller.poll_once() == 1
        assert poller.poll_once() == 0  # read again in the overlap window: already observed
        rows = query(pg_url, "SELECT event, person_sfdc_id, source FROM service_inbox ORDER BY id")
        events = [json.loads(event) for event, _, _ in rows]
        assert [(e["type"], e.get("status")) for e in events] == [
            ("added_to_sfdc_campaign", "Signed Up"),
            ("status_changed_in_sfdc_campaign", "Attended"),
            ("removed_from_sfdc_campaign", None),
        ]
        assert {(e["person"], e["campaign_id"]) for e in events} == {("ann@example.com", signups)}
        assert all(e["id"].startswith(f"sf:{member}:") and e.get("at") for e in events)
        assert ":deleted:" in events[2]["id"]
        assert {(sfdc_id, source) for _, sfdc_id, source in rows} == {(lead, "poller")}
        # the worker applies them: the mirror follows Salesforce
        for _ in range(5):
            work.step()
        assert processed(pg_url) == 3
        sql = "SELECT COUNT(*) FROM memberships m JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = 'Signups'"
        assert query(pg_url, sql)[0][0] == 0
    finally:
        work.close()
        poller.close()
