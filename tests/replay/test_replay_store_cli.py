"""`smartcampaign replay --store FILE`: a durable replay, killed by the fault variable and run again, prints the
result an uninterrupted replay prints; bad input still exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RULES = """
campaign "Sweep" {
    schedule every day at 09:00
    filter member of sfdc campaign "Webinar"
    qualify every time
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        request campaign "Kit"
    }
}

campaign "Kit" {
    trigger campaign is requested
    qualify every time
    flow {
        wait until 2026-11-03T12:00
        change status in sfdc campaign "Nurture" to "Responded"
    }
}
"""

WORLD = {
    "now": "2026-11-01T00:00:00Z",
    "persons": [{"email": "ann@example.com", "sfdc_id": "00Q000000000001AAA"}, {"email": "bob@example.com"}],
    "sfdc_campaigns": [{"name": "Webinar"}, {"name": "Nurture"}],
}

EVENTS = [
    {
        "type": "added_to_sfdc_campaign",
        "person": "ann@example.com",
        "campaign": "Webinar",
        "status": "Sent",
        "at": "2026-11-02T08:00:00Z",
    },
    {"type": "campaign_requested", "person": "bob@example.com", "campaign": "Kit", "at": "2026-11-02T10:00:00Z"},
    {
        "type": "added_to_sfdc_campaign",
        "person": "bob@example.com",
        "campaign": "Webinar",
        "status": "Sent",
        "at": "2026-11-02T11:00:00Z",
    },
]


def _files(tmp_path: Path) -> list[str]:
    (tmp_path / "rules.campaign").write_text(RULES, encoding="utf-8")
    (tmp_path / "world.json").write_text(json.dumps(WORLD), encoding="utf-8")
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    return [
        str(tmp_path / "rules.campaign"),
        "--world",
        str(tmp_path / "world.json"),
        "--events",
        str(tmp_path / "events.jsonl"),
        "--until",
        "2026-11-04T00:00:00Z",
    ]


def _cli(args: list[str], fault: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SMARTCAMPAIGN_FAULT_EXIT_AFTER_RUNS"}
    if fault is not None:
        env["SMARTCAMPAIGN_FAULT_EXIT_AFTER_RUNS"] = str(fault)
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", "replay", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_killed_and_continued_prints_the_uninterrupted_result(tmp_path: Path) -> None:
    args = _files(tmp_path)
    plain = _cli(args)
    assert plain.returncode == 0, plain.stderr
    expected = json.loads(plain.stdout)
    assert [r["campaign"] for r in expected["runs"]] == ["Sweep", "Kit", "Kit", "Sweep", "Kit", "Sweep", "Kit"]
    for fault in (2, 4, 6):
        store = tmp_path / f"replay-{fault}.db"
        killed = _cli([*args, "--store", str(store)], fault)
        assert killed.returncode == 137 and killed.stdout == "", killed.stderr
        again = _cli([*args, "--store", str(store)])
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout) == expected


def test_bad_input_in_a_durable_replay_exits_2(tmp_path: Path) -> None:
    args = _files(tmp_path)
    (tmp_path / "events.jsonl").write_text(
        json.dumps({"type": "campaign_requested", "person": "ann@example.com", "campaign": "Sweep"}) + "\n",
        encoding="utf-8",
    )
    done = _cli([*args, "--store", str(tmp_path / "r.db")])
    assert done.returncode == 2
    assert 'events.jsonl:1: campaign: "Sweep" cannot be requested' in done.stderr
    assert "Traceback" not in done.stderr


def test_a_stopped_replay_goes_on_only_with_its_own_rules_world_and_events(tmp_path: Path) -> None:
    args = _files(tmp_path)
    store = str(tmp_path / "r.db")
    killed = _cli([*args, "--store", store], 4)
    assert killed.returncode == 137
    rules = tmp_path / "rules.campaign"
    original = rules.read_text(encoding="utf-8")

    rules.write_text(original + '\ncampaign "Later" {\n    trigger campaign is requested\n    flow { }\n}\n')
    other_rules = _cli([*args, "--store", store])
    assert other_rules.returncode == 2 and other_rules.stdout == ""
    assert f"--store {store}: it holds a replay of other rules or another world" in other_rules.stderr
    rules.write_text(original, encoding="utf-8")

    events = tmp_path / "events.jsonl"
    lines = events.read_text(encoding="utf-8").splitlines(keepends=True)
    events.write_text("".join(lines[:1]), encoding="utf-8")
    fewer = _cli([*args, "--store", store])
    assert fewer.returncode == 2 and "were given; continue it with the same events" in fewer.stderr
    changed = [json.loads(line) for line in lines]
    changed[0]["person"] = "zed@example.com" if changed[0]["person"] != "zed@example.com" else "amy@example.com"
    events.write_text("".join(json.dumps(e) + "\n" for e in changed), encoding="utf-8")
    different = _cli([*args, "--store", store])
    assert different.returncode == 2 and "events differ from the ones it processed" in different.stderr
    assert "Traceback" not in other_rules.stderr + fewer.stderr + different.stderr

    events.write_text("".join(lines), encoding="utf-8")  # the same inputs: it goes on, and ends as one run would
    again = _cli([*args, "--store", store])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(_cli(args).stdout)
