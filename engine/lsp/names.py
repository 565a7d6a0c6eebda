"""What a string under the cursor names (a smart campaign, SFDC campaign, program, channel or status) and
where each name is declared in the rule set."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from engine.language import ast
from engine.lsp.workspace import Token, token_at, tokens

Kind = Literal["campaign", "sfdc", "program", "channel", "status"]


@dataclass(frozen=True)
class Name:
    kind: Kind
    value: str
    token: Token


def _list_head(items: list[Token], index: int) -> int:
    """The index of the token before the `(` that opens the string list holding `index` (or `index`)."""
    at = index - 1
    while at >= 0 and (items[at].is_string or items[at].text == ","):
        at -= 1
    if at >= 0 and items[at].text == "(":
        return at
    return index


def classify(items: list[Token], index: int) -> Kind | None:
    """The kind of name the string at `index` is, from the words before it."""
    head = _list_head(items, index)
    words = [t.text for t in items[max(0, head - 3) : head]]
    if head != index:  # inside ( ... ): `sfdc campaign [not] in (` or a status list `[not] in (`
        if words[-1:] == ["in"] and "campaign" in words:
            return "sfdc"
        return "status"
    last = words[-1] if words else ""
    before = words[-2] if len(words) > 1 else ""
    if last == "campaign":
        return "sfdc" if before == "sfdc" else "campaign"
    if last == "id" and before == "campaign":
        return "sfdc"
    if last in ("program", "channel"):
        return last  # type: ignore[return-value]
    if last in ("status", "to", "from"):
        return "status"
    return None


def name_at(text: str, line: int, character: int) -> Name | None:
    items = tokens(text)
    index = token_at(items, line, character)
    if index is None or not items[index].is_string:
        return None
    kind = classify(items, index)
    return Name(kind, items[index].value, items[index]) if kind is not None else None


def declarations(rule_set: ast.RuleSet, name: Name) -> Iterator[ast.Span]:
    """Where `name` is declared: the campaign, program or channel declaration, or for an SFDC campaign the
    programs synced with it."""
    if name.kind == "campaign":
        yield from (c.name_span for c in rule_set.campaigns if c.name == name.value)
    elif name.kind == "program":
        yield from (p.name_span for p in rule_set.programs if p.name == name.value)
    elif name.kind == "channel":
        yield from (c.name_span for c in rule_set.channels if c.name == name.value)
    elif name.kind == "sfdc":
        for program in rule_set.programs:
            if program.sync_with is not None and name.value in program.sync_with.values:
                yield program.sync_with.span


def referenced_campaigns(rule_set: ast.RuleSet) -> Iterator[ast.CampaignRef]:
    """Every SFDC campaign reference of the rule set."""
    from engine.language.checks import campaign_filters, iter_steps

    for campaign in rule_set.campaigns:
        for trigger in campaign.triggers:
            if trigger.campaign is not None:
                yield trigger.campaign
        for found in campaign_filters(campaign):
            if isinstance(found, ast.MembershipFilter):
                yield found.campaign
        for step in iter_steps(campaign.flow):
            if isinstance(step, ast.AddToCampaign | ast.ChangeStatusInCampaign | ast.RemoveFromCampaign):
                yield step.campaign
    for program in rule_set.programs:
        if program.sync_with is not None:
            yield program.sync_with
