"""The only place Lark is built: LALR, contextual lexer, grammar from package data, compiled form cached.

The parse tree is never materialised: an inline transformer turns each reduction straight into typed
AST nodes (with `keep_all_tokens` so that keyword tokens give every node its exact span). Parsed files
are cached by content hash so that an unchanged rule set is not parsed again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import os
import pickle
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from engine.language import ast
from engine.language.checks import MAX_NESTING
from engine.language.diagnostics import Diagnostic
from engine.language.sources import cache_dir as cache_dir
from engine.language.sources import grammar_digest as grammar_digest
from engine.language.sources import grammar_text as grammar_text
from engine.language.sources import iter_rule_files as iter_rule_files

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


class _Builder(Transformer[Token, Any]):
    """Reduction callbacks: children (keyword tokens kept) to AST nodes with spans."""

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
                found = _Builder._start(item)
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
                found = _Builder._end(item)
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
        )

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

    def _ref(self, children: list[Any]) -> ast.CampaignRef | None:
        for child in children:
            if isinstance(child, ast.CampaignRef):
                return child
        return None

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

    # ---- flows ---------------------------------------------------------------------------------
    def flow(self, children: list[Any]) -> _Marker:
        return _Marker("flow", tuple(self._nodes(children)), self._span(children))

    def add_step(self, children: list[Any]) -> ast.AddToCampaign:
        ref = self._ref(children)
        assert ref is not None
        status = self._strings(children)[-1]
        return ast.AddToCampaign(ref, _unquote(status), self._span(children))

    def change_step(self, children: list[Any]) -> ast.ChangeStatusInCampaign:
        ref = self._ref(children)
        assert ref is not None
        status = self._strings(children)[-1]
        return ast.ChangeStatusInCampaign(ref, _unquote(status), self._span(children))

    def remove_step(self, children: list[Any]) -> ast.RemoveFromCampaign:
        ref = self._ref(children)
        assert ref is not None
        return ast.RemoveFromCampaign(ref, self._span(children))

    def program_step(self, children: list[Any]) -> ast.ChangeProgramStatus:
        strings = self._strings(children)
        return ast.ChangeProgramStatus(_unquote(strings[0]), _unquote(strings[1]), self._span(children))

    def wait_step(self, children: list[Any]) -> ast.Wait:
        amount = next(c for c in children if isinstance(c, Token) and c.type == "INT")
        unit = next(c for c in children if isinstance(c, Token) and c.type == "TIME_UNIT")
        return ast.Wait(_int(amount), _unit(unit), self._span(children))

    def block(self, children: list[Any]) -> _Marker:
        return _Marker("block", tuple(self._nodes(children)), self._span(children))

    def _branch(self, children: list[Any], conditional: bool) -> ast.Branch:
        nodes = self._nodes(children)
        block = nodes[-1]
        condition = nodes[0] if conditional else None
        return ast.Branch(condition, tuple(block.value), self._span(children))

    def if_branch(self, children: list[Any]) -> ast.Branch:
        return self._branch(children, True)

    def else_if_branch(self, children: list[Any]) -> ast.Branch:
        return self._branch(children, True)

    def else_branch(self, children: list[Any]) -> ast.Branch:
        return self._branch(children, False)

    def choice(self, children: list[Any]) -> ast.Choice:
        return ast.Choice(tuple(self._nodes(children)), self._span(children))

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


_LOCK = threading.RLock()
_BUILDER = _Builder()
_COMMENTS: list[Token] = []
_PARSER: Lark | None = None


def _collect_comment(token: Token) -> Token:
    _COMMENTS.append(token)
    return token


class _NotFast(Exception):
    """The fast path met something it does not handle (any syntax error): Lark parses the text instead."""


class _FastPath:
    """Lark's own LALR tables, contextual lexer regexes and reduction callbacks, driven by one tight loop.

    For text the grammar accepts, the result is exactly Lark's: the same terminals are tried in the same order
    in each parser state, tokens carry the same positions, and the same callbacks build the same nodes. Any
    text it cannot lex or parse raises `_NotFast`, and Lark parses it again to report the error in its words.
    """

    def __init__(self, parser: Lark) -> None:
        from lark.lexer import BasicLexer, ContextualLexer  # Lark's insides: here, where a failure only means
        from lark.parsers.lalr_analysis import Shift  # no fast path

        frontend = parser.parser
        lalr = frontend.parser.parser
        table = lalr.parse_table
        callbacks = lalr.callbacks
        lexer = frontend.lexer
        if not isinstance(lexer, ContextualLexer) or parser.options.postlex is not None:
            raise _NotFast("not the contextual lexer")
        if any(isinstance(name, str) for name in callbacks):
            raise _NotFast("terminal callbacks")
        # per state: (its lexer's match, ignored terminals, terminals that may hold a newline, lexer callbacks)
        self.lexers: dict[Any, tuple[Any, frozenset[str], frozenset[str], dict[str, Any]]] = {}
        space = _leading_space(parser)
        for state, basic in lexer.lexers.items():
            if not isinstance(basic, BasicLexer):
                raise _NotFast("not the basic lexer")
            mres = basic.scanner._mres  # built with the per-state terminals in Lark's order of preference
            own = basic.callback
            if len(mres) != 1 or any(own.get(name) is not basic.user_callbacks.get(name) for name in own):
                raise _NotFast("split scanner or keyword callbacks")
            # group 1 takes the whitespace before the token in the same match, where that is what Lark does
            scan = re.compile(f"({space})(?:{mres[0].pattern})", mres[0].flags).match
            self.lexers[state] = (scan, basic.ignore_types, basic.newline_types, own)
        # per state: terminal or rule name -> (shift?, next state | (length, callback, rule name)); names as plain
        # strings, since Lark's rule names are Tokens, whose Python-level `==` would be paid at every reduction
        self.actions: dict[Any, dict[str, tuple[bool, Any]]] = {}
        for state, row in table.states.items():
            self.actions[state] = {
                str(name): (True, arg)
                if action is Shift
                else (False, (len(arg.expansion), callbacks[arg], str(arg.origin.name)))
                for name, (action, arg) in row.items()
            }
            if len(self.actions[state]) != len(row):
                raise _NotFast("a rule and a terminal of the same name")
        (start,) = parser.options.start
        self.start_state = table.start_states[start]
        self.end_state = table.end_states[start]

    def parse(self, text: str) -> Any:
        actions, lexers, end_state = self.actions, self.lexers, self.end_state
        new_token = str.__new__
        pos, end_of_text = 0, len(text)
        line, line_start = 1, 0
        state = self.start_state
        row = actions[state]
        scan, ignored, newlines, callbacks = lexers[state]
        state_stack = [state]
        value_stack: list[Any] = []
        while True:
            if pos < end_of_text:
                match = scan(text, pos)
                if match is None:
                    raise _NotFast
                kind = match.lastgroup
                end = match.end()
                start = match.end(1)
                if start != pos:  # whitespace skipped before the token
                    count = text.count("\n", pos, start)
                    if count:
                        line += count
                        line_start = text.rindex("\n", pos, start) + 1
                    pos = start
                value = text[pos:end]
                start_line, start_column = line, pos - line_start + 1
                if kind in newlines:
                    count = value.count("\n")
                    if count:
                        line += count
                        line_start = pos + value.rindex("\n") + 1
                skip = kind in ignored
                if skip and kind not in callbacks:
                    pos = end
                    continue
                token = new_token(Token, value)
                token.type = kind
                token.start_pos = pos
                token.value = value
                token.line = start_line
                token.column = start_column
                token.end_line = line
                token.end_column = end - line_start + 1
                token.end_pos = end
                pos = end
                if kind in callbacks:
                    token = callbacks[kind](token)
                if skip:
                    continue
            else:  # the end of the text: reduce until the start rule is complete
                kind, token = "$END", None
            while True:
                try:
                    shift, arg = row[kind]
                except KeyError:
                    raise _NotFast from None
                if shift:
                    if token is None:
                        raise _NotFast
                    state = arg
                    state_stack.append(state)
                    value_stack.append(token)
                    row = actions[state]
                    scan, ignored, newlines, callbacks = lexers[state]
                    break
                size, reduce, origin = arg  # inline: a reduction for most tokens, a call apiece is felt
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                value_stack.append(reduce(children))
                state = actions[state_stack[-1]][origin][1]
                state_stack.append(state)
                row = actions[state]
                if token is None and state == end_state:
                    return value_stack[-1]


_FAST: _FastPath | None = None
_SPACE = " \t\f\r\n"  # what common.WS matches


def _leading_space(parser: Lark) -> str:
    """A regex for the whitespace the fast path may skip before a token, or "" for none.

    Lark matches the ignored WS terminal as a token of its own; skipping it inside the next token's match gives
    the same tokens as long as WS is exactly common.WS and no other terminal can start with whitespace.
    """
    terminals = {t.name: t for t in parser.terminals}
    space = terminals.get("WS")
    if space is None or "WS" not in parser.lexer_conf.ignore or "WS" in parser.options.lexer_callbacks:
        return ""
    regexp = space.pattern.to_regexp()
    if regexp != f"(?:[{_SPACE}])+":
        return ""
    others = [t.pattern.to_regexp() for name, t in terminals.items() if name != "WS"]
    if any(_may_start_with_space(other) for other in others):
        return ""
    return f"(?>{regexp})?"  # atomic: all of it, or none when only whitespace is left (then WS is the token)


def _may_start_with_space(regexp: str) -> bool:
    """Whether a match of `regexp` may begin with whitespace; True whenever unsure."""
    try:
        from re import _constants as sre
        from re import _parser

        return _first_may_be_space(_parser.parse(regexp), sre)
    except Exception:  # an unfamiliar regex or Python: no skipping, Lark's way for every token
        return True


def _first_may_be_space(items: Any, sre: Any) -> bool:
    if not len(items) or items.getwidth()[0] == 0:
        return True
    op, av = items[0]
    if op is sre.LITERAL:
        return chr(av) in _SPACE
    if op is sre.IN:
        for kind, value in av:
            if kind is sre.LITERAL and chr(value) not in _SPACE:
                continue
            if kind is sre.RANGE and not any(value[0] <= ord(ch) <= value[1] for ch in _SPACE):
                continue
            return True  # a space, a negated set or a category: may be whitespace
        return False
    if op is sre.SUBPATTERN:
        return _first_may_be_space(av[3], sre)
    if op is sre.BRANCH:
        return any(_first_may_be_space(branch, sre) for branch in av[1])
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        return av[0] == 0 or _first_may_be_space(av[2], sre)
    return True


def _parse_chunk(parser: Lark, text: str) -> list[ast.Declaration]:
    """Declarations of one chunk: the fast path, else Lark (which raises the syntax error)."""
    if _FAST is not None:
        try:
            return _FAST.parse(text)  # type: ignore[no-any-return]
        except _NotFast:
            _COMMENTS.clear()
            _GROUPED.clear()
            _KEEP.clear()
    return parser.parse(text)  # type: ignore[return-value]


def get_parser() -> Lark:
    """Builds the one Lark parser (LALR, contextual lexer), its analysis cached in the user cache dir."""
    global _PARSER, _FAST
    with _LOCK:
        if _PARSER is None:
            text = grammar_text()
            folder = cache_dir()
            cache: str | bool = False
            if folder is not None:
                digest = hashlib.sha256(text.encode()).hexdigest()[:16]
                cache = str(folder / f"grammar-{digest}.lark.cache")
            _PARSER = Lark(
                text,
                parser="lalr",
                lexer="contextual",
                keep_all_tokens=True,
                transformer=_BUILDER,
                lexer_callbacks={"COMMENT": _collect_comment},
                cache=cache,
                maybe_placeholders=False,
            )
            try:
                _FAST = _FastPath(_PARSER)
            except Exception:  # a Lark whose insides differ from what the fast path knows: Lark alone
                _FAST = None
        return _PARSER


# ------------------------------------------------------------------------------------------ errors

_TERMINAL_WORDS = {
    "STRING": "a quoted string",
    "INT": "a whole number",
    "TIME_UNIT": "a time unit (minutes, hours, days, weeks, months)",
    "PERIOD": "a month like 2026-10",
    "$END": "end of file",
    "SUCCESS": "`success`",
}


def _literal(parser: Lark, terminal: str) -> str | None:
    """The keyword or punctuation a terminal stands for, or None for value terminals."""
    if terminal == "SUCCESS":
        return "success"
    try:
        term = parser.get_terminal(terminal)
    except KeyError:
        return None
    if term.pattern.type == "str":
        return str(term.pattern.value)
    return None


def _describe_terminal(parser: Lark, terminal: str) -> str:
    literal = _literal(parser, terminal)
    if literal is not None:
        return f"`{literal}`"
    return _TERMINAL_WORDS.get(terminal, terminal.lower())


def _join_or(items: list[str]) -> str:
    items = list(dict.fromkeys(items))
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _phrases(parser: Lark, prefix: str, expected: set[str]) -> list[str]:
    """Extends each expected keyword while the grammar allows only one next keyword: `added` -> `added to`."""
    phrases: list[str] = []
    base = None
    try:
        base = parser.parse_interactive(prefix)
        base.exhaust_lexer()
        # LALR merges lookaheads: keep only what this state really accepts
        accepted = set(base.accepts())  # type: ignore[no-untyped-call]
        if accepted & expected:
            expected = expected & accepted
    except LarkError:
        base = None
    for terminal in sorted(expected, key=lambda t: (_literal(parser, t) is None, _literal(parser, t) or t)):
        literal = _literal(parser, terminal)
        if literal is None or base is None:
            phrases.append(_describe_terminal(parser, terminal))
            continue
        words = [literal]
        probe = base.copy()  # type: ignore[no-untyped-call]
        current = terminal
        try:
            for _ in range(3):
                probe.feed_token(Token(current, _literal(parser, current) or ""))
                nxt = {t for t in probe.accepts() if t != "$END"}
                if len(nxt) != 1:
                    break
                only = nxt.pop()
                only_literal = _literal(parser, only)
                if only_literal is None or not only_literal.isalpha():
                    break
                words.append(only_literal)
                current = only
        except (LarkError, AssertionError, StopIteration, IndexError, ValueError):
            pass
        phrases.append("`" + " ".join(words) + "`")
    return phrases


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _open_braces(text: str, upto: int) -> list[int]:
    """Offsets of `{` still open at `upto` (strings and comments skipped)."""
    stack: list[int] = []
    i = 0
    n = min(upto, len(text))
    while i < n:
        ch = text[i]
        if ch == "#":
            nl = text.find("\n", i)
            i = n if nl == -1 else nl
            continue
        if ch == '"':
            i += 1
            while i < n and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            stack.pop()
        i += 1
    return stack


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


_TOP_LEVEL = re.compile(r"^[ \t]*(campaign|program|channel)\b", re.M)


def _syntax_diagnostic(parser: Lark, text: str, error: UnexpectedInput, file: str) -> Diagnostic:
    pos = getattr(error, "pos_in_stream", None)
    line = getattr(error, "line", None) or 1
    column = getattr(error, "column", None) or 1
    expected: set[str] = set()
    found = ""
    end_column = column + 1
    notes: list[str] = []
    if isinstance(error, UnexpectedCharacters):
        expected = set(error.allowed or ())
        pos = int(error.pos_in_stream or 0)
        match = _WORD.match(text, pos)
        if match:
            found = f"`{match.group(0)}`"
            end_column = column + len(match.group(0))
        else:
            found = repr(text[pos]) if pos < len(text) else "end of file"
    elif isinstance(error, UnexpectedToken):
        expected = set(error.expected or ())
        token = error.token
        if token.type == "$END":
            found = "end of file"
            pos = len(text)
            line, column = _line_col(text, len(text))
        else:
            found = f"`{token}`" if token.type != "STRING" else f"string {token}"
            pos = token.start_pos
            end_column = (token.end_column or column + 1) if token.end_line == token.line else column + 1
    elif isinstance(error, UnexpectedEOF):
        expected = set(error.expected or ())
        found = "end of file"
        pos = len(text)
        line, column = _line_col(text, len(text))
    expected.discard("COMMENT")
    if pos is not None and pos < len(text) and text[pos] == '"' and isinstance(error, UnexpectedCharacters):
        problem = _string_problem(text, pos)
        if problem is not None:
            code, message, where = problem
            line, column = _line_col(text, where)
            return Diagnostic("error", code, message, file, line, column, line, column + 2)
    if (
        pos is not None
        and 0 < pos <= len(text)
        and _is_word_char(text[pos - 1])
        and (pos == len(text) or _is_word_char(text[pos]))
    ):
        # the error is in the middle of a word: a keyword ran into more letters (`addedd`, `inactivex`)
        start = pos
        while start > 0 and _is_word_char(text[start - 1]):
            start -= 1
        end = pos
        while end < len(text) and _is_word_char(text[end]):
            end += 1
        word = text[start:end]
        line, column = _line_col(text, start)
        return Diagnostic(
            "error",
            "unknown-keyword",
            _unknown_word_message(parser, word),
            file,
            line,
            column,
            line,
            column + len(word),
        )
    prefix = text[: pos if pos is not None else len(text)]
    phrases = _phrases(parser, prefix, expected) if expected else []
    if phrases:
        message = f"unexpected {found}: expected {_join_or(phrases)}"
    else:
        message = f"unexpected {found}"
    code = "syntax"
    if isinstance(error, UnexpectedCharacters):
        match = _WORD.match(text, int(error.pos_in_stream or 0))
        literals = [lit for t in expected if (lit := _literal(parser, t)) and lit.isalpha()]
        if match and literals:
            close = difflib.get_close_matches(match.group(0).lower(), literals, n=1, cutoff=0.6)
            if close:
                message += f"; did you mean `{close[0]}`?"
                code = "unknown-keyword"
    open_braces = _open_braces(text, pos if pos is not None else len(text))
    at_top_level_word = bool(_TOP_LEVEL.match(text, text.rfind("\n", 0, pos or 0) + 1)) and (
        pos is not None
        and _WORD.match(text, pos) is not None
        and text[pos:].split(None, 1)[0] in ("campaign", "program", "channel")
    )
    if open_braces and (found == "end of file" or at_top_level_word):
        opened_line, opened_col = _line_col(text, open_braces[-1])
        message = f"unexpected {found}: the `{{` opened on line {opened_line} is never closed"
        notes.append(f"add a `}}` to close the block that starts at line {opened_line}, column {opened_col}")
        code = "unclosed-brace"
        if found == "end of file":
            # nothing to show at the end of the file: point at the brace that is never closed
            line, column, end_column = opened_line, opened_col, opened_col + 1
    elif isinstance(error, UnexpectedToken) and error.token.type in ("STRING",) and "STRING" not in expected:
        notes.append("names and statuses are quoted strings; check the keyword before it")
    return Diagnostic("error", code, message, file, line, column, line, end_column, tuple(notes))


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


@functools.lru_cache(maxsize=1)
def keywords() -> frozenset[str]:
    """Every word the language knows: the grammar's keywords and the time units."""
    parser = get_parser()
    words = {
        str(t.pattern.value) for t in parser.terminals if t.pattern.type == "str" and str(t.pattern.value).isalpha()
    }
    for unit in ast.UNIT_SECONDS:
        words.update((unit, unit + "s"))
    words.add("success")
    return frozenset(words)


