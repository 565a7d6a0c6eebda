"""Hover on a batch campaign's `schedule`, `limit` and `timezone` lines, and on the rule set's `timezone`."""

from __future__ import annotations

from pathlib import Path

from lsp_client import LspClient

from engine.lsp.features import hover
from engine.lsp.workspace import RuleWorkspace

BATCH = """\
timezone "Europe/Berlin"

campaign "Weekly no-show cleanup" {
    schedule every week on monday at 09:00
    filter member of sfdc campaign "Webinar" with status "No Show"
    limit 500
    flow {
        remove from sfdc campaign "Webinar"
    }
}

campaign "New York digest" {
    schedule every day at 07:00
    timezone "America/New_York"
    filter member of sfdc campaign "Digest"
    flow {
        remove from sfdc campaign "Digest"
    }
}
"""


def _at(text: str, needle: str, offset: int = 1) -> tuple[int, int]:
    """The 0-based line and character `offset` characters into the first line holding `needle`."""
    for number, line in enumerate(text.splitlines()):
        if needle in line:
            return number, line.index(needle) + offset
    raise AssertionError(needle)


def _hover(needle: str, offset: int = 1) -> str | None:
    workspace = RuleWorkspace()
    path = "/rules/batch.campaign"
    workspace.set_text(path, BATCH)
    assert workspace.diagnostics_for(path) == []
    line, character = _at(BATCH, needle, offset)
    return hover(workspace, path, line, character)


def test_schedule_words_in_the_rule_sets_zone() -> None:
    for offset in (1, 20, len("schedule every week on monday at 09:00") - 1):
        text = _hover("schedule every week", offset)
        assert text is not None and "Runs the campaign every monday at 09:00, Europe/Berlin time" in text


def test_schedule_words_in_the_campaigns_own_zone() -> None:
    text = _hover("schedule every day")
    assert text is not None and "every day at 07:00, America/New_York time" in text


def test_limit_and_time_zone_words() -> None:
    assert _hover("limit 500") == "Each batch run takes at most 500 persons, in order of email."
    own = _hover('timezone "America/New_York"', 3)
    assert own is not None and "this campaign's schedule" in own and '"America/New_York"' in own
    top = _hover('timezone "Europe/Berlin"', 3)
    assert top is not None and "the rule set's schedules" in top and '"Europe/Berlin"' in top


def test_a_campaign_without_them_offers_none(tmp_path: Path) -> None:
    workspace = RuleWorkspace()
    path = str(tmp_path / "plain.campaign")
    text = 'campaign "P" {\n    trigger campaign is requested\n    flow {\n        remove from flow of this campaign\n'
    text += "    }\n}\n"
    workspace.set_text(path, text)
    assert hover(workspace, path, 0, 0) is None


def test_hover_on_a_schedule_through_the_server(client: LspClient, rules: Path) -> None:
    path = rules / "batch.campaign"
    path.write_text(BATCH, encoding="utf-8")
    uri = client.open(path)
    line, character = _at(BATCH, "schedule every week", 3)
    answer = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
    )
    assert "Runs the campaign every monday at 09:00, Europe/Berlin time" in answer["contents"]["value"]
