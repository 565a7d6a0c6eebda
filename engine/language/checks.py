"""Semantic checks over a whole rule set: names, channels, programs, flows, cycles, and a catalog."""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass
class _Steps:
    """The steps of one campaign's flow that the checks of batch, requested and executed campaigns read."""

    timed: tuple[ast.WaitUntil | ast.WaitWindow, ...] = ()
    calls: tuple[ast.RequestCampaign | ast.ExecuteCampaign, ...] = ()
    removals: tuple[ast.RemoveFromFlow, ...] = ()

    def note(self, step: ast.FlowStep) -> None:
        if isinstance(step, (ast.RequestCampaign, ast.ExecuteCampaign)):
            self.calls = (*self.calls, step)
        elif isinstance(step, ast.RemoveFromFlow):
            self.removals = (*self.removals, step)
        elif isinstance(step, (ast.WaitUntil, ast.WaitWindow)):
            self.timed = (*self.timed, step)


_NO_STEPS = _Steps()  # a flow without any of them (never noted into)


_NOTED = (ast.WaitUntil, ast.WaitWindow, ast.RequestCampaign, ast.ExecuteCampaign, ast.RemoveFromFlow)


def _first_wait(campaign: ast.Campaign) -> ast.FlowStep | None:
    """The campaign's first wait of any kind, choices included."""
    for step in iter_steps(campaign.flow):
        if isinstance(step, (ast.Wait, ast.WaitUntil, ast.WaitWindow)):
            return step
    return None


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


# --------------------------------------------------------------------- time zones, schedules, limits

ZONE_EXAMPLE = "Europe/Berlin"
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2})?")


@functools.lru_cache(maxsize=256)
def is_time_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this Python can load (`zoneinfo`)."""
    if not name or name != name.strip():
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def valid_datetime(text: str) -> bool:
    """`YYYY-MM-DDTHH:MM[:SS]` naming a real date and time (no 2026-02-30, no 25:00)."""
    if _DATETIME.fullmatch(text) is None:
        return False
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S" if text.count(":") == 2 else "%Y-%m-%dT%H:%M")
    except ValueError:
        return False
    return True


def valid_clock(text: str) -> bool:
    """`HH:MM` with hours 00..23 and minutes 00..59."""
    hours, _, minutes = text.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours.isdigit() and minutes.isdigit()):
        return False
    return int(hours) < 24 and int(minutes) < 60


def _tail(span: ast.Span, length: int) -> ast.Span:
    """The last `length` characters of a node's span: the token a statement ends with (a time, a name)."""
    if span.line <= 0 or span.end_column - length < 1:
        return span
    return ast.Span(span.file, span.end_line, span.end_column - length, span.end_line, span.end_column)


def _zone_problem(name: str, span: ast.Span) -> Diagnostic | None:
    if is_time_zone(name):
        return None
    try:
        known = sorted(zoneinfo.available_timezones())
    except OSError:  # pragma: no cover - no time zone data at all
        known = []
    by_lower = {zone.lower(): zone for zone in known}
    hint = f'; did you mean "{by_lower[name.lower()]}"?' if name.lower() in by_lower else _did_you_mean(name, known)
    quoted = len(name) + 2 + name.count('"') + name.count("\\")
    return _at(
        "error",
        "unknown-timezone",
        f'unknown time zone "{name}"{hint}',
        _tail(span, quoted),
        f'time zones are IANA names, e.g. "{ZONE_EXAMPLE}", "America/New_York" or "UTC"',
    )


def _time_zones(rule_set: ast.RuleSet) -> Iterator[Diagnostic]:
    first: ast.TimeZone | None = None
    for rule_file in rule_set.files:
        for declaration in rule_file.declarations:
            if not isinstance(declaration, ast.TimeZone):
                continue
            problem = _zone_problem(declaration.name, declaration.span)
            if problem is not None:
                yield problem
            if first is None:
                first = declaration
            elif declaration.name != first.name:
                yield _at(
                    "error",
                    "timezone-conflict",
                    f'the rule set\'s time zone is already "{first.name}" ({_where(first.span)}): '
                    f'one time zone per rule set, not "{declaration.name}" too',
                    declaration.span,
                    'a campaign with another zone says so itself: `timezone "..."` inside the campaign',
                )
    for campaign in rule_set.campaigns:
        if campaign.timezone is not None:
            problem = _zone_problem(campaign.timezone, campaign.timezone_span)
            if problem is not None:
                yield problem


