"""SOQL, the part of it the project emits: a hand-written tokenizer and a recursive-descent parser into a syntax
tree (`parse`), with the errors Salesforce prints. Running a tree over the records is `soql_eval.Executor`.

Supported: ``SELECT`` fields (parent relationships like ``Campaign.Name`` too), ``COUNT()`` and ``COUNT(field)``;
``FROM`` object; ``WHERE`` with ``AND``/``OR``/``NOT``/parentheses (mixing AND and OR without parentheses is an
error, as in Salesforce), ``= != <> < <= > >=``, ``[NOT] IN (...)`` (values or a semi-join sub-query),
``LIKE``; string literals with backslash escapes, numbers, booleans, null, date-time and date literals;
``ORDER BY`` field [ASC|DESC] [NULLS FIRST|LAST], ...; ``LIMIT``; ``OFFSET``.

Salesforce's semantics kept: keywords, object and field names are case-insensitive; text comparisons are
case-insensitive; ``!=`` and ``NOT IN`` match nulls; ids compare on their first 15 characters; a literal of the
wrong type for its field is an ``INVALID_FIELD`` error; errors carry the row/column caret Salesforce prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from engine.emulator.timeutil import parse_date, parse_datetime

MALFORMED_QUERY = "MALFORMED_QUERY"
INVALID_FIELD = "INVALID_FIELD"
INVALID_TYPE = "INVALID_TYPE"
INVALID_QUERY_FILTER_OPERATOR = "INVALID_QUERY_FILTER_OPERATOR"
NUMBER_OUTSIDE_VALID_RANGE = "NUMBER_OUTSIDE_VALID_RANGE"
MAX_OFFSET = 2000

KEYWORDS = frozenset(
    {
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "TRUE",
        "FALSE",
        "NULL",
        "INCLUDES",
        "EXCLUDES",
        "GROUP",
        "HAVING",
        "WITH",
        "FOR",
        "USING",
    }
)


class SoqlError(Exception):
    """A query Salesforce would refuse: `code` is its errorCode; the message has Salesforce's caret layout."""

    def __init__(self, code: str, detail: str, query: str = "", pos: int | None = None) -> None:
        self.code = code
        self.detail = detail
        self.query = query
        self.pos = pos
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.pos is None or not self.query:
            return self.detail
        before = self.query[: self.pos]
        row = before.count("\n") + 1
        line_start = before.rfind("\n") + 1
        column = self.pos - line_start + 1
        line_end = self.query.find("\n", self.pos)
        line = self.query[line_start : line_end if line_end >= 0 else len(self.query)]
        return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{self.detail}"


