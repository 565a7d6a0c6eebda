from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_client import LspClient

PROGRAMS = """\
program "Spring Webinar" {
    channel "Webinar"
    sync with sfdc campaign "Spring Webinar 2026"
}
"""

CAMPAIGNS = """\
campaign "Welcome" {
    description "Greets new prospects"
    trigger added to sfdc campaign "Prospects" with status "New"
    filter not member of sfdc campaign "Customers"
    flow {
        change program status in program "Spring Webinar" to "Invited"
        add to sfdc campaign "Nurture" with status "Active"
    }
}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "programs.campaign").write_text(PROGRAMS, encoding="utf-8")
    (folder / "welcome.campaign").write_text(CAMPAIGNS, encoding="utf-8")
    return folder


@pytest.fixture
def client(rules: Path) -> Iterator[LspClient]:
    lsp = LspClient()
    lsp.initialize(rules)
    yield lsp
    lsp.close()
