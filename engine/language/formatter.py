"""The canonical formatter: one layout for every rule file, comments kept in place, meaning unchanged.

`format_text` parses a file and prints it back in canonical form (`output` is None when the text has syntax
errors); `format_rule_file` prints an already parsed `RuleFile` with its comments. The typed AST does not
record where a `description`, `inactive` or `flow {` / `}` sits, so `format_text` reads those positions from
the source; `format_rule_file`, which has no source, puts a description first and drops blank lines inside
declarations.

Layout: 4-space indentation, one statement per line, blocks always open on the header line and close on
their own line, one blank line between top-level declarations, at most one blank line (where the author had
one) between statements and comments inside a block. `inactive` goes right after the description (first
when there is none); every other statement keeps the author's order. Filter expressions print the fewest
parentheses that keep the tree (the parser keeps an author's parenthesised `and` / `or` as its own node, so
those stay parenthesised). A filter line wider than 100 characters breaks before each top-level `or` (else
`and`), continuation lines 4 spaces deeper; an operand still too wide breaks the same way 4 spaces deeper
again. A trigger line wider than 100 characters puts its `with status` / `from` / `to` on the next line.

Comments: an own-line comment stays on its own line before the statement that follows it (inside the same
block; at the end of the block or file when nothing follows). A trailing comment stays at the end of its
statement's first printed line; when one statement collects several trailing comments (it spanned several
source lines), the first stays there and the others follow the statement on their own lines.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.language import ast
from engine.language.describe import describe_step
from engine.language.diagnostics import Diagnostic
from engine.language.parser import parse_text

__all__ = ["FormatResult", "format_rule_file", "format_text"]

INDENT = "    "
MAX_WIDTH = 100

Pos = tuple[int, int]
_FRONT: Pos = (0, 0)
_END: Pos = (1 << 40, 0)


@dataclass(frozen=True)
class FormatResult:
    """The canonical text (None when the input has syntax errors) and the parse diagnostics."""

    output: str | None
    diagnostics: tuple[Diagnostic, ...]


def format_text(text: str, file: str = "<stdin>") -> FormatResult:
    """Parses `text` and prints it in canonical form; never raises on bad input."""
    parsed = parse_text(text, file, use_cache=False)
    diagnostics = tuple(parsed.diagnostics)
    if any(d.is_error for d in diagnostics):
        return FormatResult(None, diagnostics)
    try:
        output = _format(parsed.file, _Source(text))
    except RecursionError:
        too_deep = Diagnostic("error", "format", "the file is nested too deeply to format", file, 1, 1)
        return FormatResult(None, (*diagnostics, too_deep))
    return FormatResult(output, diagnostics)


def format_rule_file(rule_file: ast.RuleFile) -> str:
    """Prints a parsed (or built) rule file and its comments in canonical form."""
    return _format(rule_file, None)


# ------------------------------------------------------------------------------------- plain text


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _string_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(_quote(v) for v in values) + ")"


def _ref(ref: ast.CampaignRef) -> str:
    if ref.kind == "any":
        return "any sfdc campaign"
    if ref.kind == "in":
        return f"sfdc campaign in {_string_list(ref.values)}"
    if ref.kind == "not_in":
        return f"sfdc campaign not in {_string_list(ref.values)}"
    value = _quote(ref.values[0] if ref.values else "")
    return f"sfdc campaign id {value}" if ref.kind == "id" else f"sfdc campaign {value}"


def _match(match: ast.StatusMatch) -> str:
    if match.kind == "in":
        return f"in {_string_list(match.values)}"
    if match.kind == "not_in":
        return f"not in {_string_list(match.values)}"
    return _quote(match.values[0] if match.values else "")


def _amount(amount: int, unit: str) -> str:
    return f"{amount} {unit}" if amount == 1 else f"{amount} {unit}s"


def _trigger_lines(trigger: ast.Trigger, depth: int) -> list[str]:
    """A trigger on one line; when wider than the limit, its `with status` / `from` / `to` go below it."""
    ref = _ref(trigger.campaign) if trigger.campaign is not None else "any sfdc campaign"
    clauses: list[str] = []
    if trigger.kind == "requested":
        return ["trigger campaign is requested"]
    if trigger.kind == "program_status_changed":
        head = f"trigger status changed in program {_quote(trigger.program or '')}"
    elif trigger.kind == "added":
        head = f"trigger added to {ref}"
    elif trigger.kind == "removed":
        head = f"trigger removed from {ref}"
    else:
        head = f"trigger status changed in {ref}"
    if trigger.kind in ("added", "removed"):
        if trigger.status is not None:
            clauses.append(f"with status {_match(trigger.status)}")
    else:
        if trigger.from_status is not None:
            clauses.append(f"from {_match(trigger.from_status)}")
        if trigger.to_status is not None:
            clauses.append(f"to {_match(trigger.to_status)}")
    return _packed(head, clauses, MAX_WIDTH - len(INDENT * depth))


def _packed(head: str, clauses: list[str], width: int) -> list[str]:
    """`head clause clause` if it fits, else the clauses on continuation lines, as many to a line as fit."""
    line = " ".join([head, *clauses])
    if len(line) <= width or not clauses:
        return [line]
    lines = [head]
    current = ""
    for clause in clauses:
        if current and len(f"{current} {clause}") > width:
            lines.append(current)
            current = ""
        current = f"{current} {clause}" if current else f"{INDENT}{clause}"
    lines.append(current)
    return lines


def _qualify(qualification: ast.Qualification) -> str:
    if qualification.kind == "every_time":
        return "qualify every time"
    if qualification.kind == "window":
        return f"qualify once every {_amount(qualification.amount, qualification.unit)}"
    return "qualify once"


def _needs_parens(operand: ast.FilterExpr, parent: ast.FilterExpr) -> bool:
    """Parentheses that keep the tree: `or` under `and`/`not`, `and` under `not`, and a nested same operator."""
    if isinstance(operand, ast.Or):
        return True
    if isinstance(operand, ast.And):
        return isinstance(parent, (ast.And, ast.Not))
    return False


def _expr(expr: ast.FilterExpr) -> str:
    """A filter expression on one line (iterative, so deeply nested input cannot exhaust the stack)."""
    out: list[str] = []
    stack: list[ast.FilterExpr | str] = [expr]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, ast.MembershipFilter):
            out.append(f"member of {_ref(item.campaign)}")
            if item.status is not None:
                out.append(f" with status {_match(item.status)}")
        elif isinstance(item, ast.ProgramMembershipFilter):
            out.append(f"member of program {_quote(item.program)}")
            if item.status is not None:
                out.append(f" with status {_match(item.status)}")
        elif isinstance(item, ast.Not):
            out.append("not ")
            if _needs_parens(item.operand, item):
                stack.extend((")", item.operand, "("))
            else:
                stack.append(item.operand)
        else:
            word = " and " if isinstance(item, ast.And) else " or "
            pieces: list[ast.FilterExpr | str] = []
            for index, operand in enumerate(item.operands):
                if index:
                    pieces.append(word)
                if _needs_parens(operand, item):
                    pieces.extend(("(", operand, ")"))
                else:
                    pieces.append(operand)
            stack.extend(reversed(pieces))
    return "".join(out)


def _filter_lines(expr: ast.FilterExpr, depth: int) -> list[str]:
    """`filter ...` on one line, or broken before each top-level `or` (else `and`) when wider than the limit.

    An operand still too wide is broken the same way, one level deeper (at most a few levels).
    """
    return _expr_lines(expr, "filter ", "", "", MAX_WIDTH - len(INDENT * depth), 4)


def _expr_lines(expr: ast.FilterExpr, lead: str, suffix: str, indent: str, width: int, levels: int) -> list[str]:
    line = f"{lead}{_expr(expr)}{suffix}"
    if len(line) <= width or levels <= 0 or not isinstance(expr, (ast.And, ast.Or)) or len(expr.operands) < 2:
        return [line]
    word = "and" if isinstance(expr, ast.And) else "or"
    lines: list[str] = []
    last = len(expr.operands) - 1
    for index, operand in enumerate(expr.operands):
        operand_lead = lead if index == 0 else f"{indent}{INDENT}{word} "
        operand_suffix = suffix if index == last else ""
        if _needs_parens(operand, expr):
            operand_lead, operand_suffix = f"{operand_lead}(", f"){operand_suffix}"
        lines.extend(_expr_lines(operand, operand_lead, operand_suffix, indent + INDENT, width, levels - 1))
    return lines


def _step(step: ast.FlowStep) -> str:
    if isinstance(step, ast.AddToCampaign):
        return f"add to {_ref(step.campaign)} with status {_quote(step.status)}"
    if isinstance(step, ast.ChangeStatusInCampaign):
        return f"change status in {_ref(step.campaign)} to {_quote(step.status)}"
    if isinstance(step, ast.RemoveFromCampaign):
        return f"remove from {_ref(step.campaign)}"
    if isinstance(step, ast.ChangeProgramStatus):
        return f"change program status in program {_quote(step.program)} to {_quote(step.status)}"
    if isinstance(step, ast.Wait):
        return f"wait {_amount(step.amount, step.unit)}"
    if isinstance(step, ast.RequestCampaign):
        return f"request campaign {_quote(step.campaign)}"
    if isinstance(step, ast.ExecuteCampaign):
        return f"execute campaign {_quote(step.campaign)}"
    if isinstance(step, ast.RemoveFromFlow):
        return "remove from flow of " + (f"campaign {_quote(step.campaign)}" if step.campaign else "this campaign")
    if isinstance(step, (ast.WaitUntil, ast.WaitWindow)):
        return describe_step(step)  # dates, times and weekdays: nothing to quote
    raise TypeError(f"not a simple flow step: {step!r}")  # pragma: no cover - choices are built as blocks


# ------------------------------------------------------------------------------------- the source


@dataclass(frozen=True, slots=True)
class _Range:
    """Source positions (1-based line and column) of a printed line's first character and just past its last."""

    start: Pos
    end: Pos

    def contains(self, pos: Pos) -> bool:
        return self.start <= pos < self.end


