"""Syntax errors as users see them: rendered diagnostics (snapshots) and the key facts of each."""

from __future__ import annotations

import re

import pytest
from lang_helpers import line_col

from engine.language.diagnostics import Diagnostic, SourceCache, render
from engine.language.parser import ParseResult, parse_text

FILE = "rules.campaign"
LARK_NAMES = re.compile(
    r"__ANON|\bSTRING\b|\bLBRACE\b|\bRBRACE\b|\$END|\bLPAR\b|\bRPAR\b|\bINT\b|\bTIME_UNIT\b|\bPERIOD\b"
)


def parse(text: str) -> ParseResult:
    return parse_text(text, FILE, use_cache=False)


def rendered(text: str) -> str:
    result = parse(text)
    sources = SourceCache({FILE: text})
    return "\n".join(render(d, sources) for d in result.diagnostics)


def only(text: str) -> Diagnostic:
    result = parse(text)
    assert len(result.diagnostics) == 1, [d.header() for d in result.diagnostics]
    return result.diagnostics[0]


# --------------------------------------------------------------------------------- (a) typo

TYPO = """campaign "Typo" {
    trigger aded to sfdc campaign "Webinar"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
"""


def test_keyword_typo(snapshot) -> None:
    diagnostic = only(TYPO)
    assert diagnostic.severity == "error"
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == (FILE, 2, line_col(TYPO, "aded")[1])
    assert diagnostic.column == 13
    assert diagnostic.end_column == 13 + len("aded")
    assert "expected `added to`, `campaign is requested`, `removed from` or `status changed in`" in diagnostic.message
    assert "did you mean `added`?" in diagnostic.message
    assert rendered(TYPO) == snapshot


def test_keyword_typo_rendering_has_caret_under_the_word() -> None:
    lines = rendered(TYPO).splitlines()
    assert lines[0].startswith(f"{FILE}:2:13: error: ")
    assert lines[1] == '        trigger aded to sfdc campaign "Webinar"'
    assert lines[2] == "    " + " " * 12 + "^~~~"


@pytest.mark.parametrize(
    ("source", "word", "suggestion"),
    [
        ('campain "A" { }\n', "campain", "campaign"),
        ('campaign "A" {\n    flwo { }\n}\n', "flwo", "flow"),
        ('campaign "A" {\n    Trigger added to sfdc campaign "W"\n}\n', "Trigger", "trigger"),
        ('campaign "A" {\n    trigger removd from sfdc campaign "W"\n}\n', "removd", "removed"),
        ('campaign "A" {\n    filtr member of sfdc campaign "W"\n}\n', "filtr", "filter"),
    ],
)
def test_did_you_mean(source: str, word: str, suggestion: str) -> None:
    diagnostic = only(source)
    assert (diagnostic.line, diagnostic.column) == line_col(source, word)
    assert f"did you mean `{suggestion}`?" in diagnostic.message
    assert diagnostic.code == "unknown-keyword"


@pytest.mark.parametrize(
    ("source", "word"),
    [
        ('campaign "A" {\n    trigger addedd to sfdc campaign "W"\n}\n', "addedd"),
        ('campaign "A" {\n    inactivex\n}\n', "inactivex"),
    ],
    ids=["addedd", "inactivex"],
)
def test_typo_extending_a_keyword_points_at_the_whole_word(source: str, word: str) -> None:
    diagnostic = only(source)
    assert (diagnostic.line, diagnostic.column) == line_col(source, word)
    assert f"`{word}`" in diagnostic.message


def test_keywords_run_together_are_an_error() -> None:
    assert parse('campaign "A" { triggeraddedtosfdccampaign "W" }\n').diagnostics


# ------------------------------------------------------------------------ (b) unclosed brace

UNCLOSED_AT_EOF = """campaign "A" {
    trigger added to sfdc campaign "W"
    flow { add to sfdc campaign "N" with status "Sent" }
"""

UNCLOSED_BEFORE_NEXT = """campaign "A" {
    trigger added to sfdc campaign "W"
    flow {
        add to sfdc campaign "N" with status "Sent"
}

campaign "B" {
    trigger added to sfdc campaign "W"
    flow { remove from sfdc campaign "N" }
}
"""


def test_unclosed_brace_at_end_of_file(snapshot) -> None:
    diagnostic = only(UNCLOSED_AT_EOF)
    assert "opened on line 1" in diagnostic.message
    assert "never closed" in diagnostic.message
    assert diagnostic.code == "unclosed-brace"
    assert any("line 1, column 14" in note for note in diagnostic.notes)
    assert rendered(UNCLOSED_AT_EOF) == snapshot


def test_unclosed_brace_before_the_next_campaign(snapshot) -> None:
    result = parse(UNCLOSED_BEFORE_NEXT)
    (diagnostic,) = result.diagnostics
    assert "opened on line 1" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (7, 1)
    assert [d.name for d in result.file.declarations] == ["B"], "parsing goes on at the next campaign"
    assert rendered(UNCLOSED_BEFORE_NEXT) == snapshot