def _unknown_word_message(parser: Lark, word: str) -> str:
    known = sorted(keywords())
    close = difflib.get_close_matches(word.lower(), known, n=1, cutoff=0.6)
    for keyword in sorted(known, key=len, reverse=True):
        if word.startswith(keyword) and len(word) > len(keyword) and (close is None or not close):
            close = [keyword]
            break
    hint = f"; did you mean `{close[0]}`?" if close else ""
    note = ": keywords are separated by spaces" if _keywords_run_together(word.lower(), set(known)) else ""
    return f"unknown word `{word}`{note}{hint}"


def _keywords_run_together(word: str, known: set[str]) -> bool:
    """True when the word is two or more keywords written without spaces (`removefrom`)."""
    reach = {0: 0}  # position -> number of keywords that end there
    for start in range(len(word)):
        if start not in reach:
            continue
        for keyword in known:
            if word.startswith(keyword, start):
                end = start + len(keyword)
                reach[end] = max(reach.get(end, 0), reach[start] + 1)
    return reach.get(len(word), 0) >= 2


def _string_problem(text: str, pos: int) -> tuple[str, str, int] | None:
    """Why a string starting at `pos` is not a string: not closed on its line, or an unsupported escape."""
    i = pos + 1
    while i < len(text) and text[i] != "\n":
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt not in ('"', "\\"):
                shown = "\\" + (nxt if nxt and nxt != "\n" else "")
                return (
                    "bad-escape",
                    f'unsupported escape `{shown}` in a string: only \\" and \\\\ are allowed',
                    i,
                )
            i += 2
            continue
        if ch == '"':
            return None
        i += 1
    return ("unclosed-string", "this string is not closed on its line (strings are on one line)", pos)


