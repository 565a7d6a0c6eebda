"""`smartcampaign sync --once` through click's CliRunner, against the HTTPS emulator."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from simple_salesforce.api import Salesforce
from sync_helpers import campaign, lead, member, mirror_members, settings_file

from engine.cli.salesforce import sync_command
from engine.emulator.testing import RunningEmulator
from engine.store.store import Store

BAD_TOKEN = "00Dbadtoken!AQ-this-is-a-secret-that-must-never-be-printed"


def run(*args: str) -> Result:
    return CliRunner().invoke(sync_command, list(args), catch_exceptions=False)


def seed(sf: Salesforce) -> str:
    webinar = campaign(sf, "Webinar", ("Attended",))
    member(sf, webinar, lead(sf, "ann@example.com"), "Attended")
    member(sf, webinar, lead(sf, "bob@example.com"))
    return webinar


def test_sync_once_prints_a_table(org: RunningEmulator, sf: Salesforce, tmp_path: Path, db_url: str) -> None:
    seed(sf)
    result = run("--once", "--db", db_url, "--settings", settings_file(org, tmp_path / "sfdc.env"))

    assert result.exit_code == 0, result.output
    assert "Salesforce sync" in result.stdout
    assert "CampaignMembers read" in result.stdout
    assert "first sync: no cursor yet" in result.stdout
    assert org.token not in result.output
    store = Store.open(db_url)
    try:
        assert mirror_members(store, "Webinar") == {"ann@example.com": "Attended", "bob@example.com": "Sent"}
    finally:
        store.close()


def test_sync_once_json(org: RunningEmulator, sf: Salesforce, tmp_path: Path, db_url: str) -> None:
    webinar = seed(sf)
    env = settings_file(org, tmp_path / "sfdc.env")
    first = run("--once", "--db", db_url, "--settings", env, "--format", "json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["added"], report["members_seen"], report["resync"]) == (2, 2, True)
    assert report["api_calls"] == 4

    member(sf, webinar, lead(sf, "cat@example.com"))
    second = json.loads(run("--once", "--db", db_url, "--settings", env, "--format", "json").stdout)
    assert (second["added"], second["resync"]) == (1, False)
    assert second["cursor_before"] == report["cursor_after"]


def test_sync_once_runs_rules(org: RunningEmulator, sf: Salesforce, tmp_path: Path, db_url: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "welcome.campaign").write_text(
        'campaign "Welcome" {\n'
        '    trigger added to sfdc campaign "Webinar"\n'
        '    flow {\n        add to sfdc campaign "Nurture" with status "Sent"\n    }\n}\n',
        encoding="utf-8",
    )
    webinar = campaign(sf, "Webinar", ("Attended",))
    member(sf, webinar, lead(sf, "old@example.com"), "Attended")
    nurture = campaign(sf, "Nurture")
    env = settings_file(org, tmp_path / "sfdc.env")

    # the first sync copies what Salesforce holds: set-up, not activity, so nothing runs
    first = run("--once", "--db", db_url, "--settings", env, "--rules", str(rules), "--format", "json")
    assert first.exit_code == 0, first.output
    assert sf.query(f"SELECT COUNT() FROM CampaignMember WHERE CampaignId = '{nurture}'")["totalSize"] == 0

    member(sf, webinar, lead(sf, "ann@example.com"), "Attended")
    member(sf, webinar, lead(sf, "bob@example.com"))
    org.advance_clock(120)
    result = run("--once", "--db", db_url, "--settings", env, "--rules", str(rules), "--format", "json")

    assert result.exit_code == 0, result.output
    members = sf.query(f"SELECT LeadId FROM CampaignMember WHERE CampaignId = '{nurture}'")["records"]
    assert len(members) == 2  # the two additions since the first sync ran the flow


def test_bad_token_exits_1_without_printing_it(org: RunningEmulator, tmp_path: Path, db_url: str) -> None:
    env = settings_file(org, tmp_path / "sfdc.env", token=BAD_TOKEN)

    result = run("--once", "--db", db_url, "--settings", env)

    assert result.exit_code == 1
    assert "session expired or is invalid" in result.stderr
    assert "Traceback" not in result.output
    assert BAD_TOKEN not in result.output and "secret" not in result.output


def test_unreachable_salesforce_exits_1(tmp_path: Path, db_url: str) -> None:
    env = tmp_path / "sfdc.env"
    env.write_text(
        "SMARTCAMPAIGN_SFDC_INSTANCE_URL=https://127.0.0.1:9\n"
        f"SMARTCAMPAIGN_SFDC_SESSION_ID={BAD_TOKEN}\nSMARTCAMPAIGN_SFDC_MAX_RETRIES=1\n",
        encoding="utf-8",
    )

    result = run("--once", "--db", db_url, "--settings", str(env))

    assert result.exit_code == 1
    assert "cannot reach Salesforce" in result.stderr
    assert BAD_TOKEN not in result.output


def test_campaign_sync_turned_off_exits_1(org: RunningEmulator, tmp_path: Path, db_url: str) -> None:
    env = settings_file(org, tmp_path / "sfdc.env", SMARTCAMPAIGN_CAMPAIGN_SYNC="false")

    result = run("--once", "--db", db_url, "--settings", env)

    assert result.exit_code == 1
    assert "campaign sync is turned off" in result.stderr


def test_usage_errors_exit_2(org: RunningEmulator, tmp_path: Path, db_url: str) -> None:
    env = settings_file(org, tmp_path / "sfdc.env")
    broken = tmp_path / "broken.campaign"
    broken.write_text('campaign "X" {\n    trigger nonsense\n}\n', encoding="utf-8")

    rules = run("--once", "--db", db_url, "--settings", env, "--rules", str(broken))
    assert rules.exit_code == 2
    assert "broken.campaign:2:" in rules.stderr

    bad_url = tmp_path / "bad.env"
    bad_url.write_text(f"SMARTCAMPAIGN_SFDC_INSTANCE_URL=http://insecure\nSMARTCAMPAIGN_SFDC_SESSION_ID={BAD_TOKEN}\n")
    settings = run("--once", "--db", db_url, "--settings", str(bad_url))
    assert settings.exit_code == 2
    assert "SMARTCAMPAIGN_SFDC_INSTANCE_URL" in settings.stderr and "https://" in settings.stderr
    assert BAD_TOKEN not in settings.output

    missing = run("--once", "--settings", str(tmp_path / "nope.env"))
    assert missing.exit_code == 2

    bad_format = run("--once", "--format", "yaml")
    assert bad_format.exit_code == 2