def _span_range(span: ast.Span) -> _Range | None:
    if span.line <= 0:
        return None
    return _Range((span.line, span.column), (span.end_line, span.end_column))


def _closing_brace(span: ast.Span) -> _Range | None:
    """The `}` a block's span ends with."""
    if span.line <= 0:
        return None
    return _Range((span.end_line, max(span.end_column - 1, 1)), (span.end_line, span.end_column))


def _join(first: _Range | None, last: _Range | None) -> _Range | None:
    if first is None:
        return last
    if last is None:
        return first
    return _Range(first.start, max(first.end, last.end))


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    start: Pos
    end: Pos


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9-]*|\S')


@dataclass(frozen=True, slots=True)
class _Item:
    """A statement directly inside a declaration, found in the source: its first keyword and full extent."""

    keyword: str
    range: _Range
    brace: _Token | None = None  # a `flow {`: its `{`


class _Source:
    """What the AST does not record, read from the text: blank lines and the positions of bare keywords."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.tokens = list(self._tokenize(text))
        self.starts = [token.start for token in self.tokens]

    @staticmethod
    def _tokenize(text: str) -> Iterator[_Token]:
        line, line_start = 1, 0
        for match in _TOKEN.finditer(text):
            offset = match.start()
            while True:
                newline = text.find("\n", line_start, offset)
                if newline == -1:
                    break
                line, line_start = line + 1, newline + 1
            value = match.group(0)
            if value.startswith("#"):
                continue
            column = offset - line_start + 1
            yield _Token(value, (line, column), (line, column + len(value)))

    def is_blank(self, line: int) -> bool:
        return 1 <= line <= len(self.lines) and not self.lines[line - 1].strip()

    def code_before(self, pos: Pos) -> bool:
        line, column = pos
        return 1 <= line <= len(self.lines) and bool(self.lines[line - 1][: max(column - 1, 0)].strip())

    def next_token(self, pos: Pos, value: str) -> _Token | None:
        for token in self.tokens[bisect_left(self.starts, pos) :]:
            if token.value == value:
                return token
        return None

    def items(self, span: ast.Span, keywords: frozenset[str]) -> list[_Item]:
        """The statements directly inside a declaration, each running up to the next one (or the `}`)."""
        if span.line <= 0:
            return []
        first = bisect_left(self.starts, (span.line, span.column))
        tokens = self.tokens[first : bisect_left(self.starts, (span.end_line, span.end_column))]
        marks: list[tuple[int, str]] = []
        depth = 0
        for index, token in enumerate(tokens):
            if token.value == "{":
                depth += 1
            elif token.value == "}":
                depth -= 1
            elif depth == 1 and token.value in keywords:
                marks.append((index, token.value))
        items: list[_Item] = []
        last = len(tokens) - 1  # the declaration's closing `}`
        for number, (index, keyword) in enumerate(marks):
            stop = marks[number + 1][0] - 1 if number + 1 < len(marks) else last - 1
            stop = max(stop, index)
            brace = tokens[index + 1] if keyword == "flow" and index + 1 < len(tokens) else None
            items.append(_Item(keyword, _Range(tokens[index].start, tokens[stop].end), brace))
        return items


# ------------------------------------------------------------------------------------- the layout tree


@dataclass(eq=False)
class _Line:
    """One printed line (a statement, continuation lines included; a block header; a closing brace)."""

    texts: list[str]
    range: _Range | None
    trailing: list[ast.Comment] = field(default_factory=list)


@dataclass(eq=False)
class _Body:
    """The statements between a block's braces (or the whole file), with comments left at its end."""

    range: _Range | None
    children: list[_Node]
    dangling: list[ast.Comment] = field(default_factory=list)
    # Without the source, where a `flow` block closes is unknown: a comment after its last step belongs to
    # it when indented at least as deep as the steps (`tail` holds the steps' end and column).
    tail: tuple[Pos, int] | None = None

    def holds(self, comment: ast.Comment) -> bool:
        pos = (comment.line, comment.column)
        if self.range is None or not self.range.contains(pos):
            return False
        return self.tail is None or pos < self.tail[0] or comment.column >= self.tail[1]


