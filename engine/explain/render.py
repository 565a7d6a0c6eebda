"""The rendering: an explanation as indented Rich trees (`render_text`); its JSON is `Explanation.to_json()`.

One tree per change and per batch run, in the order they happened; an `execute campaign` step holds the
executed campaign's decision and run beneath it."""

from __future__ import annotations

import os
import re

from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from engine.explain.model import (
    BatchPersonDecision,
    BatchRecord,
    CampaignDecision,
    ChangeRecord,
    Clause,
    ExecutedDecision,
    Explanation,
    FilterLine,
    QualificationDecision,
    RunRecord,
    StepRecord,
    UnchangedEvent,
)
from engine.explain.words import truth, when

_OUTCOME = {"done": ("✓", "green"), "skipped": ("↷", "yellow"), "error": ("✗", "bold red")}
_ISO = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d)?Z")


def _pretty_times(text: str) -> str:
    """2026-11-14T17:05:00Z -> 2026-11-14 17:05 (seconds kept when not zero)."""
    return _ISO.sub(lambda m: f"{m[1]} {m[2]}" + (m[3] if m[3] and m[3] != ":00" else ""), text)


def _mark(ok: bool | None) -> Text:
    if ok is None:
        return Text("· ", style="dim")
    return Text("✓ ", style="green") if ok else Text("✗ ", style="red")


def _is_leaf(clause: Clause) -> bool:
    return not clause.operands or (clause.kind == "not" and not clause.operands[0].operands)


def _clause_label(clause: Clause, prefix: str = "", value: bool | None = None) -> Text:
    """One line: `member of sfdc campaign "X" → true (status "Sent")`; `not` of a leaf folds into one line."""
    detail = clause.detail if _is_leaf(clause) else None
    if clause.kind == "not" and clause.operands and not clause.operands[0].operands:
        inner = clause.operands[0]
        detail = f"member, {inner.detail}" if inner.value and inner.detail else inner.detail
    value = clause.value if value is None else value
    label = _mark(value)
    label.append(prefix + clause.text)
    label.append(f" → {truth(value)}", style="bold")
    if detail:
        label.append(f" ({detail})", style="italic")
    return label


def _add_clause_children(node: Tree, clause: Clause) -> None:
    """The operands of a compound clause, recursively (a leaf's line says it all)."""
    if _is_leaf(clause):
        return
    if clause.kind == "not":  # not (a or b): the inner compound, then its operands
        clause = clause.operands[0]
        node = node.add(_clause_label(clause))
    for operand in clause.operands:
        _add_clause_children(node.add(_clause_label(operand)), operand)


def _files_of(explanation: Explanation) -> set[str]:
    locations: list[str] = []
    for change in explanation.changes:
        for decision in change.campaigns:
            locations.append(decision.location)
            locations += [t.location for t in decision.triggers]
            locations += [f.location for f in decision.filters]
            if decision.run is not None:
                locations += _run_locations(decision.run)
    for batch in explanation.batches:
        locations.append(batch.location)
        if batch.person is not None:
            locations += [f.location for f in batch.person.filters]
            if batch.person.run is not None:
                locations += _run_locations(batch.person.run)
    return {loc.rpartition(":")[0] for loc in locations}


def _run_locations(run: RunRecord) -> list[str]:
    """The steps' locations, and those of the campaigns they executed."""
    out: list[str] = []
    for step in run.steps:
        out.append(step.location)
        executed = step.executed
        if executed is not None:
            if executed.location is not None:
                out.append(executed.location)
            out += [f.location for f in executed.filters]
            if executed.run is not None:
                out += _run_locations(executed.run)
    return out


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"


