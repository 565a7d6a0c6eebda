"""The parser: every construct of LANGUAGE.md to a typed AST (snapshots), precedence, spans, the spec examples."""

from __future__ import annotations

import pytest
from lang_helpers import dump, language_examples, line_col, needs_shared, span_text

from engine.language import ast
from engine.language.parser import parse_text


def parse(text: str, file: str = "t.campaign") -> ast.RuleFile:
    result = parse_text(text, file, use_cache=False)
    assert result.diagnostics == (), [d.header() for d in result.diagnostics]
    return result.file


def campaign(body: str) -> ast.Campaign:
    """Parses one campaign whose items are `body`, and returns it."""
    rule_file = parse(f'campaign "C" {{\n{body}\n}}\n')
    assert len(rule_file.declarations) == 1
    declaration = rule_file.declarations[0]
    assert isinstance(declaration, ast.Campaign)
    return declaration


# ----------------------------------------------------------------------------------- snapshots

TRIGGERS = {
    "added": 'trigger added to sfdc campaign "W"',
    "added-with-status": 'trigger added to sfdc campaign "W" with status "Attended"',
    "removed": 'trigger removed from sfdc campaign "Prospects"',
    "removed-with-status": 'trigger removed from sfdc campaign "Prospects" with status in ("Sent", "Responded")',
    "status-changed": 'trigger status changed in sfdc campaign "W"',
    "status-changed-from": 'trigger status changed in sfdc campaign "W" from "Registered"',
    "status-changed-to": 'trigger status changed in sfdc campaign "W" to "Attended"',
    "status-changed-from-to": 'trigger status changed in sfdc campaign "W" from "Registered" to "Attended"',
    "program-status-changed": 'trigger status changed in program "P"',
    "program-status-changed-from-to": 'trigger status changed in program "P" from "Not in Program" to "Attended"',
}

CAMPAIGN_REFS = {
    "name": 'sfdc campaign "Webinar"',
    "id": 'sfdc campaign id "7015g00000ABCDEAA1"',
    "in": 'sfdc campaign in ("A", "B")',
    "not-in": 'sfdc campaign not in ("A", "B", "C")',
    "any": "any sfdc campaign",
}

STATUS_MATCHES = {
    "is": '"Sent"',
    "in": 'in ("Sent", "Responded")',
    "not-in": 'not in ("Sent")',
}

FILTERS = {
    "member": 'filter member of sfdc campaign "Customers"',
    "member-with-status": 'filter member of sfdc campaign "Newsletter" with status in ("Sent", "Responded")',
    "not-member": 'filter not member of sfdc campaign "Do Not Contact"',
    "member-of-program": 'filter member of program "P"',
    "member-of-program-with-status": 'filter member of program "P" with status not in ("No Show")',
    "and": 'filter member of sfdc campaign "A" and member of sfdc campaign "B" and member of sfdc campaign "C"',
    "or": 'filter member of sfdc campaign "A" or member of sfdc campaign id "7015g00000ABCDEAA1"',
    "or-over-two-lines": 'filter member of sfdc campaign "A"\n       or member of sfdc campaign "B"',
    "not-and-or": (
        'filter not member of sfdc campaign "A" and member of sfdc campaign "B" or member of sfdc campaign "C"'
    ),
    "parentheses": (
        'filter not (member of sfdc campaign "A" or member of sfdc campaign "B") and member of sfdc campaign "C"'
    ),
    "nested-parentheses": 'filter ((member of sfdc campaign "A") or (not (member of sfdc campaign "B")))',
    "double-not": 'filter not not member of sfdc campaign "A"',
    "several-lines": 'filter member of sfdc campaign "A"\nfilter not member of sfdc campaign "B"',
}

QUALIFY = {
    "default": "",
    "once": "qualify once",
    "every-time": "qualify every time",
    "once-every-7-days": "qualify once every 7 days",
    "once-every-1-hour": "qualify once every 1 hour",
    "once-every-2-weeks": "qualify once every 2 weeks",
    "once-every-1-month": "qualify once every 1 month",
}