@dataclass(eq=False)
class _Node:
    """A statement ([line]), a block ([header, body, close]) or a choice ([if, body, else, body, ..., close])."""

    parts: list[_Line | _Body]
    range: _Range | None
    leading: list[ast.Comment] = field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return len(self.parts) == 1


def _leaf(texts: list[str], rng: _Range | None) -> _Node:
    return _Node([_Line(texts, rng)], rng)


def _block(header: str, header_range: _Range | None, body: _Body, close_range: _Range | None) -> _Node:
    rng = _join(header_range, close_range) if header_range is not None else _join(body.range, close_range)
    return _Node([_Line([header], header_range), body, _Line(["}"], close_range)], rng)


def _sort_key(rng: _Range | None, default: Pos = _FRONT) -> Pos:
    return rng.start if rng is not None else default


def _body(children: list[_Node], rng: _Range | None = None) -> _Body:
    if rng is None:
        ranges = [child.range for child in children if child.range is not None]
        if ranges:
            rng = _Range(min(r.start for r in ranges), max(r.end for r in ranges))
    return _Body(rng, children)


class _Builder:
    """Turns declarations into layout nodes, with source ranges for placing comments."""

    def __init__(self, source: _Source | None) -> None:
        self.source = source

    # ---- helpers -------------------------------------------------------------------------------
    def _brace_after(self, pos: Pos | None) -> _Range | None:
        if self.source is None or pos is None:
            return None
        token = self.source.next_token(pos, "{")
        return _Range(token.start, token.end) if token is not None else None

    def _header(self, span: ast.Span, name_span: ast.Span) -> _Range | None:
        start = _span_range(span)
        if start is None:
            return None
        name = _span_range(name_span)
        end = name.end if name is not None else start.start
        brace = self._brace_after(end)
        return _Range(start.start, brace.end if brace is not None else end)

    def _scan(self, span: ast.Span, keywords: frozenset[str]) -> dict[str, list[_Item]] | None:
        if self.source is None:
            return None
        grouped: dict[str, list[_Item]] = {}
        for item in self.source.items(span, keywords):
            grouped.setdefault(item.keyword, []).append(item)
        return grouped

    @staticmethod
    def _nth(scanned: dict[str, list[_Item]] | None, keyword: str, index: int, count: int) -> _Range | None:
        """The source extent of the index-th of `count` statements starting with `keyword` (None if unsure)."""
        if scanned is None:
            return None
        items = scanned.get(keyword, [])
        if len(items) != count:
            return None
        return items[index].range

    @staticmethod
    def _last(scanned: dict[str, list[_Item]] | None, keyword: str) -> _Range | None:
        if scanned is None or not scanned.get(keyword):
            return None
        return scanned[keyword][-1].range

    @staticmethod
    def _ordered(entries: list[tuple[Pos, int, _Node]]) -> list[_Node]:
        return [node for _, _, node in sorted(entries, key=lambda entry: (entry[0], entry[1]))]

    # ---- declarations --------------------------------------------------------------------------
    def declaration(self, declaration: ast.Declaration) -> _Node:
        if isinstance(declaration, ast.Campaign):
            return self.campaign(declaration)
        if isinstance(declaration, ast.Program):
            return self.program(declaration)
        if isinstance(declaration, ast.TimeZone):
            return _leaf([f"timezone {_quote(declaration.name)}"], _span_range(declaration.span))
        return self.channel(declaration)

    def _declaration(self, header: str, span: ast.Span, name_span: ast.Span, children: list[_Node]) -> _Node:
        header_range = self._header(span, name_span)
        close = _closing_brace(span)
        body_range = _Range(header_range.end, close.end) if header_range and close else None
        return _block(header, header_range, _body(children, body_range), close)

    def campaign(self, campaign: ast.Campaign) -> _Node:
        scanned = self._scan(
            campaign.span,
            frozenset(
                {"description", "inactive", "schedule", "timezone", "trigger", "filter", "qualify", "limit", "flow"}
            ),
        )
        entries: list[tuple[Pos, int, _Node]] = []
        description: _Node | None = None
        if campaign.description is not None:
            rng = self._last(scanned, "description")
            description = _leaf([f"description {_quote(campaign.description)}"], rng)
            entries.append((_sort_key(rng), 0, description))
        if campaign.schedule is not None:
            rng = self._last(scanned, "schedule") or _span_range(campaign.schedule.span)
            entries.append((_sort_key(rng), 1, _leaf([campaign.schedule.describe()], rng)))
        if campaign.timezone is not None:
            rng = self._last(scanned, "timezone") or _span_range(campaign.timezone_span)
            entries.append((_sort_key(rng), 1, _leaf([f"timezone {_quote(campaign.timezone)}"], rng)))
        for index, trigger in enumerate(campaign.triggers):
            rng = self._nth(scanned, "trigger", index, len(campaign.triggers)) or _span_range(trigger.span)
            entries.append((_sort_key(rng), 2, _leaf(_trigger_lines(trigger, 1), rng)))
        for index, expr in enumerate(campaign.filters):
            rng = self._nth(scanned, "filter", index, len(campaign.filters)) or _span_range(expr.span)
            entries.append((_sort_key(rng), 3, _leaf(_filter_lines(expr, 1), rng)))
        if campaign.qualification_given or campaign.qualification != ast.Qualification():
            rng = self._last(scanned, "qualify") or _span_range(campaign.qualification.span)
            entries.append((_sort_key(rng), 4, _leaf([_qualify(campaign.qualification)], rng)))
        if campaign.limit is not None:
            rng = self._last(scanned, "limit") or _span_range(campaign.limit_span)
            entries.append((_sort_key(rng), 4, _leaf([f"limit {campaign.limit}"], rng)))
        flow: _Node | None = None
        if campaign.has_flow_block or campaign.flow:
            flow = self._flow(campaign.flow, scanned)
            entries.append((_sort_key(flow.range, _END), 5, flow))
        children = self._ordered(entries)
        if flow is not None and self.source is None:
            self._guess_flow_end(flow, children, _closing_brace(campaign.span))
        if not campaign.active:
            inactive_items = scanned.get("inactive", []) if scanned is not None else []
            inactive = _leaf(["inactive"], inactive_items[0].range if inactive_items else None)
            children.insert(children.index(description) + 1 if description is not None else 0, inactive)
        return self._declaration(f"campaign {_quote(campaign.name)} {{", campaign.span, campaign.name_span, children)

    def _flow(self, steps: tuple[ast.FlowStep, ...], scanned: dict[str, list[_Item]] | None) -> _Node:
        body = _body([self.step(step) for step in steps])
        flows = scanned.get("flow", []) if scanned is not None else []
        if not flows or flows[0].brace is None:
            return _block("flow {", None, body, None)
        first, last = flows[0], flows[-1]
        assert first.brace is not None
        header = _Range(first.range.start, first.brace.end)
        close = _Range((last.range.end[0], last.range.end[1] - 1), last.range.end)
        body.range = _Range(first.brace.start, close.end)
        return _block("flow {", header, body, close)

    @staticmethod
    def _guess_flow_end(flow: _Node, siblings: list[_Node], close: _Range | None) -> None:
        """No source: let the flow run up to the next statement (or the campaign's `}`), see `_Body.tail`."""
        body = flow.parts[1]
        if flow.range is None or not isinstance(body, _Body) or body.range is None:
            return
        later = [s.range.start for s in siblings if s.range is not None and s.range.start > flow.range.start]
        end = min(later) if later else (close.start if close is not None else None)
        if end is None or end <= flow.range.end:
            return
        columns = [child.range.start[1] for child in body.children if child.range is not None]
        if not columns:
            return
        body.tail = (flow.range.end, min(columns))
        body.range = _Range(body.range.start, end)
        flow.range = _Range(flow.range.start, end)

    def step(self, step: ast.FlowStep) -> _Node:
        if not isinstance(step, ast.Choice):
            return _leaf([_step(step)], _span_range(step.span))
        parts: list[_Line | _Body] = []
        previous: ast.Branch | None = None
        for branch in step.branches:
            branch_range = _span_range(branch.span)
            if branch.condition is None:
                text = "} else {"
                header_end: Pos | None = branch_range.start if branch_range else None
            else:
                text = f"{'} else ' if previous is not None else ''}if {_expr(branch.condition)} {{"
                condition = _span_range(branch.condition.span)
                header_end = condition.end if condition else None
            brace = self._brace_after(header_end)
            if brace is not None:
                header_end = brace.end
            start: Pos | None = branch_range.start if branch_range else None
            if previous is not None:
                previous_close = _closing_brace(previous.span)
                start = previous_close.start if previous_close else start
            header = _Range(start, header_end) if start is not None and header_end is not None else None
            body_range = _Range(header.end, branch_range.end) if header and branch_range else None
            children = [self.step(inner) for inner in branch.steps]
            parts.extend((_Line([text], header), _body(children, body_range)))
            previous = branch
        close = _closing_brace(previous.span) if previous is not None else None
        parts.append(_Line(["}"], close))
        return _Node(parts, _span_range(step.span))

    def program(self, program: ast.Program) -> _Node:
        scanned = self._scan(program.span, frozenset({"description", "channel", "sync", "cost"}))
        entries: list[tuple[Pos, int, _Node]] = []
        if program.description is not None:
            rng = self._last(scanned, "description")
            entries.append((_sort_key(rng), 0, _leaf([f"description {_quote(program.description)}"], rng)))
        if program.channel is not None:
            rng = self._last(scanned, "channel") or _span_range(program.channel_span)
            entries.append((_sort_key(rng), 1, _leaf([f"channel {_quote(program.channel)}"], rng)))
        if program.sync_with is not None:
            rng = self._last(scanned, "sync") or _span_range(program.sync_with.span)
            entries.append((_sort_key(rng), 2, _leaf([f"sync with {_ref(program.sync_with)}"], rng)))
        for index, cost in enumerate(program.costs):
            rng = self._nth(scanned, "cost", index, len(program.costs)) or _span_range(cost.span)
            text = f"cost {cost.period} {cost.amount}" + (f" {_quote(cost.note)}" if cost.note is not None else "")
            entries.append((_sort_key(rng), 3, _leaf([text], rng)))
        children = self._ordered(entries)
        return self._declaration(f"program {_quote(program.name)} {{", program.span, program.name_span, children)

    def channel(self, channel: ast.Channel) -> _Node:
        scanned = self._scan(channel.span, frozenset({"description", "status"}))
        entries: list[tuple[Pos, int, _Node]] = []
        if channel.description is not None:
            rng = self._last(scanned, "description")
            entries.append((_sort_key(rng), 0, _leaf([f"description {_quote(channel.description)}"], rng)))
        for index, status in enumerate(channel.statuses):
            rng = self._nth(scanned, "status", index, len(channel.statuses)) or _span_range(status.span)
            text = f"status {_quote(status.name)} step {status.step}" + (" success" if status.success else "")
            entries.append((_sort_key(rng), 1, _leaf([text], rng)))
        children = self._ordered(entries)
        return self._declaration(f"channel {_quote(channel.name)} {{", channel.span, channel.name_span, children)


