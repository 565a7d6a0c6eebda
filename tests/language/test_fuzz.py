"""Fuzzing: mutated rule files give a result or diagnostics, never an exception.

Seeds are the conformance rule files and the LANGUAGE.md examples; mutations delete, duplicate and swap
whitespace-separated tokens, insert random text or bytes, and truncate. Deep nesting is tested directly.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lang_helpers import conformance_rule_files, language_examples

from engine.language.checks import Catalog, CatalogCampaign, check_rule_set
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
        wanted = ["nested-too-deep"] if kind in RECURSIVE_KINDS else []
        assert [d.code for d in diagnostics if d.code not in CATALOG_CODES] == wanted


# Kinds that build one AST level per source level (parentheses alone are transparent).
RECURSIVE_KINDS = ["not", "not-parentheses", "and-or-parentheses", "if"]


@pytest.mark.parametrize("kind", ["parentheses", "else-if", "unclosed-parentheses", "unclosed-if"])
def test_5000_levels_of_flat_nesting(kind: str) -> None:
    outcome(nested(kind, 5000))


@pytest.mark.parametrize("kind", RECURSIVE_KINDS)
def test_5000_levels_of_nesting(kind: str) -> None:
    outcome(nested(kind, 5000))


@pytest.mark.parametrize("kind", RECURSIVE_KINDS)
def test_500_levels_of_nesting_with_the_parse_cache(kind: str) -> None:
    parse_text(nested(kind, 500), f"cached-{kind}.campaign", use_cache=True)


@pytest.mark.parametrize("kind", ["parentheses", "else-if"])
def test_5000_flat_levels_with_the_parse_cache(kind: str) -> None:
    result = parse_text(nested(kind, 5000), f"cached-{kind}.campaign", use_cache=True)
    assert result.diagnostics == ()
