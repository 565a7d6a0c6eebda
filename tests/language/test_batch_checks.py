"""Issue 12, the checks: schedules and triggers, limits, time zones, dates and times, requested and executed
campaigns (names, requestability, waits, depth, cycles), Remove from Flow, and the campaign graph's new edges."""

from __future__ import annotations

import pytest
from lang_helpers import line_col

from engine.language import ast
from engine.language.checks import (
    campaign_calls,
    campaign_graph,
    check_rule_set,
    execute_graph,
    is_time_zone,
    valid_clock,
    valid_datetime,
)
from engine.language.diagnostics import Diagnostic
from engine.language.loader import assemble
from engine.language.parser import parse_text


def check(*texts: str) -> list[Diagnostic]:
    files = []
    for i, text in enumerate(texts):
        result = parse_text(text, f"f{i}.campaign", use_cache=False)
        assert result.diagnostics == (), [d.header() for d in result.diagnostics]
        files.append(result.file)
    return check_rule_set(assemble(files))


def errors(*texts: str) -> list[Diagnostic]:
    return [d for d in check(*texts) if d.is_error]


def codes(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.code for d in diagnostics]


def one(diagnostics: list[Diagnostic], code: str) -> Diagnostic:
    found = [d for d in diagnostics if d.code == code]
    assert len(found) == 1, [d.header() for d in diagnostics]
    return found[0]


REQUESTED = (
    'campaign "Kit" {\n    trigger campaign is requested\n    flow { add to sfdc campaign "K" with status "Sent" }\n}\n'
)


# ------------------------------------------------------------------------------ batch campaigns


def test_a_clean_batch_campaign() -> None:
    text = (
        'timezone "Europe/Berlin"\n'
        'campaign "Weekly" {\n'
        "    schedule every week on monday at 09:00\n"
        '    timezone "America/New_York"\n'
        '    filter member of sfdc campaign "Webinar" with status "No Show"\n'
        "    limit 500\n"
        '    flow { remove from sfdc campaign "Webinar" }\n'
        "}\n"
    )
    assert check(text) == []  # no `no-trigger` warning for a batch campaign either


def test_schedule_with_a_trigger() -> None:
    text = 'campaign "B" {\n    trigger added to sfdc campaign "W"\n    schedule every day at 09:00\n    flow { }\n}\n'
    found = one(errors(text), "schedule-with-trigger")
    assert (found.line, found.column) == line_col(text, "schedule every")
    assert 'campaign "B" has a schedule and a trigger' in found.message


def test_schedule_with_the_requested_trigger() -> None:
    text = 'campaign "B" {\n    trigger campaign is requested\n    schedule every day at 09:00\n}\n'
    assert codes(errors(text)) == ["schedule-with-trigger"]


def test_requested_campaign_may_have_other_triggers() -> None:
    text = (
        'campaign "R" {\n    trigger campaign is requested\n    trigger added to sfdc campaign "W"\n    flow { }\n}\n'
    )
    assert errors(text) == []


def test_two_schedules() -> None:
    text = 'campaign "B" {\n    schedule every day at 09:00\n    schedule at 2026-12-10T09:00\n}\n'
    found = one(errors(text), "repeated-item")
    assert "more than one `schedule`" in found.message
    assert (found.line, found.column) == line_col(text, "schedule at")


def test_limit_without_schedule() -> None:
    text = 'campaign "L" {\n    trigger added to sfdc campaign "W"\n    limit 10\n}\n'
    found = one(errors(text), "limit-without-schedule")
    assert (found.line, found.column) == line_col(text, "limit 10")


def test_limit_zero() -> None:
    text = 'campaign "L" {\n    schedule every day at 09:00\n    limit 0\n}\n'
    found = one(errors(text), "zero-limit")
    assert (found.line, found.column) == line_col(text, "limit 0")
    assert errors(text.replace("limit 0", "limit 1")) == []


@pytest.mark.parametrize(
    ("line", "code", "token"),
    [
        ("schedule at 2026-02-30T09:00", "bad-datetime", "2026-02-30T09:00"),
        ("schedule at 2026-12-10T24:00", "bad-datetime", "2026-12-10T24:00"),
        ("schedule at 2026-13-01T09:00", "bad-datetime", "2026-13-01T09:00"),
        ("schedule at 2026-12-10T09:00:60", "bad-datetime", "2026-12-10T09:00:60"),
        ("schedule every day at 25:00", "bad-time", "25:00"),
        ("schedule every day at 09:60", "bad-time", "09:60"),
        ("schedule every week on monday at 24:00", "bad-time", "24:00"),
        ("schedule every month on day 1 at 99:99", "bad-time", "99:99"),
    ],
)
def test_bad_dates_and_times_in_schedules(line: str, code: str, token: str) -> None:
    text = f'campaign "B" {{\n    {line}\n}}\n'
    found = one(errors(text), code)
    assert (found.line, found.column) == line_col(text, token)
    assert found.end_column == found.column + len(token)
    assert token in found.message


