"""Rule coverage: the points of a rule set, and which of them replays hit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.testing.coverage import CoverageCollector, CoverageTracer, percent, rule_set_points, shown_percent
from engine.testing.events import added
from engine.testing.harness import CampaignRules, load_rules

ROUTER = """\
program "Q4 Webinar" {
    channel "Webinar"
}

campaign "Router" {
    trigger added to sfdc campaign "Q4 Webinar" with status "Attended"
    trigger status changed in program "Q4 Webinar" to "Attended"
    filter member of sfdc campaign "Leads" or not member of sfdc campaign in ("A", "B")
    filter not member of program "Q4 Webinar" with status "No Show"
    qualify every time
    flow {
        if member of sfdc campaign "VIP" {
            add to sfdc campaign "VIP Nurture" with status "Sent"
        } else if member of sfdc campaign "Customers" and member of sfdc campaign "Leads" {
            if member of sfdc campaign "Leads" {
                remove from sfdc campaign "Leads"
            }
        } else {
            wait 1 day
        }
        change program status in program "Q4 Webinar" to "Attended"
    }
}
"""

ANN = "ann@example.com"
CAMPAIGNS = ["Q4 Webinar", "Leads", "A", "B", "VIP", "VIP Nurture", "Customers"]


def world(**members: list[str]) -> dict[str, Any]:
    """ann in Salesforce; members: campaign (underscores for spaces) -> who is in it."""
    campaigns = []
    for name in CAMPAIGNS:
        entry: dict[str, Any] = {"name": name}
        if name == "Q4 Webinar":
            entry["statuses"] = ["Registered", "Attended"]
        entry["members"] = {email: "Sent" for email in members.get(name.replace(" ", "_"), [])}
        campaigns.append(entry)
    return {"persons": [{"email": ANN, "sfdc_id": "00Q000000000001AAA"}], "sfdc_campaigns": campaigns}


@pytest.fixture
def router(tmp_path: Path) -> tuple[CampaignRules, CoverageCollector]:
    path = tmp_path / "router.campaign"
    path.write_text(ROUTER, encoding="utf-8")
    rules = load_rules(path)
    collector = CoverageCollector()
    collector.add_rule_set(rules.rule_set)
    rules.tracing = collector
    return rules, collector


def hits(collector: CoverageCollector) -> dict[tuple[str, int, int, str], int]:
    return {(p.kind, p.line, p.column, p.facet): p.hits for p in collector.points.values()}


def test_the_points_of_a_rule_set(router: tuple[CampaignRules, CoverageCollector]) -> None:
    rules, _ = router
    points = [(p.kind, p.line, p.facet, p.text) for _, p in rule_set_points(rules.rule_set)]
    assert points == [
        ("trigger", 6, "", 'trigger added to sfdc campaign "Q4 Webinar" with status "Attended"'),
        ("trigger", 7, "", 'trigger status changed in program "Q4 Webinar" to "Attended"'),
        ("filter", 8, "true", 'filter clause `member of sfdc campaign "Leads"`'),
        ("filter", 8, "false", 'filter clause `member of sfdc campaign "Leads"`'),
        ("filter", 8, "true", 'filter clause `member of sfdc campaign in ("A", "B")`'),
        ("filter", 8, "false", 'filter clause `member of sfdc campaign in ("A", "B")`'),
        ("filter", 9, "true", 'filter clause `member of program "Q4 Webinar" with status "No Show"`'),
        ("filter", 9, "false", 'filter clause `member of program "Q4 Webinar" with status "No Show"`'),
        ("filter", 12, "true", 'condition `member of sfdc campaign "VIP"`'),
        ("filter", 12, "false", 'condition `member of sfdc campaign "VIP"`'),
        ("branch", 12, "0", 'branch 1 (if member of sfdc campaign "VIP") of the choice at line 12'),
        ("step", 13, "", 'add to sfdc campaign "VIP Nurture" with status "Sent"'),
        ("filter", 14, "true", 'condition `member of sfdc campaign "Customers"`'),
        ("filter", 14, "false", 'condition `member of sfdc campaign "Customers"`'),
        ("filter", 14, "true", 'condition `member of sfdc campaign "Leads"`'),
        ("filter", 14, "false", 'condition `member of sfdc campaign "Leads"`'),
        (
            "branch",
            14,
            "1",
            'branch 2 (else if member of sfdc campaign "Customers" and member of sfdc campaign '
            '"Leads") of the choice at line 12',
        ),
        ("filter", 15, "true", 'condition `member of sfdc campaign "Leads"`'),
        ("filter", 15, "false", 'condition `member of sfdc campaign "Leads"`'),
        ("branch", 15, "0", 'branch 1 (if member of sfdc campaign "Leads") of the choice at line 15'),
        ("step", 16, "", 'remove from sfdc campaign "Leads"'),
        # a choice without else: "no branch" is a point, at the choice's closing brace
        ("branch", 17, "none", "no branch (none applies; the choice at line 15 has no else)"),
        ("branch", 18, "2", "branch 3 (else) of the choice at line 12"),
        ("step", 19, "", "wait 1 day"),
        ("step", 21, "", 'change program status in program "Q4 Webinar" to "Attended"'),
    ]


def test_hits_of_one_replay(router: tuple[CampaignRules, CoverageCollector]) -> None:
    rules, collector = router
    rules.replay(world=world(Leads=[ANN], VIP=[ANN]), events=[added(ANN, "Q4 Webinar", "Attended")])
    seen = hits(collector)
    # the event fires line 6; the flow's program status change fires line 7 (qualify every time: a second run)
    assert seen[("trigger", 6, 5, "")] == 1
    assert seen[("trigger", 7, 5, "")] == 1
    # every clause of an evaluated filter line is evaluated, `or` or not
    assert (seen[("filter", 8, 12, "true")], seen[("filter", 8, 12, "false")]) == (2, 0)
    assert (seen[("filter", 8, 51, "true")], seen[("filter", 8, 51, "false")]) == (0, 2)
    assert seen[("filter", 9, 16, "false")] == 2
    assert seen[("branch", 12, 9, "0")] == 2
    assert seen[("step", 13, 13, "")] == 2
    assert seen[("step", 21, 9, "")] == 2
    # conditions after the branch taken are not evaluated, so not seen
    assert seen[("filter", 14, 19, "true")] + seen[("filter", 14, 19, "false")] == 0
    assert (collector.covered, collector.total) == (9, 25)


def test_a_filter_line_that_fails_stops_the_next_ones(router: tuple[CampaignRules, CoverageCollector]) -> None:
    rules, collector = router
    rules.replay(world=world(A=[ANN]), events=[added(ANN, "Q4 Webinar", "Attended")])
    seen = hits(collector)
    assert seen[("filter", 8, 12, "false")] == 1
    assert seen[("filter", 8, 51, "true")] == 1
    assert seen[("filter", 9, 16, "true")] + seen[("filter", 9, 16, "false")] == 0  # line 8 was false
    assert seen[("branch", 12, 9, "0")] == 0


def test_branches_and_no_branch(router: tuple[CampaignRules, CoverageCollector]) -> None:
    rules, collector = router
    rules.replay(world=world(Leads=[ANN], Customers=[ANN]), events=[added(ANN, "Q4 Webinar", "Attended")])
    rules.replay(world=world(Leads=[ANN]), events=[added(ANN, "Q4 Webinar", "Attended")], until="2026-01-03T00:00:00Z")
    seen = hits(collector)
    assert seen[("branch", 14, 11, "1")] >= 1
    assert seen[("branch", 15, 13, "0")] >= 1
    assert seen[("step", 16, 17, "")] >= 1
    assert seen[("branch", 18, 11, "2")] >= 1
    assert seen[("step", 19, 13, "")] >= 1


def test_report_and_table(router: tuple[CampaignRules, CoverageCollector], tmp_path: Path) -> None:
    rules, collector = router
    rules.replay(world=world(Leads=[ANN], VIP=[ANN]), events=[added(ANN, "Q4 Webinar", "Attended")])
    report = collector.report(tmp_path)
    assert report["total"] == {"items": 25, "covered": 9, "percent": 36.0}
    entry = report["files"]["router.campaign"]
    assert (entry["items"], entry["covered"]) == (25, 9)
    assert entry["points"][0] == {
        "kind": "trigger",
        "line": 6,
        "column": 5,
        "campaign": "Router",
        "text": 'trigger added to sfdc campaign "Q4 Webinar" with status "Attended"',
        "hits": 1,
    }
    no_branch = next(p for p in entry["points"] if p["kind"] == "branch" and p["branch"] is None)
    assert (no_branch["line"], no_branch["hits"]) == (17, 0)
    table = collector.table(tmp_path)
    assert table[:4] == [
        "rule file         items  covered   cover",
        "router.campaign      25        9     36%",
        "----------------------------------------",
        "TOTAL                25        9     36%",
    ]
    tag = '  [campaign "Router"]'
    assert (
        "  router.campaign:17: no branch (none applies; the choice at line 15 has no else) never taken" + tag in table
    )
    assert '  router.campaign:8: filter clause `member of sfdc campaign "Leads"` never false' + tag in table
    assert '  router.campaign:19: step never executed: wait 1 day  [campaign "Router"]' in table


def test_without_the_interpreter_single_clauses_still_count(router: tuple[CampaignRules, CoverageCollector]) -> None:
    """Outside an interpreter (no store to evaluate clauses on), a line of one clause counts from its value."""
    rules, collector = router
    campaign = rules.rule_set.campaigns[0]
    tracer = CoverageTracer(collector)
    change = SimpleNamespace(person=SimpleNamespace(id=1))
    tracer.event("filter", change=change, campaign=campaign, expr=campaign.filters[1], value=True)  # not member of
    tracer.event("filter", change=change, campaign=campaign, expr=campaign.filters[0], value=True)  # an `or`: skipped
    seen = hits(collector)
    assert seen[("filter", 9, 16, "false")] == 1
    assert sum(n for (kind, line, _, _), n in seen.items() if kind == "filter" and line == 8) == 0


def test_the_same_file_loaded_twice_is_counted_once(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "router.campaign").write_text(ROUTER, encoding="utf-8")
    collector = CoverageCollector()
    collector.add_rule_set(load_rules(tmp_path / "rules").rule_set)
    collector.add_rule_set(load_rules(tmp_path / "rules" / "router.campaign").rule_set)
    assert collector.total == 25
    assert [f.file for f in collector.files(tmp_path)] == ["rules/router.campaign"]


def test_percentages() -> None:
    assert percent(0, 0) == 100.0
    assert shown_percent(percent(199, 200)) == "99%"
    assert shown_percent(percent(1, 3)) == "33%"
    assert shown_percent(100.0) == "100%"
    assert CoverageCollector().table() == [
        "no rule sets were loaded through the campaign_rules fixture: nothing to cover"
    ]