FLOW_STEPS = {
    "add": 'add to sfdc campaign "Nurture 2026" with status "Sent"',
    "add-by-id": 'add to sfdc campaign id "7015g00000ABCDE" with status "Sent"',
    "change-status": 'change status in sfdc campaign "2026 Q4 Webinar" to "Followed Up"',
    "remove": 'remove from sfdc campaign "Prospects"',
    "change-program-status": 'change program status in program "P" to "Attended"',
    "wait-minutes": "wait 30 minutes",
    "wait-1-minute": "wait 1 minute",
    "wait-hours": "wait 3 hours",
    "wait-days": "wait 2 days",
    "wait-1-week": "wait 1 week",
    "wait-months": "wait 6 months",
    "if": 'if member of sfdc campaign "VIP" { add to sfdc campaign "VIP Nurture" with status "Sent" }',
    "if-else": (
        'if member of sfdc campaign "VIP" { remove from sfdc campaign "A" }\nelse { remove from sfdc campaign "B" }'
    ),
    "if-else-if-else": """
        if member of sfdc campaign "VIP" {
            add to sfdc campaign "VIP Nurture" with status "Sent"
        } else if not member of sfdc campaign "Customers" {
            add to sfdc campaign "Prospect Nurture" with status "Sent"
        } else if member of program "P" with status "Attended" and member of sfdc campaign "X" {
            wait 1 day
        } else {
            change status in sfdc campaign "Customers" to "Responded"
        }""",
    "nested-if": """
        if member of sfdc campaign "A" {
            if member of sfdc campaign "B" { wait 1 hour } else { remove from sfdc campaign "B" }
            remove from sfdc campaign "A"
        }""",
    "empty-branches": 'if member of sfdc campaign "A" { } else { }',
    "steps-in-order": (
        'add to sfdc campaign "N" with status "Sent"\nwait 2 days\nremove from sfdc campaign "N"\n'
        'change status in sfdc campaign "M" to "Responded"'
    ),
}


@pytest.mark.parametrize("source", TRIGGERS.values(), ids=TRIGGERS.keys())
def test_trigger_forms(source: str, snapshot) -> None:
    assert dump(campaign(source).triggers) == snapshot


@pytest.mark.parametrize("ref", CAMPAIGN_REFS.values(), ids=CAMPAIGN_REFS.keys())
def test_campaign_ref_forms(ref: str, snapshot) -> None:
    parsed = campaign(
        f"trigger added to {ref}\ntrigger removed from {ref}\ntrigger status changed in {ref}\nfilter member of {ref}"
    )
    refs = [t.campaign for t in parsed.triggers] + [parsed.filters[0].campaign]
    assert len(set(refs)) == 1, "one reference form parses alike in every place"
    assert dump(refs[0]) == snapshot


@pytest.mark.parametrize("ref", ['sfdc campaign "Webinar"', 'sfdc campaign id "7015g00000ABCDEAA1"'])
def test_single_campaign_refs_in_flow_actions(ref: str) -> None:
    parsed = campaign(
        f'flow {{\nadd to {ref} with status "Sent"\nchange status in {ref} to "Sent"\nremove from {ref}\n}}'
    )
    assert len({step.campaign for step in parsed.flow}) == 1
    assert all(step.campaign.is_single for step in parsed.flow)


@pytest.mark.parametrize("match", STATUS_MATCHES.values(), ids=STATUS_MATCHES.keys())
def test_status_match_forms(match: str, snapshot) -> None:
    parsed = campaign(
        f'trigger added to sfdc campaign "W" with status {match}\n'
        f'trigger removed from sfdc campaign "W" with status {match}\n'
        f'trigger status changed in sfdc campaign "W" from {match} to {match}\n'
        f'filter member of sfdc campaign "W" with status {match}'
    )
    matches = [
        parsed.triggers[0].status,
        parsed.triggers[1].status,
        parsed.triggers[2].from_status,
        parsed.triggers[2].to_status,
        parsed.filters[0].status,
    ]
    assert len(set(matches)) == 1, "`with status`, `from` and `to` take the same match forms"
    assert dump(matches[0]) == snapshot


@pytest.mark.parametrize("source", FILTERS.values(), ids=FILTERS.keys())
def test_filter_forms(source: str, snapshot) -> None:
    assert dump(campaign(source).filters) == snapshot


@pytest.mark.parametrize("source", QUALIFY.values(), ids=QUALIFY.keys())
def test_qualify_forms(source: str, snapshot) -> None:
    parsed = campaign(source)
    assert parsed.qualification_given == bool(source)
    assert dump(parsed.qualification) == snapshot


@pytest.mark.parametrize("source", FLOW_STEPS.values(), ids=FLOW_STEPS.keys())
def test_flow_steps(source: str, snapshot) -> None:
    assert dump(campaign(f"flow {{\n{source}\n}}").flow) == snapshot


def test_whole_campaign_description_and_inactive(snapshot) -> None:
    parsed = parse(
        """
campaign "Webinar follow-up" {
    description "Attendees go to the nurture campaign"
    inactive
    trigger added to sfdc campaign "2026 Q4 Webinar" with status "Attended"
    qualify every time
    flow { wait 2 days }
}
"""
    )
    assert dump(parsed.declarations) == snapshot


