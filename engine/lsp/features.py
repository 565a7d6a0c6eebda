"""Hover, definition, completion and formatting answers, computed from the rule set (no protocol types)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from engine.language import ast
from engine.language.checks import Catalog, iter_steps
from engine.language.formatter import format_text
from engine.language.parser import grammar_text
from engine.lsp import words
from engine.lsp.names import Name, declarations, name_at, referenced_campaigns
from engine.lsp.workspace import RuleWorkspace


@lru_cache(maxsize=1)
def keywords() -> tuple[str, ...]:
    """Every keyword of the language, read from the grammar (quoted literals and the time units)."""
    found = set(re.findall(r'"([a-z]+)"', grammar_text()))
    units = re.search(r"TIME_UNIT[^:]*:\s*/\(([a-z|]+)\)", grammar_text())
    if units:
        for unit in units.group(1).split("|"):
            found.update((unit, f"{unit}s"))
    return tuple(sorted(found))


def _where(span: ast.Span) -> str:
    return f"{span.file}:{span.line}:{span.column}"


def _contains(span: ast.Span, line: int, column: int) -> bool:
    """`line`/`column` 1-based; `span` end exclusive."""
    if (line, column) < (span.line, span.column):
        return False
    return (line, column) < (span.end_line, span.end_column) or (line, column) == (span.end_line, span.end_column)


def _nodes(rule_set: ast.RuleSet, campaign: ast.Campaign) -> Iterator[tuple[ast.Span, str]]:
    for trigger in campaign.triggers:
        yield trigger.span, words.trigger(trigger)
    if campaign.schedule is not None:
        yield campaign.schedule.span, words.schedule(campaign.schedule, rule_set.zone_of(campaign))
    if campaign.limit is not None:
        yield campaign.limit_span, words.limit(campaign.limit)
    if campaign.timezone is not None:
        yield campaign.timezone_span, words.timezone(campaign.timezone, rule_set=False)
    for expr in campaign.filters:
        yield expr.span, words.filter_(expr)
    if campaign.qualification_given:
        yield campaign.qualification.span, words.qualification(campaign.qualification)
    for step in iter_steps(campaign.flow):
        yield step.span, words.step(step)
        if isinstance(step, ast.Choice):
            for branch in step.branches:
                if branch.condition is not None:
                    yield branch.condition.span, f"Branch condition: the person {words.expr(branch.condition)}."


def _campaign_words(rule_set: ast.RuleSet, name: str) -> str | None:
    campaign = rule_set.campaign(name)
    if campaign is None:
        return None
    text = f'**Smart campaign "{name}"**: {words.campaign_kind(campaign)}, declared at {_where(campaign.name_span)}'
    if campaign.description:
        text += f"\n\n{campaign.description}"
    return text


def _sfdc_words(rule_set: ast.RuleSet, catalog: Catalog | None, name: str) -> str:
    users = sorted(
        {c.name for c in rule_set.campaigns for r in _campaign_refs(c) if name in r.values and r.kind == "name"}
    )
    text = f'**SFDC campaign "{name}"**'
    known = catalog.by_name(name) if catalog is not None else None
    if known is not None:
        text += f" (in the catalog, statuses: {', '.join(known.statuses)})"
    for program in rule_set.programs:
        if program.sync_with is not None and name in program.sync_with.values:
            text += f'\n\nSynced with program "{program.name}" at {_where(program.sync_with.span)}'
    if users:
        text += "\n\nUsed by: " + ", ".join(f'"{u}"' for u in users)
    return text


def _campaign_refs(campaign: ast.Campaign) -> Iterator[ast.CampaignRef]:
    single = ast.RuleSet((), (campaign,), (), ())
    yield from referenced_campaigns(single)


def hover(workspace: RuleWorkspace, path: str, line: int, character: int) -> str | None:
    """Markdown for the position (0-based): a name's kind and declaration, or what the clause does."""
    rule_set = workspace.rule_set
    name = name_at(workspace.text(path), line, character)
    if name is not None:
        found = _name_words(workspace, name)
        if found is not None:
            return found
    best: tuple[int, str] | None = None
    for span, text in _file_nodes(rule_set, path):
        if _contains(span, line + 1, character + 1):
            size = (span.end_line - span.line) * 10_000 + span.end_column - span.column
            if best is None or size < best[0]:
                best = (size, text)
    return best[1] if best is not None else None


