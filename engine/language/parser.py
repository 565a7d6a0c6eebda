"""The only place Lark is built (LALR, contextual lexer, grammar from package data, compiled form cached) and
the public entry points: `parse_text`, `parse_many`, `ParseResult`.

The parse tree is never materialised: an inline transformer turns each reduction straight into typed
AST nodes (with `keep_all_tokens` so that keyword tokens give every node its exact span). Parsed files
are cached by content hash so that an unchanged rule set is not parsed again.

The jobs around it have their own modules: `build` (tree to AST), `fastpath` (Lark's tables in one tight
loop), `recovery` (parsing on after a syntax error), `messages` (the wording of syntax errors) and `nesting`
(the pre-scan that refuses input nested too deep).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pickle
import threading
from dataclasses import dataclass
from pathlib import Path

from lark import Lark

from engine.language import ast
from engine.language.build import _COMMENTS, _GROUPED, _KEEP, _Builder, _collect_comment
from engine.language.diagnostics import Diagnostic
from engine.language.fastpath import _FastPath, _NotFast
from engine.language.fastpath import _leading_space as _leading_space
from engine.language.fastpath import _may_start_with_space as _may_start_with_space
from engine.language.messages import _glued_words
from engine.language.messages import _next_unknown_word as _next_unknown_word
from engine.language.messages import keywords as keywords
from engine.language.nesting import _nesting_errors
from engine.language.recovery import _parse_recovering
from engine.language.sources import cache_dir as cache_dir
from engine.language.sources import grammar_digest as grammar_digest
from engine.language.sources import grammar_text as grammar_text
from engine.language.sources import iter_rule_files as iter_rule_files

__all__ = [
    "PARALLEL_MIN_BYTES",
    "ParseResult",
    "cache_dir",
    "get_parser",
    "grammar_digest",
    "grammar_text",
    "iter_rule_files",
    "keywords",
    "parse_many",
    "parse_text",
]

_LOCK = threading.RLock()
_BUILDER = _Builder()
_PARSER: Lark | None = None
_FAST: _FastPath | None = None


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
            # The parser's tables live as long as the process, and every parse's allocations would make the cyclic
            # collector scan them again: once, when the parser is built, what is alive now (the parser above all)
            # leaves its scans. Process-wide, like `keep_out_of_gc`, and harmless to repeat.
            gc.freeze()
        return _PARSER


# ------------------------------------------------------------------------------------------ parse


@dataclass(frozen=True)
class ParseResult:
    file: ast.RuleFile
    diagnostics: tuple[Diagnostic, ...]


def _parse_text(text: str, file: str) -> ParseResult:
    parser = get_parser()
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte-order mark is not part of the rules
    diagnostics: list[Diagnostic] = []
    text, too_deep = _nesting_errors(text, file)
    diagnostics.extend(too_deep)
    with _LOCK:
        _BUILDER.file = file
        declarations, comments = _parse_recovering(parser, text, file, _parse_chunk, diagnostics)
    if not diagnostics:
        diagnostics.extend(_glued_words(parser, text, file))
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
