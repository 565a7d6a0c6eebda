"""SOQL over the wire: filters, ordering, limits, quoting with format_soql, paging, queryAll, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from simple_salesforce import format_soql
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from engine.emulator.testing import RunningEmulator

NAMES = ["O'Brien", 'Say "hi"', "back\\slash", "plain", "Ümlaut & co"]


def create_leads(sf: Salesforce, count: int, prefix: str = "L") -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 200):
        records = [
            {"attributes": {"type": "Lead"}, "LastName": f"{prefix}{n:05d}", "Company": "Bulk", "Email": f"l{n}@x.test"}
            for n in range(start, min(count, start + 200))
        ]
        results = sf.restful("composite/sobjects", method="POST", json={"records": records})
        assert all(item["success"] for item in results)
        ids += [item["id"] for item in results]
    return ids


@pytest.fixture
def people(sf: Salesforce) -> dict[str, str]:
    ids = {}
    for n, name in enumerate(NAMES):
        ids[name] = sf.Lead.create(
            {"LastName": name, "Company": "Acme" if n % 2 == 0 else "Globex", "Email": f"p{n}@x.test"}
        )["id"]
    return ids


def test_quoting_with_format_soql(sf: Salesforce, people: dict[str, str]) -> None:
    for name in NAMES:
        result = sf.query(format_soql("SELECT Id, LastName FROM Lead WHERE LastName = {}", name))
        assert [row["LastName"] for row in result["records"]] == [name], name
    result = sf.query(format_soql("SELECT Id FROM Lead WHERE LastName IN {}", NAMES[:3]))
    assert result["totalSize"] == 3
    result = sf.query(format_soql("SELECT LastName FROM Lead WHERE LastName LIKE '{:like}%'", "back\\"))
    assert [row["LastName"] for row in result["records"]] == ["back\\slash"]


def test_and_or_not_in_order_limit(sf: Salesforce, people: dict[str, str]) -> None:
    result = sf.query(
        "SELECT LastName, Company FROM Lead WHERE Company = 'acme' "
        "AND (LastName = 'back\\\\slash' OR LastName LIKE 'o%') ORDER BY LastName DESC"
    )
    assert [row["LastName"] for row in result["records"]] == ["O'Brien", "back\\slash"]  # text ignores case
    result = sf.query("SELECT LastName FROM Lead WHERE NOT Company = 'Acme' ORDER BY LastName ASC")
    assert [row["LastName"] for row in result["records"]] == ["plain", 'Say "hi"']
    result = sf.query("SELECT LastName FROM Lead WHERE Company NOT IN ('Globex') ORDER BY LastName LIMIT 2")
    assert result["totalSize"] == 2 and result["done"] is True
    assert [row["LastName"] for row in result["records"]] == ["back\\slash", "O'Brien"]
    result = sf.query("SELECT Id FROM Lead WHERE Company != 'Acme' AND Title = null")
    assert result["totalSize"] == 2
    assert sf.query("SELECT COUNT() FROM Lead WHERE Company = 'Acme'") == {"totalSize": 3, "done": True, "records": []}
    lead_id = people["plain"]
    result = sf.query(format_soql("SELECT Id FROM Lead WHERE Id = {}", lead_id[:15]))
    assert [row["Id"] for row in result["records"]] == [lead_id]


def test_date_comparisons(org: RunningEmulator, sf: Salesforce, people: dict[str, str]) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    org.advance_clock(3600)
    late = sf.Lead.create({"LastName": "Late", "Company": "Acme"})["id"]
    cutoff = datetime.now(UTC) + timedelta(minutes=30)
    result = sf.query(format_soql("SELECT Id FROM Lead WHERE CreatedDate > {}", cutoff))
    assert [row["Id"] for row in result["records"]] == [late]
    iso = cutoff.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    since = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    result = sf.query(f"SELECT Id FROM Lead WHERE SystemModstamp <= {iso} AND CreatedDate >= {since}")
    assert result["totalSize"] == len(NAMES)
    result = sf.query(
        f"SELECT Id, CreatedDate FROM Lead WHERE CreatedDate < {iso} OR LastName = 'Late' "
        "ORDER BY CreatedDate DESC LIMIT 1"
    )
    assert result["records"][0]["Id"] == late


def test_relationship_fields(sf: Salesforce, people: dict[str, str]) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": people["plain"], "Status": "Responded"})
    result = sf.query(
        format_soql(
            "SELECT Id, Status, HasResponded, Campaign.Name, Lead.Email, Contact.Email FROM CampaignMember "
            "WHERE CampaignId = {} AND HasResponded = true",
            campaign_id,
        )
    )
    (row,) = result["records"]
    assert row["Campaign"]["Name"] == "Webinar" and row["Campaign"]["attributes"]["type"] == "Campaign"
    assert row["Lead"]["Email"] == "p3@x.test" and row["Contact"] is None
    result = sf.query(
        "SELECT Id FROM Lead WHERE Id IN (SELECT LeadId FROM CampaignMember WHERE Campaign.Name = 'Webinar')"
    )
    assert [item["Id"] for item in result["records"]] == [people["plain"]]


def test_query_errors(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.query("SELECT Id, Shoe_Size__c FROM Lead")
    error = excinfo.value.content[0]
    assert error["errorCode"] == "INVALID_FIELD"
    assert "No such column 'Shoe_Size__c' on entity 'Lead'" in error["message"]
    assert "ERROR at Row:1:Column:12" in error["message"]
    for bad in (
        "SELECT Id FROMM Lead",
        "SELECT Id FROM Lead WHERE LastName = 'unterminated",
        "SELECT Id FROM Lead WHERE Company = 'a' AND LastName = 'b' OR Email = 'c'",  # needs parentheses
        'SELECT Id FROM Lead WHERE LastName = "double quotes"',
    ):
        with pytest.raises(SalesforceMalformedRequest) as excinfo:
            sf.query(bad)
        assert excinfo.value.content[0]["errorCode"] == "MALFORMED_QUERY", bad
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.query("SELECT Id FROM Lead WHERE CreatedDate > '2026-01-01T00:00:00Z'")
    assert excinfo.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.query("SELECT Id FROM Widget")
    assert excinfo.value.content[0]["errorCode"] == "INVALID_TYPE"


def test_paging_past_2000_and_query_all(org: RunningEmulator, sf: Salesforce) -> None:
    ids = create_leads(sf, 4100)
    first = sf.query("SELECT Id, LastName FROM Lead ORDER BY LastName")
    assert (first["totalSize"], first["done"], len(first["records"])) == (4100, False, 2000)
    next_url = first["nextRecordsUrl"]
    assert next_url.startswith("/services/data/v59.0/query/01g") and next_url.endswith("-2000")
    second = sf.query_more(next_url, identifier_is_url=True)
    assert (second["done"], len(second["records"])) == (False, 2000)
    assert second["records"][0]["LastName"] == "L02000"
    third = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert (third["done"], len(third["records"]), "nextRecordsUrl" in third) == (True, 100, False)

    everything = sf.query_all("SELECT Id FROM Lead")
    assert sorted(row["Id"] for row in everything["records"]) == sorted(ids)

    sf.restful("composite/sobjects", method="DELETE", params={"ids": ",".join(ids[:150])})
    assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == 3950
    assert sf.query("SELECT COUNT() FROM Lead WHERE IsDeleted = true")["totalSize"] == 0
    deleted = sf.query_all("SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true", include_deleted=True)
    assert sorted(row["Id"] for row in deleted["records"]) == sorted(ids[:150])
    all_rows = sf.query_all("SELECT Id FROM Lead", include_deleted=True)
    assert all_rows["totalSize"] == 4100

    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.query_more("/services/data/v59.0/query/01gNOPE-2000", identifier_is_url=True)
    assert excinfo.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_batch_size_header(sf: Salesforce) -> None:
    create_leads(sf, 450)
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})
    assert (len(page["records"]), page["done"]) == (200, False)
    assert len(sf.query_all("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=200"})["records"]) == 450
