"""Semantic checks over a whole rule set: names, channels, programs, flows, cycles, and a catalog.

`check_rule_set` is the entry point: it runs every check, in a fixed order (the order of the diagnostics). By job:

- here: names, channels, programs, each campaign on its own, and a catalog;
- `checks_time`: time zones, schedules, limits, dates and times of day (batch campaigns, timed waits);
- `checks_calls`: requested and executed campaigns and Remove from Flow (names, requestability, waits, depth,
  execution cycles);
- `checks_cycles`: the campaign graph and its cycles;
- `checks_walk`: what they share (walking the AST, wording a diagnostic).

The names other modules import from here are re-exported (`__all__`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.language import ast
from engine.language.checks_calls import _campaign_calls, _execute_graph, campaign_calls, execute_graph
from engine.language.checks_cycles import _cycles, campaign_cycles, campaign_graph, step_effects
from engine.language.checks_time import ZONE_EXAMPLE, _batches, _time_zones, is_time_zone, valid_clock, valid_datetime
from engine.language.checks_walk import (
    _NOTED,
    _at,
    _did_you_mean,
    _Steps,
    _where,
    campaign_filters,
    iter_filters,
    iter_steps,
)
from engine.language.diagnostics import Diagnostic

__all__ = [
    "MAX_NESTING",
    "MAX_TREE_DEPTH",
    "ZONE_EXAMPLE",
    "Catalog",
    "CatalogCampaign",
    "campaign_calls",
    "campaign_cycles",
    "campaign_filters",
    "campaign_graph",
    "check_rule_set",
    "execute_graph",
    "is_time_zone",
    "iter_filters",
    "iter_steps",
    "nesting_depth",
    "status_mismatch",
    "step_effects",
    "valid_clock",
    "valid_datetime",
]


@dataclass(frozen=True)
class CatalogCampaign:
    """A Salesforce campaign as a catalog knows it (from a world file, the store, or Salesforce)."""

    name: str
    id: str | None = None
    statuses: tuple[str, ...] = ("Sent", "Responded")
    members: int = 0


@dataclass(frozen=True)
class Catalog:
    campaigns: tuple[CatalogCampaign, ...] = field(default=())

    def by_name(self, name: str) -> CatalogCampaign | None:
        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign
        return None

    def by_id(self, sfdc_id: str) -> CatalogCampaign | None:
        for campaign in self.campaigns:
            if campaign.id and (campaign.id == sfdc_id or campaign.id[:15] == sfdc_id[:15]):
                return campaign
        return None

    def resolve(self, ref: ast.CampaignRef) -> CatalogCampaign | None:
        if ref.kind == "name":
            return self.by_name(ref.values[0])
        if ref.kind == "id":
            return self.by_id(ref.values[0])
        return None


MAX_NESTING = 64  # `if` blocks, parentheses and `not`s one inside another: the parser refuses deeper text
MAX_TREE_DEPTH = 2 * MAX_NESTING  # the backstop for rule sets built in code: text within MAX_NESTING stays below


def nesting_depth(campaign: ast.Campaign) -> int:
    """The deepest nesting of filter expressions and choices in a campaign (iterative)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(expr, 1) for expr in campaign.filters]
    stack.extend((step, 1) for step in campaign.flow)
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, ast.Not):
            stack.append((node.operand, depth + 1))
        elif isinstance(node, (ast.And, ast.Or)):
            stack.extend((operand, depth + 1) for operand in node.operands)
        elif isinstance(node, ast.Choice):
            for branch in node.branches:
                if branch.condition is not None:
                    stack.append((branch.condition, depth + 1))
                stack.extend((step, depth + 1) for step in branch.steps)
    return deepest


# ---------------------------------------------------------------------------------- the checks


