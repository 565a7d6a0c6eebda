"""The rule set the server sees: the workspace folder's .campaign files, with open editors' text over the disk."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.language import ast
from engine.language.checks import Catalog, CatalogCampaign
from engine.language.diagnostics import Diagnostic
from engine.language.loader import LoadResult, load_rule_set
from engine.language.parser import iter_rule_files

TOKEN = re.compile(r'"(?:[^"\\\n]|\\["\\])*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_-]*|[0-9]+|\S')


@dataclass(frozen=True)
class Token:
    """One word, string or punctuation of a source line; 0-based line and columns, `end` exclusive."""

    text: str
    line: int
    start: int
    end: int

    @property
    def is_string(self) -> bool:
        return self.text.startswith('"')

    @property
    def value(self) -> str:
        inner = self.text[1:-1] if self.text.endswith('"') and len(self.text) > 1 else self.text[1:]
        return inner.replace('\\"', '"').replace("\\\\", "\\")


def tokens(text: str) -> list[Token]:
    """Every token of `text` except comments, in order."""
    found: list[Token] = []
    for number, line in enumerate(text.splitlines()):
        for match in TOKEN.finditer(line):
            if not match.group().startswith("#"):
                found.append(Token(match.group(), number, match.start(), match.end()))
    return found


def token_at(items: list[Token], line: int, character: int) -> int | None:
    """The index of the token under the cursor (or just before it, at its end)."""
    for index, token in enumerate(items):
        if token.line == line and token.start <= character <= token.end:
            if token.end == character and index + 1 < len(items):
                following = items[index + 1]
                if following.line == line and following.start == character:
                    return index + 1
            return index
    return None


def store_catalog(db_url: str) -> Catalog:
    """The SFDC campaigns of the store's catalog (names and member statuses)."""
    from engine.store.store import Store

    store = Store.open(db_url)
    try:
        return Catalog(tuple(CatalogCampaign(c.name, c.sfdc_id, tuple(c.statuses)) for c in store.campaigns()))
    finally:
        store.close()


class RuleWorkspace:
    """Open documents by path, a root folder, and the last loaded rule set."""

    def __init__(self, root: Path | None = None, catalog: Catalog | None = None) -> None:
        self.root = root
        self.catalog = catalog
        self.open: dict[str, str] = {}
        self._loaded: LoadResult | None = None

    def set_text(self, path: str, text: str | None) -> None:
        if text is None:
            self.open.pop(path, None)
        else:
            self.open[path] = text
        self._loaded = None

    def files(self) -> list[str]:
        found: list[str] = []
        if self.root is not None and self.root.is_dir():
            found = [str(p) for p in iter_rule_files(self.root)]
        found.extend(p for p in self.open if p not in found)
        return found

    def load(self) -> LoadResult:
        """Loads and checks the rule set as `check` does (with the store's catalog when one is given)."""
        if self._loaded is None:
            self._loaded = load_rule_set(self.files(), catalog=self.catalog, texts=dict(self.open))
        return self._loaded

    def diagnostics_for(self, path: str) -> list[Diagnostic]:
        return [d for d in self.load().diagnostics if d.file == path]

    def text(self, path: str) -> str:
        if path in self.open:
            return self.open[path]
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    @property
    def rule_set(self) -> ast.RuleSet:
        return self.load().rule_set
