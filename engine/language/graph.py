"""A rule set as a graph: smart campaigns, SFDC campaigns and programs, and what triggers or acts on what.

Edges, named by kind:

- `trigger`: an SFDC campaign (or a program) to a smart campaign whose trigger listens to it
  (`added to`, `removed from`, `status changed in`, `status changed in program`);
- `add`, `remove`, `change_status`, `change_program_status`: a smart campaign to what its flow acts on;
- `sync`: a program to the SFDC campaign it is kept equal to (both ways);
- `cascade`: a smart campaign to one its flow can fire (the same analysis as the cycle check,
  `checks.campaign_graph`), marked `cycle` when it lies on a cycle `check` reports;
- `request`, `execute`: a smart campaign to one its flow requests (`request campaign`, queued) or executes
  (`execute campaign`, inline), marked `cycle` the same way.

Mermaid (`flowchart LR`), Graphviz DOT and JSON renderings. Depends only on the AST and the checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.language import ast
from engine.language.checks import campaign_calls, campaign_cycles, campaign_graph, iter_steps

NodeKind = Literal["campaign", "sfdc_campaign", "program"]

TRIGGER_WORDS = {
    "added": "added",
    "removed": "removed",
    "status_changed": "status changed",
    "program_status_changed": "program status changed",
    "requested": "requested",  # no edge of its own: the `request` edges of the campaigns that request it
}


@dataclass
class Node:
    id: str
    kind: NodeKind
    name: str
    file: str | None = None
    line: int | None = None
    active: bool = True
    in_cycle: bool = False

    @property
    def label(self) -> str:
        if self.kind == "sfdc_campaign":
            return f"SFDC: {self.name}"
        if self.kind == "program":
            return f"Program: {self.name}"
        return self.name if self.active else f"{self.name} (inactive)"


@dataclass
class Edge:
    source: str
    target: str
    kind: str  # trigger | add | remove | change_status | change_program_status | sync | cascade | request | execute
    label: str
    cycle: bool = False


@dataclass
class Graph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)  # campaign names, as `check` reports them

    # ------------------------------------------------------------------------------ building
    def node(self, kind: NodeKind, name: str, span: ast.Span | None = None, active: bool = True) -> str:
        key = f"{kind}:{name}"
        found = self.nodes.get(key)
        if found is None:
            found = Node(key, kind, name, active=active)
            self.nodes[key] = found
        if span is not None and found.file is None and span.line:
            found.file, found.line = span.file, span.line
        return key

    def edge(self, source: str, target: str, kind: str, label: str, cycle: bool = False) -> None:
        for existing in self.edges:
            if (existing.source, existing.target, existing.kind, existing.label) == (source, target, kind, label):
                return
        self.edges.append(Edge(source, target, kind, label, cycle))

    # ------------------------------------------------------------------------------ views
    def neighbourhood(self, campaign: str) -> Graph:
        """The campaign, everything one edge away, and the edges between those (cycles through it kept)."""
        centre = f"campaign:{campaign}"
        keep = {centre}
        for edge in self.edges:
            if edge.source == centre:
                keep.add(edge.target)
            elif edge.target == centre:
                keep.add(edge.source)
        sub = Graph()
        sub.nodes = {key: node for key, node in self.nodes.items() if key in keep}
        sub.edges = [e for e in self.edges if e.source in keep and e.target in keep]
        sub.cycles = [c for c in self.cycles if campaign in c]
        return sub

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "name": n.name,
                    "file": n.file,
                    "line": n.line,
                    **({"active": n.active, "in_cycle": n.in_cycle} if n.kind == "campaign" else {}),
                }
                for n in self.nodes.values()
            ],
            "edges": [
                {"from": e.source, "to": e.target, "kind": e.kind, "label": e.label, "cycle": e.cycle}
                for e in self.edges
            ],
            "cycles": self.cycles,
        }


def _ref_names(ref: ast.CampaignRef) -> list[str]:
    """The SFDC campaign nodes a reference stands for: one per listed name, or one node for a wide reference."""
    if ref.kind == "name":
        return [ref.values[0]]
    if ref.kind == "id":
        return [f"id {ref.values[0]}"]
    if ref.kind == "in":
        return list(ref.values)
    if ref.kind == "any":
        return ["any SFDC campaign"]
    return ["any SFDC campaign not in (" + ", ".join(ref.values) + ")"]


def _status_words(trigger: ast.Trigger) -> str:
    from engine.language.describe import describe_match

    parts = []
    if trigger.status is not None:
        parts.append(f"with status {describe_match(trigger.status)}")
    if trigger.from_status is not None:
        parts.append(f"from {describe_match(trigger.from_status)}")
    if trigger.to_status is not None:
        parts.append(f"to {describe_match(trigger.to_status)}")
    return (" " + " ".join(parts)) if parts else ""


def build_graph(rule_set: ast.RuleSet) -> Graph:
    """The whole rule set's graph, nodes in declaration order (smart campaigns first)."""
    graph = Graph()
    for campaign in rule_set.campaigns:
        graph.node("campaign", campaign.name, campaign.name_span, campaign.active)
    for campaign in rule_set.campaigns:
        me = f"campaign:{campaign.name}"
        for trigger in campaign.triggers:
            words = TRIGGER_WORDS[trigger.kind] + _status_words(trigger)
            if trigger.kind == "program_status_changed":
                graph.edge(graph.node("program", trigger.program or "?"), me, "trigger", words)
            elif trigger.campaign is not None:
                for name in _ref_names(trigger.campaign):
                    graph.edge(graph.node("sfdc_campaign", name), me, "trigger", words)
        for step in iter_steps(campaign.flow):
            if isinstance(step, ast.AddToCampaign):
                for name in _ref_names(step.campaign):
                    graph.edge(me, graph.node("sfdc_campaign", name), "add", f'add with status "{step.status}"')
            elif isinstance(step, ast.ChangeStatusInCampaign):
                for name in _ref_names(step.campaign):
                    graph.edge(
                        me, graph.node("sfdc_campaign", name), "change_status", f'change status to "{step.status}"'
                    )
            elif isinstance(step, ast.RemoveFromCampaign):
                for name in _ref_names(step.campaign):
                    graph.edge(me, graph.node("sfdc_campaign", name), "remove", "remove")
            elif isinstance(step, ast.ChangeProgramStatus):
                target = graph.node("program", step.program)
                graph.edge(me, target, "change_program_status", f'change program status to "{step.status}"')
    for program in rule_set.programs:
        me = graph.node("program", program.name, program.name_span)
        if program.sync_with is not None:
            for name in _ref_names(program.sync_with):
                graph.edge(me, graph.node("sfdc_campaign", name), "sync", "syncs with")
    cascades = campaign_graph(rule_set)
    graph.cycles = campaign_cycles(cascades)
    on_cycle: set[tuple[str, str]] = set()
    for cycle in graph.cycles:
        for position, name in enumerate(cycle):
            on_cycle.add((name, cycle[(position + 1) % len(cycle)]))
            graph.nodes[f"campaign:{name}"].in_cycle = True
    for source, calls in campaign_calls(rule_set).items():
        for kind, target in calls:
            marked = (source, target) in on_cycle
            label = f"{kind} (cycle)" if marked else kind
            graph.edge(f"campaign:{source}", f"campaign:{target}", kind, label, marked)
    for source, targets in campaign_graph(rule_set, calls=False).items():
        for target in targets:
            marked = (source, target) in on_cycle
            label = "can trigger (cycle)" if marked else "can trigger"
            graph.edge(f"campaign:{source}", f"campaign:{target}", "cascade", label, marked)
    return graph


