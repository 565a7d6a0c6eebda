"""The campaign graph (which flows can fire which triggers, and the campaigns a flow requests or executes)
and its cycles: the `campaign-cycle` check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from engine.language import ast
from engine.language.checks_walk import _NO_STEPS, _at, _index_steps, _Steps, iter_steps
from engine.language.diagnostics import Diagnostic


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
