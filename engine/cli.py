"""The `smartcampaign` command line: thin wrappers that parse arguments, call the library and print."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import click

from engine import __version__
from engine.cli_support import EXIT_FAIL, EXIT_OK, EXIT_USAGE, collector_paused, guarded
from engine.cli_support import err as _err


def _catalog_from_world(path: str) -> Any:
    """The catalog `check --catalog` checks against; an unusable world file exits 2."""
    from engine.language.checks import Catalog, CatalogCampaign
    from engine.model.loading import InputError, load_world

    try:
        world = load_world(path)
    except InputError as error:
        _err(f"smartcampaign check: {error}")
        sys.exit(EXIT_USAGE)
    return Catalog(
        tuple(CatalogCampaign(c.name, c.id, tuple(c.statuses), members=len(c.members)) for c in world.sfdc_campaigns)
    )


# Commands that live beside their rooms (emulator, Salesforce sync and doctor, the service), by name: their
# modules (FastAPI, SQLAlchemy, simple-salesforce, rich, pydantic) are imported only when one of them runs or
# a listing needs its help, so that `check`, `fmt` and `replay` start fast.
_OPTIONAL_COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": ("engine.emulator.cli", "emulator_command"),
    "sync": ("engine.cli_salesforce", "sync_command"),
    "doctor": ("engine.cli_salesforce", "doctor_command"),
    "serve": ("engine.service.cli", "serve_command"),
    "worker": ("engine.service.cli", "worker_command"),
    "db": ("engine.service.cli", "db_command"),
    "status": ("engine.service.cli", "status_command"),
    "graph": ("engine.cli_graph", "graph_command"),
}


class _Commands(click.Group):
    """The top-level group: the optional commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *_OPTIONAL_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in _OPTIONAL_COMMANDS:
            module, attribute = _OPTIONAL_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="smartcampaign")
def cli() -> None:
    """Marketo-style smart campaigns over Salesforce, as code.

    \b
    Examples:
      smartcampaign check rules/
      smartcampaign fmt --check rules/
      smartcampaign replay examples/webinar-follow-up/rules --world examples/webinar-follow-up/world.json \\
          --events examples/webinar-follow-up/events.jsonl --format text
    """


def _read_stdin(command: str) -> str:
    """Standard input as rule text, read no further than the rule-file limit (exit 2 past it)."""
    from engine.language.diagnostics import MAX_RULE_FILE_BYTES

    text = sys.stdin.read(MAX_RULE_FILE_BYTES + 1)
    if len(text) > MAX_RULE_FILE_BYTES or len(text.encode("utf-8", "surrogateescape")) > MAX_RULE_FILE_BYTES:
        _err(
            f"smartcampaign {command}: -: standard input is over the limit of 10 MB "
            f"({MAX_RULE_FILE_BYTES:,} bytes) for a rule file"
        )
        sys.exit(EXIT_USAGE)
    return text


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(),
    help="A REPLAY.md world file: check campaign names and statuses against it.",
)
@click.option("--strict", is_flag=True, help="Warnings fail the check too (exit 1).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--max-diagnostics", default=50, show_default=True, help="Show at most this many, then 'and N more'.")
@click.option("--no-cache", is_flag=True, help="Parse every file again instead of using the parse cache.")
@guarded
def check(
    paths: tuple[str, ...],
    catalog_path: str | None,
    strict: bool,
    output_format: str,
    max_diagnostics: int,
    no_cache: bool,
) -> None:
    """Check rule files: syntax, names, channels, programs, flows, cycles.

    PATHS are .campaign files or folders (searched recursively). Exit 0 clean (warnings alone pass unless
    --strict), 1 when there are errors, 2 on usage errors.

    \b
    Examples:
      smartcampaign check rules/
      smartcampaign check rules/ --catalog world.json --strict
      smartcampaign check rules/ --format json
    """
    # Only what an unchanged rule set needs: the parser and the checks are imported on a cache miss.
    from engine.language.diagnostics import render_all, summary, to_json
    from engine.language.sources import RuleSetNotFound, check_paths

    catalog = _catalog_from_world(catalog_path) if catalog_path else None
    try:
        with collector_paused():
            if "-" in paths:
                from engine.language.loader import load_rule_set

                loaded = load_rule_set(
                    paths, catalog=catalog, use_cache=not no_cache, texts={"-": _read_stdin("check")}
                )
                diagnostics, files, sources = loaded.diagnostics, loaded.files, loaded.sources
            else:
                diagnostics, files, sources = check_paths(paths, catalog=catalog, use_cache=not no_cache)
    except RuleSetNotFound as error:
        _err(f"smartcampaign check: {error}")
        sys.exit(EXIT_USAGE)
    failed = any(d.is_error for d in diagnostics) or (strict and bool(diagnostics))
    if output_format == "json":
        click.echo(to_json(diagnostics, files))
    else:
        if diagnostics:
            _err(render_all(diagnostics, sources, limit=max_diagnostics))
        _err(summary(diagnostics, files))
    sys.exit(EXIT_FAIL if failed else EXIT_OK)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(allow_dash=True))