def test_campaign_defaults() -> None:
    parsed = campaign("")
    assert parsed.active is True
    assert parsed.description is None
    assert parsed.has_flow_block is False
    assert parsed.qualification == ast.Qualification("once")
    assert parsed.qualification_given is False
    assert parsed.flow == () and parsed.triggers == () and parsed.filters == ()


def test_inactive_and_empty_flow_block() -> None:
    parsed = campaign("inactive\nflow { }")
    assert parsed.active is False
    assert parsed.has_flow_block is True
    assert parsed.flow == ()


def test_qualification_window_seconds() -> None:
    assert campaign("qualify once every 7 days").qualification.window_seconds == 7 * 86400
    assert campaign("qualify once every 1 month").qualification.window_seconds == 30 * 86400
    assert campaign("qualify once every 2 hours").qualification.window_seconds == 7200


def test_wait_seconds() -> None:
    waits = campaign("flow { wait 5 minutes wait 1 week }").flow
    assert [w.seconds for w in waits] == [300, 7 * 86400]


def test_channel_with_success_and_program(snapshot) -> None:
    parsed = parse(
        """
channel "Webinar" {
    status "Invited" step 10
    status "Attended" step 30 success
}

program "2026 Q4 Webinar" {
    channel "Webinar"
    sync with sfdc campaign "2026 Q4 Webinar"
    cost 2026-10 5000 "Venue deposit"
    cost 2026-11 1200
}

program "By id" {
    channel "Webinar"
    sync with sfdc campaign id "7015g00000ABCDEAA1"
}

program "Bare" {
}
"""
    )
    assert dump(parsed.declarations) == snapshot
    channel, program, by_id, bare = parsed.declarations
    assert isinstance(channel, ast.Channel) and isinstance(program, ast.Program)
    assert [(s.name, s.step, s.success) for s in channel.statuses] == [("Invited", 10, False), ("Attended", 30, True)]
    assert channel.status("Not in Program") == ast.ChannelStatus("Not in Program", 0)
    assert channel.status("Attended") is not None and channel.status("Nope") is None
    assert program.channel == "Webinar"
    assert program.sync_with == ast.CampaignRef("name", ("2026 Q4 Webinar",))
    assert [(c.period, c.amount, c.note) for c in program.costs] == [
        ("2026-10", 5000, "Venue deposit"),
        ("2026-11", 1200, None),
    ]
    assert program.total_cost == 6200
    assert by_id.sync_with == ast.CampaignRef("id", ("7015g00000ABCDEAA1",))
    assert bare.channel is None and bare.sync_with is None and bare.costs == ()


def test_declarations_keep_file_order() -> None:
    parsed = parse('program "P" { }\ncampaign "A" { }\nchannel "X" { }\ncampaign "B" { }\n')
    assert [(type(d).__name__, d.name) for d in parsed.declarations] == [
        ("Program", "P"),
        ("Campaign", "A"),
        ("Channel", "X"),
        ("Campaign", "B"),
    ]


# -------------------------------------------------------------------------------- precedence


def _member(name: str) -> ast.MembershipFilter:
    return ast.MembershipFilter(ast.CampaignRef("name", (name,)))


A, B, C, D = (_member(x) for x in "ABCD")


def _filter(expr: str) -> ast.FilterExpr:
    return campaign(f"filter {expr}").filters[0]


def m(name: str) -> str:
    return f'member of sfdc campaign "{name}"'


def test_not_binds_tighter_than_and() -> None:
    assert _filter(f"not {m('A')} and {m('B')}") == ast.And((ast.Not(A), B))
    assert _filter(f"{m('A')} and not {m('B')}") == ast.And((A, ast.Not(B)))


def test_and_binds_tighter_than_or() -> None:
    assert _filter(f"{m('A')} or {m('B')} and {m('C')}") == ast.Or((A, ast.And((B, C))))
    assert _filter(f"{m('A')} and {m('B')} or {m('C')}") == ast.Or((ast.And((A, B)), C))


def test_not_binds_tighter_than_or() -> None:
    assert _filter(f"not {m('A')} or {m('B')}") == ast.Or((ast.Not(A), B))


def test_mixed_precedence() -> None:
    assert _filter(f"not {m('A')} and {m('B')} or {m('C')} and not {m('D')}") == ast.Or(
        (ast.And((ast.Not(A), B)), ast.And((C, ast.Not(D))))
    )


