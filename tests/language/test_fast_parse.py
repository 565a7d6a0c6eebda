"""The parser's fast path gives exactly what Lark's own loop gives: the same nodes, spans, comments, diagnostics.

Every file is parsed twice, with the fast path and with Lark alone, and the two results compared field by
field (spans and comments included, which plain equality leaves out). Files with syntax errors go through
Lark either way; what matters for them is that the fast path gives way without leaving anything behind.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lang_helpers import ROOT
from test_fuzz import SEEDS

from engine.language import parser
from engine.language.parser import ParseResult

# Whitespace and comments in every place they may go (the fuzz seeds bring every construct besides).
EVERY_CONSTRUCT = """\ufeff# a comment before anything\r
channel "Webinar" {\t# tabs, carriage returns and form feeds are whitespace too\r
    status "Invited" step 10\f
    status "Attended"   step 30   success
}

program "P" { description "two\\\\lines \\"quoted\\"" channel "Webinar" cost 2026-11 250 }
campaign "A" {  # trailing comment
    inactive
    trigger removed from any sfdc campaign
    trigger status changed in sfdc campaign id "7015g00000ABCDE" from "X" to not in ("Y")
    filter ((member of sfdc campaign "Y")) or not not member of sfdc campaign in ("Z")
    # a comment between items
    qualify once every 7 days
    flow {
        wait 30 minutes   # and after a step
    }
}
campaign "Glued"{trigger added to sfdc campaign"W" flow{wait 1week}}
campaign "Empty" { }
   \t
"""

# Batch, requested and executed campaigns, Remove from Flow, dated and weekday waits (issue 12).
NEW_FORMS = """timezone "Europe/Berlin"
campaign "Batch" {
    schedule every week on monday at 09:00  # weekly
    timezone "America/New_York"
    filter member of sfdc campaign "Webinar" with status "No Show"
    limit 500
    flow { remove from sfdc campaign "Webinar" }
}
campaign "Once" { schedule at 2026-12-10T09:00 flow { wait until 2026-12-24T09:00:30 } }
campaign "Daily" { schedule every day at 09:00 }
campaign "Monthly" { schedule every month on day 31 at 23:59 limit 1 }
campaign "Kit" {
    trigger campaign is requested
    flow {
        request campaign "Kit"
        execute campaign "Score"
        remove from flow of campaign "Drip"
        remove from flow of this campaign
        wait 2 days then until weekday monday..friday at 09:00
        wait until weekday monday .. friday at 09:00
        wait 1 day then until weekday saturday at 10:00
        if member of sfdc campaign "X" { wait until 2026-01-01T00:00 } else { wait 1 week }
    }
}
"""

BROKEN = [
    'campaign "A" {\n    trigger aded to sfdc campaign "W"\n}\n',
    'campaign "A" {\n    trigger added to sfdc campaign "W"\n',
    'campaign "A" {\n    filter member of sfdc campaign "W" with status "unclosed\n}\n',
    'campaign "A" { flow { wait 2 fortnights } }\ncampaign "B" { qualify once }\n',
    'campaign "A" { }\nprogram "P" { cost 2026-1 5 }\nchannel "C" { status "S" step }\n',
    'campaign "A" {\v}\n',
    "campaign",
    "}",
]

MUTATIONS = ["campaign", "trigger", "added", "to", "in", "inactive", "not", "and", "or", "(", ")", "{", "}", '"x"']
MUTATIONS += ["# c\n", "\n", "\r\n", "\t", "\f", " ", "2026-10", "12", "days", "success", "é", '"\\q"', "\u00a0"]
MUTATIONS += ["schedule", "every", "day", "week", "month", "at", "09:00", "2026-12-24T09:00", "monday", "..", "until"]
MUTATIONS += ["weekday", "then", "limit", "timezone", "request", "execute", "campaign is requested", "-", ":", "T"]


def seeds() -> list[str]:
    texts = [EVERY_CONSTRUCT, NEW_FORMS, *BROKEN, *SEEDS]  # SEEDS: the conformance files, LANGUAGE.md, every construct
    texts += [p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("examples/*/rules/**/*.campaign"))]
    texts += [p.read_text(encoding="utf-8") for p in sorted((ROOT / "engine" / "rules").rglob("*.campaign"))]
    return texts


def mutated(count: int) -> list[str]:
    """Deterministic mutations of the seeds: deletions, insertions of words and whitespace, copied slices."""
    rng = random.Random(20261206)
    texts = seeds()
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 3)):
            at = rng.randint(0, len(text))
            choice = rng.random()
            if choice < 0.3:
                text = text[:at] + text[at + rng.randint(1, 6) :]
            elif choice < 0.8:
                text = text[:at] + rng.choice(MUTATIONS) + text[at:]
            else:
                start = rng.randint(0, len(text))
                text = text[:at] + text[start : start + rng.randint(1, 40)] + text[at:]
        out.append(text)
    return out


def everything(node: Any) -> Any:
    """Every field, spans and comments included, and the type of every node."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (
            type(node).__name__,
            tuple((f.name, everything(getattr(node, f.name))) for f in dataclasses.fields(node)),
        )
    if isinstance(node, (list, tuple)):
        return (type(node).__name__, tuple(everything(item) for item in node))
    return (type(node).__name__, node)


