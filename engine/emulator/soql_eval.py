"""SOQL evaluation: a parsed query (`soql.parse`) bound to the schema, its literals checked against the fields'
types, and run over the emulator's records (`Executor`), with Salesforce's comparison semantics: text compares
case-insensitively, ``!=`` and ``NOT IN`` match nulls, ids compare on their first 15 characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from engine.emulator import schema as s
from engine.emulator.ids import is_valid_id
from engine.emulator.soql import (
    INVALID_FIELD,
    INVALID_QUERY_FILTER_OPERATOR,
    INVALID_TYPE,
    MALFORMED_QUERY,
    BoolOp,
    Comparison,
    Count,
    Expr,
    FieldRef,
    InList,
    Literal,
    Not,
    Query,
    SoqlError,
    parse,
)
from engine.emulator.timeutil import parse_date, parse_datetime


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
