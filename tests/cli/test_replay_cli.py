"""`smartcampaign replay` (REPLAY.md): exit codes, what goes to stdout and stderr, messages for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli

ROOT = Path(__file__).resolve().parents[2]
SMARTCAMPAIGN = Path(sys.executable).parent / "smartcampaign"

RULES = """\
campaign "Follow-up" {
    trigger added to sfdc campaign "Webinar" with status "Attended"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
    }
}

program "Q4" { channel "Webinar" }
"""

WORLD = {
    "now": "2026-11-01T00:00:00Z",
    "persons": [{"email": "ann@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"}],
    "sfdc_campaigns": [
        {"name": "Webinar", "id": "701000000000001AAA", "statuses": ["Sent", "Registered", "Attended"]},
        {"name": "Nurture", "id": "701000000000002AAA", "statuses": ["Sent", "Responded"]},
    ],
}

EVENT = {
    "type": "added_to_sfdc_campaign",
    "person": "ann@example.com",
    "campaign": "Webinar",
    "status": "Attended",
    "at": "2026-11-02T09:00:00Z",
}


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield


class Files:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rules = folder / "rules.campaign"
        self.world = folder / "world.json"
        self.events = folder / "events.jsonl"
        self.rules.write_text(RULES, encoding="utf-8")
        self.world.write_text(json.dumps(WORLD), encoding="utf-8")
        self.write_events([EVENT])

    def write_events(self, events: list[dict | str]) -> None:
        lines = [e if isinstance(e, str) else json.dumps(e) for e in events]
        self.events.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def args(self, *extra: str) -> list[str]:
        return ["replay", str(self.rules), "--world", str(self.world), "--events", str(self.events), *extra]


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


def run(args: list[str], stdin: str | None = None):
    result = CliRunner().invoke(cli, args, input=stdin)
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def unusable(files: Files, events: list[dict | str]) -> str:
    """Replays `events` and expects exit 2 with one message on stderr and nothing on stdout."""
    files.write_events(events)
    result = run(files.args())
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("smartcampaign replay: ")
    return result.stderr


# ------------------------------------------------------------------------------ exit 0


class TestSuccess:
    def test_exit_0_with_only_json_on_stdout(self, files: Files):
        result = run(files.args())
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert set(data) >= {"runs", "world", "errors"}
        [run_] = data["runs"]
        assert (run_["campaign"], run_["person"], run_["at"]) == (
            "Follow-up",
            "ann@example.com",
            "2026-11-02T09:00:00Z",
        )
        assert run_["steps"][0]["outcome"] == "done"
        nurture = next(c for c in data["world"]["sfdc_campaigns"] if c["name"] == "Nurture")
        assert nurture["members"] == {"ann@example.com": "Sent"}
        assert result.stderr == ""

    def test_the_world_may_be_left_out(self, files: Files):
        files.write_events([])
        result = run(["replay", str(files.rules), "--events", str(files.events)])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["world"]["sfdc_campaigns"] == []

    def test_events_from_stdin(self, files: Files):
        stdin = json.dumps(EVENT) + "\n"
        result = run(["replay", str(files.rules), "--world", str(files.world), "--events", "-"], stdin=stdin)
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)["runs"]) == 1

    def test_world_from_stdin(self, files: Files):
        result = run(
            ["replay", str(files.rules), "--world", "-", "--events", str(files.events)], stdin=json.dumps(WORLD)
        )
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)["runs"]) == 1

    def test_blank_and_comment_lines_are_skipped(self, files: Files):
        files.write_events(["", "# a comment", json.dumps(EVENT), "   "])
        result = run(files.args())
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)["runs"]) == 1

    def test_action_errors_are_in_the_result_not_the_exit_code(self, files: Files):
        files.rules.write_text(RULES.replace('with status "Sent"', 'with status "Bogus"'), encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 0
        step = json.loads(result.stdout)["runs"][0]["steps"][0]
        assert step["outcome"] == "error"

    def test_an_at_earlier_than_the_clock_warns_and_still_runs(self, files: Files):
        files.write_events([EVENT, {**EVENT, "status": "Registered", "at": "2026-11-01T09:00:00Z"}])
        result = run(files.args())
        assert result.exit_code == 0
        assert "warning" in result.stderr
        assert "2026-11-01T09:00:00Z" in result.stderr and "earlier than the clock" in result.stderr
        assert f"{files.events}:2" in result.stderr
        world = json.loads(result.stdout)["world"]
        webinar = next(c for c in world["sfdc_campaigns"] if c["name"] == "Webinar")
        assert webinar["members"] == {"ann@example.com": "Registered"}

    def test_until_and_max_depth(self, files: Files):
        files.rules.write_text(
            RULES.replace(
                'add to sfdc campaign "Nurture" with status "Sent"',
                'add to sfdc campaign "Nurture" with status "Sent"\n        wait 3 days\n'
                '        change status in sfdc campaign "Nurture" to "Responded"',
            ),
            encoding="utf-8",
        )
        result = run(files.args("--until", "2026-11-03T00:00:00Z", "--max-depth", "4"))
        assert result.exit_code == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["world"]["now"] == "2026-11-03T00:00:00Z"
        assert [s["action"] for s in data["runs"][0]["steps"]] == ["add_to_sfdc_campaign", "wait"]

    def test_no_program_sync_flag(self, files: Files):
        files.rules.write_text(
            RULES.replace('channel "Webinar" }', 'channel "Webinar" sync with sfdc campaign "Nurture" }')
        )
        files.write_events([])
        synced = json.loads(run(files.args()).stdout)
        unsynced = json.loads(run(files.args("--no-program-sync")).stdout)
        nurture = [next(c for c in d["world"]["sfdc_campaigns"] if c["name"] == "Nurture") for d in (synced, unsynced)]
        assert nurture[0]["type"] == "Webinar"
        assert "type" not in nurture[1] and nurture[1]["statuses"] == ["Sent", "Responded"]

    def test_text_format_prints_the_runs_and_the_membership_changes(self, files: Files):
        result = run(files.args("--format", "text"))
        assert result.exit_code == 0, result.stderr
        out = result.stdout
        assert "Runs (1)" in out
        assert "Follow-up" in out and "ann@example.com" in out
        assert "Membership changes" in out
        assert "Nurture" in out and "Sent" in out
        assert "No errors." in out
        with pytest.raises(json.JSONDecodeError):
            json.loads(out)

    def test_text_format_lists_errors(self, files: Files):
        files.rules.write_text(
            'campaign "Ping" { trigger added to sfdc campaign "Nurture" qualify every time '
            'flow { remove from sfdc campaign "Nurture" } }\n'
            'campaign "Pong" { trigger removed from sfdc campaign "Nurture" qualify every time '
            'flow { add to sfdc campaign "Nurture" with status "Sent" } }\n',
            encoding="utf-8",
        )
        files.write_events([{**EVENT, "campaign": "Nurture", "status": "Sent"}])
        result = run(files.args("--format", "text", "--max-depth", "2"))
        assert result.exit_code == 0
        assert "Errors (1)" in result.stdout
        assert "cascade deeper than 2" in result.stdout


# ------------------------------------------------------------------------------ exit 1: rule errors


class TestRuleErrors:
    def test_exit_1_with_file_line_col_source_and_caret(self, files: Files):
        files.rules.write_text(
            'campaign "Bad" {\n    trigger added to sfdc campaign "Webinar"\n    flow { wait 2 fortnights }\n}\n',
            encoding="utf-8",
        )
        result = run(files.args())
        assert result.exit_code == 1
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        header = lines[0]
        assert header.startswith(f"{files.rules}:3:")
        assert ": error: " in header
        column = int(header.split(":")[2])
        source = "    flow { wait 2 fortnights }"
        prefix = lines[1][: -len(source)]
        assert lines[1] == prefix + source
        # the caret sits under the column of the source line
        assert lines[2].index("^") == len(prefix) + column - 1
        assert source[column - 1 :].startswith("fortnights")

    def test_duplicate_names_are_an_error(self, files: Files):
        files.rules.write_text(RULES + RULES.split("program")[0], encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 1
        assert "Follow-up" in result.stderr
        assert result.stdout == ""

    def test_missing_rules_path_is_unusable_input(self, files: Files):
        result = run(["replay", str(files.folder / "nope"), "--events", str(files.events)])
        assert result.exit_code == 2
        assert "nope" in result.stderr


# ------------------------------------------------------------------------------ exit 2: unusable input


class TestUnusableInput:
    def test_missing_events_file(self, files: Files):
        result = run(
            ["replay", str(files.rules), "--world", str(files.world), "--events", str(files.folder / "x.jsonl")]
        )
        assert result.exit_code == 2
        assert "x.jsonl" in result.stderr and "no such events file" in result.stderr
        assert result.stdout == ""

    def test_missing_world_file(self, files: Files):
        result = run(
            ["replay", str(files.rules), "--world", str(files.folder / "w.json"), "--events", str(files.events)]
        )
        assert result.exit_code == 2
        assert "w.json" in result.stderr and "no such world file" in result.stderr

    def test_bad_json_line(self, files: Files):
        message = unusable(files, [EVENT, "{not json"])
        assert f"{files.events}:2:" in message
        assert "not valid JSON" in message

    def test_a_line_that_is_not_an_object(self, files: Files):
        message = unusable(files, ["[1, 2]"])
        assert f"{files.events}:1:" in message and "JSON object" in message

    def test_unknown_type(self, files: Files):
        message = unusable(files, [{**EVENT, "type": "added_to_campaign"}])
        assert f"{files.events}:1:" in message
        assert "type" in message and "added_to_campaign" in message
        assert "added_to_sfdc_campaign" in message  # what was expected

    def test_missing_person(self, files: Files):
        event = dict(EVENT)
        del event["person"]
        message = unusable(files, [event])
        assert f"{files.events}:1: person: required field is missing" in message

    def test_person_is_not_an_email(self, files: Files):
        message = unusable(files, [{**EVENT, "person": "ann"}])
        assert "person" in message and "email" in message

    def test_bad_at(self, files: Files):
        message = unusable(files, [{**EVENT, "at": "next tuesday"}])
        assert f"{files.events}:1: at:" in message
        assert "next tuesday" in message and "ISO 8601" in message

    def test_unknown_field(self, files: Files):
        message = unusable(files, [{**EVENT, "stauts": "Sent"}])
        assert "stauts" in message and "unknown field" in message

    def test_missing_status(self, files: Files):
        event = dict(EVENT)
        del event["status"]
        message = unusable(files, [event])
        assert "status" in message

    def test_unknown_campaign_names_the_known_ones(self, files: Files):
        message = unusable(files, [EVENT, {**EVENT, "campaign": "Webinar 2026"}])
        assert f"{files.events}:2:" in message
        assert '"Webinar 2026"' in message
        assert "Nurture" in message and "Webinar" in message

    def test_unknown_campaign_id(self, files: Files):
        event = {k: v for k, v in EVENT.items() if k != "campaign"}
        message = unusable(files, [{**event, "campaign_id": "701999999999999AAA"}])
        assert "campaign_id" in message and "701999999999999AAA" in message

    def test_unknown_status_names_the_statuses(self, files: Files):
        message = unusable(files, [{**EVENT, "status": "Attnded"}])
        assert f"{files.events}:1: status:" in message
        assert '"Attnded"' in message
        assert "Sent, Registered, Attended" in message

    def test_unknown_program(self, files: Files):
        message = unusable(
            files,
            [{"type": "program_status_changed", "person": "ann@example.com", "program": "Q5", "status": "Invited"}],
        )
        assert '"Q5"' in message and "Q4" in message

    def test_status_not_in_the_program_channel(self, files: Files):
        message = unusable(
            files, [{"type": "program_status_changed", "person": "ann@example.com", "program": "Q4", "status": "Sent"}]
        )
        assert '"Sent"' in message and "Not in Program" in message and "Invited" in message

    @pytest.mark.parametrize(
        "world, path",
        [
            ({**WORLD, "persons": [{"email": "ann@example.com"}, {"email": "bob"}]}, "persons[1].email"),
            ({**WORLD, "sfdc_campaigns": [{"name": "X", "statuses": []}]}, "sfdc_campaigns[0].statuses"),
            ({**WORLD, "sfdc_campaigns": [{"statuses": ["Sent"]}]}, "sfdc_campaigns[0].name"),
            ({**WORLD, "now": "yesterday"}, "now"),
            ({**WORLD, "persons": [{"email": "a@example.com", "sfdc_type": "Account"}]}, "persons[0].sfdc_type"),
        ],
        ids=["email", "statuses", "name", "now", "sfdc_type"],
    )
    def test_bad_world_names_the_json_path(self, files: Files, world: dict, path: str):
        files.world.write_text(json.dumps(world), encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 2, result.stderr
        assert f"{files.world}: {path}:" in result.stderr
        assert result.stdout == ""

    def test_world_member_with_a_status_the_campaign_lacks(self, files: Files):
        world = json.loads(json.dumps(WORLD))
        world["sfdc_campaigns"][0]["members"] = {"ann@example.com": "Responded"}
        files.world.write_text(json.dumps(world), encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 2
        assert "sfdc_campaigns[0].members" in result.stderr and '"Responded"' in result.stderr

    def test_campaign_and_campaign_id_that_disagree(self, files: Files):
        message = unusable(files, [{**EVENT, "campaign_id": "701000000000002AAA"}])
        assert "campaign_id" in message and "701000000000001AAA" in message

    def test_a_person_listed_twice_in_the_world(self, files: Files):
        world = {**WORLD, "persons": [{"email": "ann@example.com"}, {"email": "ANN@example.com"}]}
        files.world.write_text(json.dumps(world), encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 2
        assert "persons" in result.stderr and "twice" in result.stderr

    def test_a_campaign_listed_twice_in_the_world(self, files: Files):
        world = {**WORLD, "sfdc_campaigns": [{"name": "Webinar"}, {"name": "Webinar"}]}
        files.world.write_text(json.dumps(world), encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 2
        assert "sfdc_campaigns[1].name" in result.stderr

    def test_a_world_program_the_rules_do_not_declare(self, files: Files):
        files.world.write_text(json.dumps({**WORLD, "programs": {"Q9": {}}}), encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 2
        assert "programs.Q9" in result.stderr and "Q4" in result.stderr

    @pytest.mark.parametrize("option", [["--until", "soon"], ["--max-depth", "-1"], ["--format", "xml"]])
    def test_bad_options_are_usage_errors(self, files: Files, option: list[str]):
        result = run(files.args(*option))
        assert result.exit_code == 2
        assert result.stdout == ""
        assert option[0] in result.stderr

    def test_world_that_is_not_json(self, files: Files):
        files.world.write_text("{", encoding="utf-8")
        result = run(files.args())
        assert result.exit_code == 2
        assert f"{files.world}:1: not valid JSON" in result.stderr

    def test_world_and_events_cannot_both_be_stdin(self, files: Files):
        result = run(["replay", str(files.rules), "--world", "-", "--events", "-"], stdin="")
        assert result.exit_code == 2
        assert "standard input" in result.stderr
        assert result.stdout == ""

    def test_nothing_is_replayed_when_a_later_line_is_bad(self, files: Files):
        """The whole file is checked before anything runs: no partial result on stdout."""
        message = unusable(files, [EVENT, EVENT, {**EVENT, "campaign": "Nope"}])
        assert f"{files.events}:3:" in message


class TestLeadCreatedByAnEarlierCampaign:
    def test_replay_exits_0_when_an_earlier_campaign_created_the_lead(self, files: Files):
        files.rules.write_text(
            RULES
            + """
