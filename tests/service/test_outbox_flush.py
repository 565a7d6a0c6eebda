"""The outbox flush as its own loop, against the HTTPS emulator with its fault injection: a slow Salesforce
deepens the outbox without stopping the interpreter; 5xx and a spent quota keep the work queued; a record
Salesforce refuses is an outcome of its own; a batch's people are looked up in chunked queries; what an
operator reads (`smartcampaign status`, /metrics names) counts the calls by endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

from click.testing import CliRunner
from service_helpers import RULES, processed, put, query, wait_until
from test_salesforce import emulator, make_campaign, members, org, prepare, settings  # noqa: F401

from engine.cli.service import status_command
from engine.emulator.testing import RunningEmulator
from engine.service.flusher import FlushOptions
from engine.service.metrics import ServiceMetrics
from engine.service.rules import RuleBook
from engine.service.worker import Worker, WorkerOptions


def signups(emails: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "added_to_sfdc_campaign", "person": e, "campaign": "Signups", "status": "Signed Up"} for e in emails
    ]


def leads(sf: Any, emails: list[str]) -> None:
    for start in range(0, len(emails), 200):
        records = [{"attributes": {"type": "Lead"}, "LastName": "L", "Company": "C", "Email": e}
                   for e in emails[start : start + 200]]  # fmt: skip
        sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": records})


def signup_org(org: RunningEmulator, url: str, emails: list[str]) -> tuple[Any, str]:
    """The emulator with "Nurture" and "Signups", `emails` as Leads, and a store that knows its catalog; returns
    the client and Nurture's id."""
    sf = org.client()
    nurture = make_campaign(sf, "Nurture", ["Queued", "Active"])
    make_campaign(sf, "Signups", ["Signed Up"])
    leads(sf, emails)
    prepare(org, url)
    return sf, nurture


def sent(url: str) -> int:
    return int(query(url, "SELECT COUNT(*) FROM service_outbox WHERE sent_at IS NOT NULL")[0][0])


class Running:
    """A worker with its flusher loop in a thread, as `serve` runs it."""

    def __init__(self, url: str, org: RunningEmulator, **flush: Any) -> None:
        book = RuleBook([RULES])
        book.load()
        self.metrics = ServiceMetrics()
        options = WorkerOptions(flush=FlushOptions(**flush))
        self.worker = Worker(
            url, book, crm="salesforce", salesforce=settings(org), metrics=self.metrics, options=options
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)
        self.worker.close()


def test_slow_writes_deepen_the_outbox_and_never_stop_the_interpreter(org: RunningEmulator, pg_url: str) -> None:
    emails = [f"slow{n:04d}@example.com" for n in range(600)]
    sf, nurture = signup_org(org, pg_url, emails)
    org.set_faults(latency_ms=1500, endpoints=["composite"])
    before = org.stats()["calls"]
    put(pg_url, signups(emails))
    with Running(pg_url, org):
        # every event is interpreted while the first slow write is still in flight
        wait_until(lambda: processed(pg_url) == len(emails), 30, 0.05, "the inbox to drain")
        assert sent(pg_url) < len(emails)
        wait_until(lambda: sent(pg_url) == len(emails), 60, 0.1, "the outbox to drain")
    org.clear_faults()
    rows = members(sf, nurture)
    assert len(rows) == len(emails) and len({r["LeadId"] for r in rows}) == len(emails)
    calls = Counter(org.stats()["calls"]) - Counter(before)
    # 600 adds in collections of 200; people looked up and statuses read per batch, never per event
    assert calls["POST composite/sobjects"] <= 6
    assert calls["GET query"] <= len(emails) // 20