def check_rule_set(rule_set: ast.RuleSet, *, catalog: object | None = None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    too_deep = [c for c in rule_set.campaigns if nesting_depth(c) > MAX_TREE_DEPTH]
    for campaign in too_deep:
        out.append(
            _at(
                "error",
                "nested-too-deep",
                f'campaign "{campaign.name}" nests filters or choices more than {MAX_TREE_DEPTH} levels deep: '
                "split it into simpler campaigns",
                campaign.name_span,
            )
        )
    if too_deep:
        names = {c.name for c in too_deep}
        rule_set = ast.RuleSet(
            rule_set.files,
            tuple(c for c in rule_set.campaigns if c.name not in names),
            rule_set.programs,
            rule_set.channels,
            rule_set.timezone,
        )
    out.extend(_repeated_items(rule_set))
    out.extend(_duplicates(rule_set))
    out.extend(_channels(rule_set))
    out.extend(_programs(rule_set))
    steps: dict[int, _Steps] = {}
    out.extend(_campaigns(rule_set, steps))  # fills `steps`, in the walk it makes anyway
    out.extend(_time_zones(rule_set))
    out.extend(_batches(rule_set, steps))
    executes = _execute_graph(rule_set, steps)
    out.extend(_campaign_calls(rule_set, steps, executes))
    out.extend(_cycles(rule_set, steps, executes))
    if isinstance(catalog, Catalog):
        out.extend(_against_catalog(rule_set, catalog))
    return out


def _repeated_items(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    declarations: list[ast.Campaign | ast.Program | ast.Channel] = [
        *rule_set.campaigns,
        *rule_set.programs,
        *(c for c in rule_set.channels if not c.builtin),
    ]
    for declaration in declarations:
        kind = type(declaration).__name__.lower()
        for item, span in declaration.repeated:
            yield _at(
                "error",
                "repeated-item",
                f'{kind} "{declaration.name}" has more than one `{item}`: keep one',
                span,
            )


def _duplicates(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    kinds: list[tuple[str, tuple[ast.Campaign, ...] | tuple[ast.Program, ...] | tuple[ast.Channel, ...]]] = [
        ("campaign", rule_set.campaigns),
        ("program", rule_set.programs),
        ("channel", tuple(c for c in rule_set.channels if not c.builtin)),
    ]
    for kind, declarations in kinds:
        seen: dict[str, ast.Span] = {}
        for declaration in declarations:
            first = seen.get(declaration.name)
            if first is not None:
                yield _at(
                    "error",
                    "duplicate-name",
                    f'{kind} "{declaration.name}" is already declared at {_where(first)}',
                    declaration.name_span,
                    f"names are unique per kind across the rule set; rename one of the two {kind}s",
                )
            else:
                seen[declaration.name] = declaration.name_span


def _channels(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    for channel in rule_set.channels:
        if channel.builtin:
            continue
        seen: dict[str, ast.ChannelStatus] = {}
        for status in channel.statuses:
            if status.name == ast.NOT_IN_PROGRAM:
                yield _at(
                    "error",
                    "reserved-status",
                    f'"{ast.NOT_IN_PROGRAM}" is implicit in every channel (step 0) and cannot be declared',
                    status.span,
                )
            elif status.name in seen:
                yield _at(
                    "error",
                    "duplicate-status",
                    f'channel "{channel.name}" already has status "{status.name}" at {_where(seen[status.name].span)}',
                    status.span,
                )
            else:
                seen[status.name] = status
            if status.step <= 0 and status.name != ast.NOT_IN_PROGRAM:
                yield _at(
                    "error",
                    "bad-step",
                    f'status "{status.name}" has step {status.step}: steps start at 1 ("Not in Program" is step 0)',
                    status.span,
                )
        if not any(s.success for s in channel.statuses):
            yield _at(
                "error",
                "no-success-status",
                f'channel "{channel.name}" has no success status: mark at least one status with `success`',
                channel.name_span,
            )


def _programs(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    synced: dict[tuple[str, str], ast.Program] = {}
    for program in rule_set.programs:
        if program.channel is None:
            yield _at(
                "error",
                "missing-channel",
                f'program "{program.name}" has no channel: add `channel "NAME"`',
                program.name_span,
            )
        elif rule_set.channel(program.channel) is None:
            known = list(dict.fromkeys(c.name for c in rule_set.channels))
            yield _at(
                "error",
                "unknown-channel",
                f'unknown channel "{program.channel}"{_did_you_mean(program.channel, known)}',
                program.channel_span,
                "known channels: " + ", ".join(known),
            )
        if program.sync_with is not None:
            ref = program.sync_with
            if not ref.is_single:
                yield _at(
                    "error",
                    "sync-needs-one-campaign",
                    'a program syncs with exactly one SFDC campaign: use `sfdc campaign "NAME"` or `sfdc campaign id`',
                    ref.span,
                )
                continue
            key = (ref.kind, ref.values[0])
            other = synced.get(key)
            if other is not None:
                yield _at(
                    "error",
                    "campaign-synced-twice",
                    f'{ref.describe()} is already synced with program "{other.name}" '
                    f"at {_where(other.sync_with.span if other.sync_with else other.span)}: one program per campaign",
                    ref.span,
                )
            else:
                synced[key] = program
        periods: dict[str, ast.ProgramCost] = {}
        for cost in program.costs:
            month = int(cost.period[5:7]) if cost.period[5:7].isdigit() else 0
            if not 1 <= month <= 12:
                yield _at("error", "bad-period", f"{cost.period} is not a month (YYYY-MM)", cost.span)
            periods.setdefault(cost.period, cost)


def _program_status_check(
    rule_set: ast.RuleSet, program_name: str, statuses: list[tuple[str, ast.Span]], span: ast.Span
) -> Iterator[Diagnostic]:
    program = rule_set.program(program_name)
    if program is None:
        known = [p.name for p in rule_set.programs]
        yield _at(
            "error", "unknown-program", f'unknown program "{program_name}"{_did_you_mean(program_name, known)}', span
        )
        return
    channel = rule_set.channel(program.channel) if program.channel else None
    if channel is None:
        return
    allowed = [ast.NOT_IN_PROGRAM, *channel.status_names]
    for status, where in statuses:
        if status not in allowed:
            yield _at(
                "error",
                "unknown-program-status",
                f'"{status}" is not a status of channel "{channel.name}" (program "{program.name}")'
                f"{_did_you_mean(status, allowed)}",
                where,
                "statuses: " + ", ".join(allowed),
            )


def _match_values(match: ast.StatusMatch | None) -> list[tuple[str, ast.Span]]:
    return [(v, match.span) for v in match.values] if match is not None else []


def _campaigns(rule_set: ast.RuleSet, steps: dict[int, _Steps]) -> Iterator[Diagnostic]:
    """The checks of each campaign on its own; records the steps the later checks read into `steps`."""
    for campaign in rule_set.campaigns:
        if not campaign.triggers and not campaign.is_batch:
            yield _at(
                "warning",
                "no-trigger",
                f'campaign "{campaign.name}" has no trigger: it can never run',
                campaign.name_span,
                'add a `trigger` line, e.g. trigger added to sfdc campaign "NAME"',
            )
        if not campaign.flow:
            yield _at(
                "warning",
                "no-flow-steps",
                f'campaign "{campaign.name}" has no flow steps: its runs do nothing',
                campaign.name_span,
            )
        q = campaign.qualification
        if q.kind == "window" and q.amount <= 0:
            yield _at(
                "error",
                "zero-window",
                f"`qualify once every {q.amount} {q.unit}s` never limits anything: use `qualify every time`, "
                "or a window of at least 1",
                q.span,
            )
        for trigger in campaign.triggers:
            if trigger.kind == "program_status_changed" and trigger.program is not None:
                yield from _program_status_check(
                    rule_set,
                    trigger.program,
                    _match_values(trigger.from_status) + _match_values(trigger.to_status),
                    trigger.span,
                )
        for flt in campaign_filters(campaign):
            if isinstance(flt, ast.ProgramMembershipFilter):
                yield from _program_status_check(rule_set, flt.program, _match_values(flt.status), flt.span)
        noted: _Steps | None = None
        for step in iter_steps(campaign.flow):
            if isinstance(step, (ast.AddToCampaign, ast.ChangeStatusInCampaign, ast.RemoveFromCampaign)):
                if not step.campaign.is_single:
                    yield _at(
                        "error",
                        "action-needs-one-campaign",
                        f"a flow action works on one campaign, not {step.campaign.describe()}",
                        step.campaign.span,
                        'name it: sfdc campaign "NAME" or sfdc campaign id "701..."',
                    )
            elif isinstance(step, ast.ChangeProgramStatus):
                yield from _program_status_check(rule_set, step.program, [(step.status, step.span)], step.span)
            elif isinstance(step, ast.Wait):
                if step.amount <= 0:
                    yield _at("warning", "zero-wait", f"`wait {step.amount} {step.unit}s` waits for nothing", step.span)
            elif isinstance(step, _NOTED):
                if noted is None:
                    noted = steps[id(campaign)] = _Steps()
                noted.note(step)


# ------------------------------------------------------------------------------------- catalog


def _against_catalog(rule_set: ast.RuleSet, catalog: Catalog) -> Iterator[Diagnostic]:
    names = [c.name for c in catalog.campaigns]

    def resolve(ref: ast.CampaignRef) -> Iterator[Diagnostic | CatalogCampaign]:
        if ref.kind in ("in", "not_in"):
            for value in ref.values:
                if catalog.by_name(value) is None:
                    yield _at(
                        "warning",
                        "unknown-campaign",
                        f'no SFDC campaign named "{value}" in the catalog{_did_you_mean(value, names)}',
                        ref.span,
                    )
            return
        if not ref.is_single:
            return
        found = catalog.resolve(ref)
        if found is None:
            hint = _did_you_mean(ref.values[0], names) if ref.kind == "name" else ""
            yield _at("warning", "unknown-campaign", f"no {ref.describe()} in the catalog{hint}", ref.span)
        else:
            yield found

    def statuses(ref: ast.CampaignRef, values: list[tuple[str, ast.Span]]) -> Iterator[Diagnostic]:
        found: CatalogCampaign | None = None
        for item in resolve(ref):
            if isinstance(item, Diagnostic):
                yield item
            else:
                found = item
        if found is None:
            return
        for value, where in values:
            if value not in found.statuses:
                yield _at(
                    "warning",
                    "unknown-status",
                    f'"{value}" is not a member status of SFDC campaign "{found.name}" '
                    f"({', '.join(found.statuses)}){_did_you_mean(value, list(found.statuses))}",
                    where,
                )

    for campaign in rule_set.campaigns:
        for trigger in campaign.triggers:
            if trigger.campaign is not None:
                values = (
                    _match_values(trigger.status)
                    + _match_values(trigger.from_status)
                    + _match_values(trigger.to_status)
                )
                yield from statuses(trigger.campaign, values)
        for flt in campaign_filters(campaign):
            if isinstance(flt, ast.MembershipFilter):
                yield from statuses(flt.campaign, _match_values(flt.status))
        for step in iter_steps(campaign.flow):
            if isinstance(step, (ast.AddToCampaign, ast.ChangeStatusInCampaign)):
                yield from statuses(step.campaign, [(step.status, step.span)])
            elif isinstance(step, ast.RemoveFromCampaign):
                yield from statuses(step.campaign, [])
    for program in rule_set.programs:
        if program.sync_with is None or not program.sync_with.is_single:
            continue
        found = catalog.resolve(program.sync_with)
        if found is None:
            yield from (d for d in resolve(program.sync_with) if isinstance(d, Diagnostic))
            continue
        channel = rule_set.channel(program.channel) if program.channel else None
        if channel is None:
            continue
        mismatch = status_mismatch(program.name, found.name, channel.status_names, found.statuses)
        if mismatch and found.members > 0:
            yield _at("error", "program-status-mismatch", mismatch, program.sync_with.span)


def status_mismatch(
    program: str, campaign: str, program_statuses: tuple[str, ...], campaign_statuses: tuple[str, ...]
) -> str | None:
    """The message for a program and campaign whose statuses differ, or None when they match."""
    only_program = [s for s in program_statuses if s not in campaign_statuses]
    only_campaign = [s for s in campaign_statuses if s not in program_statuses]
    if not only_program and not only_campaign:
        return None
    return (
        f'program "{program}" cannot sync with SFDC campaign "{campaign}": '
        f"statuses only in the program: {', '.join(only_program) or '(none)'}; "
        f"only in the campaign: {', '.join(only_campaign) or '(none)'}. "
        "Rename or remove statuses so both sides match."
    )