campaign "A" { trigger status changed in program "Q4" flow { add to sfdc campaign "Nurture" with status "Sent" } }
campaign "B" { trigger status changed in program "Q4" flow { change status in sfdc campaign "Nurture" to "Responded" } }
""",
            encoding="utf-8",
        )
        files.write_events(
            [{"type": "program_status_changed", "person": "dan@example.com", "program": "Q4", "status": "Invited"}]
        )
        result = run(files.args())
        assert "internal error" not in result.stderr
        assert result.exit_code == 0


# ------------------------------------------------------------------------------ a real process


def _subprocess(args: list[str], stdin: str | None, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTCAMPAIGN_CACHE_DIR": str(cache), "NO_COLOR": "1"}
    command = [str(SMARTCAMPAIGN)] if SMARTCAMPAIGN.exists() else [sys.executable, "-m", "engine.cli"]
    return subprocess.run(
        command + args, input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False
    )


class TestProcess:
    def test_stdout_is_json_only_and_stdin_works(self, files: Files, tmp_path: Path):
        stdin = json.dumps(EVENT) + "\n" + json.dumps({**EVENT, "at": "2026-11-01T00:00:00Z"}) + "\n"
        proc = _subprocess(
            ["replay", str(files.rules), "--world", str(files.world), "--events", "-"], stdin, tmp_path / "cache"
        )
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert len(data["runs"]) == 1
        assert "warning" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_rule_error_and_bad_input_in_a_process(self, files: Files, tmp_path: Path):
        files.rules.write_text('campaign "X" { trigger added to sfdc campaign }\n', encoding="utf-8")
        proc = _subprocess(files.args(), None, tmp_path / "cache")
        assert proc.returncode == 1
        assert proc.stdout == ""
        assert proc.stderr.startswith(f"{files.rules}:1:")
        assert "^" in proc.stderr
        assert "Traceback" not in proc.stderr

        files.rules.write_text(RULES, encoding="utf-8")
        files.write_events(["{oops"])
        proc = _subprocess(files.args(), None, tmp_path / "cache")
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert f"{files.events}:1" in proc.stderr
        assert "Traceback" not in proc.stderr
