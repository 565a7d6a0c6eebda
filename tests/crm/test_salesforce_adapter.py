"""The Salesforce adapter (engine/crm/salesforce.py) against the emulator over real HTTPS.

Nothing is mocked: every test talks to a `RunningEmulator` through simple-salesforce and counts what happened
with the adapter's own call counter, the emulator's stats and SOQL. Faults (5xx, UNABLE_TO_LOCK_ROW, latency,
expired sessions, the daily quota) are injected through the emulator's admin API.
"""

from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from simple_salesforce.format import format_soql

from engine.crm.salesforce import (
    AuthenticationError,
    QuotaExceeded,
    SalesforceAdapter,
    SalesforceUnavailable,
)
from engine.emulator.ids import make_id
from engine.model.settings import SalesforceSettings, load_salesforce_settings
from engine.runtime import adapter as p

COLLECTION_WRITES = ("POST composite/sobjects", "PATCH composite/sobjects", "DELETE composite/sobjects")


def calls(org: Any) -> dict[str, int]:
    return dict(org.stats()["calls"])


def new_calls(org: Any, before: dict[str, int]) -> dict[str, int]:
    after = calls(org)
    return {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}


def injected(org: Any) -> dict[str, Any]:
    return dict(org.stats()["faults"]["injected"])


def no_secret_in(text: str, secrets: tuple[str, ...]) -> None:
    for secret in secrets:
        assert secret not in text


def exception_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), *traceback.format_exception(error)])


# ====================================================================================================== auth


class TestAuthentication:
    def test_session_id_and_instance_url(self, org, make_adapter, seed):
        adapter = make_adapter("session")
        assert adapter.settings.auth_method == "session"
        [result] = adapter.execute([p.CreateLead("ann@example.com")])
        assert result.ok and result.id and result.id.startswith("00Q")
        made = calls(org)
        assert "POST Soap/u login" not in made and "POST oauth2/token" not in made
        assert adapter.calls == 2  # the Lead lookup and one collection POST: no login
        assert seed.count("SELECT Id FROM Lead WHERE Email = {e}", e="ann@example.com") == 1

    def test_username_password_and_security_token(self, org, make_adapter, seed):
        adapter = make_adapter("password")
        assert adapter.settings.auth_method == "password"
        [result] = adapter.execute([p.CreateLead("ann@example.com")])
        assert result.ok
        assert calls(org)["POST Soap/u login"] == 1
        assert adapter.calls == 3  # the SOAP login counts as a request too
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_oauth_client_credentials(self, org, make_adapter, seed):
        # the emulator's token endpoint takes password, client_credentials and JWT bearer grants;
        # the adapter uses client credentials against the My Domain URL (login_url)
        adapter = make_adapter("oauth")
        assert adapter.settings.auth_method == "client_credentials"
        [result] = adapter.execute([p.CreateLead("ann@example.com")])
        assert result.ok
        assert calls(org)["POST oauth2/token"] == 1
        assert adapter.calls == 3
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_refused_password_login(self, org, sf, make_adapter, credentials):
        sf.User.create({"Username": "gone@acme.test", "LastName": "Gone", "Email": "gone@acme.test", "IsActive": False})
        adapter = make_adapter("password", username="gone@acme.test")
        with pytest.raises(AuthenticationError) as caught:
            adapter.execute([p.CreateLead("ann@example.com")])
        assert "gone@acme.test" in str(caught.value) and "refused" in str(caught.value)
        no_secret_in(exception_text(caught.value), credentials.secrets)

    def test_refused_client_credentials(self, org, make_adapter, credentials):
        adapter = make_adapter("oauth", client_secret="")  # the emulator refuses an empty secret (invalid_client)
        with pytest.raises(AuthenticationError) as caught:
            adapter.execute([p.CreateLead("ann@example.com")])
        assert "HTTP 400" in str(caught.value)
        no_secret_in(exception_text(caught.value), credentials.secrets)

    def test_no_credentials(self, org):
        adapter = SalesforceAdapter(SalesforceSettings(ca_file=org.ca_file))
        assert adapter.settings.auth_method == "none"
        with pytest.raises(AuthenticationError, match="no Salesforce credentials"):
            adapter.execute([p.CreateLead("ann@example.com")])
        assert adapter.calls == 0