@pytest.mark.parametrize(
    ("step", "code", "token"),
    [
        ("wait until 2026-02-29T09:00", "bad-datetime", "2026-02-29T09:00"),  # 2026 is no leap year
        ("wait until weekday monday at 25:00", "bad-time", "25:00"),
        ("wait 2 days then until weekday monday..friday at 09:60", "bad-time", "09:60"),
        ('if member of sfdc campaign "X" { wait until 2026-04-31T00:00 }', "bad-datetime", "2026-04-31T00:00"),
    ],
)
def test_bad_dates_and_times_in_waits(step: str, code: str, token: str) -> None:
    text = f'campaign "W" {{\n    trigger added to sfdc campaign "W"\n    flow {{\n        {step}\n    }}\n}}\n'
    found = one(errors(text), code)
    assert (found.line, found.column) == line_col(text, token)


def test_good_dates_and_times() -> None:
    text = (
        'campaign "W" {\n    trigger added to sfdc campaign "W"\n    flow {\n'
        "        wait until 2028-02-29T23:59:59\n        wait until weekday sunday at 00:00\n    }\n}\n"
        'campaign "B" {\n    schedule every month on day 31 at 23:59\n}\n'
    )
    assert errors(text) == []
    assert valid_datetime("2026-12-10T09:00") and not valid_datetime("2026-12-10T9:00")
    assert valid_clock("00:00") and not valid_clock("24:00") and not valid_clock("12:5")


@pytest.mark.parametrize("day", [0, 32, 99])
def test_day_of_month_out_of_range(day: int) -> None:
    text = f'campaign "B" {{\n    schedule every month on day {day} at 09:00\n}}\n'
    found = one(errors(text), "bad-day")
    assert f"day {day}" in found.message and "last day" in found.message
    assert (found.line, found.column) == line_col(text, "schedule every")


# ------------------------------------------------------------------------------------- time zones


def test_unknown_time_zone_at_the_top() -> None:
    text = 'timezone "Europe/Berlln"\n'
    found = one(errors(text), "unknown-timezone")
    assert (found.line, found.column) == line_col(text, '"Europe/Berlln"')
    assert found.end_column == found.column + len('"Europe/Berlln"')
    assert 'did you mean "Europe/Berlin"?' in found.message
    assert any('"Europe/Berlin"' in note for note in found.notes)


def test_unknown_time_zone_in_a_campaign() -> None:
    text = 'campaign "B" {\n    schedule every day at 09:00\n    timezone "europe/berlin"\n}\n'
    found = one(errors(text), "unknown-timezone")
    assert (found.line, found.column) == line_col(text, '"europe/berlin"')
    assert 'did you mean "Europe/Berlin"?' in found.message


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", " UTC", "Europe/"])
def test_not_time_zones(name: str) -> None:
    assert not is_time_zone(name)
    assert "unknown-timezone" in codes(errors(f'timezone "{name}"\n'))


def test_known_time_zones() -> None:
    assert errors('timezone "UTC"\ntimezone "UTC"\n', 'campaign "B" { timezone "Asia/Tokyo" }\n') == []


def test_two_different_rule_set_time_zones() -> None:
    first = 'timezone "Europe/Berlin"\n'
    second = '# other\ntimezone "America/New_York"\n'
    found = one(errors(first, second), "timezone-conflict")
    assert (found.file, found.line, found.column) == ("f1.campaign", 2, 1)
    assert '"Europe/Berlin" (f0.campaign:1:1)' in found.message


def test_the_rule_set_zone_is_the_first() -> None:
    files = [parse_text('timezone "Asia/Tokyo"\ncampaign "A" { timezone "UTC" }\ncampaign "B" { }\n').file]
    rule_set = assemble(files)
    assert rule_set.timezone == "Asia/Tokyo"
    assert [rule_set.zone_of(c) for c in rule_set.campaigns] == ["UTC", "Asia/Tokyo"]


# ------------------------------------------------------------------- requested and executed campaigns


def caller(*steps: str) -> str:
    body = "\n".join(f"        {s}" for s in steps)
    return f'campaign "Caller" {{\n    trigger added to sfdc campaign "W"\n    flow {{\n{body}\n    }}\n}}\n'


def test_calls_of_a_requestable_campaign_are_fine() -> None:
    text = caller('request campaign "Kit"', 'execute campaign "Kit"', 'remove from flow of campaign "Kit"')
    assert errors(text, REQUESTED) == []
    assert errors(caller("remove from flow of this campaign")) == []


@pytest.mark.parametrize(
    "step", ['request campaign "Kti"', 'execute campaign "Kti"', 'remove from flow of campaign "Kti"']
)
def test_unknown_campaign_names(step: str) -> None:
    text = caller(step)
    found = one(errors(text, REQUESTED), "unknown-smart-campaign")
    assert found.message == 'unknown campaign "Kti"; did you mean "Kit"?'
    assert (found.line, found.column) == line_col(text, step)


@pytest.mark.parametrize(("verb", "done"), [("request", "requested"), ("execute", "executed")])
def test_calling_a_campaign_that_is_not_requested(verb: str, done: str) -> None:
    target = 'campaign "Plain" {\n    trigger added to sfdc campaign "P"\n    flow { }\n}\n'
    found = one(errors(caller(f'{verb} campaign "Plain"'), target), "not-requestable")
    assert f'campaign "Plain" cannot be {done}: it has no' in found.message
    assert "trigger campaign is requested" in found.message