class _TextRenderer:
    """Builds the Rich trees; `file:line` locations are shown relative to the rule files' common folder."""

    def __init__(self, explanation: Explanation) -> None:
        files = _files_of(explanation)
        self.base = ""
        if files:
            common = os.path.commonpath([os.path.dirname(f) or "." for f in files]) if len(files) > 1 else ""
            self.base = common if len(files) > 1 else os.path.dirname(next(iter(files)))

    def where(self, loc: str) -> Text:
        if self.base and loc.startswith(self.base + os.sep):
            loc = loc[len(self.base) + 1 :]
        return Text(f"  {loc}", style="dim")

    def filter_node(self, parent: Tree, line: FilterLine) -> None:
        if not line.evaluated or line.clause is None:
            label = _mark(None)
            label.append(f"filter {line.text}", style="dim")
            label.append(" → not evaluated (an earlier filter line was false)", style="dim")
        else:
            label = _clause_label(line.clause, "filter ", line.value)
        label.append_text(self.where(line.location))
        node = parent.add(label)
        if line.clause is not None:
            _add_clause_children(node, line.clause)

    def step_label(self, step: StepRecord) -> Text:
        mark, style = _OUTCOME.get(step.outcome, ("?", ""))
        label = Text(mark + " ", style=style)
        if step.kind == "choice":
            label.append("choice")
            label.append(f" → {step.detail}" if step.outcome == "done" else f" → skipped: {step.detail}")
        else:
            label.append(step.text)
            label.append(f" → {step.outcome}", style=style)
            if step.detail:
                label.append(f": {_pretty_times(step.detail)}")
        label.append_text(self.where(step.location))
        return label

    def run_node(self, parent: Tree, run: RunRecord) -> None:
        node = parent.add(Text.assemble(("run ", "bold"), f"#{run.run_id} started {when(run.at)}"))
        stack: list[Tree] = [node]
        segment = 0
        for step in run.steps:
            if step.segment != segment:
                segment = step.segment
                stack = [node.add(Text(f"⏵ resumed {when(step.at)} after the wait", style="cyan"))]
            child = stack[min(step.level, len(stack) - 1)].add(self.step_label(step))
            if step.executed is not None:
                self.executed_node(child, step.executed)
            if step.kind == "choice":
                for condition in step.conditions:
                    prefix = "if " if condition.branch == 0 else "else if "
                    label = _clause_label(condition.clause, prefix, condition.value)
                    _add_clause_children(child.add(label), condition.clause)
                del stack[step.level + 1 :]
                stack.append(child)
        if run.waiting_until is not None:
            node.add(Text(f"⏳ still waiting when the replay ended (due {when(run.waiting_until)})", style="cyan"))

    def qualification_node(self, parent: Tree, q: QualificationDecision) -> None:
        parent.add(Text.assemble(_mark(q.ok), q.rule, (" → ok" if q.ok else " → blocked", "bold"), f": {q.reason}"))

    def executed_node(self, parent: Tree, executed: ExecutedDecision) -> None:
        """Under an `execute campaign` step: the executed campaign's decision, and its run."""
        label = _mark(executed.result == "ran")
        label.append(executed.campaign, style="bold")
        label.append(f" — {executed.summary}")
        if executed.location is not None:
            label.append_text(self.where(executed.location))
        node = parent.add(label)
        if executed.result == "inactive":
            node.add(Text.assemble(_mark(False), "inactive: the campaign takes no new runs"))
        if executed.qualification is not None:
            self.qualification_node(node, executed.qualification)
        for filter_line in executed.filters:
            self.filter_node(node, filter_line)
        if executed.run is not None:
            self.run_node(node, executed.run)

    def batch_person_node(self, parent: Tree, decision: BatchPersonDecision) -> None:
        label = _mark(decision.result == "picked")
        label.append(decision.person, style="bold")
        label.append(f" — {decision.summary}")
        node = parent.add(label)
        for filter_line in decision.filters:
            self.filter_node(node, filter_line)
        if decision.qualification is not None:
            self.qualification_node(node, decision.qualification)
        if decision.limit is not None:
            node.add(Text.assemble(_mark(decision.result != "limit"), decision.limit))
        if decision.run is not None:
            self.run_node(node, decision.run)

    def batch_tree(self, batch: BatchRecord) -> Tree:
        label = Text.assemble(
            (when(batch.slot), "cyan"),
            " ",
            ("batch run", "bold"),
            f' of "{batch.campaign}" ({batch.schedule}; '
            + ("UTC)" if batch.zone == "UTC" else f"{batch.zone}: {batch.local})"),
        )
        label.append_text(self.where(batch.location))
        tree = Tree(label, guide_style="dim")
        counts = (
            f"{_count(batch.everyone, 'person')}: {batch.passed} passed the filters, {batch.qualified} qualified, "
            f"{batch.selected} selected"
        )
        if batch.limit is not None:
            counts += f" (limit {batch.limit}: {batch.cut} cut)"
        tree.add(Text(counts))
        if batch.person is not None:
            self.batch_person_node(tree, batch.person)
        return tree

    def campaign_node(self, parent: Tree, decision: CampaignDecision) -> None:
        label = _mark(decision.ran)
        label.append(decision.campaign, style="bold")
        label.append(f" — {decision.summary}")
        node = parent.add(label)
        if not decision.triggered:
            return
        if decision.trigger is not None:
            line = Text.assemble(_mark(True), f"trigger {decision.trigger.text}")
            line.append_text(self.where(decision.trigger.location))
            node.add(line)
        if decision.result == "inactive":
            node.add(Text.assemble(_mark(False), "inactive: the campaign takes no new runs"))
        if decision.qualification is not None:
            self.qualification_node(node, decision.qualification)
        for filter_line in decision.filters:
            self.filter_node(node, filter_line)
        if decision.run is not None:
            self.run_node(node, decision.run)

    def change_tree(self, change: ChangeRecord) -> Tree:
        label = Text.assemble((when(change.at), "cyan"), " ", (change.person, "bold"), f": {change.text}")
        tree = Tree(label, guide_style="dim")
        if change.cascade_cut:
            tree.add(Text(f"✗ cascade cut: {change.cascade_cut}", style="bold red"))
        for decision in change.campaigns:
            self.campaign_node(tree, decision)
        return tree