@pytest.fixture
def fast_parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Texts the fast path parsed to the end (it is built and in use), recorded as they go."""
    parser.get_parser()
    fast = parser._FAST
    assert fast is not None, "the fast path could not be built for this Lark"
    done: list[str] = []
    parse = fast.parse

    def recording(text: str) -> Any:
        result = parse(text)
        done.append(text)
        return result

    monkeypatch.setattr(fast, "parse", recording)
    yield done


def both_ways(text: str, name: str = "t.campaign") -> tuple[Any, Any]:
    fast = parser._FAST
    with_fast: ParseResult = parser._parse_text(text, name)
    parser._FAST = None
    try:
        lark_only: ParseResult = parser._parse_text(text, name)
    finally:
        parser._FAST = fast
    return everything(with_fast), everything(lark_only)


def test_every_construct_parses_the_same_and_fast(fast_parses: list[str]) -> None:
    with_fast, lark_only = both_ways(EVERY_CONSTRUCT)
    assert with_fast == lark_only
    assert fast_parses == [EVERY_CONSTRUCT.removeprefix("\ufeff")]  # the byte-order mark is not rules
    result = parser._parse_text(EVERY_CONSTRUCT, "t.campaign")
    assert [c.text for c in result.file.comments][:2] == [
        "# a comment before anything",
        "# tabs, carriage returns and form feeds are whitespace too",
    ]


@pytest.mark.parametrize("index", range(len(seeds())))
def test_seed_files_parse_the_same(index: int, fast_parses: list[str]) -> None:
    text = seeds()[index]
    with_fast, lark_only = both_ways(text)
    assert with_fast == lark_only


def test_broken_files_give_lark_its_errors(fast_parses: list[str]) -> None:
    for text in BROKEN:
        with_fast, lark_only = both_ways(text)
        assert with_fast == lark_only
        assert parser._parse_text(text, "t.campaign").diagnostics


def test_mutated_files_parse_the_same(fast_parses: list[str]) -> None:
    texts = mutated(400)
    for text in texts:
        with_fast, lark_only = both_ways(text)
        assert with_fast == lark_only, text
    assert len(fast_parses) > 100  # both paths are exercised: many mutants still parse


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([*MUTATIONS, "member of sfdc campaign", "flow", "wait 2 days", "qualify once"])))
def test_random_word_sequences_parse_the_same(fast_parses: list[str], words: list[str]) -> None:
    text = 'campaign "A" {\n' + " ".join(words) + "\n}\n"
    with_fast, lark_only = both_ways(text)
    assert with_fast == lark_only


def test_new_forms_parse_the_same_and_fast(fast_parses: list[str]) -> None:
    with_fast, lark_only = both_ways(NEW_FORMS)
    assert with_fast == lark_only
    assert fast_parses == [NEW_FORMS]
    assert parser._parse_text(NEW_FORMS, "t.campaign").diagnostics == ()


def test_a_large_generated_rule_set_parses_the_same(fast_parses: list[str]) -> None:
    base = EVERY_CONSTRUCT.replace("\ufeff", "")
    text = "".join(re.sub(r'campaign "(\w+)"', rf'campaign "\1 {i}"', base) for i in range(30))
    with_fast, lark_only = both_ways(text, "big.campaign")
    assert with_fast == lark_only
    assert fast_parses == [text]


@pytest.mark.parametrize(
    ("regexp", "may"),
    [
        ("campaign", False),
        (r"\}", False),
        (r'"(?:[^"\\\n]|\\["\\])*"', False),
        (r"(minute|hour|day|week|month)s?(?![A-Za-z0-9_])", False),
        (r"[0-9]{4}-[0-9]{2}(?![0-9])", False),
        (r"#[^\n]*", False),
        (r"(?i:status)", False),
        (r"[a-z]+", False),
        (r"\s+", True),
        (r" x", True),
        (r"[\t]", True),
        (r"[^a]", True),
        (r"a?b", True),
        (r"x*y", True),
        (r"(?:x|)y", True),
        (r"(?=a)a", True),
        (r"[\x00-\x20]", True),
    ],
)
def test_which_terminals_may_start_with_whitespace(regexp: str, may: bool) -> None:
    """The fast path skips whitespace inside a token's match only if no terminal but WS can start with it."""
    assert parser._may_start_with_space(regexp) is may


