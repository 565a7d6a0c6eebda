"""`smartcampaign lsp --db URL`: the store's SFDC campaign catalog feeds completion (and the checks)."""

from __future__ import annotations

from pathlib import Path

from lsp_client import LspClient

from engine.store.store import Store


def test_completion_includes_the_stores_campaigns_and_statuses(rules: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store.open(url)
    store.add_campaign("Partner Leads", "701000000000001AAA", ["Referred", "Qualified Partner"])
    store.commit()
    store.close()

    lsp = LspClient("--db", url)
    try:
        lsp.initialize(rules)
        uri = lsp.open(rules / "welcome.campaign")
        result = lsp.request(
            "textDocument/completion", {"textDocument": {"uri": uri}, "position": {"line": 2, "character": 4}}
        )
        labels = {item["label"]: item for item in result["items"]}
        assert labels["Partner Leads"]["detail"] == "SFDC campaign (store catalog)"
        assert "Qualified Partner" in labels
        # with the catalog, the checks of `check --catalog` run: "Prospects" is not in this store
        published = lsp.wait_for("textDocument/publishDiagnostics", uri=uri)
        assert any('"Prospects"' in d["message"] for d in published["diagnostics"])
    finally:
        assert lsp.close() == 0


def test_an_unreadable_store_leaves_the_server_running(rules: Path, tmp_path: Path) -> None:
    lsp = LspClient("--db", "postgresql://nobody@127.0.0.1:1/none")
    try:
        lsp.initialize(rules)
        uri = lsp.open(rules / "welcome.campaign")
        assert lsp.wait_for("textDocument/publishDiagnostics", uri=uri)["diagnostics"] == []
    finally:
        assert lsp.close() == 0
    assert "cannot read the store's catalog" in lsp.process.stderr.read().decode()  # type: ignore[union-attr]