def _file_nodes(rule_set: ast.RuleSet, path: str) -> Iterator[tuple[ast.Span, str]]:
    """The hoverable clauses of one file: its top-level `timezone` lines, and each campaign's clauses."""
    for rule_file in rule_set.files:
        for declaration in rule_file.declarations:
            if isinstance(declaration, ast.TimeZone) and declaration.span.file == path:
                yield declaration.span, words.timezone(declaration.name, rule_set=True)
    for campaign in rule_set.campaigns:
        if campaign.span.file == path:
            yield from _nodes(rule_set, campaign)


def _name_words(workspace: RuleWorkspace, name: Name) -> str | None:
    rule_set = workspace.rule_set
    if name.kind == "campaign":
        return _campaign_words(rule_set, name.value)
    if name.kind == "sfdc":
        return _sfdc_words(rule_set, workspace.catalog, name.value)
    if name.kind == "program":
        program = rule_set.program(name.value)
        if program is None:
            return None
        return f'**Program "{name.value}"** (channel "{program.channel}"), declared at {_where(program.name_span)}'
    if name.kind == "channel":
        channel = rule_set.channel(name.value)
        if channel is None:
            return None
        statuses = ", ".join(f"{s.name} ({s.step}{', success' if s.success else ''})" for s in channel.statuses)
        origin = "built in" if channel.builtin else f"declared at {_where(channel.name_span)}"
        return f'**Channel "{name.value}"**, {origin}\n\nStatuses: {statuses}'
    return None


def definition(workspace: RuleWorkspace, path: str, line: int, character: int) -> list[ast.Span]:
    """Where the campaign, program or channel name under the cursor is declared."""
    name = name_at(workspace.text(path), line, character)
    if name is None:
        return []
    return list(declarations(workspace.rule_set, name))


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # keyword | campaign | sfdc | program | channel | status
    detail: str


def completions(workspace: RuleWorkspace) -> list[Completion]:
    """Keywords, smart campaign, SFDC campaign, program and channel names, and statuses known to the rule set
    (and to the store's catalog)."""
    rule_set = workspace.rule_set
    out: dict[tuple[str, str], Completion] = {}

    def add(label: str, kind: str, detail: str) -> None:
        out.setdefault((kind, label), Completion(label, kind, detail))

    for word in keywords():
        add(word, "keyword", "keyword")
    for campaign in rule_set.campaigns:
        add(campaign.name, "campaign", f"smart campaign, {words.campaign_kind(campaign)}")
    for program in rule_set.programs:
        add(program.name, "program", f'program (channel "{program.channel}")')
    for channel in rule_set.channels:
        add(channel.name, "channel", "channel")
        for status in channel.statuses:
            add(status.name, "status", f'status of channel "{channel.name}"')
    for ref in referenced_campaigns(rule_set):
        if ref.kind in ("name", "in", "not_in"):
            for value in ref.values:
                add(value, "sfdc", "SFDC campaign (used in the rule set)")
    for campaign in rule_set.campaigns:
        for step in iter_steps(campaign.flow):
            if isinstance(step, ast.AddToCampaign | ast.ChangeStatusInCampaign):
                add(step.status, "status", "member status (used in the rule set)")
        for trigger in campaign.triggers:
            for matched in (trigger.status, trigger.from_status, trigger.to_status):
                for value in matched.values if matched is not None else ():
                    add(value, "status", "member status (used in the rule set)")
    if workspace.catalog is not None:
        for known in workspace.catalog.campaigns:
            add(known.name, "sfdc", "SFDC campaign (store catalog)")
            for label in known.statuses:
                add(label, "status", f'status of SFDC campaign "{known.name}" (store catalog)')
    return list(out.values())


def formatted(text: str, path: str) -> str | None:
    """The `fmt` output for the text, or None when it has syntax errors."""
    return format_text(text, path).output
