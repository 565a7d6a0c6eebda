"""What every `smartcampaign` command shares: exit codes, stderr, options, settings, consoles, and no Python
traceback for a user.

Importing this costs click and the standard library only: `smartcampaign check` imports it on every run.
Anything heavier (rich, pydantic, the engine's rooms) is imported inside the helper that needs it.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# `-h` as well as `--help`, and help text up to 110 columns: the root group and every command that may be
# invoked on its own (the subcommands of the root inherit them).
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

# `--until` of `replay` and `explain`.
UNTIL = click.DateTime(formats=["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"])


def err(message: str) -> None:
    click.echo(message, err=True)


def format_option(default: str = "text") -> Callable[[F], F]:
    """`--format text|json` (the default listed first), passed to the command as `output_format`."""
    other = "json" if default == "text" else "text"
    return click.option(
        "--format", "output_format", type=click.Choice([default, other]), default=default, show_default=True
    )


def guarded(func: F) -> F:
    """No Python traceback reaches a user: unexpected failures become one line and exit 3."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            err("interrupted")
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(0)
        except Exception as error:
            err(f"smartcampaign: internal error: {type(error).__name__}: {error}")
            err("please report this with the command you ran and its input")
            sys.exit(EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for a command that builds a large, acyclic structure at once.

    Parsing 1,000 campaigns allocates hundreds of thousands of nodes that all stay alive, so every collection
    the allocations trigger scans them again and finds nothing (about 0.1 s of a cold `check`). A process-wide
    switch: entry points use it, never the library; the collector's state is restored on the way out.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def console(wide: bool = True) -> Console:
    """A rich console for tables. `wide`: a terminal's width on a terminal, and wide enough for setting names
    when piped or captured (at least 160 columns); else rich's own choice (80 columns when piped)."""
    from rich.console import Console

    if not wide:
        return Console()
    out = Console(highlight=False)
    if not out.is_terminal:
        out = Console(highlight=False, width=max(out.width, 160))
    return out


def setting_name(item: Any, prefix: str) -> str:
    """The environment variable a pydantic settings error is about: `prefix` + its location, upper case."""
    return prefix + "_".join(str(part) for part in item.get("loc", ())).upper()


def read_stdin(command: str) -> str:
    """Standard input as rule text, read no further than the rule-file limit (exit 2 past it)."""
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES

    text = sys.stdin.read(MAX_RULE_FILE_BYTES + 1)
    if len(text) > MAX_RULE_FILE_BYTES or len(text.encode("utf-8", "surrogateescape")) > MAX_RULE_FILE_BYTES:
        err(
            f"smartcampaign {command}: -: standard input is over the limit of 10 MB "
            f"({MAX_RULE_FILE_BYTES:,} bytes) for a rule file"
        )
        sys.exit(EXIT_USAGE)
    return text


def replay_inputs(command: str, rules: str, world_path: str | None, events_path: str) -> tuple[Any, Any, list[Any]]:
    """Rules, world and events for `replay` and `explain`: rule errors exit 1, unusable input exits 2."""
    from engine.language.diagnostics import render_all
    from engine.language.loader import RuleSetNotFound, load_rule_set
    from engine.model.loading import InputError, load_events, load_world
    from engine.replay.run import ReplayInputEvent

    if world_path == "-" and events_path == "-":
        err(f"smartcampaign {command}: --world and --events cannot both be - (standard input)")
        sys.exit(EXIT_USAGE)
    try:
        loaded = load_rule_set([rules])
    except RuleSetNotFound as error:
        err(f"smartcampaign {command}: {error}")
        sys.exit(EXIT_USAGE)
    if loaded.errors:
        err(render_all(loaded.errors, loaded.sources))
        sys.exit(EXIT_FAIL)
    try:
        world = load_world(world_path)
        events = [ReplayInputEvent(e.event, e.line, e.file) for e in load_events(events_path)]
    except InputError as error:
        err(f"smartcampaign {command}: {error}")
        sys.exit(EXIT_USAGE)
    return loaded.rule_set, world, events
