"""Diagnostics: what `check`, `replay` and the service say about rule files, rendered as FILE:LINE:COL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Severity = Literal["error", "warning"]

DOCS_ERRORS = "docs/errors.md"

# Rule files larger than this are refused before they are read (`file-too-large`); stdin too.
MAX_RULE_FILE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a rule file, pinned to a line and column."""

    severity: Severity
    code: str
    message: str
    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def header(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line or self.line,
            "end_column": self.end_column or self.column,
            "notes": list(self.notes),
            "see": f"{DOCS_ERRORS}#{self.code}",
        }


class SourceCache:
    """Reads each file once to show source lines under diagnostics."""

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self._texts: dict[str, list[str]] = {}
        for name, text in (texts or {}).items():
            self._texts[name] = text.splitlines()

    def line(self, file: str, line: int) -> str | None:
        if file not in self._texts:
            try:
                path = Path(file)
                if path.stat().st_size > MAX_RULE_FILE_BYTES:  # refused unread: nothing to show
                    raise OSError
                self._texts[file] = path.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                self._texts[file] = []
        lines = self._texts[file]
        if 1 <= line <= len(lines):
            return lines[line - 1]
        return None


def render(diagnostic: Diagnostic, sources: SourceCache) -> str:
    """`FILE:LINE:COL: error: MESSAGE`, the source line, a caret under the column, then notes."""
    out = [diagnostic.header()]
    source = sources.line(diagnostic.file, diagnostic.line)
    if source is not None:
        shown = source.expandtabs(1)
        out.append(f"    {shown}")
        width = 1
        if diagnostic.end_line == diagnostic.line and diagnostic.end_column > diagnostic.column:
            width = diagnostic.end_column - diagnostic.column
        column = max(diagnostic.column, 1)
        width = max(1, min(width, len(shown) - column + 1))
        out.append("    " + " " * (column - 1) + "^" + "~" * (width - 1))
    for note in diagnostic.notes:
        out.append(f"    note: {note}")
    out.append(f"    see {DOCS_ERRORS}#{diagnostic.code}")
    return "\n".join(out)


def render_all(diagnostics: list[Diagnostic], sources: SourceCache, limit: int = 50) -> str:
    """Every diagnostic, capped at `limit` with "and N more"."""
    shown = diagnostics[:limit]
    parts = [render(d, sources) for d in shown]
    if len(diagnostics) > limit:
        parts.append(f"... and {len(diagnostics) - limit} more")
    return "\n".join(parts)


def summary(diagnostics: list[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    noun = "file" if files == 1 else "files"
    error_word = "error" if errors == 1 else "errors"
    warning_word = "warning" if warnings == 1 else "warnings"
    return f"{files} {noun} checked: {errors} {error_word}, {warnings} {warning_word}"


def to_json(diagnostics: list[Diagnostic], files: int) -> str:
    errors = sum(1 for d in diagnostics if d.is_error)
    return json.dumps(
        {
            "files": files,
            "errors": errors,
            "warnings": len(diagnostics) - errors,
            "diagnostics": [d.as_dict() for d in diagnostics],
        },
        indent=2,
    )


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.file, d.line, d.column, d.message)
