"""Rule-language wording for AST nodes: what explain, coverage and reports show to people."""

from __future__ import annotations

from engine.language import ast


def describe_match(match: ast.StatusMatch) -> str:
    if match.kind == "is":
        return f'"{match.values[0]}"'
    listed = ", ".join(f'"{v}"' for v in match.values)
    return f"{'not in' if match.kind == 'not_in' else 'in'} ({listed})"


def describe_trigger(trigger: ast.Trigger) -> str:
    """A trigger in the rule language's own words."""
    if trigger.kind == "requested":
        return "campaign is requested"
    if trigger.kind == "program_status_changed":
        text = f'status changed in program "{trigger.program}"'
    else:
        ref = trigger.campaign.describe() if trigger.campaign is not None else "?"
        text = {"added": "added to ", "removed": "removed from ", "status_changed": "status changed in "}[
            trigger.kind
        ] + ref
    if trigger.status is not None:
        text += f" with status {describe_match(trigger.status)}"
    if trigger.from_status is not None:
        text += f" from {describe_match(trigger.from_status)}"
    if trigger.to_status is not None:
        text += f" to {describe_match(trigger.to_status)}"
    return text


def describe_window(step: ast.WaitWindow) -> str:
    """`wait 2 days then until weekday monday..friday at 09:00` (no delay: `wait until weekday ...`)."""
    days = step.first if step.first == step.last else f"{step.first}..{step.last}"
    window = f"until weekday {days} at {step.time}"
    if step.amount == 0:
        return f"wait {window}"
    return f"wait {step.amount} {step.unit}{'' if step.amount == 1 else 's'} then {window}"


def describe_step(step: ast.FlowStep) -> str:
    """A flow step in the rule language's own words (a choice as its first condition)."""
    if isinstance(step, ast.AddToCampaign):
        return f'add to {step.campaign.describe()} with status "{step.status}"'
    if isinstance(step, ast.ChangeStatusInCampaign):
        return f'change status in {step.campaign.describe()} to "{step.status}"'
    if isinstance(step, ast.RemoveFromCampaign):
        return f"remove from {step.campaign.describe()}"
    if isinstance(step, ast.ChangeProgramStatus):
        return f'change program status in program "{step.program}" to "{step.status}"'
    if isinstance(step, ast.Wait):
        return f"wait {step.amount} {step.unit}{'' if step.amount == 1 else 's'}"
    if isinstance(step, ast.WaitUntil):
        return f"wait until {step.at}"
    if isinstance(step, ast.WaitWindow):
        return describe_window(step)
    if isinstance(step, ast.RequestCampaign):
        return f'request campaign "{step.campaign}"'
    if isinstance(step, ast.ExecuteCampaign):
        return f'execute campaign "{step.campaign}"'
    if isinstance(step, ast.RemoveFromFlow):
        return "remove from flow of " + (
            f'campaign "{step.campaign}"' if step.campaign is not None else "this campaign"
        )
    first = step.branches[0].condition
    return "if " + describe_filter(first) if first is not None else "choice"


def describe_filter(expr: ast.FilterExpr) -> str:
    """A filter expression in the rule language's own words (for step details and explain)."""
    if isinstance(expr, ast.MembershipFilter):
        text = f"member of {expr.campaign.describe()}"
        return text + _status(expr.status)
    if isinstance(expr, ast.ProgramMembershipFilter):
        return f'member of program "{expr.program}"' + _status(expr.status)
    if isinstance(expr, ast.Not):
        inner = describe_filter(expr.operand)
        return f"not ({inner})" if isinstance(expr.operand, (ast.And, ast.Or)) else f"not {inner}"
    joiner = " and " if isinstance(expr, ast.And) else " or "
    parts = [
        f"({describe_filter(op)})"
        if isinstance(op, (ast.And, ast.Or)) and type(op) is not type(expr)
        else describe_filter(op)
        for op in expr.operands
    ]
    return joiner.join(parts)


def _status(match: ast.StatusMatch | None) -> str:
    if match is None:
        return ""
    if match.kind == "is":
        return f' with status "{match.values[0]}"'
    listed = ", ".join(f'"{v}"' for v in match.values)
    return f" with status {'not in' if match.kind == 'not_in' else 'in'} ({listed})"
