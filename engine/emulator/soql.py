"""SOQL, the part of it the project emits: a hand-written tokenizer, a recursive-descent parser, and an evaluator
over the emulator's records.

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from engine.emulator import schema as s
from engine.emulator.ids import is_valid_id
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


# ------------------------------------------------------------------------------------------- evaluation


class Source(Protocol):
    """Where a query reads: records as dicts with the canonical field names, computed fields filled in."""

    def rows(self, sobject: s.SObjectDef, include_deleted: bool) -> Iterable[dict[str, Any]]: ...

    def record(self, record_id: str) -> dict[str, Any] | None:
        """Any live record by id (for parent relationships); None when missing or deleted."""
        ...


@dataclass(frozen=True, slots=True)
class BoundField:
    """A field path resolved against the schema: relationship steps, then the leaf field."""

    steps: tuple[tuple[str, str, s.SObjectDef], ...]  # (reference field, relationship name, target object)
    leaf: s.FieldDef

    @property
    def names(self) -> tuple[str, ...]:
        return (*(step[1] for step in self.steps), self.leaf.name)


@dataclass(frozen=True, slots=True)
class QueryResult:
    records: list[dict[str, Any]]
    total_size: int


def _bind(sobject: s.SObjectDef, ref: FieldRef, query: str) -> BoundField:
    parts = ref.path.split(".")
    if len(parts) > 1 and parts[0].lower() == sobject.name.lower() and sobject.relationship(parts[0]) is None:
        parts = parts[1:]
    current = sobject
    steps: list[tuple[str, str, s.SObjectDef]] = []
    for part in parts[:-1]:
        reference = current.relationship(part)
        target = s.sobject(reference.reference_to[0]) if reference and reference.reference_to else None
        if reference is None or target is None or reference.relationship_name is None:
            raise SoqlError(
                INVALID_FIELD,
                f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                "your WSDL or the describe call for the appropriate names.",
                query,
                ref.pos,
            )
        steps.append((reference.name, reference.relationship_name, target))
        current = target
    leaf = current.field(parts[-1])
    if leaf is None:
        raise SoqlError(
            INVALID_FIELD,
            f"No such column '{parts[-1]}' on entity '{current.name}'. If you are attempting to use a custom field, "
            "be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe "
            "call for the appropriate names.",
            query,
            ref.pos,
        )
    return BoundField(tuple(steps), leaf)


_TYPE_WORDS = {
    "boolean": "boolean",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "int": "integer",
    "datetime": "dateTime",
    "date": "date",
}
_LITERAL_FOR = {
    "boolean": "boolean",
    "double": "number",
    "currency": "number",
    "percent": "number",
    "int": "number",
    "datetime": "datetime",
    "date": "date",
}


def _check_literal(field: BoundField, literal: Literal, query: str) -> None:
    if literal.kind == "null":
        return
    leaf = field.leaf
    name = leaf.name
    if leaf.is_text or leaf.is_id:
        if literal.kind != "string":
            raise SoqlError(
                INVALID_FIELD,
                f"value of filter criterion for field '{name}' must be of type string and should be enclosed in quotes",
                query,
                literal.pos,
            )
        if leaf.is_id and literal.value and not is_valid_id(str(literal.value)):
            raise SoqlError(INVALID_QUERY_FILTER_OPERATOR, f"invalid ID field: {literal.value}", query, literal.pos)
        return
    expected = _LITERAL_FOR.get(leaf.type)
    if expected is not None and literal.kind != expected:
        raise SoqlError(
            INVALID_FIELD,
            f"value of filter criterion for field '{name}' must be of type {_TYPE_WORDS[leaf.type]} "
            "and should not be enclosed in quotes",
            query,
            literal.pos,
        )


def _normalize(value: Any, leaf: s.FieldDef) -> Any:
    """A comparable form of a stored value: text case-folded, ids on 15 characters, dates parsed."""
    if value is None:
        return None
    if leaf.is_id:
        return str(value)[:15]
    if leaf.is_text:
        return str(value).casefold()
    if leaf.type == "datetime":
        return parse_datetime(value) if isinstance(value, str) else value
    if leaf.type == "date":
        return parse_date(value) if isinstance(value, str) else value
    if leaf.type in s.NUMBER_TYPES:
        return float(value)
    return value


def _normalize_literal(literal: Literal, leaf: s.FieldDef) -> Any:
    if literal.kind == "null":
        return None
    value = literal.value
    if leaf.is_id:
        return str(value)[:15]
    if leaf.is_text:
        return str(value).casefold()
    if literal.kind == "number":
        return float(value)
    if leaf.type == "date" and isinstance(value, datetime):
        return value.date()
    if isinstance(value, date | datetime | bool):
        return value
    return value


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}

Predicate = Callable[[dict[str, Any]], bool]


class Executor:
    """Runs a parsed query against a Source."""

    def __init__(self, source: Source, version: str) -> None:
        self.source = source
        self.version = version

    def run(self, text: str, *, include_deleted: bool) -> QueryResult:
        query = parse(text)
        return self.execute(query, include_deleted=include_deleted)

    def _object(self, query: Query) -> s.SObjectDef:
        sobject = s.sobject(query.sobject)
        if sobject is None or not sobject.queryable:
            raise SoqlError(
                INVALID_TYPE,
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
                "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for "
                "the appropriate names.",
                query.text,
                query.sobject_pos,
            )
        return sobject

    def execute(self, query: Query, *, include_deleted: bool) -> QueryResult:
        sobject = self._object(query)
        counts = [item for item in query.select if isinstance(item, Count)]
        plain = [item for item in query.select if isinstance(item, FieldRef)]
        if counts and plain:
            raise SoqlError(
                MALFORMED_QUERY, f"Field must be grouped or aggregated: {plain[0].path}", query.text, plain[0].pos
            )
        if any(item.field is None for item in counts) and len(query.select) > 1:
            raise SoqlError(
                MALFORMED_QUERY, "COUNT() must be the only element in the SELECT list", query.text, counts[0].pos
            )
        bound_select = [_bind(sobject, item, query.text) for item in plain]
        for item in counts:
            if item.field is not None:
                _bind(sobject, item.field, query.text)
        predicate = self._predicate(sobject, query.where, query.text, include_deleted)
        order = [(_bind(sobject, entry.field, query.text), entry) for entry in query.order_by]

        rows = [row for row in self.source.rows(sobject, include_deleted) if predicate(row)]
        for bound, entry in reversed(order):
            rank = 0 if entry.nulls_first ^ entry.descending else 2
            rows.sort(key=self._sort_key(bound, rank), reverse=entry.descending)
        if query.offset:
            rows = rows[query.offset :]
        if query.limit is not None:
            rows = rows[: query.limit]

        if counts:
            if counts[0].field is None:
                return QueryResult([], len(rows))
            record: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
            for index, item in enumerate(counts):
                if item.field is None:
                    continue
                field = _bind(sobject, item.field, query.text)
                value = sum(1 for row in rows if self._value(row, field) is not None)
                record[item.alias or f"expr{index}"] = value
            return QueryResult([record], 1)
        return QueryResult([self._project(sobject, row, bound_select) for row in rows], len(rows))

    # -- values

    def _value(self, row: dict[str, Any] | None, field: BoundField) -> Any:
        for reference, _relationship, _target in field.steps:
            if row is None:
                return None
            target_id = row.get(reference)
            row = self.source.record(target_id) if target_id else None
        if row is None:
            return None
        return row.get(field.leaf.name)

    def _sort_key(self, field: BoundField, none_rank: int) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        def key(row: dict[str, Any]) -> tuple[Any, ...]:
            value = _normalize(self._value(row, field), field.leaf)
            return (none_rank,) if value is None else (1, value)

        return key

    def _project(self, sobject: s.SObjectDef, row: dict[str, Any], fields: list[BoundField]) -> dict[str, Any]:
        out: dict[str, Any] = {"attributes": self.attributes(sobject, row["Id"])}
        for field in fields:
            target: dict[str, Any] | None = out
            current: dict[str, Any] | None = row
            for reference, relationship, related in field.steps:
                assert target is not None
                related_id = current.get(reference) if current is not None else None
                current = self.source.record(related_id) if related_id else None
                if current is None:
                    target.setdefault(relationship, None)
                    target = None
                    break
                nested = target.get(relationship)
                if nested is None:
                    nested = {"attributes": self.attributes(related, current["Id"])}
                    target[relationship] = nested
                target = nested
            if target is not None and current is not None:
                target[field.leaf.name] = current.get(field.leaf.name)
        return out

    def attributes(self, sobject: s.SObjectDef, record_id: str) -> dict[str, str]:
        return {"type": sobject.name, "url": f"/services/data/v{self.version}/sobjects/{sobject.name}/{record_id}"}

    # -- predicates

    def _predicate(self, sobject: s.SObjectDef, expr: Expr | None, text: str, include_deleted: bool) -> Predicate:
        if expr is None:
            return lambda row: True
        if isinstance(expr, BoolOp):
            parts = [self._predicate(sobject, item, text, include_deleted) for item in expr.items]
            if expr.op == "AND":
                return lambda row: all(part(row) for part in parts)
            return lambda row: any(part(row) for part in parts)
        if isinstance(expr, Not):
            inner = self._predicate(sobject, expr.item, text, include_deleted)
            return lambda row: not inner(row)
        field = _bind(sobject, expr.field, text)
        leaf = field.leaf
        if isinstance(expr, Comparison):
            _check_literal(field, expr.value, text)
            expected = _normalize_literal(expr.value, leaf)
            operator = _OPERATORS[expr.op]
            op = expr.op

            def compare(row: dict[str, Any]) -> bool:
                actual = _normalize(self._value(row, field), leaf)
                if expected is None or actual is None:
                    if op == "=":
                        return actual is expected
                    if op == "!=":
                        return (actual is None) != (expected is None)
                    return False
                try:
                    return operator(actual, expected)
                except TypeError:
                    return False

            return compare
        if isinstance(expr, InList):
            negated = expr.negated
            if expr.subquery is not None:
                if not leaf.is_id:
                    raise SoqlError(
                        INVALID_FIELD,
                        f"Invalid semi join: the left operand '{expr.field.path}' must be an id or reference field",
                        text,
                        expr.field.pos,
                    )
                sub = expr.subquery
                if len(sub.select) != 1 or not isinstance(sub.select[0], FieldRef):
                    raise SoqlError(
                        MALFORMED_QUERY, "semi join sub-selects can only query a single id field", text, sub.sobject_pos
                    )
                sub_result = self.execute(sub, include_deleted=False)
                selected = sub.select[0]
                sub_field = _bind(self._object(sub), selected, text)
                if not sub_field.leaf.is_id:
                    raise SoqlError(INVALID_FIELD, "semi join sub-selects can only query id fields", text, selected.pos)
                ids = set()
                for record in sub_result.records:
                    value: Any = record
                    for name in sub_field.names:
                        value = value.get(name) if isinstance(value, dict) else None
                    if value:
                        ids.add(str(value)[:15])
                values: set[Any] = ids
            else:
                for literal in expr.values:
                    _check_literal(field, literal, text)
                values = {_normalize_literal(literal, leaf) for literal in expr.values}

            def member(row: dict[str, Any]) -> bool:
                actual = _normalize(self._value(row, field), leaf)
                found = actual in values
                return not found if negated else found

            return member
        # LIKE
        if not leaf.is_text:
            raise SoqlError(
                INVALID_QUERY_FILTER_OPERATOR, f"invalid operator on field '{leaf.name}'", text, expr.field.pos
            )
        pattern = re.compile(expr.pattern.like or "", re.IGNORECASE | re.DOTALL)

        def like(row: dict[str, Any]) -> bool:
            actual = self._value(row, field)
            return actual is not None and pattern.fullmatch(str(actual)) is not None

        return like
