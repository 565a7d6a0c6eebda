"""What every reduction of the tree to AST builder uses: spans from tokens and child nodes, token and string
helpers, and the markers for items that are not AST nodes themselves (`_BuilderBase`, `_Marker`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Token, Transformer

from engine.language import ast

_ESCAPE = re.compile(r"\\([\"\\])")


def _unquote(token: Token) -> str:
    raw = str(token)
    if len(raw) < 2:
        return raw
    inner = raw[1:-1]
    return _ESCAPE.sub(r"\1", inner) if "\\" in inner else inner


def _int(token: Token) -> int:
    try:
        return int(str(token))
    except ValueError:
        return 0


def _unit(token: Token) -> ast.TimeUnit:
    word = str(token).rstrip("s")
    if word in ast.UNIT_SECONDS:
        return word  # type: ignore[return-value]
    return "day"


@dataclass
class _Marker:
    """A campaign or program item that is not itself an AST node."""

    kind: str
    value: Any
    span: ast.Span


class _BuilderBase(Transformer[Token, Any]):
    """The builder's helpers: spans, tokens, strings, nodes (the reductions are in `build` and `build_flow`)."""

    def __init__(self) -> None:
        super().__init__()
        self.file = "<string>"

    # ---- spans -------------------------------------------------------------------------------
    def _span(self, children: list[Any]) -> ast.Span:
        head = children[0] if children else None
        tail = children[-1] if children else None
        if type(head) is Token and type(tail) is Token and head.line is not None and tail.end_line is not None:
            return ast.Span(self.file, head.line, head.column or 0, tail.end_line, tail.end_column or 0)
        first = self._first(children)
        last = self._last(children)
        if first is None or last is None:
            return ast.Span(self.file, 0, 0, 0, 0)
        return ast.Span(self.file, first[0], first[1], last[0], last[1])

    @staticmethod
    def _start(child: Any) -> tuple[int, int] | None:
        if isinstance(child, Token):
            if child.line is None:
                return None
            return (child.line, child.column or 0)
        span = getattr(child, "span", None)
        if isinstance(span, ast.Span) and span.line:
            return (span.line, span.column)
        if isinstance(child, (list, tuple)):
            for item in child:
                found = _BuilderBase._start(item)
                if found:
                    return found
        return None

    @staticmethod
    def _end(child: Any) -> tuple[int, int] | None:
        if isinstance(child, Token):
            if child.end_line is None:
                return None
            return (child.end_line, child.end_column or 0)
        span = getattr(child, "span", None)
        if isinstance(span, ast.Span) and span.line:
            return (span.end_line, span.end_column)
        if isinstance(child, (list, tuple)):
            for item in reversed(child):
                found = _BuilderBase._end(item)
                if found:
                    return found
        return None

    def _first(self, children: list[Any]) -> tuple[int, int] | None:
        for child in children:
            found = self._start(child)
            if found:
                return found
        return None

    def _last(self, children: list[Any]) -> tuple[int, int] | None:
        for child in reversed(children):
            found = self._end(child)
            if found:
                return found
        return None

    def _token_span(self, token: Token) -> ast.Span:
        return ast.Span(self.file, token.line or 0, token.column or 0, token.end_line or 0, token.end_column or 0)

    @staticmethod
    def _strings(children: list[Any]) -> list[Token]:
        return [c for c in children if type(c) is Token and c.type == "STRING"]

    @staticmethod
    def _nodes(children: list[Any]) -> list[Any]:
        return [c for c in children if not isinstance(c, Token)]

    @staticmethod
    def _token(children: list[Any], kind: str) -> Token:
        return next(c for c in children if type(c) is Token and c.type == kind)

    def _ref(self, children: list[Any]) -> ast.CampaignRef | None:
        for child in children:
            if isinstance(child, ast.CampaignRef):
                return child
        return None
