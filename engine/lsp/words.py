"""What a trigger, filter or flow step does, in words (for hover)."""

from __future__ import annotations

from engine.language import ast


def ref(campaign: ast.CampaignRef) -> str:
    if campaign.kind == "any":
        return "any SFDC campaign"
    if campaign.kind == "name":
        return f'the SFDC campaign "{campaign.values[0]}"'
    if campaign.kind == "id":
        return f'the SFDC campaign with id "{campaign.values[0]}"'
    listed = ", ".join(f'"{v}"' for v in campaign.values)
    return f"an SFDC campaign {'other than' if campaign.kind == 'not_in' else 'among'} {listed}"


def match(status: ast.StatusMatch) -> str:
    listed = " or ".join(f'"{v}"' for v in status.values)
    return f"other than {listed}" if status.kind == "not_in" else listed


def trigger(node: ast.Trigger) -> str:
    if node.kind == "requested":
        return (
            "Fires when another campaign's flow step `request campaign` names this campaign, or when the service "
            "is asked (`POST /campaigns/{name}/request`); the person then becomes a candidate for the flow."
        )
    where = ref(node.campaign) if node.campaign is not None else f'the program "{node.program}"'
    if node.kind == "added":
        text = f"Fires when a person is added to {where}"
    elif node.kind == "removed":
        text = f"Fires when a person is removed from {where}"
    else:
        text = f"Fires when a person's member status changes in {where}"
    if node.status is not None:
        text += f" with status {match(node.status)}"
    if node.from_status is not None:
        text += f", from {match(node.from_status)}"
    if node.to_status is not None:
        text += f", to {match(node.to_status)}"
    return text + "; the person then becomes a candidate for the campaign's flow."


def expr(node: ast.FilterExpr) -> str:
    if isinstance(node, ast.MembershipFilter):
        text = f"is a member of {ref(node.campaign)}"
        return text + (f" with status {match(node.status)}" if node.status is not None else "")
    if isinstance(node, ast.ProgramMembershipFilter):
        text = f'is a member of the program "{node.program}"'
        return text + (f" with status {match(node.status)}" if node.status is not None else "")
    if isinstance(node, ast.Not):
        return f"not ({expr(node.operand)})"
    joiner = " and " if isinstance(node, ast.And) else " or "
    return joiner.join(f"({expr(operand)})" for operand in node.operands)


def filter_(node: ast.FilterExpr) -> str:
    return f"Only people who {expr(node)} go through the flow; everyone else is skipped."


def step(node: ast.FlowStep) -> str:
    if isinstance(node, ast.AddToCampaign):
        return f'Adds the person to {ref(node.campaign)} with status "{node.status}" (no change if already a member).'
    if isinstance(node, ast.ChangeStatusInCampaign):
        return (
            f'Sets the person\'s member status in {ref(node.campaign)} to "{node.status}" '
            "(adding them if they are not a member)."
        )
    if isinstance(node, ast.RemoveFromCampaign):
        return f"Removes the person from {ref(node.campaign)}."
    if isinstance(node, ast.ChangeProgramStatus):
        return f'Moves the person to status "{node.status}" in the program "{node.program}" (never to a lower step).'
    if isinstance(node, ast.Wait):
        unit = node.unit if node.amount == 1 else f"{node.unit}s"
        return f"Waits {node.amount} {unit} before the next step."
    if isinstance(node, ast.WaitUntil):
        return f"Waits until {node.at} in the campaign's time zone (goes on at once when that is past)."
    if isinstance(node, ast.WaitWindow):
        unit = node.unit if node.amount == 1 else f"{node.unit}s"
        delay = f"{node.amount} {unit}, then " if node.amount else ""
        return f"Waits {delay}until the next {node.time} on a weekday from {node.first} to {node.last}."
    if isinstance(node, ast.RequestCampaign):
        return f'Queues the person for the requested campaign "{node.campaign}" (its filters and qualification apply).'
    if isinstance(node, ast.ExecuteCampaign):
        return f'Runs the flow of "{node.campaign}" for the person now, before the next step, if they pass its filters.'
    if isinstance(node, ast.RemoveFromFlow):
        which = f'"{node.campaign}"' if node.campaign is not None else "this campaign"
        return f"Drops the person's waiting runs of {which}."
    arms = len(node.branches)
    return f"Runs the steps of the first of its {arms} branches whose condition the person meets."


def qualification(node: ast.Qualification) -> str:
    if node.kind == "every_time":
        return "A person can run through the flow every time a trigger fires."
    if node.kind == "window":
        unit = node.unit if node.amount == 1 else f"{node.unit}s"
        return f"A person runs through the flow at most once every {node.amount} {unit}."
    return "A person runs through the flow once, ever."


def schedule(node: ast.Schedule, zone: str) -> str:
    """A batch campaign's schedule, read in `zone` (the campaign's time zone)."""
    if node.kind == "once":
        when = f"once, at {node.at}"
    elif node.kind == "daily":
        when = f"every day at {node.time}"
    elif node.kind == "weekly":
        when = f"every {node.weekday} at {node.time}"
    else:
        when = f"on day {node.day} of every month at {node.time} (on the last day in a shorter month)"
    return (
        f"Runs the campaign {when}, {zone} time, over everyone its filters let through "
        "(qualification applies; a missed run runs once when the service is back)."
    )


def limit(amount: int) -> str:
    return f"Each batch run takes at most {amount} {'person' if amount == 1 else 'persons'}, in order of email."


def timezone(name: str, *, rule_set: bool) -> str:
    where = "the rule set's schedules and dated waits" if rule_set else "this campaign's schedule and dated waits"
    return f'Reads {where} in the time zone "{name}" (daylight saving time included).'


def campaign_kind(campaign: ast.Campaign) -> str:
    kind = "batch campaign" if campaign.is_batch or not campaign.triggers else "trigger campaign"
    if campaign.is_requestable:
        kind += ", can be requested"
    return kind + ("" if campaign.active else ", inactive")