@functools.lru_cache(maxsize=1)
def _next_unknown_word() -> re.Pattern[str]:
    """Skips strings, comments, keywords and anything that is not a word, all in one match; group 1 is the
    next word the language does not know. Words are runs of letters, digits and `_` that start with a letter
    or `_`; strings and comments (even unclosed) hold no words."""
    known = "|".join(re.escape(word) for word in sorted(keywords(), key=len, reverse=True))
    return re.compile(
        rf'(?:[^A-Za-z_"#]++|"(?:[^"\\\n]++|\\.)*+"?|#[^\n]*+|(?:{known})(?![A-Za-z0-9_]))*+([A-Za-z_][A-Za-z0-9_]*)'
    )


def _glued_words(text: str, file: str) -> list[Diagnostic]:
    """Words the grammar accepted only because keywords ran together (`triggeraddedto`)."""
    found: list[Diagnostic] = []
    pos = 0
    while (match := _next_unknown_word().match(text, pos)) is not None:
        word, pos = match.group(1), match.end()
        line, column = _line_col(text, match.start(1))
        found.append(
            Diagnostic(
                "error",
                "unknown-keyword",
                _unknown_word_message(get_parser(), word),
                file,
                line,
                column,
                line,
                column + len(word),
            )
        )
    return found


# ------------------------------------------------------------------------------------------ nesting

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


