"""Semantic checks over a whole rule set: names, channels, programs, flows, cycles, and a catalog."""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.language import ast
from engine.language.diagnostics import Diagnostic


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


def _where(span: ast.Span) -> str:
    return f"{span.file}:{span.line}:{span.column}"


def _at(severity: str, code: str, message: str, span: ast.Span, *notes: str) -> Diagnostic:
    return Diagnostic(
        severity,  # type: ignore[arg-type]
        code,
        message,
        span.file,
        span.line,
        span.column,
        span.end_line,
        span.end_column,
        tuple(notes),
    )


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


# ------------------------------------------------------------------------------- walking the AST


def iter_filters(expr: ast.FilterExpr) -> Iterator[ast.MembershipFilter | ast.ProgramMembershipFilter]:
    """The `member of` leaves of an expression, left to right (no recursion: nesting depth is unbounded)."""
    stack: list[ast.FilterExpr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.MembershipFilter, ast.ProgramMembershipFilter)):
            yield node
        elif isinstance(node, ast.Not):
            stack.append(node.operand)
        else:
            stack.extend(reversed(node.operands))


def iter_steps(steps: tuple[ast.FlowStep, ...]) -> Iterator[ast.FlowStep]:
    """Every step of a flow, choices included (depth first, in order, without recursion)."""
    stack: list[ast.FlowStep] = list(reversed(steps))
    while stack:
        step = stack.pop()
        yield step
        if isinstance(step, ast.Choice):
            for branch in reversed(step.branches):
                stack.extend(reversed(branch.steps))


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


def campaign_filters(campaign: ast.Campaign) -> Iterator[ast.MembershipFilter | ast.ProgramMembershipFilter]:
    for expr in campaign.filters:
        yield from iter_filters(expr)
    for step in iter_steps(campaign.flow):
        if isinstance(step, ast.Choice):
            for branch in step.branches:
                if branch.condition is not None:
                    yield from iter_filters(branch.condition)


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
        )
    out.extend(_repeated_items(rule_set))
    out.extend(_duplicates(rule_set))
    out.extend(_channels(rule_set))
    out.extend(_programs(rule_set))
    out.extend(_campaigns(rule_set))
    out.extend(_cycles(rule_set))
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


