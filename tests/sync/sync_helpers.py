"""Building a Salesforce org in the emulator for the sync tests, and an adapter on it."""

from __future__ import annotations

from typing import Any

from simple_salesforce.api import Salesforce

from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.model.settings import SalesforceSettings


def settings_for(org: RunningEmulator, **overrides: Any) -> SalesforceSettings:
    values: dict[str, Any] = {"instance_url": org.instance_url, "session_id": org.token, "ca_file": org.ca_file}
    values.update(overrides)
    return SalesforceSettings(**values)


def adapter_for(org: RunningEmulator, **overrides: Any) -> SalesforceAdapter:
    return SalesforceAdapter(settings_for(org, **overrides), sleep=lambda _seconds: None)


def settings_file(org: RunningEmulator, path: Any, token: str | None = None, **extra: str) -> str:
    lines = [
        f"SMARTCAMPAIGN_SFDC_INSTANCE_URL={org.instance_url}",
        f"SMARTCAMPAIGN_SFDC_SESSION_ID={token or org.token}",
        f"SMARTCAMPAIGN_SFDC_CA_FILE={org.ca_file}",
        "SMARTCAMPAIGN_SFDC_MAX_RETRIES=1",
    ]
    lines += [f"{key}={value}" for key, value in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def campaign(sf: Salesforce, name: str, extra_statuses: tuple[str, ...] = (), responded: tuple[str, ...] = ()) -> str:
    """A Campaign (Salesforce gives it Sent, the default, and Responded) with more statuses after those."""
    campaign_id = str(sf.Campaign.create({"Name": name})["id"])
    for order, label in enumerate(extra_statuses, start=3):
        sf.CampaignMemberStatus.create(
            {"CampaignId": campaign_id, "Label": label, "SortOrder": order, "HasResponded": label in responded}
        )
    return campaign_id


def lead(sf: Salesforce, email: str | None, last_name: str = "Lead") -> str:
    fields: dict[str, Any] = {"LastName": last_name, "Company": "Acme"}
    if email is not None:
        fields["Email"] = email
    return str(sf.Lead.create(fields)["id"])


def contact(sf: Salesforce, email: str) -> str:
    return str(sf.Contact.create({"LastName": "Contact", "Email": email})["id"])


def member(sf: Salesforce, campaign_id: str, person_id: str, status: str | None = None) -> str:
    field = "ContactId" if person_id.startswith("003") else "LeadId"
    fields: dict[str, Any] = {"CampaignId": campaign_id, field: person_id}
    if status is not None:
        fields["Status"] = status
    return str(sf.CampaignMember.create(fields)["id"])


def collection(sf: Salesforce, sobject: str, records: list[dict[str, Any]]) -> list[str]:
    """Creates records 200 a call; every one must succeed."""
    ids: list[str] = []
    for start in range(0, len(records), 200):
        body = {
            "allOrNone": True,
            "records": [{"attributes": {"type": sobject}, **fields} for fields in records[start : start + 200]],
        }
        answer = sf.restful("composite/sobjects", method="POST", json=body)
        assert all(item["success"] for item in answer), answer
        ids += [str(item["id"]) for item in answer]
    return ids


def mirror_members(store: Any, campaign_name: str) -> dict[str, str]:
    """email -> status of a campaign in the mirror."""
    info = store.campaign_by_name(campaign_name)
    assert info is not None, f"{campaign_name} is not in the mirror"
    return {store.person_by_id(pid).email: status for pid, status in store.campaign_members(info.id)}
