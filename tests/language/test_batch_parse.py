"""Issue 12, the syntax: batch (scheduled) campaigns, time zones, limits, requested campaigns, `request` /
`execute campaign`, Remove from Flow, dated and weekday waits; the token clashes of the contextual lexer."""

from __future__ import annotations

import pytest
from lang_helpers import span_text

from engine.language import ast
from engine.language.parser import parse_text


def parse(text: str) -> ast.RuleFile:
    result = parse_text(text, "t.campaign", use_cache=False)
    assert result.diagnostics == (), [d.header() for d in result.diagnostics]
    return result.file


def campaign(body: str) -> ast.Campaign:
    declaration = parse(f'campaign "C" {{\n{body}\n}}\n').declarations[0]
    assert isinstance(declaration, ast.Campaign)
    return declaration


def steps(body: str) -> tuple[ast.FlowStep, ...]:
    return campaign(f"flow {{\n{body}\n}}").flow


def errors(text: str) -> list[str]:
    return [d.message for d in parse_text(text, "t.campaign", use_cache=False).diagnostics if d.is_error]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("schedule at 2026-12-10T09:00", ast.Schedule("once", at="2026-12-10T09:00")),
        ("schedule at 2026-12-10T09:00:30", ast.Schedule("once", at="2026-12-10T09:00:30")),
        ("schedule every day at 09:00", ast.Schedule("daily", time="09:00")),
        ("schedule every week on monday at 09:00", ast.Schedule("weekly", time="09:00", weekday="monday")),
        ("schedule every week on sunday at 23:59", ast.Schedule("weekly", time="23:59", weekday="sunday")),
        ("schedule every month on day 1 at 09:00", ast.Schedule("monthly", time="09:00", day=1)),
        ("schedule every month on day 31 at 00:00", ast.Schedule("monthly", time="00:00", day=31)),
    ],
)
def test_schedules(line: str, expected: ast.Schedule) -> None:
    found = campaign(line)
    assert found.schedule == expected
    assert found.is_batch and not found.triggers
    assert found.schedule is not None and found.schedule.describe() == line


def test_schedule_span_timezone_and_limit() -> None:
    text = 'campaign "C" {\n    schedule every day at 09:00\n    timezone "America/New_York"\n    limit 500\n}\n'
    found = parse(text).declarations[0]
    assert isinstance(found, ast.Campaign)
    assert found.schedule is not None
    assert span_text(text, found.schedule.span) == "schedule every day at 09:00"
    assert found.timezone == "America/New_York"
    assert span_text(text, found.timezone_span) == 'timezone "America/New_York"'
    assert found.limit == 500
    assert span_text(text, found.limit_span) == "limit 500"


def test_top_level_timezone() -> None:
    text = 'timezone "Europe/Berlin"\ncampaign "C" { }\n'
    declarations = parse(text).declarations
    assert declarations[0] == ast.TimeZone("Europe/Berlin")
    assert span_text(text, declarations[0].span) == 'timezone "Europe/Berlin"'


def test_repeated_items_are_recorded() -> None:
    found = campaign(
        "schedule every day at 09:00\nschedule every day at 10:00\n"
        'timezone "UTC"\ntimezone "Europe/Berlin"\nlimit 1\nlimit 2'
    )
    assert [item for item, _ in found.repeated] == ["schedule", "timezone", "limit"]
    assert found.schedule is not None and found.schedule.time == "10:00"  # the last one, like `qualify`
    assert found.timezone == "Europe/Berlin" and found.limit == 2


def test_requested_trigger() -> None:
    found = campaign('trigger campaign is requested\ntrigger added to sfdc campaign "W"')
    assert found.triggers[0] == ast.Trigger("requested")
    assert found.triggers[0].span.line == 2
    assert found.is_requestable and not found.is_batch


def test_flow_steps() -> None:
    text = (
        'campaign "C" {\n    flow {\n'
        '        request campaign "Send kit"\n'
        '        execute campaign "Score"\n'
        '        remove from flow of campaign "Drip"\n'
        "        remove from flow of this campaign\n"
        "        wait until 2026-12-24T09:00\n"
        "        wait 2 days then until weekday monday..friday at 09:00\n"
        "        wait until weekday friday .. monday at 09:00\n"
        "        wait 1 day then until weekday saturday at 10:00\n"
        "        wait 3 hours\n"
        "    }\n}\n"
    )
    found = parse(text).declarations[0]
    assert isinstance(found, ast.Campaign)
    assert found.flow == (
        ast.RequestCampaign("Send kit"),
        ast.ExecuteCampaign("Score"),
        ast.RemoveFromFlow("Drip"),
        ast.RemoveFromFlow(None),
        ast.WaitUntil("2026-12-24T09:00"),
        ast.WaitWindow(2, "day", "monday", "friday", "09:00"),
        ast.WaitWindow(0, "day", "friday", "monday", "09:00"),
        ast.WaitWindow(1, "day", "saturday", "saturday", "10:00"),
        ast.Wait(3, "hour"),
    )
    spans = [span_text(text, step.span) for step in found.flow]
    assert spans == [
        'request campaign "Send kit"',
        'execute campaign "Score"',
        'remove from flow of campaign "Drip"',
        "remove from flow of this campaign",
        "wait until 2026-12-24T09:00",
        "wait 2 days then until weekday monday..friday at 09:00",
        "wait until weekday friday .. monday at 09:00",
        "wait 1 day then until weekday saturday at 10:00",
        "wait 3 hours",
    ]
    window = found.flow[6]
    assert isinstance(window, ast.WaitWindow) and window.weekdays == (4, 5, 6, 0)


