"""Issue 12, the formatter: schedules, time zones, limits, requested triggers and the new flow steps print in
one canonical form, comments kept, and formatting twice changes nothing."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.language import ast
from engine.language.formatter import format_rule_file, format_text
from engine.language.parser import parse_text


def parse(text: str) -> ast.RuleFile:
    result = parse_text(text, "t.campaign", use_cache=False)
    assert result.diagnostics == (), [d.header() for d in result.diagnostics]
    return result.file


def fmt(text: str) -> str:
    result = format_text(text, "t.campaign")
    assert result.diagnostics == ()
    assert result.output is not None
    return result.output


MESSY = """# the rule set's zone
timezone   "Europe/Berlin"   # trailing
campaign "Weekly no-show cleanup" {
  description "x"
    schedule   every week on monday at 09:00  # weekly
    timezone "America/New_York"
  filter member of sfdc campaign "Webinar" with status "No Show"
    # at most
    limit   500
    flow { remove from sfdc campaign "Webinar" }
}
campaign "Caller" {
    trigger   campaign is requested   # req
    trigger added to sfdc campaign "Webinar"
    flow {
        request campaign "Send kit"
        execute   campaign "Score"
        remove from flow of   campaign "Drip"
        remove from flow of this   campaign  # me
        wait until 2026-12-24T09:00
        wait 2 days then until weekday monday .. friday at 09:00
        wait until weekday saturday..saturday at 09:00
        wait 1 day then until weekday saturday at 10:00
        if member of sfdc campaign "X" { wait until 2026-01-01T00:00:30 }
    }
}
campaign "M" { schedule every month on day 1 at 09:00 limit 3 }
campaign "D" { schedule every day at 07:30 } campaign "O" { schedule at 2026-12-10T09:00 }
"""

CANONICAL = """# the rule set's zone
timezone "Europe/Berlin"  # trailing

campaign "Weekly no-show cleanup" {
    description "x"
    schedule every week on monday at 09:00  # weekly
    timezone "America/New_York"
    filter member of sfdc campaign "Webinar" with status "No Show"
    # at most
    limit 500
    flow {
        remove from sfdc campaign "Webinar"
    }
}

campaign "Caller" {
    trigger campaign is requested  # req
    trigger added to sfdc campaign "Webinar"
    flow {
        request campaign "Send kit"
        execute campaign "Score"
        remove from flow of campaign "Drip"
        remove from flow of this campaign  # me
        wait until 2026-12-24T09:00
        wait 2 days then until weekday monday..friday at 09:00
        wait until weekday saturday at 09:00
        wait 1 day then until weekday saturday at 10:00
        if member of sfdc campaign "X" {
            wait until 2026-01-01T00:00:30
        }
    }
}

campaign "M" {
    schedule every month on day 1 at 09:00
    limit 3
}

campaign "D" {
    schedule every day at 07:30
}

campaign "O" {
    schedule at 2026-12-10T09:00
}
"""


def test_new_forms_format_canonically() -> None:
    assert fmt(MESSY) == CANONICAL


def test_round_trip_and_meaning() -> None:
    output = fmt(MESSY)
    assert fmt(output) == output
    assert parse(output).declarations == parse(MESSY).declarations
    assert [c.text.rstrip() for c in parse(output).comments] == [c.text.rstrip() for c in parse(MESSY).comments]


def test_printed_from_the_ast_alone() -> None:
    assert format_rule_file(parse(MESSY)) == CANONICAL
    assert format_rule_file(parse(CANONICAL)) == CANONICAL


def test_author_order_of_the_new_items_is_kept() -> None:
    text = (
        'campaign "C" {\n    limit 5\n    filter member of sfdc campaign "A"\n'
        '    timezone "UTC"\n    schedule every day at 09:00\n}\n'
    )
    assert fmt(text) == text


def test_built_nodes_without_spans_print() -> None:
    built = ast.RuleFile(
        "t.campaign",
        (
            ast.TimeZone("Europe/Berlin"),
            ast.Campaign(
                "B",
                schedule=ast.Schedule("weekly", time="09:00", weekday="friday"),
                timezone="Asia/Tokyo",
                limit=10,
                flow=(ast.RemoveFromFlow(None), ast.WaitWindow(0, "day", "friday", "monday", "18:00")),
            ),
            ast.Campaign("R", triggers=(ast.Trigger("requested"),), flow=(ast.ExecuteCampaign("B"),)),
        ),
    )
    output = format_rule_file(built)
    assert output == (
        'timezone "Europe/Berlin"\n\n'
        'campaign "B" {\n'
        "    schedule every week on friday at 09:00\n"
        '    timezone "Asia/Tokyo"\n'
        "    limit 10\n"
        "    flow {\n"
        "        remove from flow of this campaign\n"
        "        wait until weekday friday..monday at 18:00\n"
        "    }\n"
        "}\n\n"
        'campaign "R" {\n'
        "    trigger campaign is requested\n"
        "    flow {\n"
        '        execute campaign "B"\n'
        "    }\n"
        "}\n"
    )
    assert parse(output).declarations == built.declarations


# Tokens of the canonical text: a date and time or a clock is one token (no gap may go inside it).
_TOKEN = re.compile(
    r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]+|[0-9]{2}:[0-9]{2}|[A-Za-z_][A-Za-z0-9_]*'
    r"|[0-9][0-9-]*|\.\.|\S"
)
GAPS = st.sampled_from([" ", "  ", "\n", "\n\n\n\t", " # c\n", "\n    # own\n", "\t#x\n\n"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_relayout_formats_to_the_same_text(data: st.DataObject) -> None:
    tokens = [m.group(0) for m in _TOKEN.finditer(CANONICAL) if not m.group(0).startswith("#")]
    gaps = data.draw(st.lists(GAPS, min_size=len(tokens), max_size=len(tokens)))
    text = "".join(token + gap for token, gap in zip(tokens, gaps, strict=True))
    output = fmt(text)
    assert parse(output).declarations == parse(CANONICAL).declarations
    assert fmt(output) == output


def test_names_with_quotes_stay_escaped_in_calls() -> None:
    name = 'A \\"B\\"'
    text = (
        f'campaign "{name}" {{\n    trigger campaign is requested\n    flow {{\n    }}\n}}\n\n'
        'campaign "C" {\n    trigger added to sfdc campaign "W"\n    flow {\n'
        f'        request campaign "{name}"\n        execute campaign "{name}"\n'
        f'        remove from flow of campaign "{name}"\n    }}\n}}\n'
    )
    assert fmt(text) == text
