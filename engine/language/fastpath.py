"""The fast parse path: Lark's own LALR tables and lexer regexes driven by one tight loop.

It exists for `smartcampaign check` start-up over a cold cache: for text the grammar accepts it gives exactly
what Lark gives; anything else gives way to Lark (`_NotFast`), which reports the error in its own words.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lark import Token

if TYPE_CHECKING:
    from lark import Lark


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