def test_parentheses_override_precedence() -> None:
    assert _filter(f"not ({m('A')} and {m('B')})") == ast.Not(ast.And((A, B)))
    assert _filter(f"({m('A')} or {m('B')}) and {m('C')}") == ast.And((ast.Or((A, B)), C))
    assert _filter(f"{m('A')} and ({m('B')} or {m('C')})") == ast.And((A, ast.Or((B, C))))


def test_chains_are_flat() -> None:
    assert _filter(f"{m('A')} and {m('B')} and {m('C')}") == ast.And((A, B, C))
    assert _filter(f"{m('A')} or {m('B')} or {m('C')}") == ast.Or((A, B, C))


def test_redundant_parentheses_are_transparent() -> None:
    assert _filter(f"(({m('A')}))") == A
    assert _filter(f"({m('A')}) and ({m('B')})") == ast.And((A, B))


def test_several_filter_lines_stay_separate() -> None:
    parsed = campaign(f"filter {m('A')} or {m('B')}\nfilter not {m('C')}")
    assert parsed.filters == (ast.Or((A, B)), ast.Not(C))


def test_filter_evaluation_follows_the_tree() -> None:
    match = ast.StatusMatch("not_in", ("Sent",))
    assert match.matches("Responded") and not match.matches("Sent") and not match.matches(None)
    assert ast.StatusMatch("in", ("A", "B")).matches("B")
    assert ast.StatusMatch("is", ("A",)).matches("A") and not ast.StatusMatch("is", ("A",)).matches("a")


# ------------------------------------------------------------------------- comments and strings


def test_comments_are_ignored() -> None:
    with_comments = parse(
        """# leading comment
campaign "A" {  # after the brace
    # a whole line
    trigger added to sfdc campaign "W"   # trailing
    flow { # inside a flow
        wait 1 day # after a step
    }
} # after the campaign
# last line, no newline"""
    )
    without = parse('campaign "A" { trigger added to sfdc campaign "W" flow { wait 1 day } }')
    assert with_comments.declarations == without.declarations
    assert [c.text for c in with_comments.comments][:2] == ["# leading comment", "# after the brace"]
    assert len(with_comments.comments) == 8
    assert (with_comments.comments[0].line, with_comments.comments[0].column) == (1, 1)


def test_hash_inside_a_string_is_not_a_comment() -> None:
    assert campaign('description "Q4 #1 webinar"').description == "Q4 #1 webinar"


def test_string_escapes() -> None:
    parsed = parse(r'campaign "Say \"hi\" \\ bye" { description "back\\slash and \"quote\"" }')
    declaration = parsed.declarations[0]
    assert declaration.name == 'Say "hi" \\ bye'
    assert declaration.description == 'back\\slash and "quote"'


def test_escaped_backslash_before_closing_quote() -> None:
    assert campaign(r'description "ends with \\"').description == "ends with \\"


def test_unicode_strings() -> None:
    assert campaign('description "Café — 東京 ✓"').description == "Café — 東京 ✓"


def test_whitespace_carries_no_meaning() -> None:
    compact = parse('campaign "A"{trigger added to sfdc campaign"W" flow{wait 1 day}}')
    spread = parse('\n\n  campaign\n"A"\n{\n\ttrigger\nadded   to\r\nsfdc campaign "W"\n flow\n{ wait\n1\nday\n}\n}\n')
    assert compact.declarations == spread.declarations


# ------------------------------------------------------------------------------------ spans

SPAN_SOURCE = """# header comment
  campaign "Span test" {
    trigger added to sfdc campaign "W" with status "Attended"
    trigger status changed in sfdc campaign "W"
        from "A" to "B"
    filter not member of sfdc campaign "X"
    flow {
        wait 2 days
    }
  }
program "P" {
    channel "Webinar"
    cost 2026-10 5 "note"
}
"""


def test_campaign_span_runs_from_keyword_to_closing_brace() -> None:
    declaration = parse(SPAN_SOURCE, "span.campaign").declarations[0]
    span = declaration.span
    assert span.file == "span.campaign"
    assert (span.line, span.column) == (2, 3)  # the `campaign` keyword
    assert (span.end_line, span.end_column - 1) == (10, 3)  # the `}` (end column is exclusive)
    text = span_text(SPAN_SOURCE, span)
    assert text.startswith('campaign "Span test" {')
    assert text.endswith("    }\n  }")


def test_name_span_points_at_the_name_string() -> None:
    campaign_decl, program = parse(SPAN_SOURCE, "span.campaign").declarations
    assert (campaign_decl.name_span.line, campaign_decl.name_span.column) == line_col(SPAN_SOURCE, '"Span test"')
    assert span_text(SPAN_SOURCE, campaign_decl.name_span) == '"Span test"'
    assert span_text(SPAN_SOURCE, program.name_span) == '"P"'
    assert span_text(SPAN_SOURCE, program.channel_span) == '"Webinar"'