# ------------------------------------------------------------------------------------------ parse


@dataclass(frozen=True)
class ParseResult:
    file: ast.RuleFile
    diagnostics: tuple[Diagnostic, ...]


def _parse_text(text: str, file: str) -> ParseResult:
    parser = get_parser()
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte-order mark is not part of the rules
    declarations: list[ast.Declaration] = []
    comments: list[ast.Comment] = []
    diagnostics: list[Diagnostic] = []
    text, too_deep = _nesting_errors(text, file)
    diagnostics.extend(too_deep)
    chunk = text
    offset_line = -1  # where the last error was, so recovery always moves forward
    with _LOCK:
        _BUILDER.file = file
        while True:
            _COMMENTS.clear()
            _GROUPED.clear()
            _KEEP.clear()
            try:
                result = _parse_chunk(parser, chunk)
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
                        before = _parse_chunk(parser, chunk[: starts[-1]])
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
    if not diagnostics:
        diagnostics.extend(_glued_words(text, file))
    return ParseResult(ast.RuleFile(file, tuple(declarations), tuple(comments)), tuple(diagnostics))


def _content_key(text: str, file: str) -> str:
    h = hashlib.sha256()
    h.update(grammar_digest().encode())
    h.update(file.encode())
    h.update(b"\0")
    h.update(text.encode())
    return h.hexdigest()