@pytest.mark.parametrize(
    "wait",
    [
        "wait 1 day",
        "wait until 2026-12-24T09:00",
        "wait until weekday monday at 09:00",
        'if member of sfdc campaign "X" { } else { wait 2 hours }',
    ],
)
def test_executing_a_campaign_that_waits(wait: str) -> None:
    target = f'campaign "Slow" {{\n    trigger campaign is requested\n    flow {{\n        {wait}\n    }}\n}}\n'
    text = caller('execute campaign "Slow"')
    found = one(errors(text, target), "execute-with-wait")
    assert 'campaign "Slow" waits (f1.campaign:4:' in found.message
    assert (found.line, found.column) == line_col(text, 'execute campaign "Slow"')
    assert errors(caller('request campaign "Slow"'), target) == []  # a requested one may wait


def executes(name: str, *targets: str, requested: bool = True) -> str:
    trigger = "trigger campaign is requested" if requested else 'trigger added to sfdc campaign "W"'
    steps = " ".join(f'execute campaign "{t}"' for t in targets)
    return f'campaign "{name}" {{\n    {trigger}\n    flow {{ {steps} }}\n}}\n'


def test_execute_depth_three_is_fine_four_is_not() -> None:
    three = [executes("A", "B"), executes("B", "C"), executes("C", "D"), executes("D")]
    assert errors(*three) == []
    four = [executes("A", "B"), executes("B", "C"), executes("C", "D"), executes("D", "E"), executes("E")]
    found = one(errors(*four), "execute-too-deep")
    assert found.message == ('executed campaigns nest 4 levels deep: "A" -> "B" -> "C" -> "D" -> "E"; at most 3 levels')
    assert found.file == "f0.campaign" and (found.line, found.column) == line_col(four[0], 'execute campaign "B"')


def test_execute_depth_takes_the_deepest_branch() -> None:
    texts = [executes("A", "X", "B"), executes("X"), executes("B", "C"), executes("C", "D"), executes("D", "E")]
    texts.append(executes("E"))
    assert '"A" -> "B" -> "C" -> "D" -> "E"' in one(errors(*texts), "execute-too-deep").message


def test_execute_cycle() -> None:
    found = one(errors(executes("A", "B"), executes("B", "A")), "execute-cycle")
    assert found.message == 'campaigns execute each other in a cycle: "A" -> "B" -> "A"'
    assert found.file == "f0.campaign"
    # an execute cycle is an error of its own, not also a cascade warning
    assert "campaign-cycle" not in codes(check(executes("A", "B"), executes("B", "A")))


def test_a_campaign_executing_itself() -> None:
    found = one(errors(executes("A", "A")), "execute-cycle")
    assert found.message == 'campaigns execute each other in a cycle: "A" -> "A"'


def test_a_loop_through_requests_is_a_cascade_warning() -> None:
    text = (
        'campaign "A" {\n    trigger campaign is requested\n    flow { request campaign "B" }\n}\n'
        'campaign "B" {\n    trigger campaign is requested\n    flow { request campaign "A" }\n}\n'
    )
    diagnostics = check(text)
    assert [d for d in diagnostics if d.is_error] == []
    cycle = one(diagnostics, "campaign-cycle")
    assert cycle.severity == "warning" and '"A" -> "B" -> "A"' in cycle.message


def test_a_loop_mixing_execute_and_request_is_a_warning() -> None:
    text = (
        executes("A", "B") + 'campaign "B" {\n    trigger campaign is requested\n    flow { request campaign "A" }\n}\n'
    )
    diagnostics = check(text)
    assert "execute-cycle" not in codes(diagnostics)
    assert one(diagnostics, "campaign-cycle").severity == "warning"


def test_campaign_graph_and_calls() -> None:
    texts = [caller('request campaign "Kit"', 'execute campaign "Kit"', 'request campaign "Nope"'), REQUESTED]
    rule_set = assemble(parse_text(t, f"f{i}").file for i, t in enumerate(texts))
    assert campaign_graph(rule_set) == {"Caller": ["Kit"], "Kit": []}
    assert campaign_graph(rule_set, calls=False) == {"Caller": [], "Kit": []}
    assert campaign_calls(rule_set) == {"Caller": [("request", "Kit"), ("execute", "Kit")], "Kit": []}
    assert execute_graph(rule_set) == {"Caller": ["Kit"], "Kit": []}


def test_time_zones_are_checked_beside_a_nesting_cut() -> None:
    deep: ast.FilterExpr = ast.MembershipFilter(ast.CampaignRef("name", ("X",)))
    for _ in range(200):
        deep = ast.Not(deep)
    zone = ast.TimeZone("Nowhere/Land")
    files = (ast.RuleFile("f0", (zone, ast.Campaign("Deep", filters=(deep,)))),)
    rule_set = assemble(files)
    assert rule_set.timezone == "Nowhere/Land"
    assert {"nested-too-deep", "unknown-timezone"} <= set(codes(check_rule_set(rule_set)))
