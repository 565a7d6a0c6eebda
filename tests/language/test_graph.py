"""`smartcampaign graph`: nodes and edges by kind, cycles as `check` reports them, neighbourhoods, the formats."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli
from engine.language.graph import build_graph, to_dot, to_mermaid
from engine.language.loader import load_rule_set

ROOT = Path(__file__).resolve().parents[2]

RULES = """campaign "Ping" {
    trigger added to sfdc campaign "Nurture"
    flow { remove from sfdc campaign "Nurture" }
}

campaign "Pong" {
    trigger removed from sfdc campaign "Nurture"
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}

campaign "Webinar follow-up" {
    trigger status changed in sfdc campaign "Q4 Webinar" to "Attended"
    trigger added to sfdc campaign in ("Event A", "Event B")
    flow {
        if member of sfdc campaign "Customers" {
            change status in sfdc campaign "Customers" to "Responded"
        } else {
            change program status in program "Nurture Program" to "Engaged"
        }
    }
}

campaign "Engaged people" {
    trigger status changed in program "Nurture Program" to "Engaged"
    flow { add to sfdc campaign "Sales" with status "Sent" }
}

campaign "Dormant" {
    inactive
    trigger added to sfdc campaign "Sales"
    flow { add to sfdc campaign "Archive" with status "Sent" }
}

channel "Nurture Channel" {
    status "Member" step 10
    status "Engaged" step 20 success
}

program "Nurture Program" {
    channel "Nurture Channel"
    sync with sfdc campaign "Nurture Sync"
}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "all.campaign").write_text(RULES, encoding="utf-8")
    return folder


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def edges(graph_json: dict[str, object]) -> set[tuple[str, str, str]]:
    return {(e["from"], e["to"], e["kind"]) for e in graph_json["edges"]}  # type: ignore[attr-defined,index]


def test_nodes_and_edges_by_kind(rules: Path) -> None:
    loaded = load_rule_set([rules])
    assert loaded.ok, loaded.errors
    data = build_graph(loaded.rule_set).to_json()
    kinds = {n["id"]: n["kind"] for n in data["nodes"]}
    assert kinds["campaign:Ping"] == "campaign"
    assert kinds["sfdc_campaign:Nurture"] == "sfdc_campaign"
    assert kinds["program:Nurture Program"] == "program"
    found = edges(data)
    # triggers: SFDC campaign (each listed one) or program -> smart campaign
    assert ("sfdc_campaign:Q4 Webinar", "campaign:Webinar follow-up", "trigger") in found
    assert ("sfdc_campaign:Event A", "campaign:Webinar follow-up", "trigger") in found
    assert ("sfdc_campaign:Event B", "campaign:Webinar follow-up", "trigger") in found
    assert ("program:Nurture Program", "campaign:Engaged people", "trigger") in found
    # actions, inside choices too
    assert ("campaign:Ping", "sfdc_campaign:Nurture", "remove") in found
    assert ("campaign:Pong", "sfdc_campaign:Nurture", "add") in found
    assert ("campaign:Webinar follow-up", "sfdc_campaign:Customers", "change_status") in found
    assert ("campaign:Webinar follow-up", "program:Nurture Program", "change_program_status") in found
    # program sync
    assert ("program:Nurture Program", "sfdc_campaign:Nurture Sync", "sync") in found
    # campaigns that can fire each other (a filter is not an edge)
    assert ("campaign:Webinar follow-up", "campaign:Engaged people", "cascade") in found
    assert ("campaign:Engaged people", "campaign:Dormant", "cascade") in found
    assert not any(target == "sfdc_campaign:Customers" and kind == "trigger" for _, target, kind in found)
    labels = {(e["from"], e["to"]): e["label"] for e in data["edges"]}
    assert labels[("sfdc_campaign:Q4 Webinar", "campaign:Webinar follow-up")] == 'status changed to "Attended"'
    assert labels[("campaign:Pong", "sfdc_campaign:Nurture")] == 'add with status "Sent"'
    dormant = next(n for n in data["nodes"] if n["id"] == "campaign:Dormant")
    assert dormant["active"] is False and dormant["line"] == 28