def test_trigger_span_covers_its_line() -> None:
    triggers = parse(SPAN_SOURCE).declarations[0].triggers
    assert span_text(SPAN_SOURCE, triggers[0].span) == 'trigger added to sfdc campaign "W" with status "Attended"'
    assert (triggers[0].span.line, triggers[0].span.column) == (3, 5)
    assert span_text(SPAN_SOURCE, triggers[1].span) == (
        'trigger status changed in sfdc campaign "W"\n        from "A" to "B"'
    )
    assert span_text(SPAN_SOURCE, triggers[0].campaign.span) == 'sfdc campaign "W"'
    assert span_text(SPAN_SOURCE, triggers[0].status.span) == '"Attended"'


def test_step_filter_and_cost_spans() -> None:
    campaign_decl, program = parse(SPAN_SOURCE).declarations
    assert span_text(SPAN_SOURCE, campaign_decl.filters[0].span) == 'not member of sfdc campaign "X"'
    assert span_text(SPAN_SOURCE, campaign_decl.flow[0].span) == "wait 2 days"
    assert span_text(SPAN_SOURCE, program.costs[0].span) == 'cost 2026-10 5 "note"'
    assert span_text(SPAN_SOURCE, program.span).startswith('program "P" {')


def test_spans_do_not_take_part_in_equality() -> None:
    one = parse('campaign "A" { trigger added to sfdc campaign "W" }')
    two = parse('\n\n   campaign "A" {\n trigger added to sfdc campaign "W" }')
    assert one.declarations == two.declarations
    assert one.declarations[0].span != two.declarations[0].span


def test_spans_after_error_recovery_keep_real_line_numbers() -> None:
    source = 'campaign "Broken" {\n    trigger nope\n}\n\ncampaign "Fine" {\n'
    source += '    trigger added to sfdc campaign "W"\n}\n'
    result = parse_text(source, "r.campaign", use_cache=False)
    assert len(result.diagnostics) == 1
    (fine,) = result.file.declarations
    assert fine.name == "Fine"
    assert (fine.span.line, fine.span.column) == (5, 1)
    assert fine.triggers[0].span.line == 6


def test_parenthesised_expression_span_includes_the_parenthesis() -> None:
    source = (
        'campaign "A" {\n'
        '    filter (member of sfdc campaign "A" or member of sfdc campaign "B") and member of sfdc campaign "C"\n'
        "}\n"
    )
    expr = parse(source).declarations[0].filters[0]
    assert span_text(source, expr.span).startswith("(member")


# --------------------------------------------------------------------------- spec examples


@needs_shared
def test_language_md_has_the_two_examples() -> None:
    examples = language_examples()
    assert len(examples) == 2
    assert examples[0].lstrip().startswith('campaign "Webinar follow-up"')
    assert examples[1].lstrip().startswith('channel "Webinar"')


@needs_shared
def test_campaign_example_of_language_md_parses(snapshot) -> None:
    parsed = parse(language_examples()[0], "LANGUAGE.md")
    (declaration,) = parsed.declarations
    assert isinstance(declaration, ast.Campaign)
    assert declaration.name == "Webinar follow-up"
    assert declaration.active is False
    assert [t.kind for t in declaration.triggers] == ["added", "status_changed", "removed"]
    assert len(declaration.filters) == 3
    assert isinstance(declaration.filters[2], ast.Or)
    assert isinstance(declaration.flow[3], ast.Choice) and len(declaration.flow[3].branches) == 3
    assert dump(parsed.declarations) == snapshot


@needs_shared
def test_program_example_of_language_md_parses(snapshot) -> None:
    parsed = parse(language_examples()[1], "LANGUAGE.md")
    assert [type(d).__name__ for d in parsed.declarations] == ["Channel", "Program"]
    channel, program = parsed.declarations
    assert [s.name for s in channel.statuses if s.success] == ["Attended", "Attended On-demand"]
    assert program.total_cost == 6200
    assert dump(parsed.declarations) == snapshot


def test_parse_text_with_cache_returns_the_same_result() -> None:
    source = 'campaign "Cached" { trigger added to sfdc campaign "W" flow { wait 1 day } }'
    first = parse_text(source, "cached.campaign", use_cache=True)
    second = parse_text(source, "cached.campaign", use_cache=True)
    fresh = parse_text(source, "cached.campaign", use_cache=False)
    assert first == second == fresh
    assert second.file.declarations[0].span == fresh.file.declarations[0].span
