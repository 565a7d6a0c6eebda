"""`composite/sobjects` POST/PATCH/DELETE through `sf.restful`, with per-record results."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from engine.emulator.testing import RunningEmulator


def lead(last: str, company: str | None = "Acme", **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": "Lead"}, "LastName": last, **extra}
    if company is not None:
        record["Company"] = company
    return record


def codes(result: dict[str, Any]) -> list[str]:
    return [error["statusCode"] for error in result["errors"]]


def test_create_mixed_results_without_all_or_none(sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    results = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                lead("One"),
                lead("Two", company=None),  # REQUIRED_FIELD_MISSING
                {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign_id, "LeadId": lead_id},
                {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign_id, "LeadId": lead_id},  # duplicate
                {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign_id, "LeadId": "00Q8e00000ZZZZZ"},
            ],
        },
    )
    assert [item["success"] for item in results] == [True, False, True, False, False]
    assert results[0]["id"].startswith("00Q") and results[0]["errors"] == []
    assert "id" not in results[1]
    assert results[1]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [Company]",
            "fields": ["Company"],
        }
    ]
    assert codes(results[3]) == ["DUPLICATE_VALUE"]
    assert codes(results[4]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 2
    assert sf.query("SELECT COUNT() FROM CampaignMember")["totalSize"] == 1


def test_all_or_none_rolls_everything_back(sf: Salesforce) -> None:
    results = sf.restful(
        "composite/sobjects", method="POST", json={"allOrNone": True, "records": [lead("One"), lead("Two", None)]}
    )
    assert [item["success"] for item in results] == [False, False]
    assert codes(results[0]) == ["ALL_OR_NONE_OPERATION_ROLLED_BACK"]
    assert codes(results[1]) == ["REQUIRED_FIELD_MISSING"]
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_update_and_delete_mixed(sf: Salesforce) -> None:
    created = sf.restful("composite/sobjects", method="POST", json={"records": [lead("A"), lead("B"), lead("C")]})
    a, b, c = (item["id"] for item in created)
    sf.Lead.delete(c)
    results = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Lead"}, "id": a, "Company": "Acme Corp"},
                {"attributes": {"type": "Lead"}, "id": b, "Company": None},  # REQUIRED_FIELD_MISSING
                {"attributes": {"type": "Lead"}, "id": c, "Company": "Gone"},  # deleted
                {"attributes": {"type": "Lead"}, "Company": "No id"},
            ],
        },
    )
    assert [item["success"] for item in results] == [True, False, False, False]
    assert results[0] == {"id": a, "success": True, "errors": []}
    assert results[1]["id"] == b and codes(results[1]) == ["REQUIRED_FIELD_MISSING"]
    assert codes(results[2]) == ["ENTITY_IS_DELETED"]
    assert codes(results[3]) == ["MISSING_ARGUMENT"]
    assert sf.Lead.get(a)["Company"] == "Acme Corp"
    assert sf.Lead.get(b)["Company"] == "Acme"

    results = sf.restful(
        "composite/sobjects", method="DELETE", params={"ids": f"{a},{c},00Q8e00000ZZZZZ,garbage", "allOrNone": "false"}
    )
    assert [item["success"] for item in results] == [True, False, False, False]
    assert results[0] == {"id": a, "success": True, "errors": []}
    assert codes(results[1]) == ["ENTITY_IS_DELETED"]
    assert codes(results[2]) == ["INVALID_CROSS_REFERENCE_KEY"]
    assert codes(results[3]) == ["MALFORMED_ID"]
    assert {row["Id"] for row in sf.query("SELECT Id FROM Lead")["records"]} == {b}


def test_collection_request_errors(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.restful("composite/sobjects", method="POST", json={"records": [lead(str(n)) for n in range(201)]})
    assert excinfo.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.restful("composite/sobjects", method="POST", json={"records": [lead("A", Shoe_Size__c=1)]})
    assert excinfo.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.restful("composite/sobjects", method="POST", json={"records": [{"LastName": "No type"}]})
    assert excinfo.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_lock_faults_fail_single_records(org: RunningEmulator, sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    leads = sf.restful("composite/sobjects", method="POST", json={"records": [lead(str(n)) for n in range(40)]})
    org.set_faults(lock_rate=0.5, seed=7)
    members = [
        {"attributes": {"type": "CampaignMember"}, "CampaignId": campaign_id, "LeadId": item["id"]} for item in leads
    ]
    results = sf.restful("composite/sobjects", method="POST", json={"allOrNone": False, "records": members})
    failed = [item for item in results if not item["success"]]
    assert 5 < len(failed) < 35
    for item in failed:
        assert item["errors"] == [
            {
                "statusCode": "UNABLE_TO_LOCK_ROW",
                "message": f"unable to obtain exclusive access to this record or 1 records: {campaign_id}",
                "fields": [],
            }
        ]
    org.clear_faults()
    assert sf.query("SELECT COUNT() FROM CampaignMember")["totalSize"] == len(results) - len(failed)
    assert org.stats()["faults"]["injected"]["locks"] == len(failed)
