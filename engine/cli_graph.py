"""`smartcampaign graph`: the rule set as a graph of campaigns, SFDC campaigns and programs."""

from __future__ import annotations

import difflib
import sys

import click

from engine.cli_support import EXIT_FAIL, EXIT_USAGE, collector_paused, guarded
from engine.cli_support import err as _err


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
    from engine.language.diagnostics import render_all
    from engine.language.graph import build_graph, to_dot, to_json_text, to_mermaid
    from engine.language.loader import RuleSetNotFound, load_rule_set

    try:
        with collector_paused():
            loaded = load_rule_set(paths)
    except RuleSetNotFound as error:
        _err(f"smartcampaign graph: {error}")
        sys.exit(EXIT_USAGE)
    if loaded.errors:
        _err(render_all(loaded.errors, loaded.sources))
        count = len(loaded.errors)
        _err(f"{count} error{'s' if count != 1 else ''}: fix the rule files to draw the graph")
        sys.exit(EXIT_FAIL)
    graph = build_graph(loaded.rule_set)
    if campaign_name is not None:
        names = [c.name for c in loaded.rule_set.campaigns]
        if campaign_name not in names:
            close = difflib.get_close_matches(campaign_name, names, n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            _err(f'smartcampaign graph: no smart campaign named "{campaign_name}" in the rule set{hint}')
            sys.exit(EXIT_USAGE)
        graph = graph.neighbourhood(campaign_name)
    if output_format == "dot":
        click.echo(to_dot(graph), nl=False)
    elif output_format == "json":
        click.echo(to_json_text(graph), nl=False)
    else:
        click.echo(to_mermaid(graph), nl=False)
