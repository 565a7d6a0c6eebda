"""Helpers for the rule-language tests: paths to the spec and conformance files, AST dumps, spans."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _shared_dir() -> Path | None:
    """`shared/` sits beside the work tree (locally and in CI); /work/shared is the usual place."""
    for candidate in (ROOT.parent / "shared", Path("/work/shared")):
        if (candidate / "spec" / "LANGUAGE.md").is_file():
            return candidate
    return None


SHARED = _shared_dir()
LANGUAGE_MD = SHARED / "spec" / "LANGUAGE.md" if SHARED else None
SCENARIOS = SHARED / "conformance" / "scenarios" if SHARED else None

needs_shared = pytest.mark.skipif(SHARED is None, reason="shared/ (spec and conformance) is not beside the work tree")

SPAN_FIELDS = {"span", "name_span", "channel_span"}


def language_examples() -> list[str]:
    """The first two fenced code blocks of LANGUAGE.md: the campaign example and the program example."""
    if LANGUAGE_MD is None:
        return []
    text = LANGUAGE_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.M | re.S)
    return blocks[:2]


def conformance_rule_files() -> list[Path]:
    if SCENARIOS is None or not SCENARIOS.is_dir():
        return []
    return sorted(SCENARIOS.glob("*/rules.campaign"))


def dump(node: Any) -> Any:
    """A readable rendering of AST nodes for snapshots: {"_": TypeName, field: value, ...}, compared fields only."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out: dict[str, Any] = {"_": type(node).__name__}
        for f in dataclasses.fields(node):
            if f.name in SPAN_FIELDS or not f.compare:  # spans and bookkeeping take no part in meaning
                continue
            out[f.name] = dump(getattr(node, f.name))
        return out
    if isinstance(node, (list, tuple)):
        return [dump(item) for item in node]
    return node


def span_text(source: str, span: Any) -> str:
    """The source text a span covers (1-based lines and columns; the end column is exclusive)."""
    lines = source.splitlines(keepends=True)
    start = sum(len(x) for x in lines[: span.line - 1]) + span.column - 1
    end = sum(len(x) for x in lines[: span.end_line - 1]) + span.end_column - 1
    return source[start:end]


def line_col(source: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based line and column of the n-th occurrence of `needle` in `source`."""
    index = -1
    for _ in range(occurrence):
        index = source.index(needle, index + 1)
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return line, column
