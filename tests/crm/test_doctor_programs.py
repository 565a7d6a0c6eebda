"""`smartcampaign doctor` with rules: "Program sync statuses match", against the HTTPS emulator.

A synced program's campaign must have exactly the channel's member statuses when it has members (LANGUAGE.md
"Programs and channels"); the check reports the same message the engine logs when it cannot link the program.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from simple_salesforce.api import Salesforce

from engine.cli.salesforce import doctor_command
from engine.crm.doctor import CAMPAIGN_SYNC, PROGRAM_STATUSES, REACHABLE, Check, run_doctor
from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.language import ast
from engine.language.checks import status_mismatch
from engine.language.loader import load_rule_set
from engine.model.settings import EngineSettings, SalesforceSettings

CHANNEL = ("Invited", "Registered", "Attended")  # by step: what the sync makes an empty campaign
FIX = "rename or remove statuses so both sides match"

RULES = """
channel "Mini Webinar" {
    status "Registered" step 20
    status "Invited" step 10
    status "Attended" step 30 success
}
program "Q4 Webinar" {
    channel "Mini Webinar"
    sync with sfdc campaign "Q4 Webinar"
}
program "Unsynced" { channel "Mini Webinar" }
"""


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("SMARTCAMPAIGN_CAMPAIGN_SYNC", raising=False)
    monkeypatch.delenv("SMARTCAMPAIGN_SYNC_DISABLED_PROGRAMS", raising=False)
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def rules(tmp_path: Path, text: str = RULES) -> tuple[Path, ast.RuleSet]:
    path = tmp_path / "rules.campaign"
    path.write_text(text, encoding="utf-8")
    loaded = load_rule_set([path], use_cache=False)
    assert loaded.ok, loaded.diagnostics
    return path, loaded.rule_set


def campaign(sf: Salesforce, name: str, statuses: Sequence[str]) -> str:
    """A campaign with exactly `statuses` (the first the default, the last responded)."""
    campaign_id = str(sf.Campaign.create({"Name": name})["id"])
    builtin = sf.query(f"SELECT Id FROM CampaignMemberStatus WHERE CampaignId = '{campaign_id}'")["records"]
    for order, label in enumerate(statuses, start=10):
        sf.CampaignMemberStatus.create(
            {
                "CampaignId": campaign_id,
                "Label": label,
                "SortOrder": order,
                "IsDefault": order == 10,
                "HasResponded": label == statuses[-1],
            }
        )
    for row in builtin:  # Salesforce's "Sent" and "Responded"
        sf.CampaignMemberStatus.delete(row["Id"])
    return campaign_id


def add_member(sf: Salesforce, campaign_id: str, email: str, status: str) -> None:
    lead = sf.Lead.create({"LastName": "Lead", "Company": "Acme", "Email": email})["id"]
    sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead, "Status": status})


def program_check(checks: list[Check]) -> Check:
    [found] = [check for check in checks if check.name == PROGRAM_STATUSES]
    return found


@pytest.fixture
def adapter(make_adapter: Callable[..., SalesforceAdapter]) -> SalesforceAdapter:
    return make_adapter("session", sleep=lambda _seconds: None)


# ---------------------------------------------------------------------------------------------- run_doctor
def test_a_mismatch_with_members_fails_with_the_engines_message_and_the_fix(
    sf: Salesforce, adapter: SalesforceAdapter, tmp_path: Path
) -> None:
    webinar = sf.Campaign.create({"Name": "Q4 Webinar"})["id"]  # Salesforce's Sent and Responded
    add_member(sf, webinar, "ann@example.com", "Sent")
    add_member(sf, webinar, "bob@example.com", "Responded")
    _, rule_set = rules(tmp_path)

    checks = run_doctor(adapter, EngineSettings(), rule_set)

    assert checks[-1].name == PROGRAM_STATUSES  # registered last, after the settings check
    check = program_check(checks)
    assert check.status == "fail" and not check.ok
    expected = status_mismatch("Q4 Webinar", "Q4 Webinar", CHANNEL, ("Sent", "Responded"))
    assert expected is not None
    assert check.detail == f"{expected} (2 members)"
    assert (
        'program "Q4 Webinar" cannot sync with SFDC campaign "Q4 Webinar": statuses only in the program: '
        "Invited, Registered, Attended; only in the campaign: Sent, Responded." in check.detail
    )
    assert check.fix == FIX
    assert all(c.status == "pass" for c in checks if c.name != PROGRAM_STATUSES), checks


def test_matching_statuses_pass(sf: Salesforce, adapter: SalesforceAdapter, tmp_path: Path) -> None:
    webinar = campaign(sf, "Q4 Webinar", ("Attended", "Invited", "Registered"))  # order does not matter
    add_member(sf, webinar, "ann@example.com", "Invited")
    _, rule_set = rules(tmp_path)

    check = program_check(run_doctor(adapter, EngineSettings(), rule_set))

    assert check.status == "pass", check
    assert check.detail == '"Q4 Webinar" and "Q4 Webinar" have the same statuses'


def test_an_empty_mismatched_campaign_passes_it_will_be_made_to_match(
    sf: Salesforce, adapter: SalesforceAdapter, tmp_path: Path
) -> None:
    sf.Campaign.create({"Name": "Q4 Webinar"})
    _, rule_set = rules(tmp_path)

    check = program_check(run_doctor(adapter, EngineSettings(), rule_set))

    assert check.status == "pass", check
    assert "has no members" in check.detail and "match" in check.detail


def test_a_missing_campaign_fails(adapter: SalesforceAdapter, tmp_path: Path) -> None:
    _, rule_set = rules(tmp_path)

    check = program_check(run_doctor(adapter, EngineSettings(), rule_set))

    assert check.status == "fail"
    assert check.detail == 'program "Q4 Webinar" cannot sync: no sfdc campaign "Q4 Webinar" in Salesforce.'
    assert "create the campaign in Salesforce" in check.fix


def test_a_campaign_named_by_id(sf: Salesforce, adapter: SalesforceAdapter, tmp_path: Path) -> None:
    webinar = sf.Campaign.create({"Name": "Renamed In Salesforce"})["id"]
    add_member(sf, webinar, "ann@example.com", "Sent")
    text = RULES.replace('sync with sfdc campaign "Q4 Webinar"', f'sync with sfdc campaign id "{webinar}"')
    _, rule_set = rules(tmp_path, text)

    check = program_check(run_doctor(adapter, EngineSettings(), rule_set))

    assert check.status == "fail"
    assert 'cannot sync with SFDC campaign "Renamed In Salesforce"' in check.detail


def test_every_synced_program_is_checked(sf: Salesforce, adapter: SalesforceAdapter, tmp_path: Path) -> None:
    good = campaign(sf, "Good", CHANNEL)
    add_member(sf, good, "ann@example.com", "Attended")
    bad = campaign(sf, "Bad", ("Invited", "Waitlisted"))
    add_member(sf, bad, "bob@example.com", "Waitlisted")
    text = """
