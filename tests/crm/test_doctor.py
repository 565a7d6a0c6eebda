"""`smartcampaign doctor` against the HTTPS emulator: each check passing and failing, with its fix."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli.salesforce import doctor_command
from engine.crm.doctor import (
    API_CALLS,
    CAMPAIGN_ACCESS,
    CAMPAIGN_SYNC,
    MARKETING_USER,
    MEMBER_ACCESS,
    REACHABLE,
    Check,
    run_doctor,
)
from engine.crm.salesforce import SalesforceAdapter
from engine.emulator.testing import RunningEmulator
from engine.model.settings import EngineSettings, SalesforceSettings

BAD_TOKEN = "00Dbadtoken!AQ-doctor-secret-never-printed"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEmulator]:
    with RunningEmulator(tmp_path_factory.mktemp("doctor-emulator")) as running:
        yield running


@pytest.fixture
def org(emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    for name in list(os.environ):
        if name.startswith("SMARTCAMPAIGN_"):
            monkeypatch.delenv(name)
    emulator.reset()
    return emulator


def adapter(org: RunningEmulator, **overrides: Any) -> SalesforceAdapter:
    values: dict[str, Any] = {"instance_url": org.instance_url, "session_id": org.token, "ca_file": org.ca_file}
    values.update(overrides)
    return SalesforceAdapter(SalesforceSettings(**values), sleep=lambda _seconds: None)


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def settings_file(org: RunningEmulator, tmp_path: Path, token: str | None = None, **extra: str) -> str:
    path = tmp_path / "sfdc.env"
    lines = [
        f"SMARTCAMPAIGN_SFDC_INSTANCE_URL={org.instance_url}",
        f"SMARTCAMPAIGN_SFDC_SESSION_ID={token or org.token}",
        f"SMARTCAMPAIGN_SFDC_CA_FILE={org.ca_file}",
        "SMARTCAMPAIGN_SFDC_MAX_RETRIES=1",
        *(f"{key}={value}" for key, value in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def doctor(*args: str) -> Result:
    return CliRunner().invoke(doctor_command, list(args), catch_exceptions=False)


def default_user_id(org: RunningEmulator) -> str:
    rows = org.client().query("SELECT Id FROM User WHERE Username = 'admin@emulator.local'")["records"]
    return str(rows[0]["Id"])


# ---------------------------------------------------------------------------------------------- all pass
def test_everything_passes(org: RunningEmulator) -> None:
    checks = run_doctor(adapter(org), EngineSettings())

    assert [c.name for c in checks] == [
        REACHABLE,
        API_CALLS,
        MARKETING_USER,
        CAMPAIGN_ACCESS,
        MEMBER_ACCESS,
        CAMPAIGN_SYNC,
    ]
    assert all(c.status == "pass" for c in checks), checks
    assert "admin@emulator.local is a Marketing User" in by_name(checks)[MARKETING_USER].detail


def test_cli_all_pass_text_and_json(org: RunningEmulator, tmp_path: Path) -> None:
    env = settings_file(org, tmp_path)

    text = doctor("--settings", env)
    assert text.exit_code == 0, text.output
    assert "✓" in text.stdout and "✗" not in text.stdout
    assert "6 passed, 0 failed" in text.stdout

    as_json = doctor("--settings", env, "--format", "json")
    assert as_json.exit_code == 0
    body = json.loads(as_json.stdout)
    assert body["ok"] is True and len(body["checks"]) == 6
    assert {c["status"] for c in body["checks"]} == {"pass"}
    assert org.token not in text.output + as_json.output


def test_password_login_finds_the_user_through_the_identity_endpoint(org: RunningEmulator) -> None:
    checks = by_name(
        run_doctor(
            SalesforceAdapter(
                SalesforceSettings(
                    username="admin@emulator.local",
                    password="a-password-to-hide",
                    security_token="tok",
                    domain=org.login_domain,
                    ca_file=org.ca_file,
                ),
                sleep=lambda _s: None,
            ),
            EngineSettings(),
        )
    )
    assert checks[REACHABLE].ok and checks[MARKETING_USER].ok
    assert "a-password-to-hide" not in json.dumps([c.to_json() for c in checks.values()])


# ---------------------------------------------------------------------------------------------- failures
def test_not_a_marketing_user_fails_with_the_fix(org: RunningEmulator, tmp_path: Path) -> None:
    org.client().User.update(default_user_id(org), {"UserPermissionsMarketingUser": False})

    checks = by_name(run_doctor(adapter(org), EngineSettings()))

    marketing = checks[MARKETING_USER]
    assert marketing.status == "fail"
    assert "admin@emulator.local is not a Marketing User" in marketing.detail
    assert "tick Marketing User" in marketing.fix and "Setup > Users" in marketing.fix
    # without the permission Salesforce does not let the user write campaigns either
    assert checks[CAMPAIGN_ACCESS].status == "fail"
    assert "Create and Edit on Campaigns" in checks[CAMPAIGN_ACCESS].fix
    assert checks[REACHABLE].ok and checks[API_CALLS].ok and checks[CAMPAIGN_SYNC].ok

    result = doctor("--settings", settings_file(org, tmp_path))
    assert result.exit_code == 1
    assert "✗" in result.stdout and "tick Marketing User" in result.stdout


def test_bad_token_fails_authentication_and_is_never_printed(org: RunningEmulator, tmp_path: Path) -> None:
    env = settings_file(org, tmp_path, token=BAD_TOKEN)

    for output_format in ("text", "json"):
        result = doctor("--settings", env, "--format", output_format)
        assert result.exit_code == 1
        assert BAD_TOKEN not in result.output
        assert "doctor-secret" not in result.output
        assert "Traceback" not in result.output

    body = json.loads(doctor("--settings", env, "--format", "json").stdout)
    checks = {c["name"]: c for c in body["checks"]}
    assert checks[REACHABLE]["status"] == "fail"
    assert "session expired or is invalid" in checks[REACHABLE]["detail"]
    assert "SMARTCAMPAIGN_SFDC_SESSION_ID" in checks[REACHABLE]["fix"]
    assert {checks[name]["status"] for name in (API_CALLS, MARKETING_USER, CAMPAIGN_ACCESS, MEMBER_ACCESS)} == {"skip"}
    assert checks[CAMPAIGN_SYNC]["status"] == "pass"


def test_unreachable_salesforce_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SMARTCAMPAIGN_"):
            monkeypatch.delenv(name)
    env = tmp_path / "sfdc.env"
    env.write_text(
        f"SMARTCAMPAIGN_SFDC_INSTANCE_URL=https://127.0.0.1:9\nSMARTCAMPAIGN_SFDC_SESSION_ID={BAD_TOKEN}\n"
        "SMARTCAMPAIGN_SFDC_MAX_RETRIES=1\n",
        encoding="utf-8",
    )

    result = doctor("--settings", str(env), "--format", "json")

    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks[REACHABLE]["status"] == "fail" and "cannot reach Salesforce" in checks[REACHABLE]["detail"]
    assert BAD_TOKEN not in result.output


def test_quota_nearly_spent_fails(org: RunningEmulator, tmp_path: Path) -> None:
    org.set_quota(maximum=1000, used=980)

    check = by_name(run_doctor(adapter(org), EngineSettings()))[API_CALLS]

    assert check.status == "fail"
    assert "of 1,000 left" in check.detail
    assert "24-hour window" in check.fix
    org.set_quota(maximum=1000, used=980)
    assert doctor("--settings", settings_file(org, tmp_path)).exit_code == 1


def test_quota_running_low_warns_but_passes(org: RunningEmulator, tmp_path: Path) -> None:
    org.set_quota(maximum=1000, used=850)

    check = by_name(run_doctor(adapter(org), EngineSettings()))[API_CALLS]

    assert (check.status, check.ok) == ("warn", True)
    result = doctor("--settings", settings_file(org, tmp_path))
    assert result.exit_code == 0 and "!" in result.stdout


def test_quota_spent_fails_and_skips_what_needs_calls(org: RunningEmulator) -> None:
    org.set_quota(maximum=1000, used=1000)

    checks = by_name(run_doctor(adapter(org), EngineSettings()))

    assert checks[REACHABLE].ok
    assert checks[API_CALLS].status == "fail" and "REQUEST_LIMIT_EXCEEDED" in checks[API_CALLS].detail
    assert checks[MARKETING_USER].status == "skip"


def test_campaign_sync_disabled_fails(org: RunningEmulator, tmp_path: Path) -> None:
    check = by_name(run_doctor(adapter(org), EngineSettings(campaign_sync=False)))[CAMPAIGN_SYNC]
    assert check.status == "fail" and "SMARTCAMPAIGN_CAMPAIGN_SYNC=true" in check.fix

    result = doctor("--settings", settings_file(org, tmp_path, SMARTCAMPAIGN_CAMPAIGN_SYNC="false"))
    assert result.exit_code == 1
    assert "SMARTCAMPAIGN_CAMPAIGN_SYNC=true" in result.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert doctor("--settings", str(tmp_path / "missing.env")).exit_code == 2
    assert doctor("--format", "xml").exit_code == 2