# ---------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident keyword string number datetime date op ( ) , eof
    text: str
    pos: int
    value: Any = None
    like: str | None = None  # for strings: the LIKE pattern as a regular expression


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
   |(?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
   |(?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
   |(?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_\d.]))
   |(?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
   |(?P<op>!=|<>|<=|>=|=|<|>)
   |(?P<punct>[(),])
    """,
    re.VERBOSE,
)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos, end = 0, len(query)
    while pos < end:
        char = query[pos]
        if char == "'":
            token, pos = _string(query, pos)
            tokens.append(token)
            continue
        match = _TOKEN_RE.match(query, pos)
        if not match or match.end() == pos:
            raise SoqlError(MALFORMED_QUERY, f"unexpected token: '{char}'", query, pos)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "ident":
            upper = text.upper()
            tokens.append(Token("keyword" if upper in KEYWORDS else "ident", text, pos, upper))
        elif kind == "number":
            tokens.append(Token("number", text, pos, float(text) if "." in text else int(text)))
        elif kind == "datetime":
            tokens.append(Token("datetime", text, pos, parse_datetime(text)))
        elif kind == "date":
            value = parse_date(text)
            if value is None:
                raise SoqlError(
                    MALFORMED_QUERY, f"line 1:{pos} no viable alternative at character '{text}'", query, pos
                )
            tokens.append(Token("date", text, pos, value))
        elif kind == "op":
            tokens.append(Token("op", text, pos, "!=" if text == "<>" else text))
        elif kind == "punct":
            tokens.append(Token(text, text, pos))
        pos = match.end()
    tokens.append(Token("eof", "", end))
    return tokens


def _string(query: str, start: int) -> tuple[Token, int]:
    chars: list[str] = []
    like: list[str] = []
    pos = start + 1
    while pos < len(query):
        char = query[pos]
        if char == "\\":
            escape = query[pos + 1] if pos + 1 < len(query) else ""
            if escape in _ESCAPES:
                chars.append(_ESCAPES[escape])
                like.append(re.escape(_ESCAPES[escape]))
                pos += 2
            elif escape in ("%", "_"):
                chars.append(escape)
                like.append(re.escape(escape))
                pos += 2
            elif escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", query[pos + 2 : pos + 6]):
                decoded = chr(int(query[pos + 2 : pos + 6], 16))
                chars.append(decoded)
                like.append(re.escape(decoded))
                pos += 6
            else:
                raise SoqlError(
                    MALFORMED_QUERY,
                    f"Invalid string literal '{query[start : pos + 2]}'. Illegal escape sequence '\\{escape}'",
                    query,
                    start,
                )
            continue
        if char == "'":
            text = query[start : pos + 1]
            return Token("string", text, start, "".join(chars), "".join(like)), pos + 1
        chars.append(char)
        like.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        pos += 1
    raise SoqlError(MALFORMED_QUERY, f"unexpected token: '{query[start:]}'", query, start)


# ------------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class FieldRef:
    path: str
    pos: int


@dataclass(frozen=True, slots=True)
class Count:
    field: FieldRef | None
    alias: str | None
    pos: int


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str  # string number boolean null datetime date
    value: Any
    pos: int
    like: str | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    field: FieldRef
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class InList:
    field: FieldRef
    values: tuple[Literal, ...]
    negated: bool
    subquery: Query | None = None


@dataclass(frozen=True, slots=True)
class Like:
    field: FieldRef
    pattern: Literal


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # AND / OR
    items: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Expr


Expr = Comparison | InList | Like | BoolOp | Not


@dataclass(frozen=True, slots=True)
class OrderItem:
    field: FieldRef
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    select: tuple[FieldRef | Count, ...]
    sobject: str
    sobject_pos: int
    where: Expr | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None


# ---------------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "eof":
            self.index += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.value in words

    def unexpected(self, token: Token | None = None) -> SoqlError:
        token = token or self.current
        if token.kind == "eof":
            return SoqlError(MALFORMED_QUERY, "unexpected token: <EOF>", self.text, token.pos)
        return SoqlError(MALFORMED_QUERY, f"unexpected token: {token.text}", self.text, token.pos)

    def expect_keyword(self, word: str) -> Token:
        if not self.is_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect(self, kind: str) -> Token:
        if self.current.kind != kind:
            raise self.unexpected()
        return self.advance()

    def query(self, *, nested: bool = False) -> Query:
        self.expect_keyword("SELECT")
        select: list[FieldRef | Count] = [self.select_item()]
        while self.current.kind == ",":
            self.advance()
            select.append(self.select_item())
        self.expect_keyword("FROM")
        if self.current.kind != "ident":
            raise self.unexpected()
        sobject_token = self.advance()
        where = None
        if self.is_keyword("WHERE"):
            self.advance()
            where = self.condition()
        order: list[OrderItem] = []
        if self.is_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order.append(self.order_item())
            while self.current.kind == ",":
                self.advance()
                order.append(self.order_item())
        limit = offset = None
        if self.is_keyword("LIMIT"):
            self.advance()
            limit = self.integer()
        if self.is_keyword("OFFSET"):
            self.advance()
            offset = self.integer()
            if offset > MAX_OFFSET:
                raise SoqlError(
                    NUMBER_OUTSIDE_VALID_RANGE, f"Maximum SOQL offset allowed is {MAX_OFFSET}", self.text, None
                )
        if not nested and self.current.kind != "eof":
            raise self.unexpected()
        return Query(
            self.text, tuple(select), sobject_token.text, sobject_token.pos, where, tuple(order), limit, offset
        )

    def integer(self) -> int:
        token = self.current
        if token.kind != "number" or not isinstance(token.value, int) or token.value < 0:
            raise self.unexpected()
        self.advance()
        return int(token.value)

    def select_item(self) -> FieldRef | Count:
        token = self.current
        if token.kind == "ident" and token.text.upper() == "COUNT" and self.tokens[self.index + 1].kind == "(":
            self.advance()
            self.advance()
            field = None
            if self.current.kind == "ident":
                inner = self.advance()
                field = FieldRef(inner.text, inner.pos)
            self.expect(")")
            alias = None
            if self.current.kind == "ident":
                alias = self.advance().text
            return Count(field, alias, token.pos)
        if token.kind != "ident":
            raise self.unexpected()
        self.advance()
        return FieldRef(token.text, token.pos)

    def order_item(self) -> OrderItem:
        token = self.expect("ident")
        descending = False
        if self.is_keyword("ASC", "DESC"):
            descending = self.advance().value == "DESC"
        nulls_first = not descending
        if self.is_keyword("NULLS"):
            self.advance()
            if not self.is_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_first = self.advance().value == "FIRST"
        return OrderItem(FieldRef(token.text, token.pos), descending, nulls_first)

    def condition(self) -> Expr:
        items = [self.unary()]
        operator: str | None = None
        while self.is_keyword("AND", "OR"):
            token = self.current
            if operator is not None and token.value != operator:
                raise self.unexpected(token)
            operator = str(token.value)
            self.advance()
            items.append(self.unary())
        if operator is None:
            return items[0]
        return BoolOp(operator, tuple(items))

    def unary(self) -> Expr:
        if self.is_keyword("NOT"):
            self.advance()
            return Not(self.unary())
        if self.current.kind == "(":
            self.advance()
            inner = self.condition()
            self.expect(")")
            return inner
        return self.predicate()

    def predicate(self) -> Expr:
        token = self.current
        if token.kind != "ident":
            raise self.unexpected()
        self.advance()
        field = FieldRef(token.text, token.pos)
        if self.current.kind == "op":
            op = str(self.advance().value)
            return Comparison(field, op, self.literal())
        negated = False
        if self.is_keyword("NOT"):
            self.advance()
            negated = True
            if not self.is_keyword("IN"):
                raise self.unexpected()
        if self.is_keyword("IN"):
            self.advance()
            self.expect("(")
            if self.is_keyword("SELECT"):
                subquery = self.query(nested=True)
                self.expect(")")
                return InList(field, (), negated, subquery)
            values = [self.literal()]
            while self.current.kind == ",":
                self.advance()
                values.append(self.literal())
            self.expect(")")
            return InList(field, tuple(values), negated)
        if self.is_keyword("LIKE"):
            self.advance()
            pattern = self.literal()
            if pattern.kind != "string":
                raise SoqlError(
                    MALFORMED_QUERY, f"unexpected token: {self.tokens[self.index - 1].text}", self.text, pattern.pos
                )
            return Like(field, pattern)
        raise self.unexpected()

    def literal(self) -> Literal:
        token = self.current
        if token.kind == "string":
            self.advance()
            return Literal("string", token.value, token.pos, token.like)
        if token.kind == "number":
            self.advance()
            return Literal("number", token.value, token.pos)
        if token.kind == "datetime":
            self.advance()
            return Literal("datetime", token.value, token.pos)
        if token.kind == "date":
            self.advance()
            return Literal("date", token.value, token.pos)
        if token.kind == "keyword" and token.value in ("TRUE", "FALSE"):
            self.advance()
            return Literal("boolean", token.value == "TRUE", token.pos)
        if token.kind == "keyword" and token.value == "NULL":
            self.advance()
            return Literal("null", None, token.pos)
        raise self.unexpected()


def parse(text: str) -> Query:
    """The query's syntax tree; `SoqlError(MALFORMED_QUERY)` for anything Salesforce would not parse."""
    return _Parser(text).query()
