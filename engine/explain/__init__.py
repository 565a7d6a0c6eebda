"""Explain: why did (or didn't) a person go through a smart campaign?

`explain()` replays the events with a tracer hooked into the interpreter and returns an `Explanation`:
for each change, each campaign's trigger, qualification, filter lines and run; for each batch run, its
counts and why the person was or was not picked. By job:

- `trace`: the tracer (`ExplainTracer`) and the replay it drives (`explain`, `select_campaigns`);
- `batches`, `executed`: the tracer's parts for batch runs and for executed campaigns; `runs`: what they share;
- `words`: decisions in sentences (`describe_qualification`, `explain_filter`, `when`, ...);
- `render`: the text output (`render_text`, `change_tree`);
- `model`: the records (`Explanation`, `ChangeRecord`, ...) and their JSON form (`to_json`, shape documented there).
"""

from engine.explain.model import (
    JSON_VERSION,
    RESULTS,
    BatchPersonDecision,
    BatchRecord,
    CampaignDecision,
    ChangeRecord,
    Clause,
    Condition,
    ExecutedDecision,
    Explanation,
    FilterLine,
    QualificationDecision,
    RunRecord,
    StepRecord,
    TriggerInfo,
    UnchangedEvent,
)
from engine.explain.render import change_tree, render_text
from engine.explain.trace import ExplainTracer, explain, select_campaigns
from engine.explain.words import describe_change, describe_qualification, explain_filter, trigger_miss, when

__all__ = [
    "JSON_VERSION",
    "RESULTS",
    "BatchPersonDecision",
    "BatchRecord",
    "CampaignDecision",
    "ChangeRecord",
    "Clause",
    "Condition",
    "ExecutedDecision",
    "ExplainTracer",
    "Explanation",
    "FilterLine",
    "QualificationDecision",
    "RunRecord",
    "StepRecord",
    "TriggerInfo",
    "UnchangedEvent",
    "change_tree",
    "describe_change",
    "describe_qualification",
    "explain",
    "explain_filter",
    "render_text",
    "select_campaigns",
    "trigger_miss",
    "when",
]