def test_cycles_are_the_ones_check_reports(rules: Path) -> None:
    loaded = load_rule_set([rules])
    warnings = [d.message for d in loaded.diagnostics if d.code == "campaign-cycle"]
    assert warnings == ['campaigns can trigger each other in a cycle: "Ping" -> "Pong" -> "Ping"']
    data = build_graph(loaded.rule_set).to_json()
    assert data["cycles"] == [["Ping", "Pong"]]
    cyclic = {(e["from"], e["to"]) for e in data["edges"] if e["cycle"]}
    assert cyclic == {("campaign:Ping", "campaign:Pong"), ("campaign:Pong", "campaign:Ping")}
    in_cycle = {n["name"] for n in data["nodes"] if n.get("in_cycle")}
    assert in_cycle == {"Ping", "Pong"}


def test_mermaid_is_the_default(rules: Path) -> None:
    result = run("graph", str(rules))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    ids = dict(re.findall(r'^\s+(n\d+)[\[\{(]+"([^"]+)"', result.stdout, flags=re.M))
    by_label = {label: node for node, label in ids.items()}
    assert "SFDC: Nurture" in by_label and "Program: Nurture Program" in by_label
    assert "Dormant (inactive)" in by_label
    ping, pong = by_label["Ping"], by_label["Pong"]
    assert f'    {ping} ==>|"can trigger (cycle)"| {pong}' in lines
    assert f'    {pong} ==>|"can trigger (cycle)"| {ping}' in lines
    assert (
        f'    {by_label["SFDC: Q4 Webinar"]} -->|"status changed to #quot;Attended#quot;"| '
        + by_label["Webinar follow-up"]
        in lines
    )
    assert any(line.startswith("    linkStyle ") and "#c62828" in line for line in lines)
    assert f"    class {ping},{pong} cycle" in lines


def test_mermaid_text_is_escaped(tmp_path: Path) -> None:
    rules = tmp_path / "odd.campaign"
    rules.write_text(
        'campaign "A \\"q\\" | <b> #1; (x)" {\n    trigger added to sfdc campaign "In | #2"\n'
        '    flow { add to sfdc campaign "Out" with status "S|t" }\n}\n',
        encoding="utf-8",
    )
    result = run("graph", str(rules))
    assert result.exit_code == 0, result.output
    assert '    n0["A #quot;q#quot; #124; #lt;b#gt; #35;1; (x)"]' in result.stdout
    assert '    n1[("SFDC: In #124; #35;2")]' in result.stdout
    assert '    n0 -->|"add with status #quot;S#124;t#quot;"| n2' in result.stdout


