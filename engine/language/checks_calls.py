"""The checks of requested and executed campaigns and of Remove from Flow: unknown smart campaigns, not
requestable, execute with wait, executions nested too deep or in a cycle; and the call graphs they read."""

from __future__ import annotations

from collections.abc import Iterator

from engine.language import ast
from engine.language.checks_cycles import campaign_cycles
from engine.language.checks_walk import _NO_STEPS, _at, _did_you_mean, _index_steps, _Steps, _where, iter_steps
from engine.language.diagnostics import Diagnostic


def _first_wait(campaign: ast.Campaign) -> ast.FlowStep | None:
    """The campaign's first wait of any kind, choices included."""
    for step in iter_steps(campaign.flow):
        if isinstance(step, (ast.Wait, ast.WaitUntil, ast.WaitWindow)):
            return step
    return None


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
            executing = isinstance(call, ast.ExecuteCampaign)
            done = "executed" if executing else "requested"
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
                    f'campaign "{target.name}" cannot be {done}: it has no `trigger campaign is requested`',
                    call.span,
                    f'add `trigger campaign is requested` to campaign "{target.name}" ({_where(target.name_span)})',
                )
            if executing:
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
