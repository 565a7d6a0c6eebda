"""The commands that run rules over events: `replay` (`explain`, which replays to say why, is a rule command)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from engine.cli.common import EXIT_USAGE, UNTIL, err, format_option, guarded, replay_inputs

__all__ = ["replay"]


@click.command()
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
    type=UNTIL,
    help="Run waits due by this time only (ISO 8601).",
)
@click.option("--max-depth", default=10, show_default=True, type=click.IntRange(min=0), help="Cascade depth limit.")
@format_option("json")
@click.option("--no-program-sync", is_flag=True, help="Turn the program to SFDC campaign sync off.")
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False),
    help="Keep the replay's state in this SQLite file; a file holding a stopped replay's state is continued.",
)
@guarded
def replay(
    rules: str,
    world_path: str | None,
    events_path: str,
    until: Any,
    max_depth: int,
    output_format: str,
    no_program_sync: bool,
    store_path: str | None,
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
      smartcampaign replay rules/ --world world.json --events events.jsonl --store replay.db
    """
    from engine.model.loading import InputError
    from engine.model.world import as_utc
    from engine.replay.run import ReplayOptions
    from engine.replay.run import replay as run_replay
    from engine.runtime.interpreter import keep_out_of_gc
    from engine.store.store import StoreError

    rule_set, world, events = replay_inputs("replay", rules, world_path, events_path)
    keep_out_of_gc()
    try:
        options = ReplayOptions(
            until=as_utc(until) if until is not None else None,
            max_depth=max_depth,
            program_sync=not no_program_sync,
            warn=err,
            world_source=world_path if world_path not in (None, "-") else "world",
            store_path=store_path,
        )
        if output_format == "text" and len(events) >= 5000 and sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task("replaying", total=len(events))
                options.progress = lambda n: bar.update(task, completed=n)
                result = run_replay(rule_set, world, events, options)
        else:
            result = run_replay(rule_set, world, events, options)
    except (InputError, StoreError) as error:
        err(f"smartcampaign replay: {error}")
        sys.exit(EXIT_USAGE)
    if output_format == "json":
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        from engine.runtime.report import print_replay

        print_replay(result, world.model_dump(mode="json"))
