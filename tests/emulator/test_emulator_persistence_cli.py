"""State in SQLite survives a restart; the `emulator` click command starts, prints how to connect, and stops."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests
from click.testing import CliRunner

from engine.cli.emulator import emulator_command
from engine.emulator.testing import RunningEmulator


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with RunningEmulator(tmp_path, quota=500) as org:
        sf = org.client()
        campaign_id = sf.Campaign.create({"Name": "Webinar"})["id"]
        lead_id = sf.Lead.create({"LastName": "Lee", "Company": "Acme"})["id"]
        sf.CampaignMember.create({"CampaignId": campaign_id, "LeadId": lead_id, "Status": "Responded"})
        deleted_id = sf.Lead.create({"LastName": "Gone", "Company": "Acme"})["id"]
        sf.Lead.delete(deleted_id)
        issued = org.password_client().session_id
        port, ca = org.port, Path(org.ca_file).read_bytes()

        org.restart()
        assert org.port == port and Path(org.ca_file).read_bytes() == ca  # clients keep their settings
        # the old client's pooled connection was closed by the restart; requests reconnects
        member = sf.query("SELECT Status, HasResponded, Lead.LastName FROM CampaignMember")["records"][0]
        assert (member["Status"], member["HasResponded"], member["Lead"]["LastName"]) == ("Responded", True, "Lee")
        assert sf.query_all("SELECT Id FROM Lead WHERE IsDeleted = true", include_deleted=True)["totalSize"] == 1
        assert org.client(token=issued).query("SELECT COUNT() FROM Lead")["totalSize"] == 1
        assert org.stats()["api_usage"]["used"] == 8  # logins do not count
        new_id = sf.Lead.create({"LastName": "New", "Company": "Acme"})["id"]
        assert new_id not in (lead_id, deleted_id)


def test_command_help() -> None:
    result = CliRunner().invoke(emulator_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--data",
        "--token",
        "--cert-dir",
        "--quota",
        "--error-rate",
        "--latency-ms",
        "--lock-rate",
    ):
        assert option in result.output
    bad = CliRunner().invoke(emulator_command, ["--error-statuses", "404"])
    assert bad.exit_code == 2


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    code = "from engine.cli.emulator import emulator_command; emulator_command()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--data", str(tmp_path / "org.sqlite3"), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    info: dict[str, str] = {}
    for line in process.stdout:
        found = re.match(r"^\s+(instance URL|access token|CA file)\s+(\S+)", line)
        if found:
            info[found.group(1)] = found.group(2)
        if line.startswith("Ctrl-C"):
            break
    assert set(info) == {"instance URL", "access token", "CA file"}, info
    return process, info


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=15) == 0


def test_command_serves_and_keeps_its_token(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    process, info = _start(tmp_path, "--cert-dir", str(cert_dir), "--quota", "50")
    try:
        assert info["CA file"] == str(cert_dir / "cert.pem")
        session = requests.Session()
        session.verify = info["CA file"]
        session.trust_env = False
        response = session.get(
            f"{info['instance URL']}/services/data/v59.0/limits",
            headers={"Authorization": f"Bearer {info['access token']}"},
            timeout=10,
        )
        assert response.status_code == 200
        assert response.json()["DailyApiRequests"] == {"Max": 50, "Remaining": 49}
        session.close()
    finally:
        _stop(process)
    process, again = _start(tmp_path, "--cert-dir", str(cert_dir))
    _stop(process)
    assert again["access token"] == info["access token"]  # made once, kept in --data
