"""sobjects/X/updated and sobjects/X/deleted (getUpdated / getDeleted), with the emulator's clock moved."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from engine.emulator.testing import RunningEmulator
from engine.emulator.timeutil import parse_datetime


def now(org: RunningEmulator) -> datetime:
    value = parse_datetime(org.admin("clock")["now"])
    assert value is not None
    return value


def test_updated_and_deleted(org: RunningEmulator, sf: Salesforce) -> None:
    start = now(org) - timedelta(minutes=5)
    first = sf.Lead.create({"LastName": "One", "Company": "Acme"})["id"]
    second = sf.Lead.create({"LastName": "Two", "Company": "Acme"})["id"]
    org.advance_clock(120)  # Salesforce covers whole minutes up to the current one only
    end = now(org) + timedelta(minutes=10)
    updated = sf.Lead.updated(start, end)
    assert set(updated) == {"ids", "latestDateCovered"}
    assert sorted(updated["ids"]) == sorted([first, second])
    covered = parse_datetime(updated["latestDateCovered"])
    assert covered is not None and covered <= now(org) and covered.second == 0
    assert updated["latestDateCovered"].endswith(":00.000+0000")

    sf.Lead.update(first, {"Company": "Acme Corp"})
    sf.Lead.delete(second)
    org.advance_clock(120)
    again = sf.Lead.updated(covered, now(org) + timedelta(minutes=10))
    assert again["ids"] == [first]
    deleted = sf.Lead.deleted(covered, now(org) + timedelta(minutes=10))
    assert set(deleted) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    assert [item["id"] for item in deleted["deletedRecords"]] == [second]
    assert deleted["deletedRecords"][0]["deletedDate"].endswith("+0000")
    assert sf.Lead.deleted(start, covered)["deletedRecords"] == []


def test_replication_windows_are_checked(org: RunningEmulator, sf: Salesforce) -> None:
    current = now(org)
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.updated(current, current - timedelta(minutes=5))
    assert excinfo.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.deleted(current - timedelta(days=31), current)
    assert excinfo.value.content[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_campaign_members_replicate(org: RunningEmulator, sf: Salesforce) -> None:
    start = now(org) - timedelta(minutes=1)
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    lead_id = sf.Lead.create({"LastName": "One", "Company": "Acme"})["id"]
    member_id = sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id})["id"]
    org.advance_clock(120)
    assert sf.CampaignMember.updated(start, now(org))["ids"] == [member_id]
    assert len(sf.CampaignMemberStatus.updated(start, now(org))["ids"]) == 2
    sf.Lead.delete(lead_id)  # takes its memberships with it
    org.advance_clock(120)
    deleted = sf.CampaignMember.deleted(start, now(org))
    assert [item["id"] for item in deleted["deletedRecords"]] == [member_id]