def _cache_path(text: str, file: str, use_cache: bool) -> Path | None:
    folder = cache_dir() if use_cache else None
    return folder / "ast" / f"{_content_key(text, file)}.pickle" if folder is not None else None


def _cache_load(key_path: Path | None) -> ParseResult | None:
    if key_path is None:
        return None
    try:
        with key_path.open("rb") as fh:
            cached = pickle.load(fh)
        return cached if isinstance(cached, ParseResult) else None
    except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, TypeError):
        return None


def _cache_store(key_path: Path | None, result: ParseResult, data: bytes | None = None) -> None:
    if key_path is None:
        return
    tmp = key_path.with_suffix(f".{os.getpid()}.tmp")
    try:
        if data is None:
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        key_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, key_path)
    except (OSError, RecursionError, pickle.PicklingError):
        # too deep to pickle, or no space: not cached, nothing left behind
        with contextlib.suppress(OSError):
            tmp.unlink()


def parse_text(text: str, file: str = "<string>", *, use_cache: bool = True) -> ParseResult:
    """Parses one file's text into a RuleFile plus syntax diagnostics (never raises on bad input)."""
    key_path = _cache_path(text, file, use_cache)
    cached = _cache_load(key_path)
    if cached is not None:
        return cached
    result = _parse_text(text, file)
    _cache_store(key_path, result)
    return result


