"""The wording of syntax errors: what was found, the expected tokens named as the language's words, hints
(`did you mean`, an unclosed brace or string, keywords run together), and the words the grammar accepted only
because keywords ran together.
"""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any

from lark import Lark, Token
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from engine.language import ast
from engine.language.diagnostics import Diagnostic

_TERMINAL_WORDS = {
    "STRING": "a quoted string",
    "INT": "a whole number",
    "TIME_UNIT": "a time unit (minutes, hours, days, weeks, months)",
    "PERIOD": "a month like 2026-10",
    "DATETIME": "a date and time like 2026-12-10T09:00",
    "CLOCK": "a time like 09:00",
    "WEEKDAY": "a weekday like monday",
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
_NUMBER_RUN = re.compile(r"[0-9][0-9A-Za-z:.-]*")


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
            if token.type in ("PERIOD", "INT", "CLOCK") and token.end_pos is not None:
                # a number run on into a malformed date or time (`2026-12-24T9`): show all of it
                run = _NUMBER_RUN.match(text, token.start_pos or 0)
                if run is not None and run.end() > token.end_pos:
                    found = f"`{run.group(0)}`"
                    end_column = column + len(run.group(0))
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
    """Every word the language knows: the grammar's keywords, the time units and the weekdays."""
    from engine.language.parser import get_parser  # the factory imports this module: imported when first used

    parser = get_parser()
    words = {
        str(t.pattern.value) for t in parser.terminals if t.pattern.type == "str" and str(t.pattern.value).isalpha()
    }
    for unit in ast.UNIT_SECONDS:
        words.update((unit, unit + "s"))
    words.update(ast.WEEKDAYS)
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
    known = _trie(keywords())
    return re.compile(
        rf'(?:[^A-Za-z_"#]++|"(?:[^"\\\n]++|\\.)*+"?|#[^\n]*+|(?:{known})(?![A-Za-z0-9_])|{_DATETIME_T})*+'
        r"([A-Za-z_][A-Za-z0-9_]*)"
    )


def _trie(words: frozenset[str]) -> str:
    """A regex matching exactly `words`, as a tree of common prefixes (`a(?:dd(?:ed)?|n(?:d|y)|t)`): the
    engine tries a few letters at each word, not every keyword in turn."""
    root: dict[str, dict[str, Any]] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, dict[str, Any]]) -> str:
        branches = [re.escape(ch) + emit(node[ch]) for ch in sorted(node) if ch]
        if not branches:
            return ""
        body = "(?:" + "|".join(branches) + ")" if len(branches) > 1 or "" in node else branches[0]
        return body + "?" if "" in node else body

    return "(?:" + emit(root) + ")"


# the `T` of a date and time (`2026-12-10T09:00`) and the time after it: no word of its own
_DATETIME_T = r"(?<=[0-9]{4}-[0-9]{2}-[0-9]{2})T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?(?![0-9A-Za-z_])"


def _glued_words(parser: Lark, text: str, file: str) -> list[Diagnostic]:
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
                _unknown_word_message(parser, word),
                file,
                line,
                column,
                line,
                column + len(word),
            )
        )
    return found