def test_the_fast_path_skips_whitespace_with_this_grammar() -> None:
    parser.get_parser()
    assert parser._PARSER is not None
    assert parser._leading_space(parser._PARSER) != ""


def test_cache_and_helper_results_round_trip_every_field(tmp_path: Path) -> None:
    """Nodes are pickled field by field (the parse cache, the helper process): nothing is lost on the way."""
    import pickle

    result = parser._parse_text(EVERY_CONSTRUCT, "t.campaign")
    assert everything(pickle.loads(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))) == everything(result)


# ------------------------------------------------------------------------------ words the language does not know

WORD_OR_SKIPPED = re.compile(
    r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|(?<=[0-9]{4}-[0-9]{2}-[0-9]{2})T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?![0-9A-Za-z_])'
    r"|[A-Za-z_][A-Za-z0-9_]*"
)


def unknown_words_one_by_one(text: str) -> list[tuple[int, str]]:
    """The plain way: every string, comment and word in turn, keywords left out."""
    known = parser.keywords()
    found = []
    for match in WORD_OR_SKIPPED.finditer(text):
        word = match.group(0)
        if word[0] not in '"#' and ":" not in word and word not in known:
            found.append((match.start(), word))
    return found


def unknown_words(text: str) -> list[tuple[int, str]]:
    found, pos = [], 0
    while (match := parser._next_unknown_word().match(text, pos)) is not None:
        found.append((match.start(1), match.group(1)))
        pos = match.end()
    return found


PIECES = [*MUTATIONS, "x", "_a", "a1", "2x", "dayz", "days2", "in_", '"', "\\", '\\"', "#", "campaignx", "inactive"]
PIECES += ["2026-12-24", "T09:00", "2026-12-24T09:00x", "mondays", "1"]


def test_unknown_words_are_found_as_one_by_one() -> None:
    texts = [*seeds(), *mutated(300)]
    rng = random.Random(11)
    texts += ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    assert any(unknown_words_one_by_one(text) for text in texts)
    for text in texts:
        assert unknown_words(text) == unknown_words_one_by_one(text), text


def test_without_a_fast_path_lark_parses_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Lark whose insides the fast path does not know (here: building it fails) still parses, Lark's way."""
    expected = everything(parser._parse_text(EVERY_CONSTRUCT, "t.campaign"))

    def unknown_insides(_: object) -> None:
        raise AttributeError("no such table")

    monkeypatch.setattr(parser, "_FastPath", unknown_insides)
    monkeypatch.setattr(parser, "_PARSER", None)
    monkeypatch.setattr(parser, "_FAST", None)
    parser.get_parser()
    assert parser._FAST is None
    assert everything(parser._parse_text(EVERY_CONSTRUCT, "t.campaign")) == expected
