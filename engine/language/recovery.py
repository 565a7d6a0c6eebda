"""Error recovery: after a syntax error, keep the declarations before the broken one and parse on from the
next top-level declaration, so that one run reports every broken block (at most 50 diagnostics).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable

from lark import Lark
from lark.exceptions import LarkError, UnexpectedInput, UnexpectedToken

from engine.language import ast
from engine.language.build import _COMMENTS, _GROUPED, _KEEP
from engine.language.diagnostics import Diagnostic
from engine.language.messages import _TOP_LEVEL, _syntax_diagnostic


def _parse_recovering(
    parser: Lark,
    text: str,
    file: str,
    parse_chunk: Callable[[Lark, str], list[ast.Declaration]],
    diagnostics: list[Diagnostic],
) -> tuple[list[ast.Declaration], list[ast.Comment]]:
    """The declarations and comments of `text`, its syntax errors appended to `diagnostics`.

    `parse_chunk` parses one chunk (the fast path, else Lark); the caller holds the parser's lock.
    """
    declarations: list[ast.Declaration] = []
    comments: list[ast.Comment] = []
    chunk = text
    offset_line = -1  # where the last error was, so recovery always moves forward
    while True:
        _COMMENTS.clear()
        _GROUPED.clear()
        _KEEP.clear()
        try:
            result = parse_chunk(parser, chunk)
            declarations.extend(result)
            comments.extend(ast.Comment(str(t).rstrip(), t.line or 0, t.column or 0) for t in _COMMENTS)
            break
        except UnexpectedInput as error:
            diagnostics.append(_syntax_diagnostic(parser, chunk, error, file))
            pos = getattr(error, "pos_in_stream", None)
            if pos is None and isinstance(error, UnexpectedToken):
                pos = error.token.start_pos
            if pos is None:
                pos = len(chunk)
            # Keep the declarations before the broken one: parse up to where it starts.
            starts = [m.start(1) for m in _TOP_LEVEL.finditer(chunk, 0, pos + 1) if m.start(1) <= pos]
            if starts and starts[-1] > 0:
                _COMMENTS.clear()
                _GROUPED.clear()
                with contextlib.suppress(UnexpectedInput):
                    before = parse_chunk(parser, chunk[: starts[-1]])
                    declarations.extend(before)
                    comments.extend(ast.Comment(str(t).rstrip(), t.line or 0, t.column or 0) for t in _COMMENTS)
            # Recover at the next top-level declaration so one run reports every broken block.
            line_start = chunk.rfind("\n", 0, pos) + 1
            at_declaration = _TOP_LEVEL.match(chunk, line_start)
            if at_declaration is not None and at_declaration.start(1) == pos and offset_line != pos:
                following: re.Match[str] | None = at_declaration
            else:
                after = chunk.find("\n", pos)
                following = _TOP_LEVEL.search(chunk, after + 1) if after != -1 else None
            offset_line = pos
            if following is None or len(diagnostics) >= 50:
                break
            prefix_lines = chunk.count("\n", 0, following.start())
            chunk = "\n" * prefix_lines + chunk[following.start() :]
        except LarkError as error:  # pragma: no cover - defensive: grammar-level failure
            diagnostics.append(Diagnostic("error", "syntax", str(error), file, 1, 1))
            break
    _GROUPED.clear()
    _KEEP.clear()
    return declarations, comments
