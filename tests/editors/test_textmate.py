"""The TextMate grammar and the VS Code extension folder: valid JSON that covers the language's keywords."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from engine.lsp.features import keywords

EDITORS = Path(__file__).resolve().parents[2] / "editors"


def _grammar() -> dict[str, Any]:
    return json.loads((EDITORS / "smartcampaign.tmLanguage.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _scope_of(grammar: dict[str, Any], word: str) -> str | None:
    for pattern in grammar["repository"]["keyword"]["patterns"]:
        if re.fullmatch(pattern["match"], word):
            return str(pattern["name"])
    return None


def test_every_keyword_of_the_grammar_is_highlighted() -> None:
    grammar = _grammar()
    assert grammar["scopeName"] == "source.smartcampaign"
    words = keywords()
    assert {"campaign", "trigger", "filter", "qualify", "flow", "wait", "days"} <= set(words)
    missing = [word for word in words if _scope_of(grammar, word) is None]
    assert missing == []
    assert _scope_of(grammar, "trigger") == "keyword.control.smartcampaign"
    assert _scope_of(grammar, "Prospects") is None  # a name is not a keyword


def test_comments_strings_and_declarations_are_scoped() -> None:
    repository = _grammar()["repository"]
    assert re.search(repository["comment"]["match"], "    # a note").group() == "# a note"  # type: ignore[union-attr]
    declaration = re.match(repository["declaration"]["match"], 'campaign "Lifecycle \\"1\\"" {')
    assert declaration is not None and declaration.group(2) == '"Lifecycle \\"1\\""'
    assert repository["string"]["begin"] == '"'


def test_the_vscode_extension_wires_the_grammar_and_the_server() -> None:
    package = json.loads((EDITORS / "vscode" / "package.json").read_text(encoding="utf-8"))
    [grammar] = package["contributes"]["grammars"]
    assert (EDITORS / "vscode" / grammar["path"]).resolve() == EDITORS / "smartcampaign.tmLanguage.json"
    assert grammar["scopeName"] == _grammar()["scopeName"]
    assert package["contributes"]["languages"][0]["extensions"] == [".campaign"]
    extension = (EDITORS / "vscode" / package["main"]).read_text(encoding="utf-8")
    assert '["lsp"]' in extension
    json.loads((EDITORS / "vscode" / "language-configuration.json").read_text(encoding="utf-8"))


def test_dates_times_and_weekdays_are_scoped_whole() -> None:
    grammar = _grammar()
    number = grammar["repository"]["number"]["match"]
    for text in ("2026-12-10T09:00", "2026-12-10T09:00:30", "09:00", "2026-11", "500"):
        found = re.search(number, f"schedule at {text} ")
        assert found is not None and found.group() == text
    assert _scope_of(grammar, "monday") == "constant.language.weekday.smartcampaign"
    assert _scope_of(grammar, "execute") == "keyword.control.smartcampaign"