class TestSettings:
    def test_session_from_environment(self, org, monkeypatch, credentials):
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_INSTANCE_URL", org.instance_url + "/")
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_SESSION_ID", credentials.session_token)
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_CA_FILE", org.ca_file)
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_BATCH_SIZE", "50")
        settings = SalesforceSettings()
        assert settings.auth_method == "session"
        assert settings.instance_url == org.instance_url  # the trailing slash is dropped
        assert settings.batch_size == 50
        [result] = SalesforceAdapter(settings).execute([p.CreateLead("ann@example.com")])
        assert result.ok

    def test_password_from_environment(self, org, monkeypatch, credentials, seed):
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_USERNAME", credentials.username)
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_PASSWORD", credentials.password)
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_SECURITY_TOKEN", credentials.security_token)
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_DOMAIN", org.login_domain)
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_CA_FILE", org.ca_file)
        settings = load_salesforce_settings()
        assert settings.auth_method == "password"
        assert settings.password is not None and settings.password.get_secret_value() == credentials.password
        assert SalesforceAdapter(settings).execute([p.CreateLead("ann@example.com")])[0].ok
        assert calls(org)["POST Soap/u login"] == 1

    def test_client_credentials_from_settings_file(self, org, tmp_path: Path, monkeypatch, credentials):
        env_file = tmp_path / "salesforce.env"
        env_file.write_text(
            f"SMARTCAMPAIGN_SFDC_CLIENT_ID={credentials.client_id}\n"
            f"SMARTCAMPAIGN_SFDC_CLIENT_SECRET={credentials.client_secret}\n"
            f"SMARTCAMPAIGN_SFDC_LOGIN_URL={org.instance_url}\n"
            f"SMARTCAMPAIGN_SFDC_CA_FILE={org.ca_file}\n"
            "SMARTCAMPAIGN_SFDC_TIMEOUT=12\n"
            "SMARTCAMPAIGN_SFDC_MAX_RETRIES=4\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("SMARTCAMPAIGN_SFDC_TIMEOUT", "7.5")  # the environment wins over the file
        settings = load_salesforce_settings(str(env_file))
        assert settings.auth_method == "client_credentials"
        assert settings.timeout == 7.5 and settings.max_retries == 4
        assert SalesforceAdapter(settings).execute([p.CreateLead("ann@example.com")])[0].ok
        assert calls(org)["POST oauth2/token"] == 1
        assert SalesforceSettings().auth_method == "none"  # no file unless one is named

    def test_plain_http_urls_are_refused(self, credentials):
        with pytest.raises(ValidationError) as caught:
            SalesforceSettings(instance_url="http://example.my.salesforce.com", session_id=credentials.session_token)
        no_secret_in(str(caught.value), credentials.secrets)

    def test_session_id_wins_over_other_credentials(self, make_settings, credentials):
        settings = make_settings("session", username="x@y.z", password="p", client_id="c", client_secret="s")
        assert settings.auth_method == "session"


class TestSecrets:
    @pytest.mark.parametrize("auth", ["session", "password", "oauth"])
    def test_settings_never_show_secrets(self, auth, make_settings, credentials):
        settings = make_settings(auth)
        shown = "\n".join(
            [repr(settings), str(settings), settings.describe(), settings.model_dump_json(), str(settings.model_dump())]
        )
        no_secret_in(shown, credentials.secrets)
        assert "**********" in repr(settings)

    @pytest.mark.parametrize("auth", ["session", "password", "oauth"])
    def test_no_secret_in_logs_or_errors(self, auth, org, sf, make_adapter, credentials, caplog):
        caplog.set_level(logging.DEBUG)
        errors: list[BaseException] = []
        adapter = make_adapter(auth, max_retries=2, sleep=lambda _seconds: None)
        campaign = sf.Campaign.create({"Name": "Webinar"})["id"]
        adapter.execute([p.CreateLead("ann@example.com"), p.AddMember("pending:ann@example.com", campaign, "Sent")])
        issued = adapter.connect().session_id  # the access token of this adapter's own login
        # an expired session (password and OAuth log in again; a given session id cannot)
        org.set_faults(expire_sessions=True)
        try:
            adapter.execute([p.CreateLead("bob@example.com")])
        except AuthenticationError as error:
            assert auth == "session"
            errors.append(error)
        org.clear_faults()
        # Salesforce failing until the retries give up
        org.set_faults(error_rate=1.0, error_statuses=[500, 503])
        with pytest.raises(SalesforceUnavailable) as unavailable:
            adapter.execute([p.CreateLead("cat@example.com")])
        errors.append(unavailable.value)
        org.clear_faults()
        # the quota spent
        org.set_quota(maximum=1, used=1)
        with pytest.raises(QuotaExceeded) as quota:
            adapter.execute([p.CreateLead("dan@example.com")])
        errors.append(quota.value)
        org.set_quota(maximum=100_000, used=0)
        # a refused login with the password and security token (an inactive user)
        sf.User.create({"Username": "off@acme.test", "LastName": "Off", "Email": "off@acme.test", "IsActive": False})
        with pytest.raises(AuthenticationError) as login:
            make_adapter("password", username="off@acme.test").execute([p.CreateLead("eve@example.com")])
        errors.append(login.value)

        assert len(errors) == (4 if auth == "session" else 3)
        secrets = (*credentials.secrets, issued)
        for error in errors:
            no_secret_in(exception_text(error), secrets)
        assert caplog.records  # DEBUG logging was on (urllib3 at least)
        no_secret_in(caplog.text, secrets)
        no_secret_in("\n".join(str(record.args) for record in caplog.records), secrets)


# ============================================================================================= CreateLead


class TestCreateLead:
    def test_required_fields_filled_with_not_provided(self, org, make_adapter, seed):
        [plain, named] = make_adapter().execute(
            [
                p.CreateLead("ann@example.com"),
                p.CreateLead("bob@example.com", last_name="Builder", company="Bob & Co", first_name="Bob"),
            ]
        )
        assert plain.ok and named.ok
        rows = {row["Email"]: row for row in seed.query("SELECT Id, Email, FirstName, LastName, Company FROM Lead")}
        assert rows["ann@example.com"]["LastName"] == p.NOT_PROVIDED == "[not provided]"
        assert rows["ann@example.com"]["Company"] == p.NOT_PROVIDED
        assert rows["ann@example.com"]["FirstName"] is None
        assert (rows["bob@example.com"]["FirstName"], rows["bob@example.com"]["LastName"]) == ("Bob", "Builder")
        assert rows["bob@example.com"]["Company"] == "Bob & Co"
        assert {plain.id, named.id} == {rows["ann@example.com"]["Id"], rows["bob@example.com"]["Id"]}

    @pytest.mark.parametrize(
        ("last_name", "company", "missing"),
        [
            (None, "Acme", "[LastName]"),
            ("", "Acme", "[LastName]"),
            ("Lee", None, "[Company]"),
            ("", "", "[LastName, Company]"),
        ],
    )
    def test_blank_required_field(self, org, make_adapter, seed, last_name, company, missing):
        adapter = make_adapter()
        [result] = adapter.execute([p.CreateLead("ann@example.com", last_name=last_name, company=company)])
        assert (result.ok, result.code) == (False, p.REQUIRED_FIELD_MISSING)
        assert missing in result.message
        assert adapter.calls == 0  # settled before any API call
        assert seed.count("SELECT Id FROM Lead") == 0

    def test_existing_lead_is_reused(self, org, make_adapter, seed):
        [existing] = seed.leads(["Ann@Example.com"])
        adapter = make_adapter()
        before = calls(org)
        [result] = adapter.execute([p.CreateLead("ann@example.com")])
        assert result.ok and result.id == existing
        assert new_calls(org, before) == {"GET query": 1}  # looked up, not created
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_same_email_twice_in_one_batch_makes_one_lead(self, org, make_adapter, seed):
        results = make_adapter().execute([p.CreateLead("ann@example.com"), p.CreateLead("ANN@example.com")])
        assert all(r.ok for r in results)
        assert results[0].id == results[1].id
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_per_record_failures_are_mapped(self, org, make_adapter, seed):
        results = make_adapter().execute(
            [
                p.CreateLead("ann@example.com"),
                p.CreateLead("not-an-email"),
                p.CreateLead("long@example.com", last_name="L" * 81),
                p.CreateLead("bob@example.com"),
            ]
        )
        assert [r.ok for r in results] == [True, False, False, True]
        assert results[1].code == "INVALID_EMAIL_ADDRESS"
        assert results[2].code == "STRING_TOO_LONG"
        assert seed.count("SELECT Id FROM Lead") == 2


# ============================================================================================== AddMember


class TestAddMember:
    def test_add(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar", ["Registered"])
        [lead] = seed.leads(["ann@example.com"])
        [result] = make_adapter().execute([p.AddMember(lead, campaign, "Registered")])
        assert result.ok and result.id and result.id.startswith("00v")
        assert seed.member_status(campaign, lead) == "Registered"

    def test_already_a_member_is_duplicate_value(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        seed.members(campaign, [lead], "Responded")
        [result] = make_adapter().execute([p.AddMember(lead, campaign, "Sent")])
        assert (result.ok, result.code) == (False, p.DUPLICATE_VALUE)
        assert "already a campaign member" in result.message.lower()
        assert seed.member_status(campaign, lead) == "Responded"  # untouched

    def test_unknown_status_is_refused_before_anything_is_written(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
        before = calls(org)
        results = make_adapter().execute([p.AddMember(ann, campaign, "Attended"), p.AddMember(bob, campaign, "Sent")])
        assert new_calls(org, before) == {"GET query": 1, "POST composite/sobjects": 1}  # bob's POST only
        assert (results[0].ok, results[0].code) == (False, p.INVALID_STATUS)
        assert '"Attended"' in results[0].message and "Sent, Responded" in results[0].message
        assert results[1].ok
        # Salesforce would have made ann a member with the default status "Sent": she must not be one at all
        assert seed.member_status(campaign, ann) is None
        assert seed.member_status(campaign, bob) == "Sent"

    def test_only_invalid_statuses_means_no_write_at_all(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        before = calls(org)
        [result] = make_adapter().execute([p.AddMember(lead, campaign, "sent")])  # labels are case-sensitive
        assert result.code == p.INVALID_STATUS
        assert not any(key in new_calls(org, before) for key in COLLECTION_WRITES)
        assert seed.count("SELECT Id FROM CampaignMember") == 0

    def test_unknown_campaign(self, org, sf, make_adapter, seed):
        [lead] = seed.leads(["ann@example.com"])
        deleted = seed.campaign("Deleted")
        sf.Campaign.delete(deleted)
        never = make_id("701", 987_654)
        results = make_adapter().execute([p.AddMember(lead, never, "Sent"), p.AddMember(lead, deleted, "Sent")])
        assert [r.code for r in results] == [p.UNKNOWN_CAMPAIGN, p.UNKNOWN_CAMPAIGN]
        assert seed.count("SELECT Id FROM CampaignMember") == 0

    def test_contact_ids_use_contact_id(self, org, sf, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        contact = sf.Contact.create({"LastName": "Cat", "Email": "cat@example.com"})["id"]
        [lead] = seed.leads(["ann@example.com"])
        results = make_adapter().execute([p.AddMember(contact, campaign, "Sent"), p.AddMember(lead, campaign, "Sent")])
        assert all(r.ok for r in results)
        rows = seed.query("SELECT LeadId, ContactId FROM CampaignMember WHERE CampaignId = {c}", c=campaign)
        assert {(r["LeadId"], r["ContactId"]) for r in rows} == {(None, contact), (lead, None)}

    def test_unknown_and_deleted_persons(self, org, sf, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [deleted] = seed.leads(["gone@example.com"])
        sf.Lead.delete(deleted)
        results = make_adapter().execute(
            [p.AddMember("pending:nobody@example.com", campaign, "Sent"), p.AddMember(deleted, campaign, "Sent")]
        )
        assert [r.code for r in results] == [p.UNKNOWN_PERSON, p.ENTITY_IS_DELETED]

    def test_lead_created_and_added_in_one_batch(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        adapter = make_adapter()
        lead, member = adapter.execute(
            [p.CreateLead("ann@example.com"), p.AddMember("pending:ann@example.com", campaign, "Sent")]
        )
        assert lead.ok and member.ok
        assert seed.member_status(campaign, str(lead.id)) == "Sent"
        assert adapter.calls == 4  # Lead lookup, Lead POST, status query, member POST


# ===================================================================================== UpdateMemberStatus


class TestUpdateMemberStatus:
    def test_update(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar", ["Attended"])
        [lead] = seed.leads(["ann@example.com"])
        [member] = seed.members(campaign, [lead])
        [result] = make_adapter().execute([p.UpdateMemberStatus(lead, campaign, "Attended")])
        assert result.ok and result.id == member
        assert seed.member_status(campaign, lead) == "Attended"

    def test_same_status_is_ok_without_a_write(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        [member] = seed.members(campaign, [lead], "Responded")
        before = calls(org)
        [result] = make_adapter().execute([p.UpdateMemberStatus(lead, campaign, "Responded")])
        assert result.ok and result.id == member
        assert new_calls(org, before) == {"GET query": 2}  # statuses and the member: no PATCH

    def test_not_a_member(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        [result] = make_adapter().execute([p.UpdateMemberStatus(lead, campaign, "Responded")])
        assert (result.ok, result.code) == (False, p.NOT_A_MEMBER)
        assert seed.count("SELECT Id FROM CampaignMember") == 0

    def test_unknown_status(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        seed.members(campaign, [lead])
        [result] = make_adapter().execute([p.UpdateMemberStatus(lead, campaign, "Attended")])
        assert result.code == p.INVALID_STATUS
        assert seed.member_status(campaign, lead) == "Sent"


# =========================================================================================== RemoveMember


class TestRemoveMember:
    def test_remove(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
        [member, _] = seed.members(campaign, [ann, bob])
        [result] = make_adapter().execute([p.RemoveMember(ann, campaign)])
        assert result.ok and result.id == member
        assert seed.member_status(campaign, ann) is None
        assert seed.member_status(campaign, bob) == "Sent"

    def test_not_a_member(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        before = calls(org)
        [result] = make_adapter().execute([p.RemoveMember(lead, campaign)])
        assert (result.ok, result.code) == (False, p.NOT_A_MEMBER)
        assert "DELETE composite/sobjects" not in new_calls(org, before)

    def test_contact_member(self, org, sf, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        contact = sf.Contact.create({"LastName": "Cat"})["id"]
        seed.members(campaign, [contact])
        [result] = make_adapter().execute([p.RemoveMember(contact, campaign)])
        assert result.ok
        assert seed.count("SELECT Id FROM CampaignMember") == 0


# ======================================================================================= campaign set-up


class TestCampaignFields:
    def test_type_and_actual_cost(self, org, make_adapter, seed):
        campaign = seed.campaign("2026 Q4 Webinar")
        adapter = make_adapter()
        [result] = adapter.execute([p.SetCampaignFields(campaign, "Webinar", 3800.0)])
        assert result.ok and result.id == campaign
        [row] = seed.query("SELECT Type, ActualCost FROM Campaign WHERE Id = {c}", c=campaign)
        assert (row["Type"], row["ActualCost"]) == ("Webinar", 3800.0)
        assert adapter.execute([p.SetCampaignFields(campaign, None, None)])[0].ok
        [row] = seed.query("SELECT Type, ActualCost FROM Campaign WHERE Id = {c}", c=campaign)
        assert (row["Type"], row["ActualCost"]) == (None, None)

    def test_deleted_and_unknown_campaigns(self, org, sf, make_adapter, seed):
        deleted = seed.campaign("Deleted")
        sf.Campaign.delete(deleted)
        results = make_adapter().execute(
            [p.SetCampaignFields(deleted, "Webinar", 1.0), p.SetCampaignFields(make_id("701", 987_654), "Webinar", 1.0)]
        )
        assert [r.code for r in results] == [p.ENTITY_IS_DELETED, "INVALID_CROSS_REFERENCE_KEY"]


def statuses_of(seed: Any, campaign: str) -> list[tuple[str, bool, bool]]:
    rows = seed.query(
        "SELECT Label, IsDefault, HasResponded, SortOrder FROM CampaignMemberStatus WHERE CampaignId = {c} "
        "ORDER BY SortOrder",
        c=campaign,
    )
    return [(row["Label"], row["IsDefault"], row["HasResponded"]) for row in rows]


class TestCampaignStatuses:
    def test_statuses_added_with_default_and_responded(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        adapter = make_adapter()
        assert adapter.execute([p.AddMember(lead, campaign, "Attended")])[0].code == p.INVALID_STATUS  # cached now
        [result] = adapter.execute(
            [p.SetCampaignStatuses(campaign, ("Sent", "Responded", "Attended"), "Attended", ("Responded", "Attended"))]
        )
        assert result.ok
        assert statuses_of(seed, campaign) == [
            ("Sent", False, False),
            ("Responded", False, True),
            ("Attended", True, True),
        ]
        # the adapter forgot what it knew about the campaign's statuses
        assert adapter.execute([p.AddMember(lead, campaign, "Attended")])[0].ok
        assert seed.member_status(campaign, lead) == "Attended"

    def test_empty_campaign_made_to_match(self, org, make_adapter, seed):
        campaign = seed.campaign("2026 Q4 Webinar")
        statuses = ("Invited", "Registered", "No Show", "Attended", "Attended On-demand")
        [result] = make_adapter().execute(
            [p.SetCampaignStatuses(campaign, statuses, "Invited", ("Attended", "Attended On-demand"))]
        )
        assert result.ok, result
        assert statuses_of(seed, campaign) == [
            ("Invited", True, False),
            ("Registered", False, False),
            ("No Show", False, False),
            ("Attended", False, True),
            ("Attended On-demand", False, True),
        ]

    def test_statuses_end_in_the_given_order(self, org, make_adapter, seed):
        campaign = seed.campaign("Email Blast")
        statuses = ("Invited", "Sent", "Opened", "Clicked")
        [result] = make_adapter().execute([p.SetCampaignStatuses(campaign, statuses, "Invited", ("Clicked",))])
        assert result.ok
        assert [label for label, _, _ in statuses_of(seed, campaign)] == list(statuses)


# ============================================================================================ batching


class TestBatching:
    def test_450_adds_go_out_in_three_collection_calls_with_results_in_order(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        emails = [f"person{i:03d}@example.com" for i in range(450)]
        leads = seed.leads(emails)
        already = [7, 250, 449]  # one per chunk of 200, as DUPLICATE_VALUE
        seed.members(campaign, [leads[i] for i in already])
        adapter = make_adapter()
        before = calls(org)
        results = adapter.execute([p.AddMember(lead, campaign, "Sent") for lead in leads])
        assert new_calls(org, before) == {"GET query": 1, "POST composite/sobjects": 3}
        assert adapter.calls == 4
        assert [i for i, r in enumerate(results) if not r.ok] == already
        assert all(results[i].code == p.DUPLICATE_VALUE for i in already)
        member_of = {
            row["Id"]: row["LeadId"]
            for row in seed.query("SELECT Id, LeadId FROM CampaignMember WHERE CampaignId = {c}", c=campaign)
        }
        assert len(member_of) == 450
        for index, result in enumerate(results):
            if result.ok:
                assert member_of[result.id] == leads[index]  # each result is its own record's

    def test_450_leads_updates_and_removes(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        emails = [f"person{i:03d}@example.com" for i in range(450)]
        adapter = make_adapter()
        before = calls(org)
        created = adapter.execute([p.CreateLead(email) for email in emails])
        assert new_calls(org, before) == {"GET query": 3, "POST composite/sobjects": 3}
        leads = [str(r.id) for r in created]
        by_email = {row["Email"]: row["Id"] for row in seed.query("SELECT Id, Email FROM Lead")}
        assert leads == [by_email[email] for email in emails]
        seed.members(campaign, leads)

        before = calls(org)
        updated = adapter.execute([p.UpdateMemberStatus(lead, campaign, "Responded") for lead in leads])
        assert all(r.ok for r in updated)
        assert new_calls(org, before) == {"GET query": 4, "PATCH composite/sobjects": 3}  # statuses + 3 lookups
        assert seed.count("SELECT Id FROM CampaignMember WHERE Status = 'Responded'") == 450

        before = calls(org)
        removed = adapter.execute([p.RemoveMember(lead, campaign) for lead in leads])
        assert all(r.ok for r in removed)
        assert new_calls(org, before) == {"GET query": 3, "DELETE composite/sobjects": 3}
        assert seed.count("SELECT Id FROM CampaignMember") == 0

    def test_smaller_batch_size(self, org, make_adapter, seed):
        emails = [f"person{i:03d}@example.com" for i in range(120)]
        before = calls(org)
        results = make_adapter(batch_size=50).execute([p.CreateLead(email) for email in emails])
        assert all(r.ok for r in results)
        assert new_calls(org, before)["POST composite/sobjects"] == 3

    def test_mixed_kinds_share_calls(self, org, make_adapter, seed):
        a, b = seed.campaign("A"), seed.campaign("B")
        leads = seed.leads([f"p{i}@example.com" for i in range(30)])
        seed.members(b, leads[:20])
        ops: list[p.Operation] = [p.AddMember(lead, a, "Sent") for lead in leads]
        ops += [p.UpdateMemberStatus(lead, b, "Responded") for lead in leads[:10]]
        ops += [p.RemoveMember(lead, b) for lead in leads[10:20]]
        adapter = make_adapter()
        before = calls(org)
        assert all(r.ok for r in adapter.execute(ops))
        assert new_calls(org, before) == {
            "GET query": 4,  # statuses of A, statuses of B, members of B for the update, then for the remove
            "POST composite/sobjects": 1,
            "PATCH composite/sobjects": 1,
            "DELETE composite/sobjects": 1,
        }


class TestWaves:
    def test_add_then_remove_in_one_batch_ends_not_a_member(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        results = make_adapter().execute([p.AddMember(lead, campaign, "Sent"), p.RemoveMember(lead, campaign)])
        assert [r.ok for r in results] == [True, True]
        assert seed.member_status(campaign, lead) is None

    def test_remove_then_add_then_update(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar", ["Attended"])
        [lead] = seed.leads(["ann@example.com"])
        seed.members(campaign, [lead], "Responded")
        results = make_adapter().execute(
            [
                p.RemoveMember(lead, campaign),
                p.AddMember(lead, campaign, "Sent"),
                p.UpdateMemberStatus(lead, campaign, "Attended"),
            ]
        )
        assert [r.ok for r in results] == [True, True, True]
        assert seed.member_status(campaign, lead) == "Attended"

    def test_independent_members_stay_in_one_wave(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        leads = seed.leads([f"p{i}@example.com" for i in range(5)])
        ops: list[p.Operation] = [p.AddMember(lead, campaign, "Sent") for lead in leads]
        ops.append(p.RemoveMember(leads[0], campaign))  # only this one waits for the first wave
        before = calls(org)
        assert all(r.ok for r in make_adapter().execute(ops))
        assert new_calls(org, before) == {"GET query": 2, "POST composite/sobjects": 1, "DELETE composite/sobjects": 1}
        assert seed.count("SELECT Id FROM CampaignMember") == 4


class TestQuoting:
    NAMES = ("O'Brien's Webinar", 'The "Big" Launch', "Back\\slash \\' both \"'", "%_ like chars")

    def test_campaign_names_with_quotes_and_backslashes(self, org, make_adapter, seed):
        ids = {name: seed.campaign(name) for name in self.NAMES}
        [lead] = seed.leads(["ann@example.com"])
        adapter = make_adapter()
        for name in self.NAMES:
            rows = adapter.query_all(format_soql("SELECT Id, Name FROM Campaign WHERE Name = {}", name))
            assert [(row["Id"], row["Name"]) for row in rows] == [(ids[name], name)]
        rows = adapter.query_all(format_soql("SELECT Name FROM Campaign WHERE Name IN {}", list(self.NAMES)))
        assert sorted(row["Name"] for row in rows) == sorted(self.NAMES)
        results = adapter.execute([p.AddMember(lead, ids[name], "Sent") for name in self.NAMES])
        assert all(r.ok for r in results)

    def test_status_labels_with_quotes(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar", ['Said "yes"', "Can't come", "Back\\slash"])
        leads = seed.leads([f"p{i}@example.com" for i in range(4)])
        results = make_adapter().execute(
            [
                p.AddMember(leads[0], campaign, 'Said "yes"'),
                p.AddMember(leads[1], campaign, "Can't come"),
                p.AddMember(leads[2], campaign, "Back\\slash"),
                p.AddMember(leads[3], campaign, "Said 'yes'"),
            ]
        )
        assert [r.ok for r in results] == [True, True, True, False]
        assert results[3].code == p.INVALID_STATUS
        assert seed.member_status(campaign, leads[0]) == 'Said "yes"'
        assert seed.member_status(campaign, leads[2]) == "Back\\slash"


# ============================================================================================== failures


class TestRetries:
    def test_5xx_retried_with_growing_waits(self, org, make_adapter, seed):
        waits: list[float] = []
        adapter = make_adapter(sleep=waits.append)
        org.set_faults(error_rate=1.0, error_statuses=[500, 503], error_limit=3, seed=3)
        [result] = adapter.execute([p.CreateLead("ann@example.com")])
        assert result.ok
        assert injected(org)["errors"] == 3
        assert adapter.calls == 2 + 3
        assert len(waits) == 3 and waits == sorted(waits) and waits[0] < waits[-1]
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_5xx_until_the_retries_give_up(self, org, make_adapter, seed):
        adapter = make_adapter(max_retries=3, sleep=lambda _seconds: None)
        org.set_faults(error_rate=1.0, error_statuses=[503])
        with pytest.raises(SalesforceUnavailable, match="keeps failing") as caught:
            adapter.execute([p.CreateLead("ann@example.com")])
        assert "SERVER_UNAVAILABLE" in str(caught.value)
        assert injected(org)["errors"] == 3 == adapter.calls
        org.clear_faults()
        assert seed.count("SELECT Id FROM Lead") == 0

    def test_500_on_collection_writes_retried_without_duplicates(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        leads = seed.leads([f"p{i}@example.com" for i in range(250)])
        org.set_faults(error_rate=1.0, error_statuses=[500], error_limit=2, endpoints=["composite/sobjects"])
        results = make_adapter(sleep=lambda _seconds: None).execute(
            [p.AddMember(lead, campaign, "Sent") for lead in leads]
        )
        assert all(r.ok for r in results)
        assert injected(org)["errors"] == 2
        assert seed.count("SELECT Id FROM CampaignMember") == 250

    def test_timeout_retried(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        waits: list[float] = []

        def wait(seconds: float) -> None:
            waits.append(seconds)
            org.clear_faults()  # Salesforce answers quickly again

        adapter = make_adapter(timeout=0.3, sleep=wait)
        org.set_faults(latency_ms=700)
        [result] = adapter.execute([p.AddMember(lead, campaign, "Sent")])
        assert result.ok
        assert len(waits) == 1
        assert seed.count("SELECT Id FROM CampaignMember") == 1

    def test_timeouts_until_the_retries_give_up(self, org, make_adapter):
        adapter = make_adapter(timeout=0.2, max_retries=2, sleep=lambda _seconds: None)
        org.set_faults(latency_ms=400)
        with pytest.raises(SalesforceUnavailable, match=r"cannot reach Salesforce.*Timeout"):
            adapter.execute([p.CreateLead("ann@example.com")])
        assert adapter.calls == 2
        org.clear_faults()

    def test_call_level_unable_to_lock_row_retried(self, org, make_adapter, seed):
        # single-record endpoints fail as a whole; the adapter's `call` is the way to reach one
        adapter = make_adapter(sleep=lambda _seconds: None)
        org.set_faults(lock_rate=1.0, lock_limit=2)
        created = adapter.call("create", lambda sf: sf.Lead.create({"LastName": "Lee", "Company": "Acme"}))
        assert created["success"]
        assert injected(org)["locks"] == 2
        assert adapter.calls == 3
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_per_record_unable_to_lock_row_retried(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        leads = seed.leads([f"p{i}@example.com" for i in range(10)])
        seed.members(campaign, leads[5:])
        adapter = make_adapter(sleep=lambda _seconds: None)
        ops: list[p.Operation] = [p.AddMember(lead, campaign, "Sent") for lead in leads[:5]]
        ops += [p.UpdateMemberStatus(lead, campaign, "Responded") for lead in leads[5:8]]
        ops += [p.RemoveMember(lead, campaign) for lead in leads[8:]]
        org.set_faults(lock_rate=0.5, seed=11)
        results = adapter.execute(ops)
        assert all(r.ok for r in results), results
        assert injected(org)["locks"] > 0
        org.clear_faults()
        assert [seed.member_status(campaign, lead) for lead in leads] == ["Sent"] * 5 + ["Responded"] * 3 + [None] * 2

    def test_a_row_that_stays_locked_is_a_per_record_failure(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        leads = seed.leads(["ann@example.com", "bob@example.com"])
        adapter = make_adapter(max_retries=2, sleep=lambda _seconds: None)
        org.set_faults(lock_rate=1.0)
        results = adapter.execute([p.AddMember(lead, campaign, "Sent") for lead in leads])
        assert [r.code for r in results] == ["UNABLE_TO_LOCK_ROW"] * 2  # a result, not an exception
        assert injected(org)["locks"] == 4
        org.clear_faults()
        assert seed.count("SELECT Id FROM CampaignMember") == 0


class TestSessions:
    @pytest.mark.parametrize(("auth", "login"), [("password", "POST Soap/u login"), ("oauth", "POST oauth2/token")])
    def test_expired_session_logs_in_again_once(self, auth, login, org, make_adapter, seed):
        adapter = make_adapter(auth)
        assert adapter.execute([p.CreateLead("ann@example.com")])[0].ok
        first = adapter.connect().session_id
        org.set_faults(expire_sessions=True)
        [result] = adapter.execute([p.CreateLead("bob@example.com")])
        assert result.ok
        assert adapter.connect().session_id != first
        org.clear_faults()
        assert calls(org)[login] == 2
        assert seed.count("SELECT Id FROM Lead") == 2

    def test_expired_session_with_a_session_id_is_a_clear_error(self, org, make_adapter, seed, credentials):
        adapter = make_adapter("session")
        assert adapter.execute([p.CreateLead("ann@example.com")])[0].ok
        org.set_faults(expire_sessions=True)
        before = adapter.calls
        with pytest.raises(AuthenticationError, match="session expired or is invalid") as caught:
            adapter.execute([p.CreateLead("bob@example.com")])
        assert adapter.calls == before + 1  # no retry: nothing to log in with
        no_secret_in(exception_text(caught.value), credentials.secrets)
        org.clear_faults()
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_login_again_is_tried_once(self, org, sf, make_adapter, seed):
        user = sf.User.create(
            {"Username": "marketer@acme.test", "LastName": "M", "Email": "marketer@acme.test", "IsActive": True}
        )["id"]
        adapter = make_adapter("password", username="marketer@acme.test")
        assert adapter.execute([p.CreateLead("ann@example.com")])[0].ok
        sf.User.update(user, {"IsActive": False})  # its session stops working, and so does its login
        with pytest.raises(AuthenticationError, match="refused the login"):
            adapter.execute([p.CreateLead("bob@example.com")])
        assert calls(org)["POST Soap/u login"] == 2
        assert seed.count("SELECT Id FROM Lead") == 1


class TestQuota:
    def test_request_limit_exceeded_is_quota_exceeded(self, org, make_adapter, seed):
        org.set_quota(maximum=500, used=500)
        adapter = make_adapter(sleep=lambda _seconds: None)
        with pytest.raises(QuotaExceeded, match="500/500"):
            adapter.execute([p.CreateLead("ann@example.com")])
        assert adapter.calls == 1  # not retried
        assert (adapter.usage.used, adapter.usage.limit, adapter.usage.remaining) == (500, 500, 0)
        org.set_quota(maximum=1000)
        assert adapter.execute([p.CreateLead("ann@example.com")])[0].ok
        assert seed.count("SELECT Id FROM Lead") == 1

    def test_quota_spent_in_the_middle_of_a_batch(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        org.set_quota(maximum=2, used=0)  # the Lead lookup and the Lead POST; not the status query
        adapter = make_adapter()
        ops: list[p.Operation] = [
            p.CreateLead("ann@example.com"),
            p.AddMember("pending:ann@example.com", campaign, "Sent"),
        ]
        with pytest.raises(QuotaExceeded):
            adapter.execute(ops)
        org.set_quota(maximum=100)
        results = adapter.execute(ops)  # sent again whole: the Lead is found, not made twice
        assert all(r.ok for r in results)
        assert seed.count("SELECT Id FROM Lead") == 1
        assert seed.count("SELECT Id FROM CampaignMember") == 1

    def test_usage_from_sforce_limit_info(self, org, make_adapter):
        adapter = make_adapter()
        assert (adapter.usage.used, adapter.usage.limit) == (0, 0)  # nothing seen yet
        org.set_quota(maximum=5000, used=1234)
        adapter.execute([p.CreateLead("ann@example.com")])
        assert (adapter.usage.used, adapter.usage.limit, adapter.usage.remaining) == (1236, 5000, 3764)
        assert org.stats()["api_usage"]["used"] == 1236


# ============================================================================================ known bugs


class TestEdgeCases:
    def test_fifteen_character_campaign_id(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        [result] = make_adapter().execute([p.AddMember(lead, campaign[:15], "Sent")])
        assert result.ok, result
        assert seed.member_status(campaign, lead) == "Sent"

    def test_fifteen_character_person_id_update(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        seed.members(campaign, [lead])
        [result] = make_adapter().execute([p.UpdateMemberStatus(lead[:15], campaign, "Responded")])
        assert result.ok, result
        assert seed.member_status(campaign, lead) == "Responded"

    def test_fifteen_character_person_id_remove(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        seed.members(campaign, [lead])
        [result] = make_adapter().execute([p.RemoveMember(lead[:15], campaign)])
        assert seed.member_status(campaign, lead) is None
        assert result.ok, result

    def test_timed_out_lead_create_makes_no_second_lead(self, org, make_adapter, seed):
        def wait(_seconds: float) -> None:
            org.clear_faults()
            time.sleep(1.0)  # the first POST is still being served: let it finish

        adapter = make_adapter(timeout=0.4, sleep=wait)

        def slow_after_lookup(response: Any, *args: Any, **kwargs: Any) -> None:
            if response.request.method == "GET" and "FROM+Lead" in response.request.url:
                org.set_faults(latency_ms=800)  # the Lead POST that follows times out

        adapter._session.hooks["response"].append(slow_after_lookup)
        [result] = adapter.execute([p.CreateLead("ann@example.com")])
        assert result.ok
        assert seed.count("SELECT Id FROM Lead WHERE Email = 'ann@example.com'") == 1

    def test_status_deleted_in_salesforce_is_not_written_as_the_default(self, org, sf, make_adapter, seed):
        campaign = seed.campaign("Webinar", ["Attended"])
        ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
        adapter = make_adapter(status_ttl=0)  # statuses read for every batch
        assert adapter.execute([p.AddMember(ann, campaign, "Attended")])[0].ok
        [attended] = seed.query(
            "SELECT Id FROM CampaignMemberStatus WHERE CampaignId = {c} AND Label = 'Attended'", c=campaign
        )
        sf.CampaignMemberStatus.delete(attended["Id"])
        [result] = adapter.execute([p.AddMember(bob, campaign, "Attended")])
        assert seed.member_status(campaign, bob) is None, "bob was made a member with the default status"
        assert result.code == p.INVALID_STATUS

    def test_statuses_are_read_once_within_their_ttl(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar", ["Attended"])
        ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
        adapter = make_adapter(status_ttl=60)
        assert adapter.execute([p.AddMember(ann, campaign, "Attended")])[0].ok
        before = adapter.calls_by_endpoint().get("GET query", 0)
        assert adapter.execute([p.AddMember(bob, campaign, "Attended")])[0].ok
        assert adapter.calls_by_endpoint().get("GET query", 0) == before  # no second status read
        assert seed.member_status(campaign, bob) == "Attended"

    def test_a_status_added_since_the_last_read_is_read_again_not_refused(self, org, sf, make_adapter, seed):
        campaign = seed.campaign("Webinar", ["Attended"])
        ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
        adapter = make_adapter(status_ttl=60)
        assert adapter.execute([p.AddMember(ann, campaign, "Attended")])[0].ok
        sf.CampaignMemberStatus.create({"CampaignId": campaign, "Label": "Hot", "SortOrder": 9})
        [result] = adapter.execute([p.AddMember(bob, campaign, "Hot")])
        assert result.ok, result
        assert seed.member_status(campaign, bob) == "Hot"

    def test_malformed_id_is_a_per_record_failure(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        [lead] = seed.leads(["ann@example.com"])
        results = make_adapter().execute([p.AddMember(lead, campaign, "Sent"), p.RemoveMember("not-an-id", campaign)])
        assert results[0].ok
        assert not results[1].ok

    def test_per_record_lock_retries_back_off(self, org, make_adapter, seed):
        campaign = seed.campaign("Webinar")
        ann, bob = seed.leads(["ann@example.com", "bob@example.com"])
        seed.members(campaign, [bob])
        waits: list[float] = []
        adapter = make_adapter(sleep=waits.append)
        org.set_faults(lock_rate=1.0, lock_limit=3)
        assert adapter.execute([p.RemoveMember(bob, campaign)])[0].ok
        assert len(waits) == 3, waits  # the delete was retried three times
        org.set_faults(lock_rate=1.0, lock_limit=3)
        assert adapter.execute([p.AddMember(ann, campaign, "Sent")])[0].ok
        adds = waits[3:]
        assert len(adds) == 3 and adds[0] < adds[-1], adds