def test_new_steps_inside_choices() -> None:
    (choice,) = steps('if member of sfdc campaign "X" { wait until 2026-01-01T00:00 } else { execute campaign "S" }')
    assert isinstance(choice, ast.Choice)
    assert choice.branches[0].steps == (ast.WaitUntil("2026-01-01T00:00"),)
    assert choice.branches[1].steps == (ast.ExecuteCampaign("S"),)


# ------------------------------------------------------------------------------ token clashes


def test_time_unit_does_not_swallow_schedule_keywords() -> None:
    """`day`, `week`, `month` are TIME_UNIT words (priority 2) and keywords of `schedule every ...`."""
    assert campaign("schedule every day at 09:00").schedule == ast.Schedule("daily", time="09:00")
    assert campaign("schedule every week on friday at 09:00").schedule is not None
    assert campaign("schedule every month on day 2 at 09:00").schedule == ast.Schedule("monthly", time="09:00", day=2)
    # and the time units still work where they belong, in the same file
    found = campaign("schedule every day at 09:00\nqualify once every 2 days\nflow { wait 1 day wait 2 months }")
    assert found.qualification == ast.Qualification("window", 2, "day")
    assert found.flow == (ast.Wait(1, "day"), ast.Wait(2, "month"))


def test_plural_units_are_not_schedule_keywords() -> None:
    assert errors('campaign "C" { schedule every days at 09:00 }')


def test_period_does_not_take_a_datetime_start() -> None:
    assert steps("wait until 2026-12-24T09:00") == (ast.WaitUntil("2026-12-24T09:00"),)
    assert campaign("schedule at 2026-10-01T09:00").schedule == ast.Schedule("once", at="2026-10-01T09:00")
    # a program's cost month is still a PERIOD
    program = parse('program "P" { channel "Webinar" cost 2026-10 5 }').declarations[0]
    assert isinstance(program, ast.Program) and program.costs[0].period == "2026-10"


def test_int_does_not_take_a_clock() -> None:
    assert campaign("schedule every month on day 10 at 10:30").schedule == ast.Schedule("monthly", time="10:30", day=10)
    assert steps("wait 10 days then until weekday monday at 10:10") == (
        ast.WaitWindow(10, "day", "monday", "monday", "10:10"),
    )


def test_weekdays_are_words_of_the_language() -> None:
    """No `unknown word` for weekdays, nor for the `T` inside a date and time."""
    assert errors('campaign "C" { schedule every week on wednesday at 09:00 }') == []
    assert errors('campaign "C" { flow { wait until 2026-12-24T09:00 } }') == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('campaign "C" { schedule at 09:00 }', "expected a date and time like 2026-12-10T09:00"),
        ('campaign "C" { schedule every day at 9 }', "expected a time like 09:00"),
        ('campaign "C" { schedule every week on mondy at 09:00 }', "expected a weekday like monday"),
        ('campaign "C" { flow { wait until 2026-12-24 } }', "unexpected `2026-12-24`"),
        ('campaign "C" { flow { wait until 2026-12-24T9:00 } }', "unexpected `2026-12-24T9:00`"),
        ('campaign "C" { flow { wait until weekday monday.. at 09:00 } }', "expected a weekday like monday"),
        ('campaign "C" { flow { wait 2 days then weekday monday at 09:00 } }', "expected `until weekday`"),
        ('campaign "C" { flow { remove from flow of campaign } }', "expected a quoted string"),
        ('campaign "C" { trigger campaign requested }', "expected `is requested`"),
    ],
)
def test_syntax_errors_name_the_new_tokens_in_words(text: str, expected: str) -> None:
    assert any(expected in message for message in errors(text)), errors(text)


def test_requested_trigger_in_words() -> None:
    from engine.language.describe import describe_trigger

    assert describe_trigger(ast.Trigger("requested")) == "campaign is requested"