# ------------------------------------------------------------------------------------- comments


def _lines(node: _Node) -> Iterator[_Line]:
    for part in node.parts:
        if isinstance(part, _Line):
            yield part
        else:
            for child in part.children:
                yield from _lines(child)


def _place(comment: ast.Comment, body: _Body) -> None:
    """An own-line comment: before the statement it precedes (or sits inside), else at the end of the block."""
    pos = (comment.line, comment.column)
    for child in body.children:
        if child.is_leaf or child.range is None or not child.range.contains(pos):
            continue
        bodies = [part for part in child.parts if isinstance(part, _Body)]
        for inner in bodies:
            if inner.holds(comment):
                _place(comment, inner)
                return
        if any(inner.tail is not None for inner in bodies):
            continue  # after a flow's steps but not indented like them: it follows the flow
        # In a header (or between `}` and `else`): the top of the next body.
        following = [inner for inner in bodies if inner.range is not None and inner.range.end > pos]
        top = following[0] if following else bodies[-1]
        if top.children:
            top.children[0].leading.append(comment)
        else:
            top.dangling.append(comment)
        return
    candidates = [
        child
        for child in body.children
        if child.range is not None and child.range.end > pos and not (child.range.contains(pos) and not child.is_leaf)
    ]
    if candidates:
        target = body.children.index(min(candidates, key=lambda child: _sort_key(child.range)))
        while target > 0 and body.children[target - 1].range is None:
            target -= 1  # above statements whose place is unknown (a description without the source)
        body.children[target].leading.append(comment)
    else:
        body.dangling.append(comment)


