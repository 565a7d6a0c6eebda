"""The replay result for people: a Rich table of runs and their steps, then the membership changes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

OUTCOME_STYLE = {"done": "green", "skipped": "yellow", "error": "bold red"}


def _trigger_text(trigger: dict[str, Any]) -> str:
    kind = str(trigger.get("type", "")).replace("_", " ")
    where = trigger.get("campaign") or trigger.get("program") or ""
    before, after = trigger.get("previous_status"), trigger.get("status")
    statuses = f"{before or '-'} -> {after or '-'}"
    return f'{kind} "{where}" ({statuses}, {trigger.get("origin")})'


def _step_text(step: dict[str, Any]) -> Text:
    action = str(step.get("action", "")).replace("_", " ")
    target = step.get("campaign") or step.get("program") or ""
    line = Text(f"{action}")
    if target:
        line.append(f' "{target}"')
    if step.get("status"):
        line.append(f' {step["status"]}')
    line.append("  ")
    line.append(str(step.get("outcome")), style=OUTCOME_STYLE.get(str(step.get("outcome")), ""))
    if step.get("detail"):
        line.append(f": {step['detail']}", style="dim")
    return line


def membership_changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(campaign, person, old status or '', new status or '') for every membership that changed."""

    def members(world: dict[str, Any]) -> dict[tuple[str, str], str]:
        out: dict[tuple[str, str], str] = {}
        for campaign in world.get("sfdc_campaigns", []):
            for email, status in (campaign.get("members") or {}).items():
                out[(campaign["name"], email.lower())] = status
        for program, people in (world.get("programs") or {}).items():
            for email, status in people.items():
                out[(f"program: {program}", email.lower())] = status
        return out

    old, new = members(before), members(after)
    rows = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            rows.append((key[0], key[1], old.get(key, ""), new.get(key, "")))
    return rows


def print_replay(result: dict[str, Any], before: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    runs = result.get("runs", [])
    table = Table(title=f"Runs ({len(runs)})", show_lines=True, expand=False)
    table.add_column("#", justify="right")
    table.add_column("at")
    table.add_column("campaign", style="bold")
    table.add_column("person")
    table.add_column("trigger")
    table.add_column("steps")
    for number, run in enumerate(runs, start=1):
        steps = Text("\n").join(_step_text(step) for step in run.get("steps", [])) or Text("(no steps)")
        table.add_row(str(number), run["at"], run["campaign"], run["person"], _trigger_text(run["trigger"]), steps)
    console.print(table)
    changes = membership_changes(before, result.get("world", {}))
    diff = Table(title=f"Membership changes ({len(changes)})")
    diff.add_column("campaign / program")
    diff.add_column("person")
    diff.add_column("before")
    diff.add_column("after")
    for campaign, person, old, new in changes:
        diff.add_row(campaign, person, old or Text("-", style="dim"), new or Text("removed", style="red"))
    console.print(diff)
    errors = result.get("errors", [])
    if errors:
        console.print(Text(f"Errors ({len(errors)})", style="bold red"))
        for error in errors:
            console.print(f"  {error['at']}  {error['message']}")
    else:
        console.print(Text("No errors.", style="green"))
