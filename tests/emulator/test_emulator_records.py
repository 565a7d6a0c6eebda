"""Single-record REST calls with the real simple-salesforce client over HTTPS: create/get/update/delete and
Salesforce's record rules."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from engine.emulator.ids import is_valid_id
from engine.emulator.testing import RunningEmulator

DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$"


def error_of(excinfo: pytest.ExceptionInfo[Any]) -> dict[str, Any]:
    content = excinfo.value.content
    assert isinstance(content, list) and len(content) == 1
    item: dict[str, Any] = content[0]
    return item


def statuses(sf: Salesforce, campaign_id: str) -> list[tuple[str, bool, bool]]:
    result = sf.query(
        f"SELECT Label, IsDefault, HasResponded FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}' "
        "ORDER BY SortOrder"
    )
    return [(row["Label"], row["IsDefault"], row["HasResponded"]) for row in result["records"]]


def test_lead_create_get_update_delete(sf: Salesforce) -> None:
    created = sf.Lead.create({"FirstName": "Ann", "LastName": "Lee", "Company": "Acme", "Email": "ann@acme.test"})
    assert dict(created) == {"id": created["id"], "success": True, "errors": []}
    lead_id = created["id"]
    assert lead_id.startswith("00Q") and len(lead_id) == 18 and is_valid_id(lead_id)

    lead = sf.Lead.get(lead_id)
    assert lead["attributes"] == {"type": "Lead", "url": f"/services/data/v59.0/sobjects/Lead/{lead_id}"}
    assert (lead["Id"], lead["Email"], lead["Name"], lead["Status"]) == (
        lead_id,
        "ann@acme.test",
        "Ann Lee",
        "Open - Not Contacted",
    )
    assert lead["IsDeleted"] is False
    import re

    assert re.match(DATETIME, lead["CreatedDate"]) and re.match(DATETIME, lead["SystemModstamp"])

    assert sf.Lead.update(lead_id, {"Company": "Acme Corp", "Status": "Working"}) == 204
    again = sf.Lead.get(lead_id)
    assert again["Company"] == "Acme Corp" and again["Status"] == "Working"
    assert again["SystemModstamp"] > lead["SystemModstamp"]
    assert again["CreatedDate"] == lead["CreatedDate"]

    assert sf.Lead.get(lead_id, params={"fields": "Id,Email"}).keys() >= {"Id", "Email"}

    assert sf.Lead.delete(lead_id) == 204
    with pytest.raises(SalesforceResourceNotFound) as excinfo:
        sf.Lead.get(lead_id)
    assert error_of(excinfo)["errorCode"] == "ENTITY_IS_DELETED"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.delete(lead_id)


def test_fifteen_character_ids_are_accepted(sf: Salesforce) -> None:
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    assert sf.Lead.get(lead_id[:15])["Id"] == lead_id


def test_unknown_and_malformed_ids_are_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as excinfo:
        sf.Lead.get("00Q8e0000009999")
    assert error_of(excinfo) == {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    with pytest.raises(SalesforceResourceNotFound):
        sf.Lead.get("not-an-id")
    with pytest.raises(SalesforceResourceNotFound):
        sf.Nonsense.get("00Q8e0000009999")


def test_lead_requires_last_name_and_company(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.create({"Email": "x@y.test"})
    assert excinfo.value.status == 400
    assert error_of(excinfo) == {
        "message": "Required fields are missing: [LastName, Company]",
        "errorCode": "REQUIRED_FIELD_MISSING",
        "fields": ["LastName", "Company"],
    }
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.update(lead_id, {"Company": ""})  # Salesforce reads empty text as null
    assert error_of(excinfo)["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_field_errors(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.create({"LastName": "Lee", "Company": "Acme", "Shoe_Size__c": 42})
    assert error_of(excinfo)["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.create({"LastName": "Lee", "Company": "Acme", "Email": "not an email"})
    assert error_of(excinfo)["errorCode"] == "INVALID_EMAIL_ADDRESS"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.create({"LastName": "L" * 81, "Company": "Acme"})
    assert error_of(excinfo)["errorCode"] == "STRING_TOO_LONG"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Lead.create({"LastName": "Lee", "Company": "Acme", "CreatedDate": "2020-01-01T00:00:00Z"})
    assert error_of(excinfo)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert error_of(excinfo)["fields"] == ["CreatedDate"]


def test_contact_and_account(sf: Salesforce) -> None:
    account_id = sf.Account.create({"Name": "Acme"})["id"]
    contact_id = sf.Contact.create({"LastName": "Ng", "Email": "ng@acme.test", "AccountId": account_id})["id"]
    assert contact_id.startswith("003")
    contact = sf.Contact.get(contact_id)
    assert (contact["AccountId"], contact["Email"], contact["FirstName"]) == (account_id, "ng@acme.test", None)
    assert sf.Contact.update(contact_id, {"FirstName": "Bo"}) == 204
    assert sf.Contact.get(contact_id)["Name"] == "Bo Ng"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Contact.create({"Email": "x@y.test"})
    assert error_of(excinfo)["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Contact.create({"LastName": "Ng", "AccountId": contact_id})  # a Contact id where an Account id goes
    assert error_of(excinfo)["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    assert sf.Contact.delete(contact_id) == 204


def test_new_campaign_gets_sent_and_responded(sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar", "Type": "Webinar", "ActualCost": 1500})["id"]
    assert campaign_id.startswith("701")
    campaign = sf.Campaign.get(campaign_id)
    assert (campaign["Name"], campaign["Type"], campaign["ActualCost"], campaign["IsActive"]) == (
        "Webinar",
        "Webinar",
        1500.0,
        False,
    )
    assert statuses(sf, campaign_id) == [("Sent", True, False), ("Responded", False, True)]
    assert sf.Campaign.update(campaign_id, {"IsActive": True, "ActualCost": 99.5, "Status": "In Progress"}) == 204
    campaign = sf.Campaign.get(campaign_id)
    assert (campaign["IsActive"], campaign["ActualCost"], campaign["Status"]) == (True, 99.5, "In Progress")


def test_campaign_keeps_one_default_and_one_responded_status(sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Nurture"})["id"]
    attended = sf.CampaignMemberStatus.create(
        {"CampaignId": campaign_id, "Label": "Attended", "HasResponded": True, "IsDefault": True}
    )["id"]
    assert attended.startswith("01Y")
    assert statuses(sf, campaign_id) == [("Sent", False, False), ("Responded", False, True), ("Attended", True, True)]

    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMemberStatus.create({"CampaignId": campaign_id, "Label": "attended"})
    assert error_of(excinfo)["errorCode"] == "DUPLICATE_VALUE"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMemberStatus.delete(attended)  # the default
    assert error_of(excinfo)["errorCode"] == "DELETE_FAILED"
    assert sf.CampaignMemberStatus.update(attended, {"IsDefault": False}) == 204  # still the default
    assert sf.CampaignMemberStatus.get(attended)["IsDefault"] is True
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMemberStatus.create({"CampaignId": campaign_id, "Label": "Clicked", "SortOrder": 1})
    assert error_of(excinfo)["errorCode"] == "DUPLICATE_VALUE"  # SortOrder is unique per campaign too

    sent = sf.query(f"SELECT Id FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}' AND Label = 'Sent'")
    sent_id = sent["records"][0]["Id"]
    assert sf.CampaignMemberStatus.update(sent_id, {"IsDefault": True}) == 204
    responded = sf.query(
        f"SELECT Id FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}' AND Label = 'Responded'"
    )
    assert sf.CampaignMemberStatus.delete(responded["records"][0]["Id"]) == 204
    assert statuses(sf, campaign_id) == [("Sent", True, False), ("Attended", False, True)]
    assert sf.CampaignMemberStatus.update(attended, {"HasResponded": False}) == 204  # the last responded one
    assert sf.CampaignMemberStatus.get(attended)["HasResponded"] is True
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMemberStatus.delete(attended)
    assert error_of(excinfo)["errorCode"] == "DELETE_FAILED"


def test_campaign_member_rules(sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    contact_id = sf.Contact.create({"LastName": "Ng"})["id"]

    member_id = sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id, "Status": "Responded"})["id"]
    assert member_id.startswith("00v")
    member = sf.CampaignMember.get(member_id)
    assert (member["CampaignId"], member["LeadId"], member["ContactId"]) == (campaign_id, lead_id, None)
    assert (member["Status"], member["HasResponded"]) == ("Responded", True)

    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id})
    assert error_of(excinfo) == {"message": "Already a campaign member.", "errorCode": "DUPLICATE_VALUE", "fields": []}

    # an unknown status silently becomes the campaign's default, on create and on update
    other = sf.CampaignMember.create({"CampaignId": campaign_id, "ContactId": contact_id, "Status": "Bogus"})["id"]
    assert sf.CampaignMember.get(other)["Status"] == "Sent"
    assert sf.CampaignMember.update(member_id, {"Status": "No Such Status"}) == 204
    member = sf.CampaignMember.get(member_id)
    assert (member["Status"], member["HasResponded"]) == ("Sent", False)

    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMember.update(member_id, {"LeadId": lead_id})  # not updateable
    assert error_of(excinfo)["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMember.create({"CampaignId": campaign_id})
    assert error_of(excinfo)["errorCode"] == "REQUIRED_FIELD_MISSING"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMember.create({"CampaignId": "7018e00000ZZZZZ", "LeadId": lead_id})
    assert error_of(excinfo)["errorCode"] == "INVALID_CROSS_REFERENCE_KEY"

    assert sf.CampaignMember.delete(member_id) == 204
    # once removed, the person can be added again
    assert sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id})["success"] is True


def test_deleting_a_lead_or_campaign_removes_its_members(sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    member_id = sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id})["id"]
    sf.Lead.delete(lead_id)
    with pytest.raises(SalesforceResourceNotFound):
        sf.CampaignMember.get(member_id)
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id})
    assert error_of(excinfo)["errorCode"] == "ENTITY_IS_DELETED"
    sf.Campaign.delete(campaign_id)
    assert sf.query(f"SELECT COUNT() FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}'")["totalSize"] == 0


def test_user_marketing_permission_and_describe(org: RunningEmulator, sf: Salesforce) -> None:
    me = sf.query("SELECT Id, Username, UserPermissionsMarketingUser, IsActive FROM User")["records"][0]
    assert (me["Username"], me["UserPermissionsMarketingUser"], me["IsActive"]) == ("admin@emulator.local", True, True)
    described = sf.Campaign.describe()
    assert described["name"] == "Campaign" and described["keyPrefix"] == "701"
    assert (described["createable"], described["updateable"], described["deletable"]) == (True, True, True)
    fields = {item["name"]: item for item in described["fields"]}
    assert fields["Type"]["updateable"] and fields["ActualCost"]["updateable"]
    assert not fields["Id"]["updateable"]

    user_id = sf.User.create(
        {"Username": "mo@acme.test", "LastName": "Mo", "Email": "mo@acme.test", "UserPermissionsMarketingUser": False}
    )["id"]
    assert user_id.startswith("005")
    user = sf.User.get(user_id)
    assert (user["UserPermissionsMarketingUser"], user["IsActive"], user["Alias"]) == (False, True, "mo")
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.User.create({"Username": "MO@acme.test", "LastName": "Mo", "Email": "mo@acme.test"})
    assert error_of(excinfo)["errorCode"] == "DUPLICATE_USERNAME"
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.User.delete(user_id)  # Salesforce deactivates users; it never deletes them
    assert error_of(excinfo)["errorCode"] == "INVALID_TYPE_FOR_OPERATION"

    # Without the Marketing User permission, campaigns are read-only (describe says so, writes fail).
    assert sf.User.update(me["Id"], {"UserPermissionsMarketingUser": False}) == 204
    described = sf.Campaign.describe()
    assert (described["createable"], described["updateable"]) == (False, False)
    with pytest.raises(SalesforceMalformedRequest) as excinfo:
        sf.Campaign.create({"Name": "Nope"})
    assert error_of(excinfo)["errorCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert sf.User.update(me["Id"], {"UserPermissionsMarketingUser": True}) == 204
    assert sf.Campaign.describe()["createable"] is True


def test_describe_global_and_limits_shape(sf: Salesforce) -> None:
    names = {item["name"] for item in sf.describe()["sobjects"]}
    assert {"Lead", "Contact", "Campaign", "CampaignMember", "CampaignMemberStatus", "User"} <= names
    assert sf.Lead.metadata()["objectDescribe"]["keyPrefix"] == "00Q"


def test_renaming_a_status_renames_its_members_status(sf: Salesforce) -> None:
    campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
    lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
    member_id = sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id, "Status": "Responded"})["id"]
    responded = sf.query(
        f"SELECT Id FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}' AND HasResponded = true"
    )
    sf.CampaignMemberStatus.update(responded["records"][0]["Id"], {"Label": "Attended"})
    member = sf.CampaignMember.get(member_id)
    assert (member["Status"], member["HasResponded"]) == ("Attended", True)