def test_5xx_and_a_spent_quota_keep_the_work_queued(org: RunningEmulator, pg_url: str) -> None:
    emails = [f"flaky{n:03d}@example.com" for n in range(250)]
    sf, nurture = signup_org(org, pg_url, emails)
    put(pg_url, signups(emails[:150]))
    org.set_faults(error_rate=0.6, error_statuses=[500, 503], endpoints=["composite"], seed=5)
    with Running(pg_url, org, max_backoff=0.5):
        wait_until(lambda: sent(pg_url) == 150, 60, 0.1, "delivery through 5xx")
        org.clear_faults()
        usage = org.stats()["api_usage"]
        org.set_quota(maximum=int(usage["used"]), used=int(usage["used"]))  # spent
        put(pg_url, signups(emails[150:]))
        time.sleep(1.5)
        # while the quota is spent the new people cannot be looked up: their events wait, nothing is refused
        assert sent(pg_url) == 150 and processed(pg_url) == 150
        assert query(pg_url, "SELECT COUNT(*) FROM service_outbox WHERE outcome = 'failed'")[0][0] == 0
    org.set_quota(maximum=1_000_000)
    with Running(pg_url, org):
        wait_until(lambda: sent(pg_url) == 250, 60, 0.1, "delivery after the quota window")
    rows = members(sf, nurture)
    assert len(rows) == 250 and len({r["LeadId"] for r in rows}) == 250  # none twice
    assert dict(query(pg_url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome")) == {"done": 250}


def test_429_too_many_requests_is_retried_with_backoff_and_nothing_is_lost(org: RunningEmulator, pg_url: str) -> None:
    emails = [f"busy{n:03d}@example.com" for n in range(220)]
    sf, nurture = signup_org(org, pg_url, emails)
    put(pg_url, signups(emails))
    # the next 5 calls (the lookup, then the writes) are answered 429 "too many requests"
    org.set_faults(error_rate=1.0, error_statuses=[429], error_limit=5)
    with Running(pg_url, org, max_backoff=0.5):
        wait_until(lambda: sent(pg_url) == len(emails), 60, 0.1, "delivery through 429s")
    injected = org.stats()["faults"]["injected"]["errors_by_status"]
    assert injected == {"429": 5}, injected
    rows = members(sf, nurture)
    assert len(rows) == len(emails) and len({r["LeadId"] for r in rows}) == len(emails)  # none lost, none twice
    assert dict(query(pg_url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome")) == {"done": 220}


def test_a_refused_record_is_its_own_outcome_and_status_reports_it(org: RunningEmulator, pg_url: str) -> None:
    emails = [f"mixed{n:03d}@example.com" for n in range(40)]
    sf, nurture = signup_org(org, pg_url, emails)
    put(pg_url, signups(emails))
    # the interpreter answers optimistically; then a Lead is deleted in Salesforce before its add is sent
    gone = sf.query(f"SELECT Id FROM Lead WHERE Email = '{emails[7]}'")["records"][0]["Id"]
    book = RuleBook([RULES])
    book.load()
    worker = Worker(pg_url, book, crm="salesforce", salesforce=settings(org))
    try:
        while worker.step(flush=False):
            pass
        sf.Lead.delete(gone)
        assert worker.send_outbox() == 40
    finally:
        worker.close()
    rows = members(sf, nurture)
    assert len(rows) == 39  # the 39 others went through in the same collection
    outcomes = dict(query(pg_url, "SELECT outcome, COUNT(*) FROM service_outbox GROUP BY outcome"))
    assert outcomes == {"done": 39, "failed": 1}
    result = CliRunner().invoke(status_command, ["--db", pg_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["refused"]["last_5_days"] == 1
    assert report["outbox"]["depth"] == 0 and report["inbox"]["depth"] == 0
    calls = report["salesforce"]["api_calls_today"]
    assert calls["POST composite/sobjects"] >= 1 and calls["GET query"] >= 1
    assert report["salesforce"]["api_limit"] and report["salesforce"]["api_remaining"] is not None
    text = CliRunner().invoke(status_command, ["--db", pg_url])
    assert "POST composite/sobjects" in text.output and "refused by Salesforce, last 5 days: 1" in text.output
