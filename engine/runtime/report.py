"""The replay result for people: a Rich table of runs and their steps, then the membership changes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

OUTCOME_STYLE = {"done": "green", "skipped": "yellow", "error": "bold red"}


def _short_time(value: str) -> str:
    return value.replace("T", " ").removesuffix(":00Z").removesuffix("Z")


def _trigger_text(trigger: dict[str, Any]) -> str:
    kind_name = trigger.get("type")
    if kind_name == "batch":
        return escape(f"{trigger.get('schedule')} (slot {_short_time(str(trigger.get('slot', '')))})")
    if kind_name == "campaign_requested":
        by = f'by "{trigger["by"]}"' if trigger.get("by") else f"by {trigger.get('origin')}"
        return escape(f"requested ({by})")
    if kind_name == "campaign_executed":
        return escape(f'executed by "{trigger.get("by")}"')
    kind = {
        "added_to_sfdc_campaign": "added to",
        "removed_from_sfdc_campaign": "removed from",
        "status_changed_in_sfdc_campaign": "status changed in",
        "program_status_changed": "status changed in program",
    }.get(str(trigger.get("type")), str(trigger.get("type")))
    where = trigger.get("campaign") or trigger.get("program") or ""
    before, after = trigger.get("previous_status"), trigger.get("status")
    if before and after:
        statuses = f"{before} -> {after}"
    else:
        statuses = after or before or ""
    origin = trigger.get("origin")
    suffix = "" if origin == "event" else f" (by {origin})"
    return escape(f'{kind} "{where}" ({statuses}){suffix}')


def _step_cells(step: dict[str, Any]) -> tuple[str, str, Text]:
    action = str(step.get("action", "")).replace("_", " ")
    target = step.get("campaign") or step.get("program") or ""
    what = f'"{target}"' if target else ""
    if step.get("status"):
        what += f" {step['status']}"
    outcome = Text(str(step.get("outcome")), style=OUTCOME_STYLE.get(str(step.get("outcome")), ""))
    if step.get("detail"):
        outcome.append(f": {step['detail']}", style="dim")
    return "  " + action, what.strip(), outcome


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
    table = Table(title=f"Runs ({len(runs)})", title_justify="left", expand=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("at", no_wrap=True)
    table.add_column("campaign / step")
    table.add_column("person / target")
    table.add_column("trigger / outcome")
    for number, run in enumerate(runs, start=1):
        table.add_row(
            str(number),
            _short_time(run["at"]),
            Text(run["campaign"], style="bold"),
            run["person"],
            _trigger_text(run["trigger"]),
            end_section=not run.get("steps"),
        )
        steps = run.get("steps", [])
        for position, step in enumerate(steps):
            action, what, outcome = _step_cells(step)
            table.add_row(
                "", _short_time(str(step.get("at", ""))), action, what, outcome, end_section=position == len(steps) - 1
            )
    console.print(table)
    changes = membership_changes(before, result.get("world", {}))
    diff = Table(title=f"Membership changes ({len(changes)})", title_justify="left")
    diff.add_column("campaign / program")
    diff.add_column("person")
    diff.add_column("before")
    diff.add_column("after")
    for campaign, person, old, new in changes:
        diff.add_row(campaign, person, old or Text("-", style="dim"), new or Text("removed", style="red"))
    console.print(diff)
    waiting = result.get("waiting", [])
    if waiting:
        console.print(Text(f"Still waiting ({len(waiting)})", style="bold"))
        for wait in waiting:
            console.print(
                Text(f'  {wait["person"]} in "{wait["campaign"]}": the rest is due {_short_time(wait["due"])}')
            )
    errors = result.get("errors", [])
    failed_steps = sum(1 for run in runs for step in run.get("steps", []) if step.get("outcome") == "error")
    if errors:
        console.print(Text(f"Errors ({len(errors)})", style="bold red"))
        for error in errors:
            console.print(Text(f"  {_short_time(error['at'])}  {error['message']}"))
    if failed_steps:
        console.print(Text(f"{failed_steps} step(s) ended in error: see the runs above.", style="bold red"))
    if not errors and not failed_steps:
        console.print(Text("No errors.", style="green"))