channel "Mini Webinar" { status "Invited" step 10 status "Registered" step 20 status "Attended" step 30 success }
program "A" { channel "Mini Webinar" sync with sfdc campaign "Good" }
program "B" { channel "Mini Webinar" sync with sfdc campaign "Bad" }
"""
    _, rule_set = rules(tmp_path, text)

    check = program_check(run_doctor(adapter, EngineSettings(), rule_set))

    assert check.status == "fail"
    assert check.detail == (
        'program "B" cannot sync with SFDC campaign "Bad": statuses only in the program: Registered, Attended; '
        "only in the campaign: Waitlisted. Rename or remove statuses so both sides match. (1 member)"
    )
    assert '"A"' not in check.detail


def test_programs_with_sync_turned_off_are_not_checked(
    sf: Salesforce, adapter: SalesforceAdapter, tmp_path: Path
) -> None:
    webinar = sf.Campaign.create({"Name": "Q4 Webinar"})["id"]
    add_member(sf, webinar, "ann@example.com", "Sent")
    _, rule_set = rules(tmp_path)

    per_program = program_check(run_doctor(adapter, EngineSettings(sync_disabled_programs=["Q4 Webinar"]), rule_set))
    assert per_program.status == "pass"
    assert per_program.detail == 'nothing to check; sync turned off for "Q4 Webinar"'

    everywhere = run_doctor(adapter, EngineSettings(campaign_sync=False), rule_set)
    assert program_check(everywhere).status == "skip"
    assert [c.status for c in everywhere if c.name == CAMPAIGN_SYNC] == ["fail"]


def test_rules_without_synced_programs_pass(adapter: SalesforceAdapter, tmp_path: Path) -> None:
    _, rule_set = rules(tmp_path, 'program "Unsynced" { channel "Webinar" }')
    check = program_check(run_doctor(adapter, EngineSettings(), rule_set))
    assert (check.status, check.detail) == ("pass", "no program syncs with an SFDC campaign")


def test_without_rules_the_check_is_not_run(adapter: SalesforceAdapter) -> None:
    checks = run_doctor(adapter, EngineSettings())
    assert PROGRAM_STATUSES not in [c.name for c in checks]
    assert len(checks) == 6


def test_skipped_when_salesforce_refuses_the_session(org: RunningEmulator, tmp_path: Path) -> None:
    settings = SalesforceSettings(
        instance_url=org.instance_url, session_id="00Dbad!token-never-printed", ca_file=org.ca_file, max_retries=1
    )
    _, rule_set = rules(tmp_path)

    checks = run_doctor(SalesforceAdapter(settings, sleep=lambda _s: None), EngineSettings(), rule_set)

    assert [c.status for c in checks if c.name == REACHABLE] == ["fail"]
    assert program_check(checks).status == "skip"


# ---------------------------------------------------------------------------------------------- the command
def settings_file(org: RunningEmulator, tmp_path: Path) -> str:
    path = tmp_path / "sfdc.env"
    lines = [
        f"SMARTCAMPAIGN_SFDC_INSTANCE_URL={org.instance_url}",
        f"SMARTCAMPAIGN_SFDC_SESSION_ID={org.token}",
        f"SMARTCAMPAIGN_SFDC_CA_FILE={org.ca_file}",
        "SMARTCAMPAIGN_SFDC_MAX_RETRIES=1",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def test_doctor_rules_reports_the_mismatch(org: RunningEmulator, sf: Salesforce, tmp_path: Path) -> None:
    webinar = sf.Campaign.create({"Name": "Q4 Webinar"})["id"]
    add_member(sf, webinar, "ann@example.com", "Sent")
    path, _ = rules(tmp_path)
    env = settings_file(org, tmp_path)
    runner = CliRunner()

    text = runner.invoke(doctor_command, ["--settings", env, "--rules", str(path)], catch_exceptions=False)
    assert text.exit_code == 1, text.output
    assert "6 passed, 1 failed" in text.stdout
    flat = " ".join(text.stdout.split())
    assert "Program sync statuses match" in flat
    for fragment in ("Q4 Webinar", "Invited", "Registered", "Attended", "Sent", "Responded"):
        assert fragment in flat

    as_json = runner.invoke(
        doctor_command, ["--settings", env, "--rules", str(path), "--format", "json"], catch_exceptions=False
    )
    assert as_json.exit_code == 1
    body = json.loads(as_json.stdout)
    [check] = [c for c in body["checks"] if c["name"] == PROGRAM_STATUSES]
    assert check["status"] == "fail" and check["fix"] == FIX
    assert check["detail"].startswith('program "Q4 Webinar" cannot sync with SFDC campaign "Q4 Webinar"')
    assert org.token not in text.output + as_json.output

    without = runner.invoke(doctor_command, ["--settings", env], catch_exceptions=False)
    assert without.exit_code == 0, without.output
    assert "6 passed, 0 failed" in without.stdout


def test_doctor_rules_with_errors_is_a_usage_error(org: RunningEmulator, tmp_path: Path) -> None:
    path = tmp_path / "broken.campaign"
    path.write_text('program "P" { channel "No Such Channel" }\n', encoding="utf-8")
    result = CliRunner().invoke(
        doctor_command, ["--settings", settings_file(org, tmp_path), "--rules", str(path)], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "error(s): nothing was checked" in result.stderr
