"""The tree to AST transformer: Lark's reductions (keyword tokens kept) to typed AST nodes with exact spans.

The builder is an inline transformer: Lark (or the fast path) calls it at each reduction, so no parse tree is
ever materialised. The comments seen while lexing and the parenthesised groups are collected here, for the
parse under way; they are cleared before each parse.

Split by job: `build_base` has the helpers every reduction uses (spans, tokens, markers), `build_flow` the
reductions of flows and their steps; this module the rest (files, campaigns and their items, triggers, filter
expressions, programs, channels) and the per-parse state (comments, groups).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lark import Token

from engine.language import ast
from engine.language.build_base import _int, _Marker, _unit, _unquote
from engine.language.build_flow import _FlowBuilder


class _Builder(_FlowBuilder):
    """Reduction callbacks: children (keyword tokens kept) to AST nodes with spans."""

    # ---- file ----------------------------------------------------------------------------------
    def start(self, children: list[Any]) -> list[ast.Declaration]:
        return self._nodes(children)

    # ---- campaigns -----------------------------------------------------------------------------
    def campaign(self, children: list[Any]) -> ast.Campaign:
        name = self._strings(children)[0]
        triggers: list[ast.Trigger] = []
        filters: list[ast.FilterExpr] = []
        flow: tuple[ast.FlowStep, ...] = ()
        has_flow = False
        qualification = ast.Qualification()
        qualification_given = False
        description: str | None = None
        active = True
        repeated: list[tuple[str, ast.Span]] = []
        schedule: ast.Schedule | None = None
        timezone: str | None = None
        timezone_span = ast.NO_SPAN
        limit: int | None = None
        limit_span = ast.NO_SPAN
        for item in self._nodes(children):
            if isinstance(item, ast.Trigger):
                triggers.append(item)
            elif isinstance(item, ast.Qualification):
                if qualification_given:
                    repeated.append(("qualify", item.span))
                qualification = item
                qualification_given = True
            elif isinstance(item, _Marker):
                if item.kind == "filter":
                    filters.append(item.value)
                elif item.kind == "flow":
                    if has_flow:
                        repeated.append(("flow", item.span))
                    flow = flow + tuple(item.value)
                    has_flow = True
                elif item.kind == "description":
                    if description is not None:
                        repeated.append(("description", item.span))
                    description = item.value
                elif item.kind == "inactive":
                    if not active:
                        repeated.append(("inactive", item.span))
                    active = False
                elif item.kind == "limit":
                    if limit is not None:
                        repeated.append(("limit", item.span))
                    limit, limit_span = item.value, item.span
            elif isinstance(item, ast.Schedule):
                if schedule is not None:
                    repeated.append(("schedule", item.span))
                schedule = item
            elif isinstance(item, ast.TimeZone):
                if timezone is not None:
                    repeated.append(("timezone", item.span))
                timezone, timezone_span = item.name, item.span
        return ast.Campaign(
            name=_unquote(name),
            triggers=tuple(triggers),
            filters=tuple(filters),
            qualification=qualification,
            flow=flow,
            description=description,
            active=active,
            has_flow_block=has_flow,
            qualification_given=qualification_given,
            span=self._span(children),
            name_span=self._token_span(name),
            repeated=tuple(repeated),
            schedule=schedule,
            timezone=timezone,
            timezone_span=timezone_span,
            limit=limit,
            limit_span=limit_span,
        )

    def timezone(self, children: list[Any]) -> ast.TimeZone:
        return ast.TimeZone(_unquote(self._strings(children)[0]), self._span(children))

    def limit(self, children: list[Any]) -> _Marker:
        amount = next(c for c in children if type(c) is Token and c.type == "INT")
        return _Marker("limit", _int(amount), self._span(children))

    def schedule_once(self, children: list[Any]) -> ast.Schedule:
        return ast.Schedule("once", at=str(self._token(children, "DATETIME")), span=self._span(children))

    def schedule_daily(self, children: list[Any]) -> ast.Schedule:
        return ast.Schedule("daily", time=str(self._token(children, "CLOCK")), span=self._span(children))

    def schedule_weekly(self, children: list[Any]) -> ast.Schedule:
        weekday: ast.Weekday = str(self._token(children, "WEEKDAY"))  # type: ignore[assignment]
        clock = str(self._token(children, "CLOCK"))
        return ast.Schedule("weekly", time=clock, weekday=weekday, span=self._span(children))

    def schedule_monthly(self, children: list[Any]) -> ast.Schedule:
        day = _int(self._token(children, "INT"))
        clock = str(self._token(children, "CLOCK"))
        return ast.Schedule("monthly", time=clock, day=day, span=self._span(children))

    def description(self, children: list[Any]) -> _Marker:
        return _Marker("description", _unquote(self._strings(children)[0]), self._span(children))

    def inactive(self, children: list[Any]) -> _Marker:
        return _Marker("inactive", True, self._span(children))

    def _status_parts(self, children: list[Any]) -> dict[str, ast.StatusMatch]:
        parts: dict[str, ast.StatusMatch] = {}
        for child in children:
            if isinstance(child, _Marker) and child.kind in ("with_status", "from_status", "to_status"):
                parts[child.kind] = child.value
        return parts

    def trigger_added(self, children: list[Any]) -> ast.Trigger:
        parts = self._status_parts(children)
        return ast.Trigger(
            "added", campaign=self._ref(children), status=parts.get("with_status"), span=self._span(children)
        )

    def trigger_removed(self, children: list[Any]) -> ast.Trigger:
        parts = self._status_parts(children)
        return ast.Trigger(
            "removed", campaign=self._ref(children), status=parts.get("with_status"), span=self._span(children)
        )

    def trigger_changed(self, children: list[Any]) -> ast.Trigger:
        parts = self._status_parts(children)
        return ast.Trigger(
            "status_changed",
            campaign=self._ref(children),
            from_status=parts.get("from_status"),
            to_status=parts.get("to_status"),
            span=self._span(children),
        )

    def trigger_program(self, children: list[Any]) -> ast.Trigger:
        parts = self._status_parts(children)
        strings = self._strings(children)
        return ast.Trigger(
            "program_status_changed",
            program=_unquote(strings[0]) if strings else "",
            from_status=parts.get("from_status"),
            to_status=parts.get("to_status"),
            span=self._span(children),
        )

    def trigger_requested(self, children: list[Any]) -> ast.Trigger:
        return ast.Trigger("requested", span=self._span(children))

    def filter(self, children: list[Any]) -> _Marker:
        return _Marker("filter", self._nodes(children)[0], self._span(children))

    def qualify_once(self, children: list[Any]) -> ast.Qualification:
        return ast.Qualification("once", span=self._span(children))

    def qualify_every_time(self, children: list[Any]) -> ast.Qualification:
        return ast.Qualification("every_time", span=self._span(children))

    def qualify_window(self, children: list[Any]) -> ast.Qualification:
        amount = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        unit = next(c for c in children if isinstance(c, Token) and c.type == "TIME_UNIT")
        return ast.Qualification("window", _int(amount), _unit(unit), span=self._span(children))

    # ---- references and matches ----------------------------------------------------------------
    def string_list(self, children: list[Any]) -> _Marker:
        return _Marker("list", tuple(_unquote(s) for s in self._strings(children)), self._span(children))

    def _list_values(self, children: list[Any]) -> tuple[str, ...]:
        for child in children:
            if isinstance(child, _Marker) and child.kind == "list":
                return tuple(child.value)
        return ()

    def ref_name(self, children: list[Any]) -> ast.CampaignRef:
        return ast.CampaignRef("name", (_unquote(self._strings(children)[0]),), self._span(children))

    def ref_id(self, children: list[Any]) -> ast.CampaignRef:
        return ast.CampaignRef("id", (_unquote(self._strings(children)[0]),), self._span(children))

    def ref_in(self, children: list[Any]) -> ast.CampaignRef:
        return ast.CampaignRef("in", self._list_values(children), self._span(children))

    def ref_not_in(self, children: list[Any]) -> ast.CampaignRef:
        return ast.CampaignRef("not_in", self._list_values(children), self._span(children))

    def ref_any(self, children: list[Any]) -> ast.CampaignRef:
        return ast.CampaignRef("any", (), self._span(children))

    def match_is(self, children: list[Any]) -> ast.StatusMatch:
        return ast.StatusMatch("is", (_unquote(self._strings(children)[0]),), self._span(children))

    def match_in(self, children: list[Any]) -> ast.StatusMatch:
        return ast.StatusMatch("in", self._list_values(children), self._span(children))

    def match_not_in(self, children: list[Any]) -> ast.StatusMatch:
        return ast.StatusMatch("not_in", self._list_values(children), self._span(children))

    def _match_marker(self, kind: str, children: list[Any]) -> _Marker:
        match = next(c for c in children if isinstance(c, ast.StatusMatch))
        return _Marker(kind, match, self._span(children))

    def with_status(self, children: list[Any]) -> _Marker:
        return self._match_marker("with_status", children)

    def from_status(self, children: list[Any]) -> _Marker:
        return self._match_marker("from_status", children)

    def to_status(self, children: list[Any]) -> _Marker:
        return self._match_marker("to_status", children)

    # ---- filter expressions --------------------------------------------------------------------
    def or_expr(self, children: list[Any]) -> ast.Or:
        operands: list[ast.FilterExpr] = []
        for node in self._nodes(children):
            operands.extend(node.operands if isinstance(node, ast.Or) and not _grouped(node) else (node,))
        return ast.Or(tuple(operands), self._span(children))

    def and_expr(self, children: list[Any]) -> ast.And:
        operands: list[ast.FilterExpr] = []
        for node in self._nodes(children):
            operands.extend(node.operands if isinstance(node, ast.And) and not _grouped(node) else (node,))
        return ast.And(tuple(operands), self._span(children))

    def negation(self, children: list[Any]) -> ast.Not:
        return ast.Not(self._nodes(children)[0], self._span(children))

    def group(self, children: list[Any]) -> Any:
        inner = self._nodes(children)[0]
        if hasattr(inner, "span"):
            inner = dataclasses.replace(inner, span=self._span(children))  # the span includes the parentheses
        _GROUPED.add(id(inner))
        _KEEP.append(inner)  # ids stay unique while the parse lasts
        return inner

    def member_of(self, children: list[Any]) -> ast.MembershipFilter:
        ref = self._ref(children)
        assert ref is not None
        parts = self._status_parts(children)
        return ast.MembershipFilter(ref, parts.get("with_status"), self._span(children))

    def member_of_program(self, children: list[Any]) -> ast.ProgramMembershipFilter:
        parts = self._status_parts(children)
        return ast.ProgramMembershipFilter(
            _unquote(self._strings(children)[0]), parts.get("with_status"), self._span(children)
        )

    # ---- programs and channels ------------------------------------------------------------------
    def program(self, children: list[Any]) -> ast.Program:
        name = self._strings(children)[0]
        channel: str | None = None
        channel_span = ast.NO_SPAN
        sync: ast.CampaignRef | None = None
        costs: list[ast.ProgramCost] = []
        description: str | None = None
        repeated: list[tuple[str, ast.Span]] = []
        for item in self._nodes(children):
            if isinstance(item, ast.ProgramCost):
                costs.append(item)
            elif isinstance(item, _Marker):
                if item.kind == "channel":
                    if channel is not None:
                        repeated.append(("channel", item.span))
                    channel = item.value
                    channel_span = item.span
                elif item.kind == "sync":
                    if sync is not None:
                        repeated.append(("sync with", item.span))
                    sync = item.value
                elif item.kind == "description":
                    if description is not None:
                        repeated.append(("description", item.span))
                    description = item.value
        return ast.Program(
            name=_unquote(name),
            channel=channel,
            sync_with=sync,
            costs=tuple(costs),
            description=description,
            channel_span=channel_span,
            span=self._span(children),
            name_span=self._token_span(name),
            repeated=tuple(repeated),
        )

    def program_channel(self, children: list[Any]) -> _Marker:
        strings = self._strings(children)
        return _Marker("channel", _unquote(strings[0]), self._token_span(strings[0]))

    def program_sync(self, children: list[Any]) -> _Marker:
        return _Marker("sync", self._ref(children), self._span(children))

    def program_cost(self, children: list[Any]) -> ast.ProgramCost:
        period = next(c for c in children if isinstance(c, Token) and c.type == "PERIOD")
        amount = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        strings = self._strings(children)
        note = _unquote(strings[0]) if strings else None
        return ast.ProgramCost(str(period), _int(amount), note, self._span(children))

    def channel(self, children: list[Any]) -> ast.Channel:
        name = self._strings(children)[0]
        statuses = tuple(c for c in children if isinstance(c, ast.ChannelStatus))
        descriptions = [c for c in children if isinstance(c, _Marker) and c.kind == "description"]
        return ast.Channel(
            _unquote(name),
            statuses,
            descriptions[-1].value if descriptions else None,
            span=self._span(children),
            name_span=self._token_span(name),
            repeated=tuple(("description", d.span) for d in descriptions[1:]),
        )

    def channel_status(self, children: list[Any]) -> ast.ChannelStatus:
        name = self._strings(children)[0]
        step = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        success = any(isinstance(c, Token) and c.type == "SUCCESS" for c in children)
        return ast.ChannelStatus(_unquote(name), _int(step), success, self._span(children))


# Parenthesised sub-expressions are not flattened into their parent `and`/`or`, so that the
# formatter can keep the author's grouping (the meaning is the same either way).
_GROUPED: set[int] = set()
_KEEP: list[Any] = []


def _grouped(node: object) -> bool:
    return id(node) in _GROUPED


_COMMENTS: list[Token] = []


def _collect_comment(token: Token) -> Token:
    _COMMENTS.append(token)
    return token
