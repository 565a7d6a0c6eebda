"""`smartcampaign schedule RULES`: the next runs of every batch campaign, as a table or JSON, across a DST change."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from engine.cli import cli

RULES = """
timezone "Europe/Berlin"

campaign "Weekly Digest" {
    schedule every week on sunday at 02:30
    limit 500
    flow {
        add to sfdc campaign "Seen" with status "Sent"
    }
}

campaign "Launch" {
    schedule at 2026-03-30T09:00
    timezone "America/New_York"
    flow {
        add to sfdc campaign "Seen" with status "Sent"
    }
}

campaign "Welcome" {
    trigger added to sfdc campaign "Signups"
    flow {
        add to sfdc campaign "Seen" with status "Sent"
    }
}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["schedule", *args], prog_name="smartcampaign")
    return result.exit_code, result.output


def rules(tmp_path: Path, text: str = RULES) -> str:
    path = tmp_path / "batch.campaign"
    path.write_text(text)
    return str(path)


def test_json_lists_the_next_runs_in_local_time_and_utc(tmp_path: Path) -> None:
    code, out = run(rules(tmp_path), "--from", "2026-03-20T00:00", "--count", "2", "--format", "json")
    assert code == 0, out
    assert json.loads(out) == {
        "from": "2026-03-20T00:00Z",
        "campaigns": [
            {
                "campaign": "Weekly Digest",
                "schedule": "schedule every week on sunday at 02:30",
                "timezone": "Europe/Berlin",
                "limit": 500,
                "active": True,
                "next_runs": [  # 02:30 does not exist on 29 March in Berlin: the moment after the gap
                    {"local": "2026-03-22T02:30+01:00", "utc": "2026-03-22T01:30Z"},
                    {"local": "2026-03-29T03:30+02:00", "utc": "2026-03-29T01:30Z"},
                ],
            },
            {
                "campaign": "Launch",
                "schedule": "schedule at 2026-03-30T09:00",
                "timezone": "America/New_York",
                "limit": None,
                "active": True,
                "next_runs": [{"local": "2026-03-30T09:00-04:00", "utc": "2026-03-30T13:00Z"}],
            },
        ],
    }


def test_the_table(tmp_path: Path) -> None:
    code, out = run(rules(tmp_path), "--from", "2026-03-31T00:00+02:00")
    assert code == 0, out
    assert "Next runs after 2026-03-30T22:00Z" in out
    lines = out.splitlines()
    digest = next(line for line in lines if "Weekly Digest" in line)
    for cell in (
        "every week on sunday at 02:30",
        "Europe/Berlin",
        "2026-04-05T02:30+02:00",
        "2026-04-05T00:30Z",
        "500",
    ):
        assert cell in digest
    assert any("2026-04-12T02:30+02:00" in line for line in lines)
    assert any("2026-04-19T02:30+02:00" in line for line in lines)
    launch = next(line for line in lines if "Launch" in line)
    assert "(no more runs)" in launch and "none" in launch
    assert "Welcome" not in out


def test_usage_and_rule_errors(tmp_path: Path) -> None:
    code, out = run(rules(tmp_path), "--from", "tomorrow")
    assert code == 2 and '--from "tomorrow" is not a date and time' in out
    code, out = run(rules(tmp_path, 'campaign "X" {\n    schedule every day at 25:00\n}\n'))
    assert code == 1 and "nothing listed" in out
    code, out = run(
        rules(tmp_path, RULES.split("campaign")[0] + 'campaign "W" {\n    trigger campaign is requested\n}\n')
    )
    assert code == 0 and "no batch campaigns" in out
    code, out = run(str(tmp_path / "missing"))
    assert code == 2