def test_json_format(rules: Path) -> None:
    result = run("graph", str(rules), "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {"nodes", "edges", "cycles"} <= set(data)
    assert len([n for n in data["nodes"] if n["kind"] == "campaign"]) == 5


def test_dot_format(rules: Path) -> None:
    result = run("graph", str(rules), "--format", "dot")
    assert result.exit_code == 0
    assert result.stdout.startswith('digraph "smartcampaign" {\n    rankdir=LR;')
    assert '"campaign:Ping" -> "campaign:Pong" [label="can trigger (cycle)", style=dashed, color="#c62828"' in (
        result.stdout
    )
    assert '"sfdc_campaign:Q4 Webinar" -> "campaign:Webinar follow-up" [label="status changed to \\"Attended\\""]' in (
        result.stdout
    )


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_dot_output_is_valid_graphviz(rules: Path) -> None:
    result = run("graph", str(rules), "--format", "dot")
    svg = subprocess.run(["dot", "-Tsvg"], input=result.stdout, capture_output=True, text=True, check=True).stdout
    assert "<svg" in svg and "Webinar follow&#45;up" in svg


def test_neighbourhood_of_one_campaign(rules: Path) -> None:
    result = run("graph", str(rules), "--format", "json", "--campaign", "Engaged people")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = {n["id"] for n in data["nodes"]}
    assert names == {
        "campaign:Engaged people",
        "program:Nurture Program",
        "sfdc_campaign:Sales",
        "campaign:Webinar follow-up",
        "campaign:Dormant",
    }
    # edges between neighbours are kept (who acts on the program that triggers this campaign)
    assert ("campaign:Webinar follow-up", "program:Nurture Program", "change_program_status") in edges(data)
    assert data["cycles"] == []
    ping = json.loads(run("graph", str(rules), "--format", "json", "--campaign", "Ping").stdout)
    assert ping["cycles"] == [["Ping", "Pong"]]


def test_unknown_campaign_is_a_usage_error(rules: Path) -> None:
    result = run("graph", str(rules), "--campaign", "Engaged peple")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert 'no smart campaign named "Engaged peple" in the rule set; did you mean "Engaged people"?' in result.stderr


def test_rule_errors_are_reported_as_check_does(tmp_path: Path) -> None:
    bad = tmp_path / "bad.campaign"
    bad.write_text('campaign "Typo" {\n    trigger aded to sfdc campaign "Webinar"\n}\n', encoding="utf-8")
    result = run("graph", str(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"{bad}:2:13: error:" in result.stderr
    assert "1 error: fix the rule files to draw the graph" in result.stderr


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run("graph", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "no such file or directory" in result.stderr and "Traceback" not in result.output


def test_help_has_examples() -> None:
    result = run("graph", "--help")
    assert result.exit_code == 0
    assert "smartcampaign graph rules/ --format dot | dot -Tsvg" in result.stdout


def test_installed_command_on_an_example() -> None:
    exe = Path(sys.executable).parent / "smartcampaign"
    done = subprocess.run(
        [str(exe), "graph", str(ROOT / "examples" / "webinar-follow-up" / "rules")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flowchart LR\n")
    assert "Program: 2026 Q4 Webinar" in done.stdout


CALLS = """campaign "Caller" {
    trigger added to sfdc campaign "W"
    flow {
        request campaign "Kit"
        if member of sfdc campaign "X" { execute campaign "Score" }
        request campaign "Nowhere"
    }
}

campaign "Kit" {
    trigger campaign is requested
    flow { request campaign "Caller again" }
}

campaign "Caller again" {
    trigger campaign is requested
    flow { request campaign "Kit" }
}

campaign "Score" {
    trigger campaign is requested
    flow { add to sfdc campaign "Scored" with status "Sent" }
}
"""


def test_request_and_execute_edges() -> None:
    from engine.language.loader import assemble
    from engine.language.parser import parse_text

    rule_set = assemble([parse_text(CALLS, "calls.campaign", use_cache=False).file])
    graph = build_graph(rule_set)
    data = graph.to_json()
    found = edges(data)
    assert ("campaign:Caller", "campaign:Kit", "request") in found
    assert ("campaign:Caller", "campaign:Score", "execute") in found  # inside a choice too
    assert not any(target == "campaign:Nowhere" for _, target, _ in found)  # unknown names: no node
    assert not any(kind == "cascade" and source == "campaign:Caller" for source, _, kind in found)
    # a loop through requests is a cycle, as `check` warns
    assert data["cycles"] == [["Kit", "Caller again"]]
    labels = {(e["from"], e["to"], e["kind"]): (e["label"], e["cycle"]) for e in data["edges"]}
    assert labels[("campaign:Kit", "campaign:Caller again", "request")] == ("request (cycle)", True)
    assert labels[("campaign:Caller", "campaign:Kit", "request")] == ("request", False)
    mermaid = to_mermaid(graph)
    assert '-.->|"request"|' in mermaid and '-->|"execute"|' in mermaid
    dot = to_dot(graph)
    assert 'label="execute", style=bold' in dot and 'label="request", style=dashed' in dot