def change_tree(change: ChangeRecord) -> Tree:
    """One change as a Rich tree (locations as given)."""
    return _TextRenderer(Explanation(None, None, [change])).change_tree(change)


def render_text(explanation: Explanation, console: Console | None = None) -> None:
    """Prints the explanation as indented trees: one per change, campaigns beneath, details beneath them."""
    console = console or Console()
    renderer = _TextRenderer(explanation)
    who = explanation.person or "every person"
    what = f'campaign "{explanation.campaign}"' if explanation.campaign else "every campaign"
    count = _count(len(explanation.changes), "change")
    if explanation.has_batch:
        count += f", {_count(len(explanation.batches), 'batch run')}"
    console.print(Text(f"Why: {who}, {what} ({count})", style="bold"))
    for note in explanation.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    entries: list[tuple[int, ChangeRecord | UnchangedEvent | BatchRecord]] = [(c.order, c) for c in explanation.changes]
    entries += [(e.order, e) for e in explanation.unchanged_events]
    entries += [(b.order, b) for b in explanation.batches]
    for _, entry in sorted(entries, key=lambda pair: pair[0]):
        console.print()
        if isinstance(entry, ChangeRecord):
            console.print(renderer.change_tree(entry))
        elif isinstance(entry, BatchRecord):
            console.print(renderer.batch_tree(entry))
        else:
            console.print(
                Text.assemble(
                    (when(entry.at), "cyan"),
                    " ",
                    (entry.person, "bold"),
                    f": {entry.file}:{entry.line}: ",
                    (entry.reason, "yellow"),
                )
            )
    if explanation.errors:
        console.print()
        console.print(Text(f"Errors ({len(explanation.errors)})", style="bold red"))
        for error in explanation.errors:
            console.print(Text(f"  {_pretty_times(error['at'])}  {error['message']}"))
