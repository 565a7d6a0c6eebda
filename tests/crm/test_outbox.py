"""BatchingCrm (engine/crm/outbox.py) in front of the Salesforce adapter, driven by the interpreter.

The engine path end to end: observations -> Interpreter -> BatchingCrm (answers at once, mirror written) ->
flush() -> SalesforceAdapter -> the HTTPS emulator. Refused operations are undone in the mirror and reported,
Leads made in a batch replace their placeholder ids, and an unavailable Salesforce (quota, 5xx, expired
session) keeps the queue for the next flush. The exactly-once test runs 1,000 flow actions with faults
injected on 20% of the calls and counts the emulator's records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.crm.outbox import PLACEHOLDER, BatchingCrm, FlushReport, Queued
from engine.crm.salesforce import SalesforceAdapter
from engine.language.loader import load_rule_set
from engine.runtime import adapter as p
from engine.runtime.interpreter import Interpreter
from engine.store.store import Person, Store
from engine.sync.programs import program_sync

WEBINAR_TO_NURTURE = """
campaign "Webinar to Nurture" {
    trigger added to sfdc campaign "Webinar"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
    }
}

campaign "Attendees respond" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    flow {
        change status in sfdc campaign "Nurture" to "Attended"
    }
}

campaign "Cancelled leave" {
    trigger removed from sfdc campaign "Webinar"
    flow {
        remove from sfdc campaign "Nurture"
    }
}
"""

ADD_THEN_ATTEND = """
campaign "Walk-ins" {
    trigger added to sfdc campaign "Webinar"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        change status in sfdc campaign "Nurture" to "Attended"
    }
}
"""

STATUSES = ("Sent", "Responded", "Attended")  # what the seeded Salesforce campaigns have, in order


class Engine:
    """A store mirroring two Salesforce campaigns, an interpreter, and BatchingCrm over the adapter."""

    def __init__(self, tmp_path: Path, seed: Any, adapter: SalesforceAdapter, rules: str) -> None:
        folder = tmp_path / "rules"
        folder.mkdir(exist_ok=True)
        (folder / "rules.campaign").write_text(rules, encoding="utf-8")
        loaded = load_rule_set([folder], use_cache=False)
        assert loaded.ok, loaded.errors
        self.seed = seed
        self.adapter = adapter
        self.store = Store.open()
        self.sfdc_ids: dict[str, str] = {}
        for name in ("Webinar", "Nurture"):
            self.sfdc_ids[name] = seed.campaign(name, ["Attended"])
            self.store.add_campaign(name, self.sfdc_ids[name], list(STATUSES))
        self.failures: list[tuple[Queued, p.OperationResult]] = []
        self.crm = BatchingCrm(
            adapter, self.store, on_failure=lambda item, result: self.failures.append((item, result))
        )
        self.interpreter = Interpreter(loaded.rule_set, self.store, self.crm, program_sync=program_sync())
        self.at = 1_790_000_000.0

    def close(self) -> None:
        self.store.close()

    def person(self, email: str, sfdc_id: str | None = None) -> Person:
        return self.store.add_person(email, sfdc_id, "Lead" if sfdc_id else None)

    def observe(self, email: str, campaign: str, status: str | None) -> None:
        person = self.store.person(email)
        info = self.store.campaign_by_name(campaign)
        assert person is not None and info is not None
        self.at += 1
        self.interpreter.set_clock(self.at)
        self.interpreter.observe_membership(person, info, status, self.at)
        self.interpreter.drain()

    def mirror_status(self, email: str, campaign: str = "Nurture") -> str | None:
        person = self.store.person(email)
        info = self.store.campaign_by_name(campaign)
        assert person is not None and info is not None
        return self.store.memberships(person.id).get(info.id)

    def sfdc_id(self, email: str) -> str | None:
        person = self.store.person(email)
        assert person is not None
        return person.sfdc_id

    def salesforce_status(self, email: str, campaign: str = "Nurture") -> str | None:
        sfdc_id = self.sfdc_id(email)
        assert sfdc_id is not None
        return self.seed.member_status(self.sfdc_ids[campaign], sfdc_id)

    def nurture_members(self) -> int:
        return self.seed.count("SELECT COUNT() FROM CampaignMember WHERE CampaignId = {c}", c=self.sfdc_ids["Nurture"])

    def flush_until_sent(self, attempts: int = 10) -> list[FlushReport]:
        reports = []
        for _ in range(attempts):
            reports.append(self.crm.flush())
            if not self.crm.pending:
                return reports
        raise AssertionError(f"still {self.crm.pending} queued after {attempts} flushes")


@pytest.fixture
def make_engine(tmp_path: Path, seed: Any, make_adapter: Callable[..., SalesforceAdapter]):
    engines: list[Engine] = []

    def make(rules: str = WEBINAR_TO_NURTURE, adapter: SalesforceAdapter | None = None, **settings: Any) -> Engine:
        engine = Engine(tmp_path, seed, adapter or make_adapter(**settings), rules)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


# ============================================================================================== basics


def test_actions_are_answered_at_once_and_sent_on_flush(org, seed, make_engine):
    engine = make_engine()
    emails = [f"p{i}@example.com" for i in range(3)]
    for email, lead in zip(emails, seed.leads(emails), strict=True):
        engine.person(email, lead)
    for email in emails:
        engine.observe(email, "Webinar", "Sent")
    assert engine.crm.pending == 3
    assert all(isinstance(item.op, p.AddMember) for item in engine.crm.queue)
    assert [engine.mirror_status(email) for email in emails] == ["Sent"] * 3  # answered from the mirror
    assert engine.adapter.calls == 0 and engine.nurture_members() == 0  # nothing sent yet
    report = engine.crm.flush()
    assert (report.sent, report.failed, report.deferred, report.calls) == (3, 0, 0, 2)
    assert engine.crm.pending == 0
    assert [engine.salesforce_status(email) for email in emails] == ["Sent"] * 3
    assert engine.crm.flush() == FlushReport()  # nothing left: no call


def test_placeholder_ids_replaced_by_real_lead_ids(org, seed, make_engine):
    engine = make_engine()
    engine.person("new@example.com")  # not in Salesforce
    engine.observe("new@example.com", "Webinar", "Sent")
    placeholder = engine.sfdc_id("new@example.com")
    assert placeholder is not None and placeholder.startswith(PLACEHOLDER)
    assert [type(item.op) for item in engine.crm.queue] == [p.CreateLead, p.AddMember]
    assert engine.crm.queue[1].op.person_sfdc_id == "pending:new@example.com"  # type: ignore[union-attr]

    report = engine.crm.flush()
    assert (report.sent, report.failed) == (2, 0)
    [lead] = seed.query("SELECT Id, LastName, Company FROM Lead WHERE Email = 'new@example.com'")
    assert (lead["LastName"], lead["Company"]) == (p.NOT_PROVIDED, p.NOT_PROVIDED)
    person = engine.store.person("new@example.com")
    assert person is not None and (person.sfdc_id, person.sfdc_type) == (lead["Id"], "Lead")
    assert engine.store.person_by_sfdc_id(lead["Id"]) == person
    assert engine.salesforce_status("new@example.com") == "Sent"

    # the next action uses the real id: no second Lead
    engine.observe("new@example.com", "Webinar", "Attended")
    assert [item.op for item in engine.crm.queue] == [
        p.UpdateMemberStatus(lead["Id"], engine.sfdc_ids["Nurture"], "Attended")
    ]
    assert engine.crm.flush().failed == 0
    assert engine.salesforce_status("new@example.com") == "Attended"
    assert seed.count("SELECT COUNT() FROM Lead") == 1


def test_add_change_remove_through_the_engine(org, seed, make_engine):
    engine = make_engine()
    emails = ["ann@example.com", "bob@example.com"]
    for email, lead in zip(emails, seed.leads(emails), strict=True):
        engine.person(email, lead)
    for email in emails:
        engine.observe(email, "Webinar", "Sent")
    engine.observe("ann@example.com", "Webinar", "Attended")
    engine.observe("bob@example.com", "Webinar", None)  # cancelled: added and removed in one batch
    report = engine.crm.flush()
    assert (report.sent, report.failed) == (4, 0)
    assert engine.salesforce_status("ann@example.com") == "Attended" == engine.mirror_status("ann@example.com")
    assert engine.salesforce_status("bob@example.com") is None is engine.mirror_status("bob@example.com")


# ============================================================================================= refusals


def test_refused_add_is_undone_in_the_mirror_and_reported(org, sf, seed, make_engine):
    engine = make_engine()
    ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
    engine.person("ann@example.com", ann)
    engine.person("bob@example.com", bob)
    engine.observe("ann@example.com", "Webinar", "Sent")
    assert engine.mirror_status("ann@example.com") == "Sent"
    sf.Campaign.delete(engine.sfdc_ids["Nurture"])  # deleted in Salesforce meanwhile
    report = engine.crm.flush()
    assert (report.sent, report.failed) == (1, 1)
    [(op, result)] = report.failures
    assert isinstance(op, p.AddMember) and result.code == p.UNKNOWN_CAMPAIGN
    assert engine.mirror_status("ann@example.com") is None  # put back: not a member
    [(item, reported)] = engine.failures
    person = engine.store.person("ann@example.com")
    nurture = engine.store.campaign_by_name("Nurture")
    assert person is not None and nurture is not None
    assert (item.op, item.person_id, item.campaign_id, item.previous) == (op, person.id, nurture.id, None)
    assert reported == result
    assert engine.mirror_status("bob@example.com") is None


def test_refused_status_change_restores_the_previous_status(org, seed, make_engine):
    engine = make_engine()
    [ann] = seed.leads(["ann@example.com"])
    engine.person("ann@example.com", ann)
    engine.observe("ann@example.com", "Webinar", "Sent")
    assert engine.crm.flush().failed == 0
    [attended] = seed.query(
        "SELECT Id FROM CampaignMemberStatus WHERE CampaignId = {c} AND Label = 'Attended'",
        c=engine.sfdc_ids["Nurture"],
    )
    # the status is deleted in Salesforce (the adapter has not read this campaign's statuses since it
    # was made: a new adapter); the mirror still has it
    engine.crm.adapter = SalesforceAdapter(engine.adapter.settings)
    engine.seed.sf.CampaignMemberStatus.delete(attended["Id"])
    engine.observe("ann@example.com", "Webinar", "Attended")
    assert engine.mirror_status("ann@example.com") == "Attended"
    report = engine.crm.flush()
    assert [result.code for _, result in report.failures] == [p.INVALID_STATUS]
    assert engine.mirror_status("ann@example.com") == "Sent"  # as before the action
    assert engine.salesforce_status("ann@example.com") == "Sent"  # not replaced by the default either
    assert [item.previous for item, _ in engine.failures] == ["Sent"]


def test_already_a_member_in_salesforce_is_not_a_failure(org, seed, make_engine):
    engine = make_engine()
    [ann] = seed.leads(["ann@example.com"])
    engine.person("ann@example.com", ann)
    seed.members(engine.sfdc_ids["Nurture"], [ann], "Responded")  # the mirror does not know yet
    engine.observe("ann@example.com", "Webinar", "Sent")
    report = engine.crm.flush()
    assert (report.sent, report.failed, engine.failures) == (1, 0, [])
    assert engine.mirror_status("ann@example.com") == "Sent"
    assert engine.salesforce_status("ann@example.com") == "Responded"


def test_lead_that_cannot_be_made(org, seed, make_engine):
    engine = make_engine()
    engine.person("no-at-sign.example.com")  # Salesforce refuses the email
    engine.observe("no-at-sign.example.com", "Webinar", "Sent")
    report = engine.crm.flush()
    codes = [(type(op).__name__, result.code) for op, result in report.failures]
    assert codes == [("CreateLead", "INVALID_EMAIL_ADDRESS"), ("AddMember", p.UNKNOWN_PERSON)]
    person = engine.store.person("no-at-sign.example.com")
    assert person is not None and person.sfdc_id is None  # the placeholder is gone
    assert engine.mirror_status("no-at-sign.example.com") is None
    assert [type(item.op) for item, _ in engine.failures] == [p.AddMember]
    assert seed.count("SELECT COUNT() FROM Lead") == 0


def test_refused_add_and_change_of_one_member_leave_no_member(org, sf, seed, make_engine):
    engine = make_engine(ADD_THEN_ATTEND)
    [ann] = seed.leads(["ann@example.com"])
    engine.person("ann@example.com", ann)
    engine.observe("ann@example.com", "Webinar", "Sent")
    assert [type(item.op) for item in engine.crm.queue] == [p.AddMember, p.UpdateMemberStatus]
    sf.Campaign.delete(engine.sfdc_ids["Nurture"])
    report = engine.crm.flush()
    assert report.failed == 2
    assert engine.nurture_members() == 0
    assert engine.mirror_status("ann@example.com") is None


# ===================================================================================== Salesforce away


def test_quota_keeps_the_queue_until_the_quota_allows(org, seed, make_engine):
    engine = make_engine()
    emails = [f"p{i}@example.com" for i in range(5)]
    for email, lead in zip(emails, seed.leads(emails), strict=True):
        engine.person(email, lead)
    for email in emails:
        engine.observe(email, "Webinar", "Sent")
    org.set_quota(maximum=100, used=100)
    report = engine.crm.flush()
    assert (report.sent, report.deferred, report.failed) == (0, 5, 0)
    assert engine.crm.pending == 5  # nothing lost
    assert engine.failures == []
    assert [engine.mirror_status(email) for email in emails] == ["Sent"] * 5  # still the optimistic answer
    org.set_quota(maximum=1000)  # the next quota window
    report = engine.crm.flush()
    assert (report.sent, report.deferred, report.failed) == (5, 0, 0)
    assert engine.nurture_members() == 5


def test_quota_spent_mid_batch_nothing_lost_nothing_twice(org, seed, make_engine):
    engine = make_engine()
    old = [f"old{i}@example.com" for i in range(150)]
    new = [f"new{i}@example.com" for i in range(300)]
    for email, lead in zip(old, seed.leads(old), strict=True):
        engine.person(email, lead)
    for email in new:
        engine.person(email)
    for email in old + new:
        engine.observe(email, "Webinar", "Sent")
    assert engine.crm.pending == 150 + 300 * 2
    # six calls go through: the status query, the 150 known persons' POST, the Lead lookups (2) and Lead
    # POSTs (2); then the quota is spent before the new persons' members are sent
    org.set_quota(maximum=6, used=0)
    assert engine.crm.flush().deferred == 750
    assert engine.crm.pending == 750
    assert engine.adapter.usage.remaining == 0
    org.set_quota(maximum=10_000)  # the next quota window
    assert seed.count("SELECT COUNT() FROM Lead") == 450 and engine.nurture_members() == 150
    report = engine.crm.flush()
    assert (report.sent, report.failed) == (750, 0)
    assert seed.count("SELECT COUNT() FROM Lead") == 450  # the Leads were found again, not made twice
    assert engine.nurture_members() == 450
    ids = {engine.sfdc_id(email) for email in old + new}
    assert len(ids) == 450 and all(str(i).startswith("00Q") for i in ids)


def test_salesforce_failing_keeps_the_queue(org, seed, make_engine):
    engine = make_engine(max_retries=2, sleep=lambda _seconds: None)
    engine.person("new@example.com")
    engine.observe("new@example.com", "Webinar", "Sent")
    org.set_faults(error_rate=1.0, error_statuses=[503])
    assert engine.crm.flush().deferred == 2
    org.clear_faults()
    assert engine.crm.flush().failed == 0
    assert engine.salesforce_status("new@example.com") == "Sent"


def test_expired_session_id_keeps_the_queue(org, seed, make_engine):
    engine = make_engine()
    [ann] = seed.leads(["ann@example.com"])
    engine.person("ann@example.com", ann)
    engine.observe("ann@example.com", "Webinar", "Sent")
    org.set_faults(expire_sessions=True)
    assert engine.crm.flush().deferred == 1
    org.clear_faults()  # the token works again (a new one would be configured in real life)
    assert engine.crm.flush().sent == 1
    assert engine.salesforce_status("ann@example.com") == "Sent"


# ========================================================================================= exactly once


@pytest.mark.parametrize(
    ("max_retries", "lock_rate", "fault_seed", "deferrals"),
    [
        pytest.param(6, 0.05, 2026, False, id="5xx-and-row-locks"),
        # two attempts a call: some flushes give up (deferred) after part of their batch was written, and are
        # sent again whole (the Leads are found again, members already made are DUPLICATE_VALUE)
        pytest.param(2, 0.0, 7, True, id="deferred-batches-sent-again"),
    ],
)
def test_1000_flow_actions_with_faults_are_each_done_exactly_once(
    org, seed, make_engine, max_retries, lock_rate, fault_seed, deferrals
):
    engine = make_engine(max_retries=max_retries)
    known = [f"known{i:03d}@example.com" for i in range(500)]  # Leads already
    unknown = [f"new{i:03d}@example.com" for i in range(500)]  # made as Leads by the flow
    for email, lead in zip(known, seed.leads(known), strict=True):
        engine.person(email, lead)
    for email in unknown:
        engine.person(email)
    everyone = [email for pair in zip(known, unknown, strict=True) for email in pair]

    org.set_faults(error_rate=0.2, error_statuses=[500, 503], lock_rate=lock_rate, seed=fault_seed)
    reports: list[FlushReport] = []
    for number, email in enumerate(everyone, start=1):
        engine.observe(email, "Webinar", "Sent")  # one flow action: add to Nurture
        if number % 200 == 0:
            reports.append(engine.crm.flush())
    reports += engine.flush_until_sent()
    faults = org.stats()["faults"]["injected"]
    org.clear_faults()

    assert faults["errors"] > 0 and (faults["locks"] > 0) == (lock_rate > 0)  # the run did meet failures
    assert any(r.deferred for r in reports) == deferrals
    assert sum(r.failed for r in reports) == 0 and engine.failures == []
    assert sum(r.sent for r in reports) == 1000 + 500  # every add, and a Lead for each new person
    # Salesforce: 1,000 members, 1,000 Leads (500 of them made now), one per email
    assert engine.nurture_members() == 1000
    leads = seed.query("SELECT Id, Email FROM Lead")
    assert len(leads) == 1000 and len({row["Email"] for row in leads}) == 1000
    lead_of = {row["Email"]: row["Id"] for row in leads}
    members = seed.query(
        "SELECT LeadId, Status FROM CampaignMember WHERE CampaignId = {c}", c=engine.sfdc_ids["Nurture"]
    )
    assert sorted(row["LeadId"] for row in members) == sorted(lead_of.values())
    assert {row["Status"] for row in members} == {"Sent"}
    # the mirror agrees
    assert all(engine.sfdc_id(email) == lead_of[email] for email in everyone)
    nurture = engine.store.campaign_by_name("Nurture")
    assert nurture is not None and engine.store.member_count(nurture.id) == 1000


def test_a_lock_outlasting_the_retries_keeps_the_action_queued(org, seed, make_engine):
    engine = make_engine(max_retries=2, sleep=lambda _seconds: None)
    [ann] = seed.leads(["ann@example.com"])
    engine.person("ann@example.com", ann)
    engine.observe("ann@example.com", "Webinar", "Sent")
    org.set_faults(lock_rate=1.0, lock_limit=2)  # both attempts of the member POST meet a locked row
    first = engine.crm.flush()
    org.clear_faults()
    engine.flush_until_sent()
    assert first.failed == 0 and engine.failures == []
    assert engine.salesforce_status("ann@example.com") == "Sent" == engine.mirror_status("ann@example.com")
