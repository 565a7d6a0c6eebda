"""Every diagnostic code the language can emit has an entry in docs/errors.md (the `see` link lands on it).

The codes are read from the source of engine/language, the way the code writes them: the code argument of
`Diagnostic(severity, code, ...)` and of the checks' `_at(severity, code, ...)`, a `code = "..."` assignment,
and the `("code", message, position)` tuples the parser's string check returns. A new code without an entry
fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LANGUAGE = ROOT / "engine" / "language"
CATALOGUE = ROOT / "docs" / "errors.md"

_CODE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAKERS = {"Diagnostic", "_at"}  # called as MAKER(severity, code, message, ...)
_CODE_VARIABLES = {"code"}  # the names a code is passed through when it is not written in the call


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _code_argument(call: ast.Call) -> ast.expr | None:
    for keyword in call.keywords:
        if keyword.arg == "code":
            return keyword.value
    return call.args[1] if len(call.args) >= 2 else None


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CODE.fullmatch(node.value):
        return node.value
    return None


def emitted_codes() -> dict[str, str]:
    """Each code found in engine/language/*.py, with the file and line where it is written."""
    codes: dict[str, str] = {}
    unresolved: list[str] = []
    for path in sorted(LANGUAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and _callee(node) in _MAKERS:
                argument = _code_argument(node)
                code = _string(argument)
                if code is not None:
                    codes.setdefault(code, where)
                elif not (isinstance(argument, ast.Name) and argument.id in _CODE_VARIABLES):
                    # a code passed in some other way would be missed: make the test learn it
                    unresolved.append(where)
            elif isinstance(node, ast.Assign):
                if any(isinstance(t, ast.Name) and t.id in _CODE_VARIABLES for t in node.targets):
                    code = _string(node.value)
                    if code is not None:
                        codes.setdefault(code, where)
            elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and node.value.elts:
                # `return ("bad-escape", message, pos)`: unpacked as `code, message, where = problem`
                code = _string(node.value.elts[0])
                if code is not None and len(node.value.elts) == 3 and "-" in code:
                    codes.setdefault(code, where)
    assert not unresolved, f"diagnostics whose code this test cannot read: {unresolved}"
    return codes


def catalogue_anchors() -> set[str]:
    """The anchors of docs/errors.md: its `## code` headings (the heading text is the anchor)."""
    text = CATALOGUE.read_text(encoding="utf-8")
    anchors: set[str] = set()
    in_fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        if not in_fence and line.startswith("## "):
            anchors.add(line[3:].strip())
    return anchors


def test_the_scan_finds_the_codes() -> None:
    codes = emitted_codes()
    # one of each way a code is written: in a check, in the loader, in the parser's messages
    for code in ("duplicate-name", "execute-cycle", "unreadable-file", "syntax", "unclosed-brace", "bad-escape"):
        assert code in codes
    assert len(codes) >= 45


def test_every_code_has_an_entry() -> None:
    anchors = catalogue_anchors()
    missing = {code: where for code, where in emitted_codes().items() if code not in anchors}
    assert not missing, f"codes without a `## CODE` entry in docs/errors.md: {missing}"


def test_every_code_is_in_the_table() -> None:
    table = CATALOGUE.read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| \[`([a-z0-9-]+)`\]\(#\1\) \|", table, flags=re.MULTILINE))
    missing = sorted(code for code in emitted_codes() if code not in listed)
    assert not missing, f"codes missing from the table at the top of docs/errors.md: {missing}"