def _attach(root: _Body, comments: tuple[ast.Comment, ...], source: _Source | None) -> None:
    """Each comment to the end of a printed line (trailing), before a statement, or at the end of a block."""
    by_line: dict[int, list[_Line]] = {}
    for child in root.children:
        for line in _lines(child):
            if line.range is not None:
                for number in range(line.range.start[0], line.range.end[0] + 1):
                    by_line.setdefault(number, []).append(line)
    for comment in sorted(comments, key=lambda c: (c.line, c.column)):
        pos = (comment.line, comment.column)
        candidates = [line for line in by_line.get(comment.line, []) if line.range and line.range.start < pos]
        trailing = source.code_before(pos) if source is not None else bool(candidates)
        if trailing and candidates:
            max(candidates, key=lambda line: _sort_key(line.range)).trailing.append(comment)
        else:
            _place(comment, root)


def _unstack_top_level_leaves(root: _Body) -> None:
    """A one-line declaration (`timezone "..."`) that collected several trailing comments keeps the first; the
    others go before the next declaration (or to the end of the file), where formatting again leaves them."""
    for number, child in enumerate(root.children):
        line = child.parts[0]
        if not child.is_leaf or not isinstance(line, _Line) or len(line.trailing) < 2:
            continue
        extra = line.trailing[1:]
        del line.trailing[1:]
        if number + 1 < len(root.children):
            root.children[number + 1].leading[:0] = extra
        else:
            root.dangling[:0] = extra


