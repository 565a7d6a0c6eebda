"""The nesting pre-scan: declarations nested past MAX_NESTING levels are refused before the parser sees them,
in one linear pass over the text (no recursion, nothing built), so that bounded input stays bounded.
"""

from __future__ import annotations

import re

from engine.language.checks import MAX_NESTING
from engine.language.diagnostics import Diagnostic
from engine.language.messages import _TOP_LEVEL, _line_col

# The depth scan: one match skips everything that cannot change the depth (strings, comments, other words,
# `("a", "b")` lists) and stops at the next `not`, `flow {`, brace or parenthesis.
_NEXT_LEVEL = re.compile(
    r'(?:[^"#{}()A-Za-z_]++|"(?:[^"\\\n]++|\\.)*+"?|#[^\n]*+|\((?=\s*+")'
    r"|(?!not(?![A-Za-z0-9_])|flow\s*+\{)[A-Za-z_][A-Za-z0-9_]*+)*+"
    r"(not(?![A-Za-z0-9_])|flow\s*+\{|[{}()])"
)
_AFTER_NOT = re.compile(r"\s*+(?:(in)(?![A-Za-z0-9_])|(not)(?![A-Za-z0-9_])|(\())")


def _too_deep(text: str, start: int) -> tuple[int, int, str] | None:
    """The first `if` block, parenthesis or `not` past MAX_NESTING levels from `start` on: (offset, length, what).

    A level is an `if`/`else` block, a parenthesised group (not a `("a", "b")` list) or a `not` (not `not in`);
    the `not`s before a group last as long as it, the others end at their `member of`. One pass over the text,
    no recursion, nothing built."""
    opened: list[str] = []  # "n": a `not`, "(": a group, "{": a block, "": a declaration's or a flow's braces
    depth = 0
    pos = start
    while (match := _NEXT_LEVEL.match(text, pos)) is not None:
        token = match.group(1)
        at, pos = match.start(1), match.end()
        first = token[0]
        if first == "n":
            after = _AFTER_NOT.match(text, pos)
            if after is not None and after.group(1):  # `not in ("a")`: not a level
                continue
            if depth + 1 > MAX_NESTING:
                return at, 3, "`not`"
            if after is not None:  # `not not`, `not (`: lasts as long as what follows
                opened.append("n")
                depth += 1
                continue
            while opened and opened[-1] == "n":  # `not member of ...`: the end of a chain of `not`s
                opened.pop()
                depth -= 1
        elif first == "(":
            opened.append("(")
            depth += 1
            if depth > MAX_NESTING:
                return at, 1, "parenthesis"
        else:
            while opened and opened[-1] == "n":
                opened.pop()
                depth -= 1
            if first == "{" or first == "f":
                kind = "{" if opened and first == "{" else ""
                opened.append(kind)
                if kind:
                    depth += 1
                    if depth > MAX_NESTING:
                        return at, 1, "`{` block"
            else:  # `}` or `)`
                if opened and opened.pop():
                    depth -= 1
                if first == ")":  # a group is the operand of the `not`s before it: `not not (a)`
                    while opened and opened[-1] == "n":
                        opened.pop()
                        depth -= 1
    return None


def _nesting_errors(text: str, file: str) -> tuple[str, list[Diagnostic]]:
    """Declarations nested deeper than MAX_NESTING: an error at the level past the limit, and the declaration
    blanked out (its lines kept) so that the parser never sees it. Linear in the text."""
    if text.count("{") + text.count("(") + text.count("not") <= MAX_NESTING:
        return text, []  # cannot be too deep: no scan at all
    diagnostics: list[Diagnostic] = []
    start = 0
    while (found := _too_deep(text, start)) is not None:
        offset, length, what = found
        line, column = _line_col(text, offset)
        diagnostics.append(
            Diagnostic(
                "error",
                "nested-too-deep",
                f"this {what} nests more than {MAX_NESTING} levels deep (`if` blocks, parentheses and `not`): "
                "split it into simpler campaigns",
                file,
                line,
                column,
                line,
                column + length,
            )
        )
        declaration = start
        for match in _TOP_LEVEL.finditer(text, start, offset + 1):
            if match.start(1) <= offset:
                declaration = match.start()
        line_end = text.find("\n", offset)
        following = _TOP_LEVEL.search(text, line_end + 1) if line_end != -1 else None
        end = following.start() if following is not None else len(text)
        blank = "\n" * text.count("\n", declaration, end)
        text = text[:declaration] + blank + text[end:]
        if following is None or len(diagnostics) >= 50:
            break
        start = declaration + len(blank)
    return text, diagnostics