@click.option("--check", "check_only", is_flag=True, help="Write nothing; exit 1 and list the files that would change.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the change as a unified diff instead of writing.")
@guarded
def fmt(paths: tuple[str, ...], check_only: bool, show_diff: bool) -> None:
    """Format rule files in place, in the one canonical layout (comments kept).

    PATHS are .campaign files or folders; - reads standard input and writes standard output.
    Exit 0 done (or nothing to change), 1 with --check when a file would change or on syntax errors,
    2 on usage errors.

    \b
    Examples:
      smartcampaign fmt rules/
      smartcampaign fmt --check rules/
      smartcampaign fmt --diff rules/webinar.campaign
      cat my.campaign | smartcampaign fmt -
    """
    import difflib
    from pathlib import Path

    from engine.language.diagnostics import MAX_RULE_FILE_BYTES, SourceCache, render_all
    from engine.language.formatter import format_text
    from engine.language.loader import too_large
    from engine.language.parser import iter_rule_files

    failed = False
    changed: list[str] = []
    for given in paths:
        if given == "-":
            text = _read_stdin("fmt")
            result = format_text(text, "<stdin>")
            if result.output is None:
                _err(render_all(list(result.diagnostics), SourceCache({"<stdin>": text})))
                sys.exit(EXIT_FAIL)
            if show_diff:
                click.echo(
                    "".join(
                        difflib.unified_diff(
                            text.splitlines(True), result.output.splitlines(True), "<stdin>", "<stdin>"
                        )
                    ),
                    nl=False,
                )
            elif check_only:
                if result.output != text:
                    changed.append("<stdin>")
            else:
                click.echo(result.output, nl=False)
            continue
        path = Path(given)
        if not path.exists():
            _err(f"smartcampaign fmt: {given}: no such file or directory")
            sys.exit(EXIT_USAGE)
        for file in iter_rule_files(path):
            try:
                size = file.stat().st_size  # before reading: a file over the limit is never read
                if size > MAX_RULE_FILE_BYTES:
                    _err(render_all([too_large(str(file), size)], SourceCache()))
                    failed = True
                    continue
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                _err(f"{file}: cannot read: {error}")
                failed = True
                continue
            result = format_text(text, str(file))
            if result.output is None:
                _err(render_all(list(result.diagnostics), SourceCache({str(file): text})))
                failed = True
                continue
            if result.output == text:
                continue
            changed.append(str(file))
            if show_diff:
                click.echo(
                    "".join(
                        difflib.unified_diff(
                            text.splitlines(True), result.output.splitlines(True), str(file), f"{file} (formatted)"
                        )
                    ),
                    nl=False,
                )
            elif not check_only:
                file.write_text(result.output, encoding="utf-8")
    if check_only:
        for name in changed:
            _err(f"would reformat {name}")
        summary = f"{len(changed)} file{'s' if len(changed) != 1 else ''} would be reformatted"
        if failed:
            summary += "; files with syntax errors were not formatted"
        _err(summary)
        sys.exit(EXIT_FAIL if changed or failed else EXIT_OK)
    if show_diff:
        sys.exit(EXIT_FAIL if changed or failed else EXIT_OK)
    if changed:
        _err(f"{len(changed)} file{'s' if len(changed) != 1 else ''} reformatted")
    sys.exit(EXIT_FAIL if failed else EXIT_OK)


def _replay_inputs(command: str, rules: str, world_path: str | None, events_path: str) -> tuple[Any, Any, list[Any]]:
    """Rules, world and events for `replay` and `explain`: rule errors exit 1, unusable input exits 2."""
    from engine.language.diagnostics import render_all
    from engine.language.loader import RuleSetNotFound, load_rule_set
    from engine.model.loading import InputError, load_events, load_world
    from engine.replay.run import ReplayInputEvent

    if world_path == "-" and events_path == "-":
        _err(f"smartcampaign {command}: --world and --events cannot both be - (standard input)")
        sys.exit(EXIT_USAGE)
    try:
        loaded = load_rule_set([rules])
    except RuleSetNotFound as error:
        _err(f"smartcampaign {command}: {error}")
        sys.exit(EXIT_USAGE)
    if loaded.errors:
        _err(render_all(loaded.errors, loaded.sources))
        sys.exit(EXIT_FAIL)
    try:
        world = load_world(world_path)
        events = [ReplayInputEvent(e.event, e.line, e.file) for e in load_events(events_path)]
    except InputError as error:
        _err(f"smartcampaign {command}: {error}")
        sys.exit(EXIT_USAGE)
    return loaded.rule_set, world, events