# ---------------------------------------------------------------------------------------------- renderings
def _mermaid_text(text: str) -> str:
    text = text.replace("#", "#35;")  # first: the entity codes below start with one
    return text.replace('"', "#quot;").replace("|", "#124;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(graph: Graph) -> str:
    ids = {key: f"n{number}" for number, key in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for key, node in graph.nodes.items():
        label = _mermaid_text(node.label)
        if node.kind == "sfdc_campaign":
            lines.append(f'    {ids[key]}[("{label}")]')
        elif node.kind == "program":
            lines.append(f'    {ids[key]}{{{{"{label}"}}}}')
        else:
            lines.append(f'    {ids[key]}["{label}"]')
    for number, edge in enumerate(graph.edges):
        arrow = "==>" if edge.cycle else ("-.->" if edge.kind in ("cascade", "request") else "-->")
        lines.append(f'    {ids[edge.source]} {arrow}|"{_mermaid_text(edge.label)}"| {ids[edge.target]}')
        if edge.cycle:
            lines.append(f"    linkStyle {number} stroke:#c62828,stroke-width:2px")
    lines.append("    classDef campaign fill:#e3f2fd,stroke:#1565c0")
    lines.append("    classDef sfdc fill:#fff8e1,stroke:#ef6c00")
    lines.append("    classDef program fill:#e8f5e9,stroke:#2e7d32")
    lines.append("    classDef inactive fill:#eeeeee,stroke:#9e9e9e,color:#616161")
    lines.append("    classDef cycle stroke:#c62828,stroke-width:3px")
    for kind, css in (("campaign", "campaign"), ("sfdc_campaign", "sfdc"), ("program", "program")):
        members = [ids[k] for k, n in graph.nodes.items() if n.kind == kind and (kind != "campaign" or n.active)]
        if members:
            lines.append(f"    class {','.join(members)} {css}")
    inactive = [ids[k] for k, n in graph.nodes.items() if n.kind == "campaign" and not n.active]
    if inactive:
        lines.append(f"    class {','.join(inactive)} inactive")
    cyclic = [ids[k] for k, n in graph.nodes.items() if n.in_cycle]
    if cyclic:
        lines.append(f"    class {','.join(cyclic)} cycle")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_DOT_NODE = {
    "campaign": 'shape=box, style="rounded,filled", fillcolor="#e3f2fd", color="#1565c0"',
    "sfdc_campaign": 'shape=cylinder, style=filled, fillcolor="#fff8e1", color="#ef6c00"',
    "program": 'shape=hexagon, style=filled, fillcolor="#e8f5e9", color="#2e7d32"',
}


def to_dot(graph: Graph, *, name: str = "smartcampaign") -> str:
    lines = [
        f"digraph {_dot_text(name)} {{",
        "    rankdir=LR;",
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9];',
    ]
    for key, node in graph.nodes.items():
        style = _DOT_NODE[node.kind]
        if node.kind == "campaign" and not node.active:
            style = 'shape=box, style="rounded,filled,dashed", fillcolor="#eeeeee", color="#9e9e9e"'
        if node.in_cycle:
            style += ', penwidth=2.5, color="#c62828"'
        lines.append(f"    {_dot_text(key)} [label={_dot_text(node.label)}, {style}];")
    for edge in graph.edges:
        attributes = [f"label={_dot_text(edge.label)}"]
        if edge.kind in ("cascade", "request"):
            attributes.append("style=dashed")
        elif edge.kind == "execute":
            attributes.append("style=bold")
        if edge.cycle:
            attributes.append('color="#c62828", fontcolor="#c62828", penwidth=2')
        if edge.kind == "sync":
            attributes.append("dir=both")
        lines.append(f"    {_dot_text(edge.source)} -> {_dot_text(edge.target)} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_json_text(graph: Graph) -> str:
    return json.dumps(graph.to_json(), indent=2, ensure_ascii=False) + "\n"