def _time_problems(step_or_schedule: ast.Schedule | ast.WaitUntil | ast.WaitWindow) -> Iterator[Diagnostic]:
    node = step_or_schedule
    if isinstance(node, ast.WaitUntil) or (isinstance(node, ast.Schedule) and node.kind == "once"):
        at = node.at if isinstance(node, ast.WaitUntil) else node.at or ""
        if not valid_datetime(at):
            yield _at(
                "error",
                "bad-datetime",
                f"{at} is not a date and time (YYYY-MM-DDTHH:MM, a real day, hours 00-23, minutes 00-59)",
                _tail(node.span, len(at)),
            )
        return
    clock = node.time or ""
    if not valid_clock(clock):
        yield _at(
            "error",
            "bad-time",
            f"{clock} is not a time of day (HH:MM, hours 00-23, minutes 00-59)",
            _tail(node.span, len(clock)),
        )
    if isinstance(node, ast.Schedule) and node.kind == "monthly" and not 1 <= (node.day or 0) <= 31:
        yield _at(
            "error",
            "bad-day",
            f"day {node.day} is not a day of the month: use 1 to 31 (a day past a month's end runs on its last day)",
            node.span,
        )


def _batches(rule_set: ast.RuleSet, steps: dict[int, _Steps]) -> Iterator[Diagnostic]:
    for campaign in rule_set.campaigns:
        schedule = campaign.schedule
        if schedule is not None:
            yield from _time_problems(schedule)
            if campaign.triggers:
                yield _at(
                    "error",
                    "schedule-with-trigger",
                    f'campaign "{campaign.name}" has a schedule and a trigger: a batch campaign runs on its '
                    "schedule over everyone its filters let through, a trigger campaign when a trigger fires",
                    schedule.span,
                    "keep the `schedule` or the `trigger` lines, not both (`trigger campaign is requested` too)",
                )
        if campaign.limit is not None:
            if schedule is None:
                yield _at(
                    "error",
                    "limit-without-schedule",
                    f'campaign "{campaign.name}" has a `limit` but no `schedule`: limits apply to batch runs',
                    campaign.limit_span,
                )
            elif campaign.limit <= 0:
                yield _at(
                    "error",
                    "zero-limit",
                    f"`limit {campaign.limit}` lets no one through: a limit is at least 1 (or leave it out)",
                    campaign.limit_span,
                )
        for timed in steps.get(id(campaign), _NO_STEPS).timed:
            yield from _time_problems(timed)


# ------------------------------------------------------------- requested and executed campaigns


def _index_steps(rule_set: ast.RuleSet) -> dict[int, _Steps]:
    """One walk over every flow, by campaign (`id`: names may be declared twice)."""
    index: dict[int, _Steps] = {}
    for campaign in rule_set.campaigns:
        for step in iter_steps(campaign.flow):
            if isinstance(step, _NOTED):
                index.setdefault(id(campaign), _Steps()).note(step)
    return index


def _campaign_pairs(rule_set: ast.RuleSet, steps: dict[int, _Steps]) -> dict[str, list[tuple[str, str]]]:
    """`campaign_calls` for the campaigns that call any (a rule set without calls allocates nothing)."""
    if not any(s.calls for s in steps.values()):
        return {}
    known = {c.name for c in rule_set.campaigns}
    calls: dict[str, list[tuple[str, str]]] = {}
    for campaign in rule_set.campaigns:
        if not steps.get(id(campaign), _NO_STEPS).calls:
            continue
        found: list[tuple[str, str]] = []
        for step in steps.get(id(campaign), _NO_STEPS).calls:
            pair = ("execute" if isinstance(step, ast.ExecuteCampaign) else "request", step.campaign)
            if step.campaign in known and pair not in found:
                found.append(pair)
        calls[campaign.name] = found
    return calls


def campaign_calls(rule_set: ast.RuleSet) -> dict[str, list[tuple[str, str]]]:
    """Each campaign's `request` and `execute` steps naming a known campaign: (kind, target), first occurrence
    of each pair, in flow order."""
    pairs = _campaign_pairs(rule_set, _index_steps(rule_set))
    return {campaign.name: pairs.get(campaign.name, []) for campaign in rule_set.campaigns}


def _execute_graph(rule_set: ast.RuleSet, steps: dict[int, _Steps]) -> dict[str, list[str]]:
    return {
        name: [target for kind, target in pairs if kind == "execute"]
        for name, pairs in _campaign_pairs(rule_set, steps).items()
    }


def execute_graph(rule_set: ast.RuleSet) -> dict[str, list[str]]:
    """Which campaigns each campaign executes (known names, flow order)."""
    graph = _execute_graph(rule_set, _index_steps(rule_set))
    return {campaign.name: graph.get(campaign.name, []) for campaign in rule_set.campaigns}


def _deepest_chains(graph: dict[str, list[str]]) -> dict[str, list[str]]:
    """For each campaign, its longest chain of executions (itself first), cycles left out (iterative)."""
    chains: dict[str, list[str]] = {}
    for root in graph:
        if root in chains:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: set[str] = {root}
        while stack:
            node, index = stack[-1]
            targets = graph.get(node, [])
            if index < len(targets):
                stack[-1] = (node, index + 1)
                target = targets[index]
                if target not in chains and target not in on_path:
                    stack.append((target, 0))
                    on_path.add(target)
                continue
            stack.pop()
            on_path.discard(node)
            best: list[str] = []
            for target in targets:
                below = chains.get(target)
                if below is not None and node not in below and len(below) > len(best):
                    best = below
            chains[node] = [node, *best]
    return chains