@cli.command()
@click.argument("rules", type=click.Path())
@click.option(
    "--world",
    "world_path",
    type=click.Path(allow_dash=True),
    help="Starting world (REPLAY.md); - for stdin. Default: empty.",
)
@click.option(
    "--events", "events_path", type=click.Path(allow_dash=True), required=True, help="Events, JSON Lines; - for stdin."
)
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    help="Run waits due by this time only (ISO 8601).",
)
@click.option("--max-depth", default=10, show_default=True, type=click.IntRange(min=0), help="Cascade depth limit.")
@click.option("--format", "output_format", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.option("--no-program-sync", is_flag=True, help="Turn the program to SFDC campaign sync off.")
@guarded
def replay(
    rules: str,
    world_path: str | None,
    events_path: str,
    until: Any,
    max_depth: int,
    output_format: str,
    no_program_sync: bool,
) -> None:
    """Replay events over a world on the embedded local org and print what happened.

    Deterministic: times are event times, ids are assigned in order. stdout carries the result
    (JSON by default) and nothing else; warnings go to stderr. Exit 0 ran, 1 rule errors, 2 bad input.

    \b
    Examples:
      smartcampaign replay rules/ --world world.json --events events.jsonl
      smartcampaign replay rules/ --world world.json --events events.jsonl --format text
      smartcampaign replay rules/ --events events.jsonl --until 2026-11-10T00:00:00Z
      cat events.jsonl | smartcampaign replay rules/ --world world.json --events -
    """
    from engine.model.loading import InputError
    from engine.model.world import as_utc
    from engine.replay.run import ReplayOptions
    from engine.replay.run import replay as run_replay
    from engine.runtime.interpreter import keep_out_of_gc

    rule_set, world, events = _replay_inputs("replay", rules, world_path, events_path)
    keep_out_of_gc()
    try:
        options = ReplayOptions(
            until=as_utc(until) if until is not None else None,
            max_depth=max_depth,
            program_sync=not no_program_sync,
            warn=_err,
            world_source=world_path if world_path not in (None, "-") else "world",
        )
        if output_format == "text" and len(events) >= 5000 and sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("replaying", total=len(events))
                options.progress = lambda n: bar.update(task, completed=n)
                result = run_replay(rule_set, world, events, options)
        else:
            result = run_replay(rule_set, world, events, options)
    except InputError as error:
        _err(f"smartcampaign replay: {error}")
        sys.exit(EXIT_USAGE)
    if output_format == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        from engine.runtime.report import print_replay

        print_replay(result, world.model_dump(mode="json"))


@cli.command()
@click.argument("rules", type=click.Path())
@click.option("--world", "world_path", type=click.Path(allow_dash=True), help="Starting world (REPLAY.md).")
@click.option("--events", "events_path", type=click.Path(allow_dash=True), required=True, help="Events, JSON Lines.")
@click.option("--person", help="Only this person (email, case-insensitive).")
@click.option("--campaign", help="Only this smart campaign.")
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
    help="Run waits due by this time only.",
)
@click.option("--max-depth", default=10, show_default=True, type=click.IntRange(min=0))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@guarded
def explain(
    rules: str,
    world_path: str | None,
    events_path: str,
    person: str | None,
    campaign: str | None,
    until: Any,
    max_depth: int,
    output_format: str,
) -> None:
    """Why did (or didn't) a person go through a campaign?

    Replays the events like `replay` and, for each change, for each campaign: whether a trigger matched
    (which), the qualification decision (and the last run it counted), each filter clause with its value,
    each choice taken and each step's outcome.

    \b
    Examples:
      smartcampaign explain rules/ --world world.json --events events.jsonl --person ann@example.com
      smartcampaign explain rules/ --world world.json --events events.jsonl --campaign "Webinar follow-up"
      smartcampaign explain rules/ --world world.json --events events.jsonl --format json
    """
    from engine.explain import explain as run_explain
    from engine.explain import render_text
    from engine.model.loading import InputError
    from engine.model.world import as_utc

    rule_set, world, events = _replay_inputs("explain", rules, world_path, events_path)
    try:
        result = run_explain(
            rule_set,
            world,
            events,
            person=person,
            campaign=campaign,
            until=as_utc(until) if until is not None else None,
            max_depth=max_depth,
            warn=_err,
        )
    except InputError as error:
        _err(f"smartcampaign explain: {error}")
        sys.exit(EXIT_USAGE)
    if output_format == "json":
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        render_text(result)


@cli.command()
@click.option(
    "--db", "db_url", metavar="URL", help="Store database: its SFDC campaign catalog feeds checks and completion."
)
def lsp(db_url: str | None) -> None:
    """Language server over stdio (diagnostics, formatting, hover, definition, completion); see docs/editors.md.

    \b
    Examples (an editor starts it; you rarely do):
      smartcampaign lsp
      smartcampaign lsp --db sqlite:///smartcampaign.db
    """
    from engine.lsp.server import run

    run(db_url)


def main() -> None:
    """Console entry point."""
    cli(prog_name="smartcampaign")


if __name__ == "__main__":  # pragma: no cover
    main()
