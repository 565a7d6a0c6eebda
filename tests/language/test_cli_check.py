"""`smartcampaign check`: exit codes, text and JSON output, stdin, the conformance rule files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from lang_helpers import SCENARIOS, conformance_rule_files, needs_shared

from engine.cli import cli

CLEAN = """campaign "Clean" {
    trigger added to sfdc campaign "Webinar" with status "Attended"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""

WARNING_ONLY = """campaign "No trigger" {
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""

ERROR = """campaign "Broken" {
    trigger added to sfdc campaign "Webinar"
    qualify once every 0 days
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""

SYNTAX_ERROR = """campaign "Typo" {
    trigger aded to sfdc campaign "Webinar"
}
"""


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["check", *args], input=stdin, catch_exceptions=False)


def rule_file(tmp_path: Path, text: str, name: str = "rules.campaign") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def assert_no_traceback(result: Result) -> None:
    assert "Traceback" not in result.output
    assert "Traceback" not in (result.stderr or "")


# ---------------------------------------------------------------------------------- exit codes


def test_exit_0_when_clean(tmp_path: Path) -> None:
    result = run(str(rule_file(tmp_path, CLEAN)))
    assert result.exit_code == 0, result.output
    assert "1 file checked: 0 errors, 0 warnings" in result.stderr


def test_exit_0_with_only_warnings(tmp_path: Path) -> None:
    result = run(str(rule_file(tmp_path, WARNING_ONLY)))
    assert result.exit_code == 0, result.output
    assert ": warning: " in result.stderr
    assert "0 errors, 1 warning" in result.stderr


def test_exit_1_with_strict_and_warnings(tmp_path: Path) -> None:
    result = run("--strict", str(rule_file(tmp_path, WARNING_ONLY)))
    assert result.exit_code == 1


def test_strict_and_clean_is_still_0(tmp_path: Path) -> None:
    assert run("--strict", str(rule_file(tmp_path, CLEAN))).exit_code == 0


@pytest.mark.parametrize("text", [ERROR, SYNTAX_ERROR], ids=["semantic", "syntax"])
def test_exit_1_with_errors(tmp_path: Path, text: str) -> None:
    result = run(str(rule_file(tmp_path, text)))
    assert result.exit_code == 1
    assert ": error: " in result.stderr
    assert_no_traceback(result)


def test_exit_2_for_a_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.campaign"
    result = run(str(missing))
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr
    assert str(missing) in result.stderr
    assert_no_traceback(result)


def test_exit_2_without_paths() -> None:
    assert run().exit_code == 2


def test_exit_2_for_a_missing_catalog(tmp_path: Path) -> None:
    result = run("--catalog", str(tmp_path / "world.json"), str(rule_file(tmp_path, CLEAN)))
    assert result.exit_code == 2
    assert_no_traceback(result)


def test_folder_is_searched_recursively(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    rule_file(tmp_path / "a", CLEAN, "one.campaign")
    rule_file(tmp_path / "a" / "b", ERROR, "two.campaign")
    rule_file(tmp_path, "not rules at all {", "README.txt")
    result = run(str(tmp_path))
    assert result.exit_code == 1
    assert "2 files checked: 1 error, 0 warnings" in result.stderr
    assert "two.campaign:3:5: error:" in result.stderr


def test_empty_folder_is_clean(tmp_path: Path) -> None:
    result = run(str(tmp_path))
    assert result.exit_code == 0
    assert "0 files checked" in result.stderr


# ---------------------------------------------------------------------------------- text output


def test_text_output_format(tmp_path: Path) -> None:
    path = rule_file(tmp_path, ERROR)
    result = run(str(path))
    lines = result.stderr.splitlines()
    header = lines[0]
    assert re.fullmatch(rf"{re.escape(str(path))}:3:5: error: .+", header), header
    assert "qualify once every 0 days" in header
    assert lines[1] == "        qualify once every 0 days"
    assert lines[2] == "    " + "    " + "^" + "~" * (len("qualify once every 0 days") - 1)
    assert lines[-1] == "1 file checked: 1 error, 0 warnings"
    assert "see docs/errors.md#zero-window" in result.stderr


def test_text_output_of_the_syntax_error(tmp_path: Path) -> None:
    path = rule_file(tmp_path, SYNTAX_ERROR)
    lines = run(str(path)).stderr.splitlines()
    assert lines[0].startswith(f"{path}:2:13: error: unexpected `aded`")
    assert lines[1] == '        trigger aded to sfdc campaign "Webinar"'
    assert lines[2] == "                ^~~~"


def test_and_n_more_past_max_diagnostics(tmp_path: Path) -> None:
    text = "".join(f'campaign "C{i}" {{ }}\n' for i in range(5))  # two warnings each
    path = rule_file(tmp_path, text)
    result = run("--max-diagnostics", "3", str(path))
    assert result.exit_code == 0
    assert result.stderr.count(": warning: ") == 3
    assert "... and 7 more" in result.stderr
    assert "0 errors, 10 warnings" in result.stderr


def test_no_and_more_when_within_the_limit(tmp_path: Path) -> None:
    result = run("--max-diagnostics", "10", str(rule_file(tmp_path, WARNING_ONLY)))
    assert "... and" not in result.stderr


# ---------------------------------------------------------------------------------- json output


def test_json_output(tmp_path: Path) -> None:
    path = rule_file(tmp_path, ERROR + WARNING_ONLY.replace("No trigger", "Quiet"))
    result = run("--format", "json", str(path))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["files"] == 1
    assert report["errors"] == 1 and report["warnings"] == 1
    assert len(report["diagnostics"]) == 2
    for diagnostic in report["diagnostics"]:
        for key in ("file", "line", "column", "severity", "code", "message", "end_line", "end_column"):
            assert key in diagnostic
        assert diagnostic["file"] == str(path)
        assert diagnostic["severity"] in ("error", "warning")
    error = next(d for d in report["diagnostics"] if d["severity"] == "error")
    assert (error["line"], error["column"], error["code"]) == (3, 5, "zero-window")


def test_json_output_when_clean(tmp_path: Path) -> None:
    result = run("--format", "json", str(rule_file(tmp_path, CLEAN)))
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"files": 1, "errors": 0, "warnings": 0, "diagnostics": []}


def test_json_output_of_a_syntax_error(tmp_path: Path) -> None:
    result = run("--format", "json", str(rule_file(tmp_path, SYNTAX_ERROR)))
    (diagnostic,) = json.loads(result.stdout)["diagnostics"]
    assert (diagnostic["line"], diagnostic["column"], diagnostic["severity"]) == (2, 13, "error")


# ---------------------------------------------------------------------------------- stdin


def test_reading_from_stdin() -> None:
    result = run("-", stdin=SYNTAX_ERROR)
    assert result.exit_code == 1
    assert result.stderr.startswith("-:2:13: error: unexpected `aded`")
    assert '        trigger aded to sfdc campaign "Webinar"' in result.stderr


def test_reading_a_clean_file_from_stdin() -> None:
    result = run("-", stdin=CLEAN)
    assert result.exit_code == 0
    assert "1 file checked: 0 errors, 0 warnings" in result.stderr


def test_stdin_with_json_output() -> None:
    result = run("--format", "json", "-", stdin=ERROR)
    (diagnostic,) = json.loads(result.stdout)["diagnostics"]
    assert diagnostic["file"] == "-"


# -------------------------------------------------------------------------------- bad input


def test_non_utf8_file_is_a_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "latin1.campaign"
    path.write_bytes('campaign "Caf\xe9" {\n}\n'.encode("latin-1"))
    result = run(str(path))
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert f"{path}:1:14: error: " in result.stderr
    assert "UTF-8" in result.stderr


def test_non_utf8_file_in_json(tmp_path: Path) -> None:
    path = tmp_path / "bin.campaign"
    path.write_bytes(b"\n\n  \xff\xfe")
    (diagnostic,) = json.loads(run("--format", "json", str(path)).stdout)["diagnostics"]
    assert (diagnostic["line"], diagnostic["column"], diagnostic["code"]) == (3, 3, "not-utf8")


def test_byte_order_mark_file_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "bom.campaign"
    path.write_bytes(b"\xef\xbb\xbf" + CLEAN.encode())
    result = run(str(path))
    assert result.exit_code == 0, result.output


WEIRD_INPUTS = {
    "empty": b"",
    "nul-bytes": b"\x00\x00campaign\x00",
    "binary": bytes(range(256)),
    "only-open-braces": b"{" * 1000,
    "only-close-braces": b"}" * 1000,
    "many-quotes": b'"' * 999,
    "control-chars": b'campaign "A\x07\x1b" {\n}\n',
    "emoji": 'campaign "🚀" {\n  trigger added to sfdc campaign "🎉"\n}\n'.encode(),
    "rtl-and-combining": 'campaign "مرحبا" { description "e\u0301" }'.encode(),
    "crlf": b'campaign "A" {\r\n    trigger aded to sfdc campaign "W"\r\n}\r\n',
    "lone-cr": b'campaign "A" {\r    trigger x\r}\r',
    "long-line": b'campaign "' + b"x" * 100_000 + b'" { }',
    "many-campaigns": b"".join(b'campaign "C%d" { trigger nope }\n' % i for i in range(300)),
    "deep-parens-200": b'campaign "A" { filter ' + b"(" * 200 + b'member of sfdc campaign "X"' + b")" * 200 + b" }",
    "unbalanced-parens": b'campaign "A" { filter ' + b"(" * 300 + b" }",
}


@pytest.mark.parametrize("name", WEIRD_INPUTS)
def test_never_a_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / "weird.campaign"
    path.write_bytes(WEIRD_INPUTS[name])
    for args in ([str(path)], ["--format", "json", str(path)], ["--no-cache", str(path)]):
        result = run(*args)
        assert_no_traceback(result)
        assert "internal error" not in result.output
        assert result.exit_code in (0, 1), result.output


DEEP_NOT = 'campaign "Deep" {\n    trigger added to sfdc campaign "W"\n    filter ' + "not " * 500
DEEP_NOT += 'member of sfdc campaign "A"\n    flow { remove from sfdc campaign "A" }\n}\n'


def test_deeply_nested_file_without_the_cache(tmp_path: Path) -> None:
    result = run("--no-cache", str(rule_file(tmp_path, DEEP_NOT)))
    assert "internal error" not in result.output
    assert result.exit_code == 1, result.output
    assert "nested-too-deep" in result.output


def test_deeply_nested_file_with_the_cache(tmp_path: Path) -> None:
    result = run(str(rule_file(tmp_path, DEEP_NOT)))
    assert "internal error" not in result.output
    assert result.exit_code == 1, result.output
    assert "more than 64 levels deep" in result.output


# ------------------------------------------------------------------------------- conformance


def _scenario_id(path: Path) -> str:
    return path.parent.name


@needs_shared
@pytest.mark.parametrize("path", conformance_rule_files(), ids=_scenario_id)
def test_conformance_rule_files(path: Path) -> None:
    result = run(str(path))
    assert_no_traceback(result)
    scenario = path.parent.name
    if scenario == "v19_syntax_error":
        assert result.exit_code == 1
        assert re.search(r"rules\.campaign:2:\d+: error", result.stderr), result.stderr
    elif scenario == "v20_duplicate_names":
        assert result.exit_code == 1
        assert re.search(r"rules\.campaign:5:\d+: error", result.stderr), result.stderr
    else:
        assert result.exit_code == 0, result.stderr


@needs_shared
def test_all_conformance_scenarios_are_present() -> None:
    names = {p.parent.name for p in conformance_rule_files()}
    assert {"v19_syntax_error", "v20_duplicate_names"} <= names
    assert len(names) >= 20


@needs_shared
@pytest.mark.parametrize(
    ("scenario", "code", "exit_code"),
    [
        ("v24_program_statuses_incompatible", "program-status-mismatch", 1),
        ("v12_invalid_status_is_error", "unknown-status", 0),
    ],
)
def test_conformance_rules_against_their_world_as_catalog(scenario: str, code: str, exit_code: int) -> None:
    assert SCENARIOS is not None
    folder = SCENARIOS / scenario
    result = run("--format", "json", "--catalog", str(folder / "world.json"), str(folder / "rules.campaign"))
    assert result.exit_code == exit_code
    assert code in [d["code"] for d in json.loads(result.stdout)["diagnostics"]]


# ---------------------------------------------------------------------------------- subprocess


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    path = rule_file(tmp_path, SYNTAX_ERROR)
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert f"{path}:2:13: error:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# ------------------------------------------------------------------------------ bounded input

GOOD = 'campaign "Fine" {\n    trigger added to sfdc campaign "A"\n    flow { remove from sfdc campaign "A" }\n}\n'


def test_a_rule_file_over_10_mb_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES

    assert MAX_RULE_FILE_BYTES == 10 * 1024 * 1024
    big = tmp_path / "rules" / "big.campaign"
    big.parent.mkdir()
    with big.open("wb") as fh:  # sparse: MAX + 1 bytes without writing them
        fh.truncate(MAX_RULE_FILE_BYTES + 1)
    rule_file(tmp_path / "rules", GOOD, "good.campaign")
    read: list[str] = []
    original_bytes, original_text = Path.read_bytes, Path.read_text

    def read_bytes(self: Path) -> bytes:
        read.append(self.name)
        return original_bytes(self)

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        read.append(self.name)
        return original_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(Path, "read_text", read_text)
    for args in ([str(tmp_path / "rules")], ["--no-cache", str(tmp_path / "rules")]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert_no_traceback(result)
        assert f"{big}:1:1: error: the file is 10,485,761 bytes, over the limit of 10 MB (10,485,760 bytes)" in (
            result.output
        )
        assert "see docs/errors.md#file-too-large" in result.output
        assert "2 files checked: 1 error" in result.output
    assert "big.campaign" not in read
    assert "good.campaign" in read  # the rest is still checked


def test_a_rule_file_at_10_mb_is_read(tmp_path: Path) -> None:
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES

    text = GOOD + "#" * (MAX_RULE_FILE_BYTES - len(GOOD) - 1) + "\n"
    result = run("--no-cache", str(rule_file(tmp_path, text)))
    assert result.exit_code == 0, result.output[-500:]


def test_stdin_over_10_mb_is_refused(tmp_path: Path) -> None:
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES

    result = run("-", stdin=GOOD + "#" * MAX_RULE_FILE_BYTES)
    assert result.exit_code == 2
    assert "-: standard input is over the limit of 10 MB (10,485,760 bytes) for a rule file" in result.output
    # bytes, not characters: 4 MB of 3-byte characters is over too
    assert run("-", stdin=GOOD + "# " + "é" * (MAX_RULE_FILE_BYTES // 2)).exit_code == 2
    assert run("-", stdin=GOOD).exit_code == 0
    fmt = CliRunner().invoke(cli, ["fmt", "-"], input=GOOD + "#" * MAX_RULE_FILE_BYTES, catch_exceptions=False)
    assert fmt.exit_code == 2 and "smartcampaign fmt: -: standard input is over the limit" in fmt.output


def test_fmt_refuses_a_file_over_10_mb(tmp_path: Path) -> None:
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES

    big = tmp_path / "big.campaign"
    with big.open("wb") as fh:
        fh.truncate(MAX_RULE_FILE_BYTES + 1)
    result = CliRunner().invoke(cli, ["fmt", "--check", str(big)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"{big}:1:1: error: the file is 10,485,761 bytes, over the limit" in result.output
    assert big.stat().st_size == MAX_RULE_FILE_BYTES + 1


def test_40000_nested_ifs_are_refused_by_check_at_their_place(tmp_path: Path) -> None:
    step = 'add to sfdc campaign "C" with status "Sent"'
    body = 'if member of sfdc campaign "B" {\n' * 40_000 + step + "\n" + "}\n" * 40_000
    text = 'campaign "Deep" {\n    trigger added to sfdc campaign "A"\n    flow {\n' + body + "    }\n}\n"
    result = run("--no-cache", str(rule_file(tmp_path, text)))
    assert result.exit_code == 1
    assert_no_traceback(result)
    # the `{` of the 65th `if`, on line 3 + 65
    assert (
        f"{tmp_path / 'rules.campaign'}:68:32: error: this `{{` block nests more than 64 levels deep" in result.output
    )
    assert "1 file checked: 1 error, 0 warnings" in result.output
