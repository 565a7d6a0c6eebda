"""The rule-file commands: `check`, `fmt`, `explain`, `graph`, `schedule` (the next runs of batch campaigns) and `lsp`
(the language server for editors).

Imported when one of them runs: only click at the top, everything else inside the command that needs it, so
that `smartcampaign check` of an unchanged rule set imports neither the parser nor the checks.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from engine.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    UNTIL,
    collector_paused,
    err,
    format_option,
    guarded,
    read_stdin,
    replay_inputs,
)

__all__ = ["check", "explain", "fmt", "graph_command", "lsp", "schedule_command"]


def catalog_from_world(path: str) -> Any:
    """The catalog `check --catalog` checks against; an unusable world file exits 2."""
    from engine.language.checks import Catalog, CatalogCampaign
    from engine.model.loading import InputError, load_world

    try:
        world = load_world(path)
    except InputError as error:
        err(f"smartcampaign check: {error}")
        sys.exit(EXIT_USAGE)
    return Catalog(
        tuple(CatalogCampaign(c.name, c.id, tuple(c.statuses), members=len(c.members)) for c in world.sfdc_campaigns)
    )


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(),
    help="A REPLAY.md world file: check campaign names and statuses against it.",
)
@click.option("--strict", is_flag=True, help="Warnings fail the check too (exit 1).")
@format_option()
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

    catalog = catalog_from_world(catalog_path) if catalog_path else None
    try:
        with collector_paused():
            if "-" in paths:
                from engine.language.loader import load_rule_set

                loaded = load_rule_set(paths, catalog=catalog, use_cache=not no_cache, texts={"-": read_stdin("check")})
                diagnostics, files, sources = loaded.diagnostics, loaded.files, loaded.sources
            else:
                diagnostics, files, sources = check_paths(paths, catalog=catalog, use_cache=not no_cache)
    except RuleSetNotFound as error:
        err(f"smartcampaign check: {error}")
        sys.exit(EXIT_USAGE)
    failed = any(d.is_error for d in diagnostics) or (strict and bool(diagnostics))
    if output_format == "json":
        click.echo(to_json(diagnostics, files))
    else:
        if diagnostics:
            err(render_all(diagnostics, sources, limit=max_diagnostics))
        err(summary(diagnostics, files))
    sys.exit(EXIT_FAIL if failed else EXIT_OK)


@click.command()
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
            text = read_stdin("fmt")
            result = format_text(text, "<stdin>")
            if result.output is None:
                err(render_all(list(result.diagnostics), SourceCache({"<stdin>": text})))
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
            err(f"smartcampaign fmt: {given}: no such file or directory")
            sys.exit(EXIT_USAGE)
        for file in iter_rule_files(path):
            try:
                size = file.stat().st_size  # before reading: a file over the limit is never read
                if size > MAX_RULE_FILE_BYTES:
                    err(render_all([too_large(str(file), size)], SourceCache()))
                    failed = True
                    continue
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                err(f"{file}: cannot read: {error}")
                failed = True
                continue
            result = format_text(text, str(file))
            if result.output is None:
                err(render_all(list(result.diagnostics), SourceCache({str(file): text})))
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
            err(f"would reformat {name}")
        summary = f"{len(changed)} file{'s' if len(changed) != 1 else ''} would be reformatted"
        if failed:
            summary += "; files with syntax errors were not formatted"
        err(summary)
        sys.exit(EXIT_FAIL if changed or failed else EXIT_OK)
    if show_diff:
        sys.exit(EXIT_FAIL if changed or failed else EXIT_OK)
    if changed:
        err(f"{len(changed)} file{'s' if len(changed) != 1 else ''} reformatted")
    sys.exit(EXIT_FAIL if failed else EXIT_OK)


@click.command()
@click.argument("rules", type=click.Path())
@click.option("--world", "world_path", type=click.Path(allow_dash=True), help="Starting world (REPLAY.md).")
@click.option("--events", "events_path", type=click.Path(allow_dash=True), required=True, help="Events, JSON Lines.")
@click.option("--person", help="Only this person (email, case-insensitive).")
@click.option("--campaign", help="Only this smart campaign.")
@click.option(
    "--until",
    type=UNTIL,
    help="Run waits due by this time only.",
)
@click.option("--max-depth", default=10, show_default=True, type=click.IntRange(min=0))
@format_option()
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
    each choice taken and each step's outcome. For each batch run: who it picked, and for --person why
    they were picked or not (a filter clause, qualification, the limit).

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

    rule_set, world, events = replay_inputs("explain", rules, world_path, events_path)
    try:
        result = run_explain(
            rule_set,
            world,
            events,
            person=person,
            campaign=campaign,
            until=as_utc(until) if until is not None else None,
            max_depth=max_depth,
            warn=err,
        )
    except InputError as error:
        err(f"smartcampaign explain: {error}")
        sys.exit(EXIT_USAGE)
    if output_format == "json":
        click.echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        render_text(result)


@click.command("graph")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["mermaid", "dot", "json"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (flowchart LR), Graphviz DOT, or JSON (nodes, edges, cycles).",
)
@click.option("--campaign", "campaign_name", metavar="NAME", help="Only this smart campaign and its neighbours.")
@guarded
def graph_command(paths: tuple[str, ...], output_format: str, campaign_name: str | None) -> None:
    """Print the rule set as a graph: what triggers what, what acts on what.

    Nodes are smart campaigns, SFDC campaigns and programs. Edges, by kind: a trigger (SFDC campaign or
    program -> smart campaign), a flow action (smart campaign -> the SFDC campaign or program it adds to,
    removes from or changes status in), a program sync (program <-> SFDC campaign), and "can trigger"
    (smart campaign -> smart campaign its flow can fire). Edges on a cycle that `check` reports are marked.
    PATHS are .campaign files or folders. Rule files with errors are reported as `check` does and nothing
    is drawn. Exit 0 drawn, 1 rule errors, 2 usage errors (no such path, unknown --campaign).

    \b
    Examples:
      smartcampaign graph rules/
      smartcampaign graph rules/ --format dot | dot -Tsvg > campaigns.svg
      smartcampaign graph rules/ --campaign "Webinar follow-up"
      smartcampaign graph rules/ --format json
    """
    import difflib

    from engine.language.diagnostics import render_all
    from engine.language.graph import build_graph, to_dot, to_json_text, to_mermaid
    from engine.language.loader import RuleSetNotFound, load_rule_set

    try:
        with collector_paused():
            loaded = load_rule_set(paths)
    except RuleSetNotFound as error:
        err(f"smartcampaign graph: {error}")
        sys.exit(EXIT_USAGE)
    if loaded.errors:
        err(render_all(loaded.errors, loaded.sources))
        count = len(loaded.errors)
        err(f"{count} error{'s' if count != 1 else ''}: fix the rule files to draw the graph")
        sys.exit(EXIT_FAIL)
    graph = build_graph(loaded.rule_set)
    if campaign_name is not None:
        names = [c.name for c in loaded.rule_set.campaigns]
        if campaign_name not in names:
            close = difflib.get_close_matches(campaign_name, names, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            err(f'smartcampaign graph: no smart campaign named "{campaign_name}" in the rule set{hint}')
            sys.exit(EXIT_USAGE)
        graph = graph.neighbourhood(campaign_name)
    if output_format == "dot":
        click.echo(to_dot(graph), nl=False)
    elif output_format == "json":
        click.echo(to_json_text(graph), nl=False)
    else:
        click.echo(to_mermaid(graph), nl=False)


@click.command()
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


@click.command("schedule")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--count", default=3, show_default=True, type=click.IntRange(1, 1000), help="Runs listed per campaign.")
@click.option(
    "--from",
    "start",
    default=None,
    metavar="DATETIME",
    help="List the runs after this moment (ISO 8601, e.g. 2026-12-07T09:00 or 2026-12-07T10:00+01:00; no offset: "
    "UTC). Default: now.",
)
@format_option()
@guarded
def schedule_command(paths: tuple[str, ...], count: int, start: str | None, output_format: str) -> None:
    """List the next runs of every batch campaign (`schedule ...`).

    PATHS are .campaign files or folders. For each batch campaign: its schedule in words, its time zone, its
    next runs in local time (with the offset) and in UTC, and its limit. Rule files with errors are reported as
    `check` does and nothing is listed. Exit 0 listed, 1 rule errors, 2 usage errors.

    \b
    Examples:
      smartcampaign schedule rules/
      smartcampaign schedule rules/ --count 10 --from 2026-12-24
      smartcampaign schedule rules/ --format json
    """
    import time

    from engine.language.diagnostics import render_all
    from engine.language.loader import RuleSetNotFound, load_rule_set
    from engine.service.schedule import iso_minute, parse_moment, upcoming

    try:
        after = parse_moment(start) if start is not None else time.time()
    except ValueError:
        err(f'smartcampaign schedule: --from "{start}" is not a date and time (e.g. 2026-12-07T09:00, UTC)')
        sys.exit(EXIT_USAGE)
    try:
        with collector_paused():
            loaded = load_rule_set(paths)
    except RuleSetNotFound as error:
        err(f"smartcampaign schedule: {error}")
        sys.exit(EXIT_USAGE)
    if loaded.errors:
        err(render_all(loaded.errors, loaded.sources))
        err(f"smartcampaign schedule: the rule set has {len(loaded.errors)} error(s): nothing listed")
        sys.exit(EXIT_FAIL)
    listing = upcoming(loaded.rule_set, after, count)
    if output_format == "json":
        click.echo(json.dumps({"from": iso_minute(after), "campaigns": [u.to_json() for u in listing]}, indent=2))
        return
    if not listing:
        click.echo("no batch campaigns (none has a `schedule`)")
        return
    from rich.table import Table

    from engine.cli.common import console

    table = Table(title=f"Next runs after {iso_minute(after)}", show_edge=False)
    for column in ("campaign", "schedule", "time zone", "next runs (local)", "UTC", "limit"):
        table.add_column(column)
    for entry in listing:
        runs = [entry.local(ts) for ts in entry.runs] or ["(no more runs)"]
        utc = [iso_minute(ts) for ts in entry.runs] or [""]
        name = entry.campaign if entry.active else f"{entry.campaign} (inactive)"
        limit = str(entry.limit) if entry.limit is not None else "none"
        table.add_row(name, entry.schedule.removeprefix("schedule "), entry.timezone, "\n".join(runs),
                      "\n".join(utc), limit)  # fmt: skip
    console().print(table)
