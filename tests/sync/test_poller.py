"""The change poller against the HTTPS emulator: what each cycle reads, observes, stores and leaves for the next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from simple_salesforce.api import Salesforce
from sync_helpers import adapter_for, campaign, collection, contact, lead, member, mirror_members

from engine.crm.salesforce import SalesforceUnavailable
from engine.emulator.testing import RunningEmulator
from engine.language.loader import load_rule_set
from engine.runtime.interpreter import Interpreter
from engine.store.cursors import get_cursor
from engine.store.store import Store
from engine.sync.poller import CURSOR_DELETED, CURSOR_MEMBERS, Poller, PollReport, parse_stamp
from engine.sync.programs import program_sync

DAY = 86_400


def poll(org: RunningEmulator, store: Store, interpreter: Interpreter | None = None, **options: Any) -> PollReport:
    adapter = interpreter.crm if interpreter is not None else adapter_for(org)
    return Poller(adapter, store, interpreter, **options).poll_once()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- first sync
def test_first_sync_mirrors_campaigns_statuses_members_and_persons(
    org: RunningEmulator, sf: Salesforce, store: Store
) -> None:
    webinar = campaign(sf, "Webinar", ("Registered", "Attended"), responded=("Attended",))
    sf.Campaign.update(webinar, {"Type": "Webinar", "ActualCost": 1500})
    ann = lead(sf, "Ann@Example.com")
    bob = contact(sf, "bob@example.com")
    member(sf, webinar, ann, "Registered")
    member(sf, webinar, bob)

    report = poll(org, store)

    assert report.resync and report.resync_reason == "first sync: no cursor yet"
    assert (report.members_seen, report.added, report.persons_created) == (2, 2, 2)
    assert (report.campaigns_added, report.skipped, report.problems) == (1, 0, [])
    info = store.campaign_by_name("Webinar")
    assert info is not None and info.sfdc_id == webinar
    assert info.statuses == ("Sent", "Responded", "Registered", "Attended")
    assert info.default_status == "Sent"
    assert info.responded == frozenset({"Responded", "Attended"})
    assert (info.type, info.actual_cost) == ("Webinar", 1500.0)
    assert mirror_members(store, "Webinar") == {"Ann@Example.com": "Registered", "bob@example.com": "Sent"}
    ann_person = store.person("ann@example.com")
    assert ann_person is not None and (ann_person.sfdc_id, ann_person.sfdc_type) == (ann, "Lead")
    bob_person = store.person("bob@example.com")
    assert bob_person is not None and (bob_person.sfdc_id, bob_person.sfdc_type) == (bob, "Contact")
    # getDeleted (the server's time), Campaign, CampaignMemberStatus, CampaignMember: one call each
    assert report.api_calls == 4
    assert report.cursor_before is None and report.cursor_after is not None


def test_a_person_the_engine_knew_by_email_is_linked_not_duplicated(
    org: RunningEmulator, sf: Salesforce, store: Store
) -> None:
    known = store.add_person("cat@example.com", first_name="Cat")
    store.commit()
    webinar = campaign(sf, "Webinar")
    cat = lead(sf, "cat@example.com")
    member(sf, webinar, cat)

    report = poll(org, store)

    assert (report.added, report.persons_created, report.persons_linked) == (1, 0, 1)
    linked = store.person("cat@example.com")
    assert linked is not None and linked.id == known.id and linked.sfdc_id == cat


# ---------------------------------------------------------------------------------------------- changes
def test_additions_and_status_changes(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar", ("Attended",))
    ann, bob = lead(sf, "ann@example.com"), lead(sf, "bob@example.com")
    ann_member = member(sf, webinar, ann)
    first = poll(org, store)
    assert first.added == 1

    sf.CampaignMember.update(ann_member, {"Status": "Attended"})
    member(sf, webinar, bob, "Responded")
    report = poll(org, store)

    assert not report.resync
    assert (report.added, report.status_changed, report.removed) == (1, 1, 0)
    assert mirror_members(store, "Webinar") == {"ann@example.com": "Attended", "bob@example.com": "Responded"}
    assert report.cursor_before == first.cursor_after
    assert parse_stamp(report.cursor_after or "") >= parse_stamp(first.cursor_after or "")


def test_rows_read_again_in_the_overlap_window_are_skipped(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar")
    member(sf, webinar, lead(sf, "ann@example.com"))
    poll(org, store)

    again = poll(org, store)

    assert again.members_seen == 1  # inside the overlap window: read again...
    assert again.duplicates_skipped == 1  # ...and recognised by (Id, SystemModstamp)
    assert (again.added, again.status_changed, again.unchanged) == (0, 0, 0)

    without_overlap = poll(org, store, overlap_seconds=0)
    assert without_overlap.duplicates_skipped == without_overlap.members_seen


def test_deletions(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar")
    ann_member = member(sf, webinar, lead(sf, "ann@example.com"))
    member(sf, webinar, lead(sf, "bob@example.com"))
    poll(org, store)

    sf.CampaignMember.delete(ann_member)
    org.advance_clock(61)  # getDeleted covers whole minutes up to the server's current one
    report = poll(org, store)

    assert (report.deletions_seen, report.removed, report.resync) == (1, 1, False)
    assert mirror_members(store, "Webinar") == {"bob@example.com": "Sent"}

    again = poll(org, store, overlap_seconds=600)  # a wide overlap: the deletion is read again, and known
    assert (again.deletions_seen, again.deletions_repeated, again.removed) == (1, 1, 0)


def test_deleted_then_added_again_is_a_removal_then_an_addition(
    org: RunningEmulator, sf: Salesforce, store: Store
) -> None:
    webinar = campaign(sf, "Webinar", ("Attended",))
    ann = lead(sf, "ann@example.com")
    first = member(sf, webinar, ann)
    poll(org, store)

    sf.CampaignMember.delete(first)
    org.advance_clock(5)
    member(sf, webinar, ann, "Attended")
    org.advance_clock(61)
    report = poll(org, store)

    assert (report.removed, report.added) == (1, 1)
    assert mirror_members(store, "Webinar") == {"ann@example.com": "Attended"}


def test_a_deleted_member_the_poller_never_saw_is_looked_up(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    """A member a flow added (the mirror has it) and someone deleted before the next cycle read it."""
    webinar = campaign(sf, "Webinar")
    poll(org, store)
    person = store.add_person("dan@example.com", lead(sf, "dan@example.com"), "Lead")
    flow_member = member(sf, webinar, person.sfdc_id or "")
    info = store.campaign_by_sfdc_id(webinar)
    assert info is not None
    store.set_membership(person.id, info.id, "Sent", 0.0)  # what the interpreter writes after a flow action
    store.commit()
    sf.CampaignMember.delete(flow_member)
    org.advance_clock(61)

    report = poll(org, store)

    assert report.removed == 1
    assert mirror_members(store, "Webinar") == {}


def test_missed_deletions_fall_back_to_a_full_resync(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar")
    gone = member(sf, webinar, lead(sf, "ann@example.com"))
    member(sf, webinar, lead(sf, "bob@example.com"))
    before = poll(org, store)

    sf.CampaignMember.delete(gone)
    org.advance_clock(16 * DAY)  # the delete log keeps 15 days: earliestDateAvailable is now after the cursor
    report = poll(org, store)

    assert report.resync
    assert "no longer available" in (report.resync_reason or "")
    assert (report.removed, report.unchanged, report.added) == (1, 1, 0)
    assert mirror_members(store, "Webinar") == {"bob@example.com": "Sent"}
    assert parse_stamp(report.deleted_cursor_after or "") > parse_stamp(before.deleted_cursor_after or "")

    after = poll(org, store)  # back to incremental
    assert not after.resync


def test_a_cursor_too_old_to_ask_about_falls_back_to_a_full_resync(
    org: RunningEmulator, sf: Salesforce, store: Store
) -> None:
    member(sf, campaign(sf, "Webinar"), lead(sf, "ann@example.com"))
    poll(org, store)
    org.advance_clock(31 * DAY)  # getDeleted refuses a start more than 30 days ago

    report = poll(org, store)

    assert report.resync and "INVALID_REPLICATION_DATE" in (report.resync_reason or "")
    assert report.unchanged == 1


def test_paging_past_2000_members(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar")
    leads = collection(
        sf, "Lead", [{"LastName": f"L{n}", "Company": "Acme", "Email": f"p{n:05d}@example.com"} for n in range(2500)]
    )
    collection(sf, "CampaignMember", [{"CampaignId": webinar, "LeadId": lead_id} for lead_id in leads])
    calls_before = org.stats()["calls"]

    report = poll(org, store)

    assert (report.members_seen, report.added, report.persons_created) == (2500, 2500, 2500)
    assert len(mirror_members(store, "Webinar")) == 2500
    calls = org.stats()["calls"]
    assert calls.get("GET query/{locator}", 0) - calls_before.get("GET query/{locator}", 0) == 1  # the 2nd page
    assert report.api_calls == 5

    org.advance_clock(3 * 60)
    again = poll(org, store)  # the overlap before the last cursor is read once more, and recognised
    assert (again.members_seen, again.duplicates_skipped, again.added, again.unchanged) == (2500, 2500, 0, 0)
    quiet = poll(org, store)  # the cursor is now the server's time of the last cycle: nothing to read
    assert (quiet.members_seen, quiet.api_calls) == (0, 4)


# ---------------------------------------------------------------------------------------------- campaigns
def test_campaign_changes_and_new_statuses_are_refreshed(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar")
    poll(org, store)
    org.advance_clock(3 * 60)

    sf.Campaign.update(webinar, {"Name": "Webinar 2026", "Type": "Webinar", "ActualCost": 99.5})
    sf.CampaignMemberStatus.create({"CampaignId": webinar, "Label": "Attended", "SortOrder": 3})
    campaign(sf, "Nurture")
    report = poll(org, store)

    assert (report.campaigns_added, report.campaigns_refreshed, report.statuses_refreshed) == (1, 2, 1)
    info = store.campaign_by_sfdc_id(webinar)
    assert info is not None
    assert (info.name, info.type, info.actual_cost) == ("Webinar 2026", "Webinar", 99.5)
    assert info.statuses == ("Sent", "Responded", "Attended")
    assert store.campaign_by_name("Webinar") is None and store.campaign_by_name("Nurture") is not None


def test_members_that_cannot_be_mirrored_are_reported(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    webinar = campaign(sf, "Webinar")
    member(sf, webinar, lead(sf, None, "NoEmail"))
    member(sf, webinar, lead(sf, "twin@example.com", "First"))
    member(sf, webinar, lead(sf, "twin@example.com", "Second"))

    report = poll(org, store)

    assert (report.added, report.skipped, report.problems_total) == (1, 2, 2)
    assert any("has no email" in problem for problem in report.problems)
    assert any("has the email of" in problem for problem in report.problems)


# ---------------------------------------------------------------------------------------------- durability
def test_the_cursor_moves_only_after_the_observations_are_committed(
    org: RunningEmulator, sf: Salesforce, store: Store, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    webinar = campaign(sf, "Webinar")
    member(sf, webinar, lead(sf, "ann@example.com"))
    first = poll(org, store)
    org.advance_clock(3 * 60)
    member(sf, webinar, lead(sf, "bob@example.com"))

    real_commit = store.commit

    def failing_commit() -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "commit", failing_commit)
    with pytest.raises(RuntimeError, match="disk full"):
        poll(org, store)
    monkeypatch.setattr(store, "commit", real_commit)

    assert get_cursor(store, CURSOR_MEMBERS) == first.cursor_after
    assert get_cursor(store, CURSOR_DELETED) == first.deleted_cursor_after
    other = Store.open(db_url)  # another connection sees what is committed
    try:
        assert get_cursor(other, CURSOR_MEMBERS) == first.cursor_after
    finally:
        other.close()
    assert mirror_members(store, "Webinar") == {"ann@example.com": "Sent"}

    retried = poll(org, store)  # the same window again: nothing was lost
    assert retried.cursor_before == first.cursor_after
    assert retried.added == 1
    assert mirror_members(store, "Webinar") == {"ann@example.com": "Sent", "bob@example.com": "Sent"}


def test_salesforce_failing_commits_nothing(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    member(sf, campaign(sf, "Webinar"), lead(sf, "ann@example.com"))
    org.set_faults(error_rate=1.0, error_statuses=[503])

    with pytest.raises(SalesforceUnavailable):
        poll(org, store)

    org.clear_faults()
    assert get_cursor(store, CURSOR_MEMBERS) is None
    assert store.campaigns() == []


# ---------------------------------------------------------------------------------------------- triggers
RULES = """
campaign "Attendees to Nurture" {
    trigger status changed in sfdc campaign "Webinar" to "Attended"
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
    }
}
"""


def test_observations_fire_triggers_and_flows_write_to_salesforce(
    org: RunningEmulator, sf: Salesforce, store: Store, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.campaign"
    rules.write_text(RULES, encoding="utf-8")
    loaded = load_rule_set([rules], use_cache=False)
    assert loaded.ok, loaded.diagnostics
    webinar = campaign(sf, "Webinar", ("Attended",))
    nurture = campaign(sf, "Nurture", ("Queued",))
    ann = lead(sf, "ann@example.com")
    ann_member = member(sf, webinar, ann)
    interpreter = Interpreter(loaded.rule_set, store, adapter_for(org), program_sync=program_sync())
    first = poll(org, store, interpreter)
    assert first.added == 1
    assert store.fetchall("SELECT campaign FROM runs") == []  # an addition with "Sent": no trigger

    sf.CampaignMember.update(ann_member, {"Status": "Attended"})
    report = poll(org, store, interpreter)

    assert report.status_changed == 1
    assert [row[0] for row in store.fetchall("SELECT campaign FROM runs")] == ["Attendees to Nurture"]
    in_salesforce = sf.query(f"SELECT LeadId, Status FROM CampaignMember WHERE CampaignId = '{nurture}'")["records"]
    assert [(row["LeadId"], row["Status"]) for row in in_salesforce] == [(ann, "Queued")]
    assert mirror_members(store, "Nurture") == {"ann@example.com": "Queued"}

    echo = poll(org, store, interpreter)  # the flow's own write comes back as an observation: no change
    assert (echo.added, echo.status_changed) == (0, 0)
    assert len(store.fetchall("SELECT campaign FROM runs")) == 1


def test_refreshed_statuses_reach_the_adapters_status_cache(org: RunningEmulator, sf: Salesforce, store: Store) -> None:
    nurture = campaign(sf, "Nurture")
    adapter = adapter_for(org)
    Poller(adapter, store).poll_once()
    assert adapter.campaign_statuses([nurture])[nurture] == ("Sent", "Responded")  # now cached

    sf.CampaignMemberStatus.create({"CampaignId": nurture, "Label": "Hot", "SortOrder": 3})
    report = Poller(adapter, store).poll_once()

    assert report.statuses_refreshed == 1
    assert adapter.campaign_statuses([nurture])[nurture] == ("Sent", "Responded", "Hot")
