"""The language server, spoken to over stdio as an editor would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import CAMPAIGNS
from lsp_client import SMARTCAMPAIGN, LspClient

BROKEN = """\
campaign "Broken" {
    trigger added to sfdc campaign "Prospects"
    filter member of program "No Such Program"
    flow {
        remove from sfdc campaign "Prospects"
    }
}
"""


def _check_json(path: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [SMARTCAMPAIGN, "check", str(path.parent), "--format", "json", "--no-cache"], capture_output=True, text=True
    )
    return [d for d in json.loads(done.stdout)["diagnostics"] if d["file"] == str(path)]


def _position_of(text: str, needle: str, offset: int = 1) -> dict[str, int]:
    for number, line in enumerate(text.splitlines()):
        if needle in line:
            return {"line": number, "character": line.index(needle) + offset}
    raise AssertionError(needle)


def test_initialize_announces_the_features(rules: Path) -> None:
    lsp = LspClient()
    try:
        result = lsp.initialize(rules)
        capabilities = result["capabilities"]
        assert result["serverInfo"]["name"] == "smartcampaign"
        for feature in ("hoverProvider", "definitionProvider", "documentFormattingProvider", "completionProvider"):
            assert capabilities.get(feature), feature
    finally:
        assert lsp.close() == 0


def test_an_error_is_published_with_the_message_and_range_of_check(client: LspClient, rules: Path) -> None:
    broken = rules / "broken.campaign"
    broken.write_text(BROKEN, encoding="utf-8")
    expected = _check_json(broken)
    assert [d["code"] for d in expected] == ["unknown-program"]

    uri = client.open(broken)
    published = client.wait_for("textDocument/publishDiagnostics", uri=uri)
    [diagnostic] = published["diagnostics"]
    want = expected[0]
    assert diagnostic["message"] == want["message"]
    assert diagnostic["code"] == "unknown-program"
    assert diagnostic["severity"] == 1
    assert diagnostic["range"] == {
        "start": {"line": int(want["line"]) - 1, "character": int(want["column"]) - 1},  # type: ignore[call-overload]
        "end": {"line": int(want["end_line"]) - 1, "character": int(want["end_column"]) - 1},  # type: ignore[call-overload]
    }


def test_a_fixed_file_clears_its_diagnostics(client: LspClient, rules: Path) -> None:
    broken = rules / "broken.campaign"
    broken.write_text(BROKEN, encoding="utf-8")
    uri = client.open(broken)
    assert client.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"]
    fixed = BROKEN.replace("No Such Program", "Spring Webinar")
    client.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": fixed}]},
    )
    assert client.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"] == []


def test_a_syntax_error_is_published_too(client: LspClient, rules: Path) -> None:
    path = rules / "syntax.campaign"
    path.write_text('campaign "A" { trigger bogus }\n', encoding="utf-8")
    expected = _check_json(path)
    uri = client.open(path)
    [diagnostic] = client.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"]
    assert diagnostic["message"] == expected[0]["message"]
    assert diagnostic["range"]["start"] == {"line": 0, "character": 23}


def test_formatting_returns_what_fmt_prints(client: LspClient, rules: Path) -> None:
    messy = rules / "messy.campaign"
    text = (
        'campaign   "Messy" {\ntrigger added to sfdc campaign "Prospects"\n'
        '  flow { remove from sfdc campaign "Prospects" }\n}\n'
    )
    messy.write_text(text, encoding="utf-8")
    uri = client.open(messy)
    edits = client.request(
        "textDocument/formatting", {"textDocument": {"uri": uri}, "options": {"tabSize": 4, "insertSpaces": True}}
    )
    fmt = subprocess.run([SMARTCAMPAIGN, "fmt", "-"], input=text, capture_output=True, text=True, check=True)
    [edit] = edits
    assert edit["newText"] == fmt.stdout
    assert edit["newText"] != text
    assert edit["range"]["start"] == {"line": 0, "character": 0}
    assert edit["range"]["end"]["line"] >= len(text.splitlines())


def test_hover_tells_what_a_trigger_does_and_what_a_campaign_is(client: LspClient, rules: Path) -> None:
    path = rules / "welcome.campaign"
    uri = client.open(path)
    on_trigger = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(CAMPAIGNS, "trigger added")}
    )
    words = on_trigger["contents"]["value"]
    assert 'Fires when a person is added to the SFDC campaign "Prospects"' in words
    assert '"New"' in words

    on_name = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(CAMPAIGNS, '"Welcome"')}
    )
    text = on_name["contents"]["value"]
    assert "trigger campaign" in text
    assert f"{path}:1:10" in text

    on_step = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(CAMPAIGNS, "add to", 2)}
    )
    assert 'Adds the person to the SFDC campaign "Nurture" with status "Active"' in on_step["contents"]["value"]


def test_definition_of_a_program_and_a_builtin_channel(client: LspClient, rules: Path) -> None:
    uri = client.open(rules / "welcome.campaign")
    [location] = client.request(
        "textDocument/definition",
        {"textDocument": {"uri": uri}, "position": _position_of(CAMPAIGNS, '"Spring Webinar"', 3)},
    )
    assert location["uri"] == (rules / "programs.campaign").as_uri()
    assert location["range"]["start"] == {"line": 0, "character": 8}

    programs = rules / "programs.campaign"
    programs_uri = client.open(programs)
    [channel] = client.request(
        "textDocument/definition",
        {
            "textDocument": {"uri": programs_uri},
            "position": _position_of(programs.read_text(encoding="utf-8"), '"Webinar"', 2),
        },
    )
    assert channel["uri"].endswith("/rules/channels/standard.campaign")
    source = Path(channel["uri"].removeprefix("file://")).read_text(encoding="utf-8").splitlines()
    assert source[channel["range"]["start"]["line"]].startswith('channel "Webinar"')


def test_completion_offers_keywords_campaign_names_and_statuses(client: LspClient, rules: Path) -> None:
    uri = client.open(rules / "welcome.campaign")
    result = client.request(
        "textDocument/completion", {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 4}}
    )
    labels = {item["label"]: item for item in result["items"]}
    assert labels["trigger"]["kind"] == 14  # Keyword
    assert "qualify" in labels
    assert labels["Welcome"]["detail"].startswith("smart campaign")
    assert "Prospects" in labels  # an SFDC campaign the rules use
    assert labels["Attended"]["kind"] == 20  # EnumMember: a status of the built-in Webinar channel
    assert "Active" in labels  # a member status the rules set


def test_a_request_about_an_unknown_document_does_not_stop_the_server(client: LspClient, rules: Path) -> None:
    missing = (rules / "never-opened.campaign").as_uri()
    assert (
        client.request(
            "textDocument/hover", {"textDocument": {"uri": missing}, "position": {"line": 9, "character": 0}}
        )
        is None
    )
    uri = client.open(rules / "welcome.campaign", CAMPAIGNS)
    assert client.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"] == []
    assert client.process.poll() is None


def test_hover_on_a_channel_and_a_synced_sfdc_campaign(client: LspClient, rules: Path) -> None:
    programs = rules / "programs.campaign"
    text = programs.read_text(encoding="utf-8")
    uri = client.open(programs)
    channel = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(text, '"Webinar"', 2)}
    )["contents"]["value"]
    assert 'Channel "Webinar"' in channel and "built in" in channel
    assert "Attended (30, success)" in channel
    synced = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": _position_of(text, '"Spring Webinar 2026"', 2)}
    )["contents"]["value"]
    assert 'SFDC campaign "Spring Webinar 2026"' in synced
    assert f'Synced with program "Spring Webinar" at {programs}:3:15' in synced