def _campaigns(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    for campaign in rule_set.campaigns:
        if not campaign.triggers:
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
            elif isinstance(step, ast.Wait) and step.amount <= 0:
                yield _at("warning", "zero-wait", f"`wait {step.amount} {step.unit}s` waits for nothing", step.span)


# ------------------------------------------------------------------------------------- cycles


@dataclass(frozen=True)
class _Effect:
    """A membership change a flow step can make."""

    kind: str  # added | removed | status_changed | program_status_changed
    campaign: ast.CampaignRef | None
    program: str | None
    status: str | None


def step_effects(rule_set: ast.RuleSet, step: ast.FlowStep) -> list[_Effect]:
    """The changes one flow action can cause, program sync included."""
    effects: list[_Effect] = []
    if isinstance(step, ast.AddToCampaign):
        effects.append(_Effect("added", step.campaign, None, step.status))
    elif isinstance(step, ast.ChangeStatusInCampaign):
        effects.append(_Effect("added", step.campaign, None, step.status))
        effects.append(_Effect("status_changed", step.campaign, None, step.status))
    elif isinstance(step, ast.RemoveFromCampaign):
        effects.append(_Effect("removed", step.campaign, None, None))
    elif isinstance(step, ast.ChangeProgramStatus):
        effects.append(_Effect("program_status_changed", None, step.program, step.status))
    # the program sync mirrors changes between a program and its campaign
    mirrored: list[_Effect] = []
    for effect in effects:
        for program in rule_set.programs:
            ref = program.sync_with
            if ref is None or not ref.is_single:
                continue
            if effect.kind == "program_status_changed" and effect.program == program.name:
                if effect.status == ast.NOT_IN_PROGRAM:
                    mirrored.append(_Effect("removed", ref, None, None))
                else:
                    mirrored.append(_Effect("added", ref, None, effect.status))
                    mirrored.append(_Effect("status_changed", ref, None, effect.status))
            elif effect.campaign is not None and _same_campaign(effect.campaign, ref):
                status = ast.NOT_IN_PROGRAM if effect.kind == "removed" else effect.status
                mirrored.append(_Effect("program_status_changed", None, program.name, status))
    return effects + mirrored


def _same_campaign(a: ast.CampaignRef, b: ast.CampaignRef) -> bool:
    return a.kind == b.kind and a.values == b.values


def _ref_can_match(trigger_ref: ast.CampaignRef, action_ref: ast.CampaignRef) -> bool:
    if trigger_ref.kind == "any":
        return True
    if not action_ref.is_single:
        return True
    value = action_ref.values[0]
    if trigger_ref.kind in ("name", "id"):
        return trigger_ref.kind == action_ref.kind and trigger_ref.values[0] == value
    if action_ref.kind == "id":
        return True  # names and ids cannot be compared without a catalog: assume it can
    if trigger_ref.kind == "in":
        return value in trigger_ref.values
    return value not in trigger_ref.values


def _can_fire(trigger: ast.Trigger, effect: _Effect) -> bool:
    if trigger.kind == "program_status_changed":
        if effect.kind != "program_status_changed" or effect.program != trigger.program:
            return False
        return trigger.to_status is None or trigger.to_status.matches(effect.status)
    if effect.kind != trigger.kind or trigger.campaign is None or effect.campaign is None:
        return False
    if not _ref_can_match(trigger.campaign, effect.campaign):
        return False
    if trigger.kind == "added":
        return trigger.status is None or trigger.status.matches(effect.status)
    if trigger.kind == "status_changed":
        return trigger.to_status is None or trigger.to_status.matches(effect.status)
    return True


def campaign_graph(rule_set: ast.RuleSet) -> dict[str, list[str]]:
    """Which campaigns' flows can fire which campaigns' triggers (names, declaration order).

    Triggers are indexed by (kind, campaign or program) so that the graph costs what the flows hold,
    not campaigns squared.
    """
    keyed: dict[tuple[str, str], list[int]] = {}
    wild: dict[str, list[int]] = {}
    for number, target in enumerate(rule_set.campaigns):
        for trigger in target.triggers:
            if trigger.kind == "program_status_changed":
                keyed.setdefault((trigger.kind, trigger.program or ""), []).append(number)
            elif trigger.campaign is None:
                continue
            elif trigger.campaign.kind in ("name", "id", "in"):
                for value in trigger.campaign.values:
                    keyed.setdefault((trigger.kind, value), []).append(number)
            else:
                wild.setdefault(trigger.kind, []).append(number)
    graph: dict[str, list[str]] = {}
    campaigns = rule_set.campaigns
    for source in campaigns:
        effects = [e for step in iter_steps(source.flow) for e in step_effects(rule_set, step)]
        found: set[int] = set()
        for effect in effects:
            pool: list[int] = list(wild.get(effect.kind, ()))
            if effect.kind == "program_status_changed":
                pool.extend(keyed.get((effect.kind, effect.program or ""), ()))
            elif effect.campaign is not None:
                if effect.campaign.is_single:
                    pool.extend(keyed.get((effect.kind, effect.campaign.values[0]), ()))
                    if effect.campaign.kind == "id":
                        # an id may name any campaign that triggers list by name: check them all
                        pool.extend(n for (kind, _), ns in keyed.items() if kind == effect.kind for n in ns)
                else:
                    pool.extend(n for (kind, _), ns in keyed.items() if kind == effect.kind for n in ns)
            for number in pool:
                if number not in found and any(_can_fire(t, effect) for t in campaigns[number].triggers):
                    found.add(number)
        graph[source.name] = [campaigns[n].name for n in sorted(found)]
    return graph


def campaign_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The cycles of a campaign graph, each once: the shortest from its first campaign in declaration order."""
    cycles: list[list[str]] = []
    reported: set[frozenset[str]] = set()
    for start in graph:
        path = _find_cycle(graph, start)
        if path is None:
            continue
        members = frozenset(path)
        if members in reported:
            continue
        reported.add(members)
        cycles.append(path)
    return cycles


def _cycles(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    by_name = {c.name: c for c in rule_set.campaigns}
    for path in campaign_cycles(campaign_graph(rule_set)):
        chain = " -> ".join(f'"{n}"' for n in [*path, path[0]])
        campaign = by_name[path[0]]
        yield _at(
            "warning",
            "campaign-cycle",
            f"campaigns can trigger each other in a cycle: {chain}",
            campaign.name_span,
            "a cascade deeper than --max-depth is cut at run time; `qualify once` or a filter breaks the loop",
        )


def _find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    """The shortest path from `start` back to itself, if any (breadth first)."""
    parents: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for target in graph.get(node, ()):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return list(reversed(path))
                if target not in seen:
                    seen.add(target)
                    parents[target] = node
                    nxt.append(target)
        frontier = nxt
    return None


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
