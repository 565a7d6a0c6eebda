"""Fuzzing: mutated rule files give a result or diagnostics, never an exception.

Seeds are the conformance rule files and the LANGUAGE.md examples; mutations delete, duplicate and swap
whitespace-separated tokens, insert random text or bytes, and truncate. Deep nesting is tested directly.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lang_helpers import conformance_rule_files, language_examples

from engine.language import ast
from engine.language.checks import MAX_NESTING, Catalog, CatalogCampaign, check_rule_set
from engine.language.diagnostics import Diagnostic, SourceCache, render_all
from engine.language.loader import assemble, load_rule_set
from engine.language.parser import parse_text

FALLBACK_SEED = """channel "Webinar" {
    status "Invited" step 10
    status "Attended" step 30 success
}
program "P" {
    channel "Webinar"
    sync with sfdc campaign "P"
    cost 2026-10 5000 "Venue \\"deposit\\" \\\\ ok"
}
campaign "A" {  # comment
    description "d"
    inactive
    trigger added to sfdc campaign "W" with status in ("A", "B")
    trigger status changed in program "P" from "Invited" to not in ("Attended")
    filter not (member of sfdc campaign id "7015g00000ABCDE" or member of program "P") and member of any sfdc campaign
    qualify once every 7 days
    flow {
        if member of sfdc campaign not in ("X") { wait 2 days } else if member of sfdc campaign "Y" { } else {
            change program status in program "P" to "Attended"
        }
        add to sfdc campaign "N" with status "Sent"
        change status in sfdc campaign "N" to "Responded"
        remove from sfdc campaign "N"
    }
}
"""

SEEDS: list[str] = [p.read_text(encoding="utf-8") for p in conformance_rule_files()]
SEEDS += language_examples()
SEEDS.append(FALLBACK_SEED)

CATALOG = Catalog(
    (
        CatalogCampaign("Webinar", "701000000000001AAA", ("Sent", "Registered", "Attended"), members=2),
        CatalogCampaign("Nurture", None, ("Sent", "Responded")),
        CatalogCampaign("Q4 Webinar", None, ("Invited", "Registered"), members=1),
    )
)

CATALOG_CODES = {"unknown-campaign", "unknown-status", "program-status-mismatch"}

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def outcome(text: str) -> list[Diagnostic]:
    """The whole path a rule file takes in `check`: parse, assemble, check (with a catalog), sort, render."""
    parsed = parse_text(text, "fuzz.campaign", use_cache=False)
    diagnostics = list(parsed.diagnostics)
    diagnostics += check_rule_set(assemble([parsed.file]), catalog=CATALOG)
    for diagnostic in diagnostics:
        assert diagnostic.severity in ("error", "warning")
        assert diagnostic.line >= 0 and diagnostic.column >= 0
        assert diagnostic.message
    render_all(diagnostics, SourceCache({"fuzz.campaign": text}))
    loaded = load_rule_set(["fuzz.campaign"], texts={"fuzz.campaign": text}, use_cache=False)
    assert len(loaded.diagnostics) == len([d for d in diagnostics if d.code not in CATALOG_CODES])
    return diagnostics


# -------------------------------------------------------------------------------- strategies

seeds = st.sampled_from(SEEDS)


@st.composite
def token_mutations(draw: st.DrawFn) -> str:
    tokens = draw(seeds).split()
    for _ in range(draw(st.integers(1, 6))):
        if not tokens:
            break
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "replace"]))
        i = draw(st.integers(0, len(tokens) - 1))
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = draw(st.sampled_from(tokens))
    separator = draw(st.sampled_from([" ", "\n", "\n    ", "\t"]))
    return separator.join(tokens)


@st.composite
def insertions(draw: st.DrawFn) -> str:
    text = draw(seeds)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["text", "bytes", "punctuation"]))
        if kind == "text":
            piece = draw(st.text(max_size=12))
        elif kind == "bytes":
            piece = draw(st.binary(max_size=12)).decode("latin-1")
        else:
            piece = "".join(draw(st.lists(st.sampled_from(list('{}()",#\\\n"')), max_size=6)))
        text = text[:at] + piece + text[at:]
    return text


@st.composite
def truncations(draw: st.DrawFn) -> str:
    text = draw(seeds)
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    return text[:start] + text[end:] if draw(st.booleans()) else text[:start]


# ----------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_seeds_parse(seed: int) -> None:
    diagnostics = parse_text(SEEDS[seed], "seed.campaign", use_cache=False).diagnostics
    if "trigger aded" in SEEDS[seed]:  # v19_syntax_error is a broken seed on purpose
        assert len(diagnostics) == 1
    else:
        assert diagnostics == ()


@FUZZ
@given(token_mutations())
def test_token_mutations_never_raise(text: str) -> None:
    outcome(text)


@FUZZ
@given(insertions())
def test_random_insertions_never_raise(text: str) -> None:
    outcome(text)


@FUZZ
@given(truncations())
def test_truncations_never_raise(text: str) -> None:
    outcome(text)


@FUZZ
@given(st.lists(st.sampled_from([*'{}()"#\\\n ,-', "campaign", "program", "channel", "flow", "if", "x", "7"])))
def test_punctuation_soup_never_raises(pieces: list[str]) -> None:
    outcome("".join(pieces))


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises(text: str) -> None:
    outcome(text)


# -------------------------------------------------------------------------------- deep nesting

MEMBER = 'member of sfdc campaign "A"'


def nested(kind: str, depth: int) -> str:
    head = 'campaign "Deep" {\n    trigger added to sfdc campaign "W"\n'
    tail = '    flow { remove from sfdc campaign "X" }\n}\n'
    if kind == "parentheses":
        return head + "    filter " + "(" * depth + MEMBER + ")" * depth + "\n" + tail
    if kind == "not":
        return head + "    filter " + "not " * depth + MEMBER + "\n" + tail
    if kind == "not-parentheses":
        return head + "    filter " + "not (" * depth + MEMBER + ")" * depth + "\n" + tail
    if kind == "and-or-parentheses":
        levels = "".join(f"({MEMBER} {'and' if i % 2 else 'or'} " for i in range(depth))
        return head + "    filter " + levels + MEMBER + ")" * depth + "\n" + tail
    if kind == "if":
        body = f"if {MEMBER} {{ " * depth + 'remove from sfdc campaign "X"' + " }" * depth
        return head + "    flow { " + body + " }\n}\n"
    if kind == "else-if":
        chain = " else ".join(f"if {MEMBER} {{ wait {i + 1} days }}" for i in range(depth))
        return head + "    flow { " + chain + " }\n}\n"
    if kind == "unclosed-parentheses":
        return head + "    filter " + "(" * depth + "\n}\n"
    if kind == "unclosed-if":
        return head + "    flow { " + f"if {MEMBER} {{ " * depth + "\n"
    raise AssertionError(kind)


KINDS = [
    "parentheses",
    "not",
    "not-parentheses",
    "and-or-parentheses",
    "if",
    "else-if",
    "unclosed-parentheses",
    "unclosed-if",
]


@pytest.mark.parametrize("kind", KINDS)
def test_500_levels_of_nesting(kind: str) -> None:
    diagnostics = outcome(nested(kind, 500))
    if kind.startswith("unclosed"):
        assert any(d.is_error for d in diagnostics)
    else:
        # deeper than the language allows: one clear error, never an exception
        wanted = ["nested-too-deep"] if kind in DEEP_KINDS else []
        assert [d.code for d in diagnostics if d.code not in CATALOG_CODES] == wanted


# Kinds that build one AST level per source level (parentheses alone are transparent).
RECURSIVE_KINDS = ["not", "not-parentheses", "and-or-parentheses", "if"]
# Kinds that nest one level per source level: parentheses count too (the limit is in the text).
DEEP_KINDS = ["parentheses", *RECURSIVE_KINDS]


@pytest.mark.parametrize("kind", ["parentheses", "else-if", "unclosed-parentheses", "unclosed-if"])
def test_5000_levels_of_flat_nesting(kind: str) -> None:
    outcome(nested(kind, 5000))


@pytest.mark.parametrize("kind", RECURSIVE_KINDS)
def test_5000_levels_of_nesting(kind: str) -> None:
    outcome(nested(kind, 5000))


@pytest.mark.parametrize("kind", RECURSIVE_KINDS)
def test_500_levels_of_nesting_with_the_parse_cache(kind: str) -> None:
    parse_text(nested(kind, 500), f"cached-{kind}.campaign", use_cache=True)


def test_5000_flat_levels_with_the_parse_cache() -> None:
    result = parse_text(nested("else-if", 5000), "cached-else-if.campaign", use_cache=True)
    assert result.diagnostics == ()


# ------------------------------------------------------------------------------ bounded nesting


@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_as_deep_as_allowed_is_fine(kind: str) -> None:
    diagnostics = outcome(nested(kind, MAX_NESTING // 2 if "not-" in kind else MAX_NESTING))
    assert [d.code for d in diagnostics if d.code == "nested-too-deep"] == []


@pytest.mark.parametrize(
    ("kind", "what"),
    [("parentheses", "("), ("not", "not"), ("not-parentheses", "not"), ("and-or-parentheses", "("), ("if", "{")],
)
def test_one_level_too_deep_is_refused_where_it_passes_the_limit(kind: str, what: str) -> None:
    text = nested(kind, MAX_NESTING + 1)
    (too_deep,) = [d for d in outcome(text) if d.code == "nested-too-deep"]
    line = text.splitlines()[too_deep.line - 1]
    assert line[too_deep.column - 1 :].startswith(what)
    # the level past the limit: as many levels before it as the limit allows
    before = line[: too_deep.column - 1]
    levels = {"(": before.count("("), "not": before.count("not "), "{": before.count("{") - 1}[what]
    if kind == "not-parentheses":
        levels = before.count("not ") + before.count("(")
    assert levels == MAX_NESTING
    assert f"more than {MAX_NESTING} levels deep" in too_deep.message


def deep_ifs(depth: int) -> str:
    """The file of the issue: `depth` nested `if` blocks in one flow, on one line."""
    step = 'add to sfdc campaign "C" with status "Sent"'
    body = 'if member of sfdc campaign "B" { ' * depth + step + " }" * depth
    return 'campaign "Deep" { trigger added to sfdc campaign "A" flow { ' + body + " } }\n"


def test_40000_nested_ifs_are_refused_at_the_first_if_past_the_limit() -> None:
    text = deep_ifs(40_000)
    diagnostics = outcome(text)
    assert [(d.code, d.line) for d in diagnostics] == [("nested-too-deep", 1)]
    column = diagnostics[0].column
    assert text[column - 1] == "{"
    assert text[: column - 1].count("if ") == MAX_NESTING + 1


def test_the_rest_of_the_file_is_still_checked() -> None:
    good = 'campaign "Fine" {\n    trigger added to sfdc campaign "A"\n    flow { remove from sfdc campaign "A" }\n}\n'
    text = good + nested("not", 200) + good.replace("Fine", "Also fine") + nested("if", 300)
    parsed = parse_text(text, "fuzz.campaign", use_cache=False)
    assert [d.code for d in parsed.diagnostics] == ["nested-too-deep", "nested-too-deep"]
    assert [d.line for d in parsed.diagnostics] == [7, 16]
    assert [c.name for c in parsed.file.declarations if isinstance(c, ast.Campaign)] == ["Fine", "Also fine"]


def test_not_in_and_string_lists_are_not_levels() -> None:
    lists = " and ".join('member of sfdc campaign not in ("A", "B") with status not in ("C")' for _ in range(100))
    text = 'campaign "Lists" {\n    trigger added to sfdc campaign "A"\n' + f"    filter {lists}\n"
    text += "".join('    filter not member of sfdc campaign "A"\n' for _ in range(100)) + "}\n"
    assert [d.code for d in outcome(text) if d.code == "nested-too-deep"] == []


# ------------------------------------------------------- fuzz: the example rule files, mutated


def example_rule_files() -> list[str]:
    root = Path(__file__).resolve().parents[2]
    paths = sorted(root.glob("examples/*/rules/**/*.campaign")) + sorted((root / "rules").glob("**/*.campaign"))
    return [p.read_text(encoding="utf-8") for p in paths]


EXAMPLES = example_rule_files() or [FALLBACK_SEED]

BOUNDED = settings(
    max_examples=120,
    deadline=2000,  # ms per input: each must be answered in bounded time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OPENERS = ['if member of sfdc campaign "B" { ', "(", "not ", "not (", "{", 'else if member of sfdc campaign "B" { ']
TOKEN_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"|\S+')


@st.composite
def example_mutations(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["chars", "token", "deep", "repeat"]))
        if op == "chars":  # insert, delete or duplicate a run of characters
            at = draw(st.integers(0, len(text)))
            end = draw(st.integers(at, min(len(text), at + 20)))
            how = draw(st.sampled_from(["insert", "delete", "duplicate"]))
            if how == "insert":
                text = text[:at] + draw(st.text(max_size=8)) + text[at:]
            elif how == "delete":
                text = text[:at] + text[end:]
            else:
                text = text[:end] + text[at:end] + text[end:]
        elif op == "token":  # delete, duplicate or move a token (strings are one token)
            tokens = [m.span() for m in TOKEN_RE.finditer(text)]
            if not tokens:
                continue
            start, end = draw(st.sampled_from(tokens))
            piece = text[start:end]
            how = draw(st.sampled_from(["delete", "duplicate", "move"]))
            if how == "delete":
                text = text[:start] + text[end:]
            elif how == "duplicate":
                text = text[:end] + " " + piece + text[end:]
            else:
                to = draw(st.integers(0, len(text)))
                text = text[:to] + f" {piece} " + text[to:]
        elif op == "deep":  # deep nesting, closed or not
            at = draw(st.integers(0, len(text)))
            depth = draw(st.integers(1, 5000))
            opener = draw(st.sampled_from(OPENERS))
            closer = {"{": "}", "(": ")"}.get(opener.strip()[-1], "")
            closing = closer * depth if draw(st.booleans()) else ""
            text = text[:at] + opener * depth + closing + text[at:]
        else:  # huge repetition of a piece of the file
            at = draw(st.integers(0, len(text)))
            end = draw(st.integers(at, min(len(text), at + 200)))
            text = text[:end] + text[at:end] * draw(st.integers(2, 2000)) + text[end:]
    return text


def assert_located(text: str) -> None:
    """Parse, check and render as `check` does: OK or diagnostics at FILE:LINE:COL, never an exception."""
    diagnostics = outcome(text)
    lines = text.splitlines()
    for diagnostic in diagnostics:
        assert diagnostic.file == "fuzz.campaign"
        assert 1 <= diagnostic.line <= max(1, len(lines) + 1), diagnostic.header()
        assert diagnostic.column >= 1, diagnostic.header()
        assert diagnostic.header().startswith(f"fuzz.campaign:{diagnostic.line}:{diagnostic.column}: ")
        assert "internal error" not in diagnostic.message
        assert "Traceback" not in diagnostic.message


@BOUNDED
@given(example_mutations())
def test_mutated_example_files_give_located_diagnostics_in_bounded_time(text: str) -> None:
    assert_located(text)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_example_files_are_fine(index: int) -> None:
    assert not any(d.is_error for d in parse_text(EXAMPLES[index], "example.campaign", use_cache=False).diagnostics)