PARALLEL_MIN_BYTES = 256 * 1024


def _parse_batch(items: list[tuple[str, str]], use_cache: bool) -> list[bytes | None]:
    """In the helper process: parse, cache, and hand back each result pickled once (None: could not be)."""
    out: list[bytes | None] = []
    for name, text in items:
        result = _parse_text(text, name)
        try:
            data: bytes | None = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except (RecursionError, pickle.PicklingError):
            data = None
        if data is not None:
            _cache_store(_cache_path(text, name, use_cache), result, data)
        out.append(data)
    return out


def parse_many(items: list[tuple[str, str]], *, use_cache: bool = True) -> list[ParseResult]:
    """Parses many files, (name, text) in order. A large cold rule set is split with one forked helper
    process, so both cores parse; cached files are loaded, not parsed."""
    results: list[ParseResult | None] = [None] * len(items)
    misses: list[int] = []
    for index, (name, text) in enumerate(items):
        cached = _cache_load(_cache_path(text, name, use_cache))
        if cached is not None:
            results[index] = cached
        else:
            misses.append(index)
    size = sum(len(items[i][1]) for i in misses)
    parallel = (
        len(misses) >= 4 and size >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1 and threading.active_count() == 1
    )
    if parallel:  # imported here: a small or cached rule set never needs them
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        parallel = "fork" in multiprocessing.get_all_start_methods()
    if parallel:
        get_parser()  # built once, before the fork, so the helper inherits it
        theirs, mine = misses[1::2], misses[0::2]
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
                future = pool.submit(_parse_batch, [items[i] for i in theirs], use_cache)
                for index in mine:
                    results[index] = parse_text(items[index][1], items[index][0], use_cache=use_cache)
                for index, data in zip(theirs, future.result(), strict=True):
                    if data is not None:
                        results[index] = pickle.loads(data)
        except (OSError, BrokenProcessPool, RecursionError, pickle.PicklingError):
            pass  # the helper could not run or answer: the rest is parsed here
    for index in misses:
        if results[index] is None:
            results[index] = parse_text(items[index][1], items[index][0], use_cache=use_cache)
    return [r for r in results if r is not None]
