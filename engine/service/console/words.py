"""What the console says in words: a campaign's source (highlighted), its triggers and filters, and for one
person "would they go through this campaign now, and why (not)?" through the explain code's own pieces."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from engine.language import ast

KEYWORDS = [
    "add",
    "added",
    "and",
    "any",
    "campaign",
    "change",
    "changed",
    "channel",
    "cost",
    "description",
    "else",
    "every",
    "filter",
    "flow",
    "from",
    "id",
    "if",
    "in",
    "inactive",
    "member",
    "not",
    "of",
    "once",
    "or",
    "program",
    "qualify",
    "remove",
    "removed",
    "sfdc",
    "status",
    "step",
    "success",
    "sync",
    "time",
    "to",
    "trigger",
    "wait",
    "with",
]
_TOKENS = re.compile(
    r'(?P<comment>#[^\n]*)|(?P<string>"(?:[^"\\\n]|\\["\\])*")|(?P<number>\b[0-9]+(?:-[0-9]{2})?\b)'
    r"|(?P<unit>\b(?:minute|hour|day|week|month)s?\b)|(?P<keyword>\b(?:" + "|".join(KEYWORDS) + r")\b)"
)


def highlight(source: str) -> str:
    """HTML for rule text: every token in a `<span class="tok-...">`, everything else escaped."""
    out: list[str] = []
    position = 0
    for match in _TOKENS.finditer(source):
        out.append(escape(source[position : match.start()]))
        kind = match.lastgroup or "text"
        out.append(f'<span class="tok-{kind}">{escape(match.group())}</span>')
        position = match.end()
    out.append(escape(source[position:]))
    return "".join(out)


def declaration_source(span: ast.Span) -> str | None:
    """The lines a declaration spans in its file, as they are on disk now (None when unreadable)."""
    try:
        lines = Path(span.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if span.line < 1 or span.end_line > len(lines):
        return None
    return "\n".join(lines[span.line - 1 : span.end_line]) + "\n"


# ---------------------------------------------------------------------------------------------- a person, now
@dataclass
class ClauseView:
    text: str
    value: bool
    detail: str | None
    children: list[ClauseView] = field(default_factory=list)


@dataclass
class PersonExplanation:
    campaign: str
    active: bool
    triggers: list[str]
    qualification_rule: str
    qualification: str
    qualifies: bool
    filters: list[ClauseView]
    verdict: str
    runs: list[dict[str, Any]] = field(default_factory=list)


def _clause_view(clause: Any) -> ClauseView:
    return ClauseView(clause.text, bool(clause.value), clause.detail, [_clause_view(c) for c in clause.operands])


def explain_person(store: Any, campaign: ast.Campaign, person_id: int, now: float | None = None) -> PersonExplanation:
    """If a trigger of `campaign` fired for the person now: active?, qualification (from their run history),
    each filter line with every clause's value against their memberships now (the explain code's own
    evaluation, read-only), and the verdict in one sentence."""
    from engine.explain import describe_qualification, explain_filter, when
    from engine.language.describe import describe_trigger

    now = now if now is not None else time.time()
    rule = campaign.qualification
    history = store.qualification(campaign.name, person_id)
    if history is None:
        qualifies, words = True, "has never run through this campaign: qualifies"
    else:
        last, count = float(history[0]), int(history[1])
        ran = f"ran {count} time{'s' if count != 1 else ''}, last on {when(last)}"
        if rule.kind == "every_time":
            qualifies, words = True, f"{ran}; qualifies every time"
        elif rule.kind == "once":
            qualifies, words = False, f"{ran}; `qualify once`: does not qualify again"
        else:
            again = last + rule.window_seconds
            qualifies = now >= again
            words = f"{ran}; qualifies again {'since' if qualifies else 'from'} {when(again)}"
    filters = [_clause_view(explain_filter(expr, store, person_id)) for expr in campaign.filters]
    failing = next((f for f in filters if not f.value), None)
    if not campaign.active:
        verdict = "would not run: the campaign is inactive"
    elif not campaign.triggers:
        verdict = "would not run: the campaign has no trigger"
    elif not qualifies:
        verdict = "would not run: " + words.split("; ", 1)[-1]
    elif failing is not None:
        verdict = f"would not run: the filter `{failing.text}` is false" + (
            f" ({failing.detail})" if failing.detail else ""
        )
    else:
        verdict = "would run the flow if one of the triggers fired now"
    return PersonExplanation(
        campaign.name,
        campaign.active,
        [describe_trigger(t) for t in campaign.triggers],
        describe_qualification(rule),
        words,
        qualifies,
        filters,
        verdict,
    )


# ---------------------------------------------------------------------------------------------- flows and runs
@dataclass
class StepView:
    text: str
    branches: list[tuple[str, list[StepView]]] = field(default_factory=list)


def flow_outline(steps: tuple[ast.FlowStep, ...]) -> list[StepView]:
    """A flow as nested steps in the language's words: a choice lists its branches with their steps."""
    from engine.language.describe import describe_filter, describe_step

    out: list[StepView] = []
    for step in steps:
        if isinstance(step, ast.Choice):
            branches = []
            for number, branch in enumerate(step.branches):
                if branch.condition is None:
                    label = "else"
                else:
                    label = ("if " if number == 0 else "else if ") + describe_filter(branch.condition)
                branches.append((label, flow_outline(branch.steps)))
            out.append(StepView("choice", branches))
        else:
            out.append(StepView(describe_step(step)))
    return out


_RUN_KINDS = {
    "added_to_sfdc_campaign": "added to",
    "removed_from_sfdc_campaign": "removed from",
    "status_changed_in_sfdc_campaign": "status changed in",
    "program_status_changed": "program status changed in",
}


def run_trigger_words(trigger: dict[str, Any]) -> str:
    """A run's recorded trigger: `status changed in "Q4 Webinar" Registered → Attended (event)`."""
    kind = _RUN_KINDS.get(str(trigger.get("type")), str(trigger.get("type") or "?"))
    where = trigger.get("campaign") or trigger.get("program") or "?"
    text = f'{kind} "{where}"'
    before, after = trigger.get("previous_status"), trigger.get("status")
    if before and after:
        text += f" {before} → {after}"
    elif after:
        text += f' with status "{after}"'
    if trigger.get("origin"):
        text += f" ({trigger['origin']})"
    return text