def test_unclosed_inner_brace_names_its_line() -> None:
    source = 'campaign "A" {\n    trigger added to sfdc campaign "W"\n}\nprogram "P" {\n    channel "X"\n'
    diagnostic = only(source)
    assert "opened on line 4" in diagnostic.message


def test_braces_inside_strings_and_comments_do_not_count() -> None:
    source = 'campaign "A {" {  # {\n    description "}{"\n'
    diagnostic = only(source)
    assert "opened on line 1" in diagnostic.message
    assert any("column 16" in note for note in diagnostic.notes)


# ------------------------------------------------------------------------------ (c) recovery

SEVERAL_BROKEN = """campaign "One" {
    trigger aded to sfdc campaign "W"
}

campaign "Two" {
    trigger added to sfdc campaign
}

campaign "Fine" {
    trigger added to sfdc campaign "W"
    flow { remove from sfdc campaign "W" }
}

campaign "Three" {
    qualify once every days
}

channel "Four" {
    status "A" step success
}
"""


def test_several_broken_campaigns_give_one_diagnostic_each(snapshot) -> None:
    result = parse(SEVERAL_BROKEN)
    assert [d.line for d in result.diagnostics] == [2, 7, 15, 19]
    assert all(d.severity == "error" for d in result.diagnostics)
    assert rendered(SEVERAL_BROKEN) == snapshot


def test_recovery_keeps_valid_declarations_before_an_error() -> None:
    assert [d.name for d in parse(SEVERAL_BROKEN).file.declarations] == ["Fine"]
    source = 'campaign "Good" { trigger added to sfdc campaign "W" }\ncampaign "Bad" { trigger x }\n'
    assert [d.name for d in parse(source).file.declarations] == ["Good"]


def test_recovery_keeps_valid_declarations_after_an_error() -> None:
    source = 'campaign "Bad" { trigger x }\ncampaign "Good" { trigger added to sfdc campaign "W" }\n'
    assert [d.name for d in parse(source).file.declarations] == ["Good"]


def test_recovery_when_two_broken_campaigns_are_adjacent() -> None:
    source = 'campaign "A" { trigger x }\ncampaign "B" { trigger y }\ncampaign "C" { trigger z }\n'
    assert [d.line for d in parse(source).diagnostics] == [1, 2, 3]


def test_error_count_is_capped() -> None:
    source = 'campaign "A" { trigger x }\n' * 200
    diagnostics = parse(source).diagnostics
    assert 1 <= len(diagnostics) <= 50


# ---------------------------------------------------------------------------- (d) one by one

CASES = {
    "string-on-two-lines": 'campaign "A" {\n    trigger added to sfdc campaign "Web\ninar"\n}\n',
    "stray-character": 'campaign "A" {\n    trigger added to sfdc campaign "W" @\n}\n',
    "stray-character-top-level": 'campaign "A" { }\n$\n',
    "missing-status-after-with-status": (
        'campaign "A" {\n    trigger added to sfdc campaign "W" with status\n    flow { }\n}\n'
    ),
    "missing-status-at-brace": 'campaign "A" {\n    filter member of sfdc campaign "W" with status\n}\n',
    "qualify-once-every-without-number": 'campaign "A" {\n    qualify once every days\n}\n',
    "qualify-once-every-without-unit": 'campaign "A" {\n    qualify once every 7\n}\n',
    "wait-2-fortnights": 'campaign "A" {\n    flow {\n        wait 2 fortnights\n    }\n}\n',
    "missing-name": "campaign {\n}\n",
    "name-not-quoted": "campaign Webinar {\n}\n",
    "empty-string-list": 'campaign "A" {\n    trigger added to sfdc campaign in ()\n}\n',
    "from-after-to": 'campaign "A" {\n    trigger status changed in sfdc campaign "W" to "B" from "A"\n}\n',
    "else-without-if": 'campaign "A" {\n    flow { else { } }\n}\n',
    "cost-without-amount": 'program "P" {\n    channel "Webinar"\n    cost 2026-10\n}\n',
    "unknown-escape": 'campaign "A\\n" {\n}\n',
    "uppercase-keyword": 'CAMPAIGN "A" {\n}\n',
}

EXPECTED_POSITION = {
    "string-on-two-lines": (2, 36),
    "stray-character": (2, 40),
    "stray-character-top-level": (2, 1),
    "missing-status-after-with-status": (3, 5),
    "missing-status-at-brace": (3, 1),
    "qualify-once-every-without-number": (2, 24),
    "qualify-once-every-without-unit": (3, 1),
    "wait-2-fortnights": (3, 16),
    "missing-name": (1, 10),
    "name-not-quoted": (1, 10),
    "empty-string-list": (2, 40),
    "from-after-to": (2, 56),
    "else-without-if": (2, 12),
    "cost-without-amount": (4, 1),
    "unknown-escape": (1, 12),
    "uppercase-keyword": (1, 1),
}


