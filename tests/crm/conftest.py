"""Fixtures for the Salesforce adapter and outbox tests: one HTTPS emulator per test module, emptied per test.

- `emulator`: a `RunningEmulator` started once per module (with a recognisable access token, so tests can check
  that it never leaks); `org`: the same emulator after `reset()` (records, sessions, faults, quota, clock).
- `sf`: a plain simple-salesforce client on it, for seeding and for counting what the adapter did.
- `make_settings(auth, **overrides)` / `make_adapter(auth, sleep=..., **overrides)`: `SalesforceSettings` and
  `SalesforceAdapter` for one of the three ways to log in ("session", "password", "oauth").
- `credentials`: the user names and secrets the settings use (the secrets must never be seen anywhere).
- `seed`: a `Seeder` that writes campaigns, Leads and members through sObject Collections and counts with SOQL.

Every SMARTCAMPAIGN_SFDC_* variable from the environment is removed first, so settings are only what a test says.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from simple_salesforce.api import Salesforce
from simple_salesforce.format import format_soql

from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.model.settings import SalesforceSettings

SESSION_TOKEN = "sess-Tk77-access-token-do-not-log"
USERNAME = "admin@emulator.local"
PASSWORD = "pw-Zq81-password-do-not-log"
SECURITY_TOKEN = "st-Kx22-security-token-do-not-log"
CLIENT_ID = "3MVG9-smartcampaign-client"
CLIENT_SECRET = "cs-Lm93-client-secret-do-not-log"
SECRETS = (SESSION_TOKEN, PASSWORD, SECURITY_TOKEN, CLIENT_SECRET)


@dataclass(frozen=True)
class Credentials:
    session_token: str = SESSION_TOKEN
    username: str = USERNAME
    password: str = PASSWORD
    security_token: str = SECURITY_TOKEN
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    secrets: tuple[str, ...] = SECRETS


@pytest.fixture
def credentials() -> Credentials:
    """The credentials the fixtures use; `secrets` must never show up in a message, a repr or a log."""
    return Credentials()


@pytest.fixture(autouse=True)
def _no_sfdc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("SMARTCAMPAIGN_SFDC_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with RunningEmulator(tmp_path_factory.mktemp("sfdc"), token=SESSION_TOKEN) as running:
        yield running


@pytest.fixture
def org(emulator: RunningEmulator) -> RunningEmulator:
    emulator.reset()
    return emulator


@pytest.fixture
def sf(org: RunningEmulator) -> Salesforce:
    return org.client()


@pytest.fixture
def make_settings(org: RunningEmulator) -> Callable[..., SalesforceSettings]:
    def make(auth: str = "session", **overrides: Any) -> SalesforceSettings:
        fields: dict[str, Any] = {"ca_file": org.ca_file}
        if auth == "session":
            fields |= {"instance_url": org.instance_url, "session_id": SESSION_TOKEN}
        elif auth == "password":
            fields |= {
                "username": USERNAME,
                "password": PASSWORD,
                "security_token": SECURITY_TOKEN,
                "domain": org.login_domain,
            }
        elif auth == "oauth":
            fields |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "login_url": org.instance_url}
        else:
            raise ValueError(auth)
        return SalesforceSettings(**(fields | overrides))

    return make


@pytest.fixture
def make_adapter(make_settings: Callable[..., SalesforceSettings]) -> Callable[..., SalesforceAdapter]:
    def make(
        auth: str = "session", *, sleep: Callable[[float], None] | None = None, **overrides: Any
    ) -> SalesforceAdapter:
        return SalesforceAdapter(make_settings(auth, **overrides), sleep=sleep)

    return make


class Seeder:
    """Writes test data straight into the emulator (not through the adapter) and reads it back."""

    def __init__(self, sf: Salesforce) -> None:
        self.sf = sf

    def campaign(self, name: str, statuses: Sequence[str] = ()) -> str:
        """A campaign (with Salesforce's "Sent" and "Responded") plus any extra statuses, in order."""
        campaign_id = str(self.sf.Campaign.create({"Name": name})["id"])
        for position, label in enumerate(statuses, start=3):
            self.sf.CampaignMemberStatus.create({"CampaignId": campaign_id, "Label": label, "SortOrder": position})
        return campaign_id

    def collection(self, sobject: str, records: Sequence[dict[str, Any]]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(records), 200):
            chunk = [{"attributes": {"type": sobject}, **fields} for fields in records[start : start + 200]]
            answer = self.sf.restful("composite/sobjects", method="POST", json={"allOrNone": True, "records": chunk})
            assert all(item["success"] for item in answer), answer
            ids.extend(str(item["id"]) for item in answer)
        return ids

    def leads(self, emails: Sequence[str]) -> list[str]:
        return self.collection("Lead", [{"Email": email, "LastName": "Seeded", "Company": "Acme"} for email in emails])

    def members(self, campaign_id: str, person_ids: Sequence[str], status: str = "Sent") -> list[str]:
        return self.collection(
            "CampaignMember",
            [
                {"CampaignId": campaign_id, "ContactId" if pid.startswith("003") else "LeadId": pid, "Status": status}
                for pid in person_ids
            ],
        )

    def query(self, soql: str, **params: Any) -> list[dict[str, Any]]:
        return list(self.sf.query_all(format_soql(soql, **params))["records"])

    def count(self, soql: str, **params: Any) -> int:
        return int(self.sf.query(format_soql(soql, **params))["totalSize"])

    def member_status(self, campaign_id: str, person_id: str) -> str | None:
        rows = self.query(
            "SELECT Status FROM CampaignMember WHERE CampaignId = {c} AND (LeadId = {p} OR ContactId = {p})",
            c=campaign_id,
            p=person_id,
        )
        assert len(rows) <= 1
        return str(rows[0]["Status"]) if rows else None


@pytest.fixture
def seed(sf: Salesforce) -> Seeder:
    return Seeder(sf)
