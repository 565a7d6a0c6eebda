"""Loads a rule set: files in sorted path order, the built-in channels, syntax and semantic diagnostics."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from engine.language import ast
from engine.language.diagnostics import MAX_RULE_FILE_BYTES, Diagnostic, SourceCache, sort_key
from engine.language.parser import parse_many, parse_text
from engine.language.sources import RuleSetNotFound as RuleSetNotFound
from engine.language.sources import builtin_channel_files, iter_rule_files
from engine.language.sources import check_paths as check_paths


@dataclass
class LoadResult:
    rule_set: ast.RuleSet
    diagnostics: list[Diagnostic]
    files: int
    sources: SourceCache = field(default_factory=SourceCache)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors


@lru_cache(maxsize=1)
def builtin_channels() -> tuple[ast.Channel, ...]:
    """The standard channels shipped in the package (rules/channels/*.campaign)."""
    channels: list[ast.Channel] = []
    for entry in builtin_channel_files():
        parsed = parse_text(entry.read_text(encoding="utf-8"), f"<builtin>/{entry.name}")
        for declaration in parsed.file.declarations:
            if isinstance(declaration, ast.Channel):
                channels.append(replace(declaration, builtin=True))
    return tuple(channels)


def assemble(files: Iterable[ast.RuleFile]) -> ast.RuleSet:
    """One rule set from parsed files, in declaration order; built-in channels fill in the rest."""
    files = tuple(files)
    campaigns: list[ast.Campaign] = []
    programs: list[ast.Program] = []
    channels: list[ast.Channel] = []
    zones: list[str] = []
    for rule_file in files:
        for declaration in rule_file.declarations:
            if isinstance(declaration, ast.Campaign):
                campaigns.append(declaration)
            elif isinstance(declaration, ast.Program):
                programs.append(declaration)
            elif isinstance(declaration, ast.TimeZone):
                zones.append(declaration.name)
            else:
                channels.append(declaration)
    declared = {c.name for c in channels}
    channels.extend(c for c in builtin_channels() if c.name not in declared)
    timezone = zones[0] if zones else ast.DEFAULT_TIMEZONE
    return ast.RuleSet(files, tuple(campaigns), tuple(programs), tuple(channels), timezone)


def too_large(display: str, size: int) -> Diagnostic:
    return Diagnostic(
        "error",
        "file-too-large",
        f"the file is {size:,} bytes, over the limit of 10 MB ({MAX_RULE_FILE_BYTES:,} bytes) for a rule file",
        display,
        1,
        1,
    )


def _read(path: Path, display: str) -> tuple[str | None, Diagnostic | None]:
    try:
        size = path.stat().st_size  # before reading: a file over the limit is never read
        if size > MAX_RULE_FILE_BYTES:
            return None, too_large(display, size)
        raw = path.read_bytes()
    except OSError as error:
        return None, Diagnostic("error", "unreadable-file", f"cannot read the file: {error.strerror}", display, 1, 1)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        return None, Diagnostic(
            "error", "not-utf8", "the file is not UTF-8 text (rule files are UTF-8)", display, line, column
        )


def load_rule_set(
    paths: Iterable[str | Path],
    *,
    catalog: object | None = None,
    use_cache: bool = True,
    texts: dict[str, str] | None = None,
) -> LoadResult:
    """Parses and checks every rule file under `paths`; `texts` supplies contents by name (e.g. stdin)."""
    from engine.language.checks import check_rule_set

    parsed: list[ast.RuleFile] = []
    diagnostics: list[Diagnostic] = []
    sources = SourceCache(texts)
    count = 0
    items: list[tuple[str, str]] = []
    for given in paths:
        given_str = str(given)
        if texts is not None and given_str in texts:
            items.append((given_str, texts[given_str]))
            count += 1
            continue
        path = Path(given)
        if not path.exists():
            raise RuleSetNotFound(f"{given}: no such file or directory")
        for file in iter_rule_files(path):
            display = str(file)
            text, problem = _read(file, display)
            count += 1
            if problem is not None:
                diagnostics.append(problem)
                continue
            assert text is not None
            items.append((display, text))
    for result in parse_many(items, use_cache=use_cache):
        parsed.append(result.file)
        diagnostics.extend(result.diagnostics)
    rule_set = assemble(parsed)
    diagnostics.extend(check_rule_set(rule_set, catalog=catalog))
    diagnostics.sort(key=sort_key)
    return LoadResult(rule_set, diagnostics, count, sources)