@pytest.mark.parametrize("name", CASES)
def test_syntax_error(name: str, snapshot) -> None:
    source = CASES[name]
    diagnostic = only(source)
    assert diagnostic.severity == "error"
    assert diagnostic.file == FILE
    assert (diagnostic.line, diagnostic.column) == EXPECTED_POSITION[name]
    assert rendered(source) == snapshot


def test_missing_status_says_what_is_expected() -> None:
    diagnostic = only(CASES["missing-status-after-with-status"])
    assert "unexpected `flow`" in diagnostic.message
    assert "a quoted string" in diagnostic.message


def test_qualify_window_without_number_says_a_number_is_expected() -> None:
    assert "expected a whole number" in only(CASES["qualify-once-every-without-number"]).message


def test_unknown_time_unit_lists_the_units() -> None:
    diagnostic = only(CASES["wait-2-fortnights"])
    assert "`fortnights`" in diagnostic.message
    for unit in ("minutes", "hours", "days", "weeks", "months"):
        assert unit in diagnostic.message


def test_stray_character_is_named() -> None:
    assert "'@'" in only(CASES["stray-character"]).message


def test_string_on_two_lines_says_the_string_is_not_closed() -> None:
    message = only(CASES["string-on-two-lines"]).message
    assert "expected" not in message or "quoted string" not in message
    assert re.search(r"not closed|unterminated|unclosed|one line|end of (the )?line", message)


def test_unknown_escape_is_named() -> None:
    diagnostic = only(CASES["unknown-escape"])
    assert "escape" in diagnostic.message
    assert "\\n" in diagnostic.message


@pytest.mark.parametrize("name", ["stray-character", "from-after-to"])
def test_expected_list_only_offers_what_is_valid_there(name: str) -> None:
    message = only(CASES[name]).message
    for invalid in ("`)`", "`channel`", "`cost`", "`sync`", "`and`", "`or`", "`{`"):
        assert invalid not in message


def test_byte_order_mark_is_accepted() -> None:
    """Windows editors write a UTF-8 byte order mark; it is not part of the rules."""
    result = parse('\ufeffcampaign "A" {\n    trigger aded to sfdc campaign "W"\n}\n')
    (diagnostic,) = result.diagnostics
    assert (diagnostic.line, diagnostic.column) == (2, 13)
    assert parse('\ufeffcampaign "A" {\n}\n').diagnostics == ()


# ------------------------------------------------------------------------------- valid files


@pytest.mark.parametrize(
    "source",
    ["", "\n\n\n", "   \t  \n", "# only a comment", "# one\n# two\n\n   # three\n", "#\n"],
    ids=["empty", "newlines", "blanks", "one-comment", "comments", "bare-hash"],
)
def test_files_without_declarations_are_valid(source: str) -> None:
    result = parse(source)
    assert result.diagnostics == ()
    assert result.file.declarations == ()


# ------------------------------------------------------------------- (e) no Lark vocabulary

ALL_BROKEN = [
    TYPO,
    UNCLOSED_AT_EOF,
    UNCLOSED_BEFORE_NEXT,
    SEVERAL_BROKEN,
    *CASES.values(),
    'campaign "A" {\n    trigger\n}\n',
    'campaign "A" {\n    trigger added to\n}\n',
    'campaign "A" {\n    filter (member of sfdc campaign "A"\n}\n',
    'campaign "A" {\n    filter member of sfdc campaign "A")\n}\n',
    'campaign "A" {\n    flow { add to sfdc campaign "N" }\n}\n',
    'campaign "A" {\n    flow { wait days }\n}\n',
    'campaign "A" {\n    flow { if { } }\n}\n',
    'channel "C" {\n    status "A" step x\n}\n',
    'program "P" {\n    cost 2026 10\n}\n',
    'program "P" {\n    cost 20261 10\n}\n',
    "campaign",
    'campaign "A"',
    'campaign "A" {',
    "}",
    "{",
    '"just a string"',
    "12",
    "2026-10",
    "success",
]


@pytest.mark.parametrize("source", ALL_BROKEN)
def test_messages_never_use_lark_terminal_names(source: str) -> None:
    result = parse(source)
    assert result.diagnostics, "each of these is broken"
    for diagnostic in result.diagnostics:
        text = " ".join([diagnostic.message, *diagnostic.notes])
        assert not LARK_NAMES.search(text), text
        assert "Token(" not in text and "<lark" not in text.lower()
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        assert diagnostic.code in {"syntax", "unknown-keyword", "unclosed-brace", "unclosed-string", "bad-escape"}
