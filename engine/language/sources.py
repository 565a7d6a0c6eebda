"""Rule files, the grammar's text and the caches: what `check` needs before it knows whether to parse at all.

Nothing here imports Lark, the AST or the checks, so that `smartcampaign check` over an unchanged rule set
(answered from the check cache) stays a small process; the parser and the loader import from here.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pickle
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from engine.language.diagnostics import Diagnostic, SourceCache

GRAMMAR_PACKAGE = "engine"
GRAMMAR_RESOURCE = ("grammar", "campaign.lark")
CACHE_FORMAT = "1"

# What a cached AST depends on besides the grammar: the node classes and the code that builds them.
_PARSE_MODULES = (
    "ast.py",
    "parser.py",
    "build.py",
    "build_base.py",
    "build_flow.py",
    "fastpath.py",
    "recovery.py",
    "messages.py",
    "nesting.py",
)
# What cached diagnostics depend on besides the ASTs: the checks, how they are assembled and their class.
_CHECK_MODULES = (
    "checks.py",
    "checks_walk.py",
    "checks_time.py",
    "checks_calls.py",
    "checks_cycles.py",
    "loader.py",
    "diagnostics.py",
)


class RuleSetNotFound(Exception):
    """A path given as a rule set does not exist (a usage error, not a diagnostic)."""


def cache_dir() -> Path | None:
    """A user-writable cache folder (SMARTCAMPAIGN_CACHE_DIR, else the platform's user cache dir)."""
    configured = os.environ.get("SMARTCAMPAIGN_CACHE_DIR")
    if configured:
        base = Path(configured)
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("smartcampaign"))
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return base if os.access(base, os.W_OK) else None


def package_data(folder: str) -> Traversable:
    """The grammar or the shipped rules: inside an installed wheel they are `engine/grammar` and `engine/rules`
    (pyproject.toml maps the top-level folders there); in a source checkout, the top-level folders themselves."""
    packaged = resources.files(GRAMMAR_PACKAGE) / folder
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / folder


def builtin_channel_files() -> list[Traversable]:
    """The shipped channel files (rules/channels/*.campaign), by name."""
    folder = package_data("rules") / "channels"
    return sorted((e for e in folder.iterdir() if e.name.endswith(".campaign")), key=lambda e: e.name)


def grammar_text() -> str:
    ref = package_data(GRAMMAR_RESOURCE[0])
    for part in GRAMMAR_RESOURCE[1:]:
        ref = ref / part
    return ref.read_text(encoding="utf-8")


def _module_bytes(digest: hashlib._Hash, names: Iterable[str]) -> None:
    here = Path(__file__).parent
    for name in names:
        with contextlib.suppress(OSError):
            digest.update((here / name).read_bytes())


@functools.lru_cache(maxsize=1)
def grammar_digest() -> str:
    """Identifies the grammar and this release: part of every cache key."""
    from engine import __version__

    digest = hashlib.sha256(f"{CACHE_FORMAT}\0{__version__}\0{grammar_text()}".encode())
    # the AST's shape is part of what is cached: a changed node class must not meet an old pickle
    _module_bytes(digest, _PARSE_MODULES)
    return digest.hexdigest()


def iter_rule_files(path: Path) -> Iterator[Path]:
    """A `.campaign` file, or every `.campaign` file under a folder in sorted path order."""
    if path.is_dir():
        yield from sorted(p for p in path.rglob("*.campaign") if p.is_file())
    else:
        yield path


def check_paths(
    paths: Iterable[str | Path], *, catalog: object | None = None, use_cache: bool = True
) -> tuple[list[Diagnostic], int, SourceCache]:
    """The diagnostics of a rule set, cached by the content of every file (and the catalog).

    An unchanged rule set is answered from the cache without parsing or checking again, as `ruff` does;
    only then are the parser, the AST and the checks imported.
    """
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES, SourceCache

    paths = list(paths)
    folder = cache_dir() if use_cache else None
    if folder is None:
        return _load(paths, catalog, use_cache)
    files: list[tuple[str, bytes]] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise RuleSetNotFound(f"{given}: no such file or directory")
        for file in iter_rule_files(path):
            try:
                if file.stat().st_size > MAX_RULE_FILE_BYTES:  # refused by the loader, unread
                    return _load(paths, catalog, use_cache)
                files.append((str(file), file.read_bytes()))
            except OSError:
                return _load(paths, catalog, use_cache)
    digest = hashlib.sha256(grammar_digest().encode())
    _module_bytes(digest, _CHECK_MODULES)
    digest.update(repr(catalog).encode())
    for entry in builtin_channel_files():
        digest.update(entry.read_bytes())
    for name, raw in files:
        digest.update(b"\0" + name.encode() + b"\0" + len(raw).to_bytes(8, "big") + raw)
    key = folder / "checks" / f"{digest.hexdigest()}.pickle"
    texts = {name: raw.decode("utf-8", errors="replace") for name, raw in files}
    try:
        with key.open("rb") as fh:
            cached = pickle.load(fh)
        if isinstance(cached, list):
            return cached, len(files), SourceCache(texts)
    except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError, TypeError):
        pass
    diagnostics, count, sources = _load(paths, catalog, use_cache)
    try:
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(diagnostics, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, key)
    except OSError:
        pass
    return diagnostics, count, sources


def _load(
    paths: list[str | Path], catalog: object | None, use_cache: bool
) -> tuple[list[Diagnostic], int, SourceCache]:
    from engine.language.loader import load_rule_set

    result = load_rule_set(paths, catalog=catalog, use_cache=use_cache)
    return result.diagnostics, result.files, result.sources