def _campaign_calls(
    rule_set: ast.RuleSet, steps: dict[int, _Steps], graph: dict[str, list[str]]
) -> Iterator[Diagnostic]:
    if not any(s.calls or s.removals for s in steps.values()):
        return
    by_name = {c.name: c for c in rule_set.campaigns}
    names = list(by_name)
    for campaign in rule_set.campaigns:
        for step in steps.get(id(campaign), _NO_STEPS).removals:
            if step.campaign is not None and step.campaign not in by_name:
                yield _at(
                    "error",
                    "unknown-smart-campaign",
                    f'unknown campaign "{step.campaign}"{_did_you_mean(step.campaign, names)}',
                    step.span,
                )
        for call in steps.get(id(campaign), _NO_STEPS).calls:
            verb = "execute" if isinstance(call, ast.ExecuteCampaign) else "request"
            target = by_name.get(call.campaign)
            if target is None:
                yield _at(
                    "error",
                    "unknown-smart-campaign",
                    f'unknown campaign "{call.campaign}"{_did_you_mean(call.campaign, names)}',
                    call.span,
                )
                continue
            if not target.is_requestable:
                yield _at(
                    "error",
                    "not-requestable",
                    f'campaign "{target.name}" cannot be {verb}d: it has no `trigger campaign is requested`',
                    call.span,
                    f'add `trigger campaign is requested` to campaign "{target.name}" ({_where(target.name_span)})',
                )
            if verb == "execute":
                wait = _first_wait(target)
                if wait is not None:
                    yield _at(
                        "error",
                        "execute-with-wait",
                        f'campaign "{target.name}" waits ({_where(wait.span)}): an executed campaign runs inline, '
                        "before the next step, and cannot wait",
                        call.span,
                        f'use `request campaign "{target.name}"` to run it on its own, waits included',
                    )
    if not any(graph.values()):
        return  # nothing executes anything: no cycles, no depth
    for path in campaign_cycles(graph):
        ring = " -> ".join(f'"{n}"' for n in [*path, path[0]])
        where = _execute_step(steps, by_name[path[0]], path[1] if len(path) > 1 else path[0])
        yield _at(
            "error",
            "execute-cycle",
            f"campaigns execute each other in a cycle: {ring}",
            where,
            "an executed campaign runs inline: a cycle would never end; use `request campaign` for one of them",
        )
    chains = _deepest_chains(graph)
    for campaign in rule_set.campaigns:
        chain = chains.get(campaign.name, [campaign.name])
        levels = len(chain) - 1
        if levels <= ast.MAX_EXECUTE_DEPTH:
            continue
        shown = " -> ".join(f'"{n}"' for n in chain)
        yield _at(
            "error",
            "execute-too-deep",
            f"executed campaigns nest {levels} levels deep: {shown}; at most {ast.MAX_EXECUTE_DEPTH} levels",
            _execute_step(steps, campaign, chain[1]),
            "use `request campaign` for one of them: a requested campaign runs on its own",
        )


def _execute_step(steps: dict[int, _Steps], campaign: ast.Campaign, target: str) -> ast.Span:
    """Where a campaign executes `target` (its first such step), else its name."""
    for call in steps.get(id(campaign), _NO_STEPS).calls:
        if isinstance(call, ast.ExecuteCampaign) and call.campaign == target:
            return call.span
    return campaign.name_span


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


def campaign_graph(
    rule_set: ast.RuleSet, *, calls: bool = True, steps: dict[int, _Steps] | None = None
) -> dict[str, list[str]]:
    """Which campaigns' flows can fire which campaigns' triggers (names, declaration order); with `calls`,
    also the campaigns a flow requests or executes (`request campaign`, `execute campaign`).

    Triggers are indexed by (kind, campaign or program) so that the graph costs what the flows hold,
    not campaigns squared.
    """
    if calls and steps is None:
        steps = _index_steps(rule_set)
    numbers: dict[str, int] = {}
    if calls and steps is not None and any(s.calls for s in steps.values()):
        numbers = {c.name: n for n, c in reversed(list(enumerate(rule_set.campaigns)))}
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
        if numbers and steps is not None:
            for call in steps.get(id(source), _NO_STEPS).calls:
                called = numbers.get(call.campaign)
                if called is not None:
                    found.add(called)
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


def _cycles(rule_set: ast.RuleSet, steps: dict[int, _Steps], executes: dict[str, list[str]]) -> Iterator[Diagnostic]:
    by_name = {c.name: c for c in rule_set.campaigns}
    for path in campaign_cycles(campaign_graph(rule_set, steps=steps)):
        if all(path[(i + 1) % len(path)] in executes.get(name, ()) for i, name in enumerate(path)):
            continue  # executions alone: an error of its own (execute-cycle)
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