# ------------------------------------------------------------------------------------- printing


class _Printer:
    def __init__(self, source: _Source | None, occupied: set[int]) -> None:
        self.source = source
        self.occupied = occupied
        self.out: list[str] = []

    def blank_above(self, pos: Pos | None, top: bool) -> bool:
        """Whether the author left a blank line right above this statement or comment."""
        if pos is None:
            return False
        if self.source is not None:
            return not self.source.code_before(pos) and self.source.is_blank(pos[0] - 1)
        return top and pos[0] > 1 and pos[0] - 1 not in self.occupied

    def line(self, depth: int, text: str) -> None:
        self.out.append(f"{INDENT * depth}{text}" if text else "")

    def separate(self, blank: bool, first: bool) -> None:
        if blank and not first and self.out and self.out[-1]:
            self.out.append("")

    def body(self, body: _Body, depth: int, top: bool = False) -> None:
        first = True
        for child in body.children:
            for index, comment in enumerate(child.leading):
                forced = top and index == 0
                self.separate(forced or self.blank_above((comment.line, comment.column), top), first)
                self.line(depth, comment.text.rstrip())
                first = False
            forced = top and not child.leading
            self.separate(forced or self.blank_above(child.range.start if child.range else None, top), first)
            self.node(child, depth)
            first = False
        for comment in body.dangling:
            self.separate(self.blank_above((comment.line, comment.column), top), first)
            self.line(depth, comment.text.rstrip())
            first = False

    def node(self, node: _Node, depth: int) -> None:
        for index, part in enumerate(node.parts):
            if isinstance(part, _Body):
                self.body(part, depth + 1)
                continue
            texts = list(part.texts)
            comments = [c.text.rstrip() for c in part.trailing]
            if comments:
                texts[0] = f"{texts[0]}  {comments[0]}"
            for text in texts:
                self.line(depth, text)
            opens_body = index + 1 < len(node.parts) and isinstance(node.parts[index + 1], _Body)
            for extra in comments[1:]:
                self.line(depth + 1 if opens_body else depth, extra)


def _format(rule_file: ast.RuleFile, source: _Source | None) -> str:
    builder = _Builder(source)
    root = _body([builder.declaration(declaration) for declaration in rule_file.declarations])
    root.range = None  # every comment not inside a declaration belongs to the file
    _attach(root, rule_file.comments, source)
    _unstack_top_level_leaves(root)
    occupied: set[int] = set()
    if source is None:
        for child in root.children:
            if child.range is not None:
                occupied.update(range(child.range.start[0], child.range.end[0] + 1))
        occupied.update(comment.line for comment in rule_file.comments)
    printer = _Printer(source, occupied)
    printer.body(root, 0, top=True)
    lines = [line.rstrip() for line in printer.out]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""
