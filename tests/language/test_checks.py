"""Semantic checks: one test per diagnostic code of engine/language/checks.py, plus the catalog checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from lang_helpers import language_examples, line_col, needs_shared

from engine.language import ast
from engine.language.checks import Catalog, CatalogCampaign, campaign_graph, check_rule_set, status_mismatch
from engine.language.diagnostics import Diagnostic
from engine.language.loader import LoadResult, assemble, builtin_channels, load_rule_set
from engine.language.parser import parse_text

CHANNEL = """
channel "Seminar" {
    status "Invited" step 10
    status "Registered" step 20
    status "Attended" step 30 success
}
"""

PROGRAM = (
    CHANNEL
    + """
program "Q4 Seminar" {
    channel "Seminar"
    sync with sfdc campaign "Q4 Seminar"
}
"""
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, catalog: Catalog | None = None) -> LoadResult:
    path = write(tmp_path, "rules.campaign", text)
    return load_rule_set([path], catalog=catalog, use_cache=False)


def check(*texts: str, catalog: Catalog | None = None) -> list[Diagnostic]:
    """check_rule_set over parsed texts (file names f0.campaign, f1.campaign, ...); no syntax errors allowed."""
    files = []
    for i, text in enumerate(texts):
        result = parse_text(text, f"f{i}.campaign", use_cache=False)
        assert result.diagnostics == (), [d.header() for d in result.diagnostics]
        files.append(result.file)
    return check_rule_set(assemble(files), catalog=catalog)


def codes(diagnostics: list[Diagnostic]) -> list[str]:
    return [d.code for d in diagnostics]


def with_code(diagnostics: list[Diagnostic], code: str) -> list[Diagnostic]:
    return [d for d in diagnostics if d.code == code]


def one(diagnostics: list[Diagnostic], code: str) -> Diagnostic:
    found = with_code(diagnostics, code)
    assert len(found) == 1, [d.header() for d in diagnostics]
    return found[0]


def good_campaign(name: str, body: str = 'trigger added to sfdc campaign "W"') -> str:
    return f'campaign "{name}" {{\n    {body}\n    flow {{ add to sfdc campaign "Nurture" with status "Sent" }}\n}}\n'


# ------------------------------------------------------------------------------------- clean


def test_clean_rule_set_has_no_diagnostics(tmp_path: Path) -> None:
    text = (
        PROGRAM
        + good_campaign("A")
        + good_campaign("B", 'trigger status changed in program "Q4 Seminar" from "Invited" to "Attended"')
    )
    result = load(tmp_path, text)
    assert result.diagnostics == []
    assert result.ok and result.files == 1


@needs_shared
def test_language_md_examples_check_clean(tmp_path: Path) -> None:
    campaign_example, program_example = language_examples()
    write(tmp_path, "a.campaign", campaign_example)
    write(tmp_path, "b.campaign", program_example)
    result = load_rule_set([tmp_path], use_cache=False)
    # The example removes people from "Prospects" and triggers on removal from it: it can trigger itself.
    (cycle,) = result.diagnostics
    assert cycle.code == "campaign-cycle" and cycle.severity == "warning"
    assert '"Webinar follow-up" -> "Webinar follow-up"' in cycle.message
    assert [c.name for c in result.rule_set.campaigns] == ["Webinar follow-up"]
    webinar = result.rule_set.channel("Webinar")
    assert webinar is not None and not webinar.builtin, "the example redefines the built-in Webinar channel"


# ------------------------------------------------------------------------------ duplicate-name


def test_duplicate_campaign_name_in_one_file(tmp_path: Path) -> None:
    text = good_campaign("Same") + good_campaign("Other") + good_campaign("Same")
    result = load(tmp_path, text)
    diagnostic = one(result.diagnostics, "duplicate-name")
    path = str(tmp_path / "rules.campaign")
    first_line, first_col = line_col(text, '"Same"', 1)
    second_line, second_col = line_col(text, '"Same"', 2)
    assert diagnostic.severity == "error"
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == (path, second_line, second_col)
    assert f"{path}:{first_line}:{first_col}" in diagnostic.message
    assert '"Same"' in diagnostic.message


def test_duplicate_campaign_name_across_two_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a/first.campaign", "# first\n" + good_campaign("Same"))
    second = write(tmp_path, "b/second.campaign", good_campaign("Other") + good_campaign("Same"))
    result = load_rule_set([tmp_path], use_cache=False)
    assert result.files == 2
    diagnostic = one(result.diagnostics, "duplicate-name")
    assert diagnostic.file == str(second)
    assert diagnostic.line == 5
    assert f"{first}:2:10" in diagnostic.message


def test_duplicate_program_and_channel_names() -> None:
    text = CHANNEL + CHANNEL + 'program "P" { channel "Seminar" }\nprogram "P" { channel "Seminar" }\n'
    diagnostics = with_code(check(text), "duplicate-name")
    assert sorted(d.message.split(" ")[0] for d in diagnostics) == ["channel", "program"]


def test_same_name_for_different_kinds_is_fine() -> None:
    text = CHANNEL.replace('"Seminar"', '"X"') + 'program "X" { channel "X" }\n' + good_campaign("X")
    assert "duplicate-name" not in codes(check(text))


# ------------------------------------------------------------------------------- repeated-item


@pytest.mark.parametrize(
    ("text", "item"),
    [
        (good_campaign("A", 'trigger added to sfdc campaign "W"\n    qualify once\n    qualify every time'), "qualify"),
        (
            good_campaign("A", 'trigger added to sfdc campaign "W"\n    description "a"\n    description "b"'),
            "description",
        ),
        (good_campaign("A", 'trigger added to sfdc campaign "W"\n    flow { wait 1 day }'), "flow"),
        (CHANNEL + 'program "P" {\n    channel "Seminar"\n    channel "Webinar"\n}\n', "channel"),
        (
            CHANNEL + 'program "P" {\n    channel "Seminar"\n    sync with sfdc campaign "A"\n'
            '    sync with sfdc campaign "B"\n}\n',
            "sync with",
        ),
    ],
    ids=["qualify", "description", "flow", "program-channel", "sync-with"],
)
def test_repeated_item(text: str, item: str) -> None:
    diagnostic = one(check(text), "repeated-item")
    assert diagnostic.severity == "error"
    assert f"`{item}`" in diagnostic.message


# ------------------------------------------------------------------------------------ channels


def test_unknown_channel() -> None:
    text = CHANNEL + 'program "P" {\n    channel "Seminr"\n}\n'
    diagnostic = one(check(text), "unknown-channel")
    assert diagnostic.severity == "error"
    assert (diagnostic.line, diagnostic.column) == line_col(text, '"Seminr"')
    assert 'did you mean "Seminar"?' in diagnostic.message
    assert any("Seminar" in note and "Webinar" in note for note in diagnostic.notes)


def test_missing_channel() -> None:
    text = 'program "No channel" {\n    cost 2026-10 100\n}\n'
    diagnostic = one(check(text), "missing-channel")
    assert diagnostic.severity == "error"
    assert (diagnostic.line, diagnostic.column) == line_col(text, '"No channel"')


def test_no_success_status() -> None:
    text = 'channel "Flat" {\n    status "Member" step 10\n    status "Engaged" step 20\n}\n'
    diagnostic = one(check(text), "no-success-status")
    assert diagnostic.severity == "error"
    assert (diagnostic.line, diagnostic.column) == line_col(text, '"Flat"')


def test_duplicate_status() -> None:
    text = 'channel "C" {\n    status "A" step 10\n    status "A" step 20 success\n}\n'
    diagnostic = one(check(text), "duplicate-status")
    assert diagnostic.severity == "error"
    assert diagnostic.line == 3
    assert "f0.campaign:2:5" in diagnostic.message


def test_reserved_status() -> None:
    text = 'channel "C" {\n    status "Not in Program" step 0\n    status "A" step 10 success\n}\n'
    diagnostics = check(text)
    diagnostic = one(diagnostics, "reserved-status")
    assert diagnostic.severity == "error" and diagnostic.line == 2
    assert "bad-step" not in codes(diagnostics)


def test_bad_step() -> None:
    text = 'channel "C" {\n    status "A" step 0 success\n}\n'
    assert one(check(text), "bad-step").line == 2


def test_bad_period() -> None:
    text = CHANNEL + 'program "P" {\n    channel "Seminar"\n    cost 2026-13 100\n}\n'
    assert one(check(text), "bad-period").severity == "error"


def test_builtin_channels_are_known() -> None:
    names = {c.name for c in builtin_channels()}
    assert {"Webinar", "Event", "Email Send", "Nurture", "Content", "Online Advertising"} <= names
    assert all(c.builtin for c in builtin_channels())
    text = 'program "Q4 Webinar" {\n    channel "Webinar"\n    sync with sfdc campaign "Q4 Webinar"\n}\n'
    assert check(text) == []
    assert check_rule_set(assemble([])) == [], "the built-in channels are themselves clean"


def test_builtin_channel_may_be_redefined() -> None:
    text = (
        'channel "Webinar" {\n    status "Signed Up" step 10\n    status "Watched" step 20 success\n}\n'
        'program "P" { channel "Webinar" }\n'
        'campaign "A" {\n    trigger status changed in program "P" to "Watched"\n'
        '    flow { change program status in program "P" to "Signed Up" }\n}\n'
    )
    assert check(text) == []
    rule_set = assemble([parse_text(text, "f.campaign", use_cache=False).file])
    webinars = [c for c in rule_set.channels if c.name == "Webinar"]
    assert len(webinars) == 1 and not webinars[0].builtin
    assert webinars[0].status_names == ("Signed Up", "Watched")


def test_every_builtin_channel_may_be_redefined() -> None:
    text = "".join(f'channel "{c.name}" {{ status "X" step 1 success }}\n' for c in builtin_channels())
    assert check(text) == []


# ------------------------------------------------------------------------------------ programs


def test_campaign_synced_twice() -> None:
    text = PROGRAM + 'program "Other" {\n    channel "Seminar"\n    sync with sfdc campaign "Q4 Seminar"\n}\n'
    diagnostic = one(check(text), "campaign-synced-twice")
    assert diagnostic.severity == "error"
    assert (diagnostic.line, diagnostic.column) == line_col(text, 'sfdc campaign "Q4 Seminar"', 2)
    assert '"Q4 Seminar"' in diagnostic.message
    first_line, first_col = line_col(text, 'sfdc campaign "Q4 Seminar"', 1)
    assert f"f0.campaign:{first_line}:{first_col}" in diagnostic.message


def test_sync_needs_one_campaign() -> None:
    text = CHANNEL + 'program "P" {\n    channel "Seminar"\n    sync with any sfdc campaign\n}\n'
    assert one(check(text), "sync-needs-one-campaign").line == line_col(text, "any sfdc campaign")[0]


def test_unknown_program_in_trigger_filter_and_action() -> None:
    text = PROGRAM + good_campaign(
        "A",
        'trigger status changed in program "Q4 Seminr"\n'
        '    filter member of program "Nope"\n'
        '    flow { change program status in program "Also nope" to "Attended" }',
    )
    diagnostics = with_code(check(text), "unknown-program")
    assert [d.line for d in diagnostics] == [line_col(text, x)[0] for x in ("Q4 Seminr", "Nope", "Also nope")]
    assert all(d.severity == "error" for d in diagnostics)
    assert 'did you mean "Q4 Seminar"?' in diagnostics[0].message


def test_unknown_program_in_a_choice_condition() -> None:
    text = good_campaign(
        "A", 'trigger added to sfdc campaign "W"\n    flow { if member of program "Nope" { wait 1 day } }'
    )
    assert one(check(text), "unknown-program").line == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ('trigger status changed in program "Q4 Seminar" to "Atended"', "Atended"),
        ('trigger status changed in program "Q4 Seminar" from in ("Invited", "Bogus")', "Bogus"),
        ('filter member of program "Q4 Seminar" with status "Atended"', "Atended"),
        ('flow { change program status in program "Q4 Seminar" to "Atended" }', "Atended"),
        ('flow { if member of program "Q4 Seminar" with status not in ("Gone") { wait 1 day } }', "Gone"),
    ],
    ids=["trigger-to", "trigger-from-list", "filter", "change-program-status", "choice-condition"],
)
def test_unknown_program_status(body: str, status: str) -> None:
    text = PROGRAM + good_campaign("A", 'trigger added to sfdc campaign "W"\n    ' + body)
    diagnostic = one(check(text), "unknown-program-status")
    assert diagnostic.severity == "error"
    assert f'"{status}"' in diagnostic.message
    assert '"Seminar"' in diagnostic.message
    if status == "Atended":
        assert 'did you mean "Attended"?' in diagnostic.message
    assert diagnostic.line == line_col(text, status)[0]


def test_not_in_program_is_a_known_program_status() -> None:
    text = PROGRAM + good_campaign(
        "A",
        'trigger status changed in program "Q4 Seminar" from "Not in Program" to "Invited"\n'
        '    flow { change program status in program "Q4 Seminar" to "Not in Program" }',
    )
    assert "unknown-program-status" not in codes(check(text))


# ----------------------------------------------------------------------------------- campaigns


def test_no_trigger_is_a_warning(tmp_path: Path) -> None:
    text = 'campaign "Never" {\n    flow { remove from sfdc campaign "X" }\n}\n'
    result = load(tmp_path, text)
    diagnostic = one(result.diagnostics, "no-trigger")
    assert diagnostic.severity == "warning"
    assert (diagnostic.line, diagnostic.column) == (1, 10)
    assert result.ok, "a warning alone does not fail the rule set"


def test_no_flow_steps_is_a_warning() -> None:
    for flow in ("", "flow { }"):
        text = f'campaign "Idle" {{\n    trigger added to sfdc campaign "W"\n    {flow}\n}}\n'
        diagnostic = one(check(text), "no-flow-steps")
        assert diagnostic.severity == "warning"


def test_zero_window_is_an_error() -> None:
    text = good_campaign("Z", 'trigger added to sfdc campaign "W"\n    qualify once every 0 days')
    diagnostic = one(check(text), "zero-window")
    assert diagnostic.severity == "error"
    assert (diagnostic.line, diagnostic.column) == line_col(text, "qualify")


def test_a_window_of_one_is_fine() -> None:
    text = good_campaign("Z", 'trigger added to sfdc campaign "W"\n    qualify once every 1 hour')
    assert check(text) == []


def test_zero_wait_is_a_warning() -> None:
    text = good_campaign("Z", 'trigger added to sfdc campaign "W"\n    flow { wait 0 days }')
    assert one(check(text), "zero-wait").severity == "warning"


@pytest.mark.parametrize(
    "ref",
    ['sfdc campaign in ("A", "B")', 'sfdc campaign not in ("A")', "any sfdc campaign"],
    ids=["in", "not-in", "any"],
)
@pytest.mark.parametrize(
    "action",
    ['add to {ref} with status "Sent"', 'change status in {ref} to "Sent"', "remove from {ref}"],
    ids=["add", "change", "remove"],
)
def test_action_needs_one_campaign(ref: str, action: str) -> None:
    step = action.format(ref=ref)
    text = f'campaign "A" {{\n    trigger added to sfdc campaign "W"\n    flow {{\n        {step}\n    }}\n}}\n'
    diagnostic = one(check(text), "action-needs-one-campaign")
    assert diagnostic.severity == "error"
    assert (diagnostic.line, diagnostic.column) == line_col(text, ref)


def test_action_needs_one_campaign_inside_a_choice() -> None:
    text = good_campaign(
        "A",
        'trigger added to sfdc campaign "W"\n'
        '    flow { if member of sfdc campaign "X" { } else { remove from any sfdc campaign } }',
    )
    assert one(check(text), "action-needs-one-campaign").line == 3


def test_list_refs_are_fine_in_triggers_and_filters() -> None:
    text = good_campaign(
        "A",
        'trigger added to sfdc campaign in ("A", "B")\n'
        "    trigger removed from any sfdc campaign\n"
        '    filter member of sfdc campaign not in ("C")',
    )
    assert check(text) == []


# -------------------------------------------------------------------------------------- cycles


def cascade(name: str, trigger_on: str, acts_on: str, remove: bool = False) -> str:
    action = (
        f'remove from sfdc campaign "{acts_on}"' if remove else f'add to sfdc campaign "{acts_on}" with status "Sent"'
    )
    return f'campaign "{name}" {{\n    trigger added to sfdc campaign "{trigger_on}"\n    flow {{ {action} }}\n}}\n'


def test_two_campaign_cycle_is_a_warning() -> None:
    text = (
        'campaign "Ping" {\n    trigger added to sfdc campaign "Nurture"\n'
        '    flow { remove from sfdc campaign "Nurture" }\n}\n'
        'campaign "Pong" {\n    trigger removed from sfdc campaign "Nurture"\n'
        '    flow { add to sfdc campaign "Nurture" with status "Sent" }\n}\n'
    )
    diagnostics = check(text)
    diagnostic = one(diagnostics, "campaign-cycle")
    assert diagnostic.severity == "warning"
    assert '"Ping" -> "Pong" -> "Ping"' in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (1, 10)
    assert codes(diagnostics) == ["campaign-cycle"]


def test_three_campaign_cycle_is_reported_once_naming_all_three() -> None:
    text = cascade("A", "X", "Y") + cascade("B", "Y", "Z") + cascade("C", "Z", "X")
    diagnostic = one(check(text), "campaign-cycle")
    assert '"A" -> "B" -> "C" -> "A"' in diagnostic.message


def test_self_cycle() -> None:
    text = cascade("Self", "X", "X")
    assert '"Self" -> "Self"' in one(check(text), "campaign-cycle").message


def test_acyclic_cascade_has_no_warning() -> None:
    text = cascade("A", "X", "Y") + cascade("B", "Y", "Z") + cascade("C", "Z", "Done")
    assert check(text) == []
    graph = campaign_graph(assemble([parse_text(text, "f", use_cache=False).file]))
    assert graph == {"A": ["B"], "B": ["C"], "C": []}


def test_cycle_through_a_status_filter_that_cannot_match_is_not_reported() -> None:
    text = (
        'campaign "A" {\n    trigger added to sfdc campaign "X" with status "Responded"\n'
        '    flow { add to sfdc campaign "Y" with status "Sent" }\n}\n' + cascade("B", "Y", "X")
    )
    assert "campaign-cycle" not in codes(check(text))


def test_cycle_through_a_synced_program() -> None:
    text = PROGRAM + (
        'campaign "A" {\n    trigger status changed in program "Q4 Seminar" to "Attended"\n'
        '    flow { remove from sfdc campaign "Q4 Seminar" }\n}\n'
        'campaign "B" {\n    trigger removed from sfdc campaign "Q4 Seminar"\n'
        '    flow { change program status in program "Q4 Seminar" to "Attended" }\n}\n'
    )
    assert "campaign-cycle" in codes(check(text))


# ------------------------------------------------------------------------------------- catalog

CATALOG = Catalog(
    (
        CatalogCampaign("Webinar", "7015g00000ABCDEAA1", ("Sent", "Registered", "Attended"), members=3),
        CatalogCampaign("Nurture", None, ("Sent", "Responded")),
        CatalogCampaign("Q4 Seminar", None, ("Invited", "Registered", "Attended")),
    )
)


def test_catalog_clean() -> None:
    text = PROGRAM + (
        'campaign "A" {\n    trigger added to sfdc campaign "Webinar" with status "Attended"\n'
        '    trigger added to sfdc campaign id "7015g00000ABCDE"\n'
        '    flow { add to sfdc campaign "Nurture" with status "Responded" }\n}\n'
    )
    assert check(text, catalog=CATALOG) == []


WEBINR = (
    'campaign "A" {\n    trigger added to sfdc campaign "Webinr"\n    flow { remove from sfdc campaign "Nurture" }\n}\n'
)


def test_unknown_campaign_with_did_you_mean() -> None:
    text = WEBINR
    diagnostic = one(check(text, catalog=CATALOG), "unknown-campaign")
    assert diagnostic.severity == "warning"
    assert 'did you mean "Webinar"?' in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == line_col(text, 'sfdc campaign "Webinr"')


def test_unknown_campaign_in_lists_ids_and_actions() -> None:
    text = (
        'campaign "A" {\n    trigger added to sfdc campaign in ("Webinar", "Nurtur")\n'
        '    trigger added to sfdc campaign id "701000000000000"\n'
        '    flow { add to sfdc campaign "Nowhere" with status "Sent" }\n}\n'
    )
    diagnostics = with_code(check(text, catalog=CATALOG), "unknown-campaign")
    assert [d.line for d in diagnostics] == [2, 3, 4]
    assert 'did you mean "Nurture"?' in diagnostics[0].message


def test_unknown_campaign_is_not_checked_without_a_catalog() -> None:
    assert check(WEBINR) == []


@pytest.mark.parametrize(
    "body",
    [
        'trigger added to sfdc campaign "Webinar" with status "Atended"',
        'trigger status changed in sfdc campaign "Webinar" from "Sent" to "Atended"',
        'trigger added to sfdc campaign "Webinar"\n    filter member of sfdc campaign "Webinar" with status "Atended"',
        'trigger added to sfdc campaign "Nurture"\n    flow { add to sfdc campaign "Webinar" with status "Atended" }',
        'trigger added to sfdc campaign "Nurture"\n    flow { change status in sfdc campaign "Webinar" to "Atended" }',
    ],
    ids=["trigger-with-status", "trigger-to", "filter", "add", "change-status"],
)
def test_unknown_status_with_did_you_mean(body: str) -> None:
    text = f'campaign "A" {{\n    {body}\n    flow {{ remove from sfdc campaign "Nurture" }}\n}}\n'
    diagnostic = one(check(text, catalog=CATALOG), "unknown-status")
    assert diagnostic.severity == "warning"
    assert '"Atended"' in diagnostic.message and '"Webinar"' in diagnostic.message
    assert 'did you mean "Attended"?' in diagnostic.message
    assert diagnostic.line == line_col(text, "Atended")[0]


def test_program_status_mismatch_when_the_synced_campaign_has_members() -> None:
    catalog = Catalog((CatalogCampaign("Q4 Seminar", None, ("Invited", "Registered", "Showed Up"), members=2),))
    diagnostic = one(check(PROGRAM, catalog=catalog), "program-status-mismatch")
    assert diagnostic.severity == "error"
    assert '"Q4 Seminar"' in diagnostic.message
    assert "only in the program: Attended" in diagnostic.message
    assert "only in the campaign: Showed Up" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == line_col(PROGRAM, 'sfdc campaign "Q4 Seminar"')


def test_no_program_status_mismatch_when_the_campaign_is_empty() -> None:
    catalog = Catalog((CatalogCampaign("Q4 Seminar", None, ("Sent", "Responded"), members=0),))
    assert check(PROGRAM, catalog=catalog) == []


def test_no_program_status_mismatch_when_statuses_match() -> None:
    catalog = Catalog((CatalogCampaign("Q4 Seminar", None, ("Attended", "Invited", "Registered"), members=9),))
    assert check(PROGRAM, catalog=catalog) == []


def test_synced_campaign_missing_from_the_catalog() -> None:
    diagnostic = one(check(PROGRAM, catalog=Catalog(())), "unknown-campaign")
    assert diagnostic.line == line_col(PROGRAM, "sync with")[0]


def test_status_mismatch_helper() -> None:
    assert status_mismatch("P", "C", ("A", "B"), ("B", "A")) is None
    message = status_mismatch("P", "C", ("A", "B"), ("B", "Z"))
    assert message is not None and "only in the program: A" in message and "only in the campaign: Z" in message


def test_catalog_resolves_15_and_18_character_ids() -> None:
    assert CATALOG.by_id("7015g00000ABCDE") is CATALOG.campaigns[0]
    assert CATALOG.by_id("7015g00000ABCDEAA1") is CATALOG.campaigns[0]
    assert CATALOG.by_id("7015g00000ZZZZZ") is None
    assert CATALOG.resolve(ast.CampaignRef("any")) is None


def test_load_rule_set_with_a_catalog(tmp_path: Path) -> None:
    text = WEBINR
    result = load(tmp_path, text, catalog=CATALOG)
    assert codes(result.diagnostics) == ["unknown-campaign"]
    assert result.ok


# ---------------------------------------------------------------------------------- load order


def test_diagnostics_are_sorted_by_file_line_column(tmp_path: Path) -> None:
    write(tmp_path, "b.campaign", 'campaign "B" { }\n')
    write(tmp_path, "a.campaign", 'campaign "A" { trigger oops }\n\ncampaign "C" { }\n')
    result = load_rule_set([tmp_path], use_cache=False)
    keys = [(d.file, d.line, d.column) for d in result.diagnostics]
    assert keys == sorted(keys)
    assert result.diagnostics[0].file.endswith("a.campaign")
    assert result.diagnostics[0].severity == "error" and result.diagnostics[0].line == 1


def test_files_are_read_in_sorted_path_order(tmp_path: Path) -> None:
    write(tmp_path, "z.campaign", good_campaign("Z"))
    write(tmp_path, "a/m.campaign", good_campaign("M"))
    write(tmp_path, "a.campaign", good_campaign("A"))
    write(tmp_path, "notes.txt", "not a rule file")
    result = load_rule_set([tmp_path], use_cache=False)
    by_file = {"a.campaign": "A", "m.campaign": "M", "z.campaign": "Z"}
    expected = [by_file[p.name] for p in sorted(tmp_path.rglob("*.campaign"))]
    assert [c.name for c in result.rule_set.campaigns] == expected
    assert result.files == 3
    again = load_rule_set([tmp_path], use_cache=False)
    assert again.rule_set.campaigns == result.rule_set.campaigns


def test_a_syntax_error_does_not_cause_spurious_semantic_errors(tmp_path: Path) -> None:
    text = PROGRAM + 'campaign "Broken" {\n    trigger nope\n}\n'
    write(tmp_path, "a.campaign", text)
    write(tmp_path, "b.campaign", good_campaign("Uses it", 'trigger status changed in program "Q4 Seminar"'))
    result = load_rule_set([tmp_path], use_cache=False)
    assert codes(result.diagnostics) == ["syntax"]
