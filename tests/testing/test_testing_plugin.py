"""The plugin end to end, as a rule author uses it: pytest runs in a subprocess, the plugin found by entry point."""

from __future__ import annotations

import json

import pytest
from testing_helpers import CampaignProject


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def assert_lines(result: pytest.RunResult, *expected: str) -> None:
    """Each expected text appears in a line of the output, in this order (plain text: no glob, `[` is literal)."""
    lines = result.outlines
    position = 0
    for text in expected:
        for index in range(position, len(lines)):
            if text in lines[index]:
                position = index + 1
                break
        else:
            raise AssertionError(f"not found in order: {text!r}\n--- output ---\n" + "\n".join(lines))


def test_snapshot_update_then_the_snapshot_passes(pytester: pytest.Pytester, campaign_project: CampaignProject) -> None:
    first = run(pytester, "--snapshot-update")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*1 snapshot generated*"])
    stored = campaign_project.snapshot_file()
    # readable text, not a nested dict: runs and steps in order, memberships as a diff
    assert "# name: test_attendees_are_nurtured" in stored
    assert '    1. "Webinar follow-up" for ann@example.com at 2026-11-03T09:00:00Z' in stored
    assert '       - add to sfdc campaign "Nurture 2026" with status "Sent": done (added)' in stored
    assert "       at 2026-11-05T09:00:00Z:" in stored
    assert '      ~ ann@example.com "Registered" -> "Attended"' in stored
    assert '      + ann@example.com "Responded"' in stored

    second = run(pytester)
    second.assert_outcomes(passed=1)
    second.stdout.fnmatch_lines(["*1 snapshot passed*"])
    assert campaign_project.snapshot_file() == stored


def test_a_changed_rule_fails_with_a_readable_diff(
    pytester: pytest.Pytester, campaign_project: CampaignProject
) -> None:
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    campaign_project.edit_rules('"Nurture 2026" with status "Sent"', '"Nurture 2026" with status "Responded"')

    result = run(pytester, "-vv")
    result.assert_outcomes(failed=1)
    assert_lines(
        result,
        "assert [+ received] == [- snapshot]",
        '-      - add to sfdc campaign "Nurture 2026" with status "Sent": done (added)',
        '+      - add to sfdc campaign "Nurture 2026" with status "Responded": done (added)',
        '-      - change status in sfdc campaign "Nurture 2026" to "Responded": done (status "Sent" -> "Responded")',
        '+      - change status in sfdc campaign "Nurture 2026" to "Responded": skipped (already has status '
        '"Responded")',
    )
    assert "Traceback" not in result.stdout.str()

    # accepting the change rewrites the snapshot, which the next run passes
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)
    run(pytester).assert_outcomes(passed=1)


def test_coverage_lists_the_uncovered_branch_and_fail_under_fails(
    pytester: pytest.Pytester, campaign_project: CampaignProject
) -> None:
    run(pytester, "--snapshot-update").assert_outcomes(passed=1)

    result = run(pytester, "--campaign-coverage=coverage.json", "--campaign-coverage-fail-under=90")
    result.assert_outcomes(passed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*- campaign rule coverage -*",
            "rule file*items*covered*cover",
            "rules/webinar.campaign*11*7*63%",
            "TOTAL*11*7*63%",
        ]
    )
    assert_lines(
        result,
        "not covered:",
        '  rules/webinar.campaign:3: filter clause `member of sfdc campaign "Do Not Contact"` never true  [campaign '
        '"Webinar follow-up"]',
        '  rules/webinar.campaign:6: branch 1 (if member of sfdc campaign "Customers") of the choice at line 6'
        " never taken",
        '  rules/webinar.campaign:6: condition `member of sfdc campaign "Customers"` never true',
        '  rules/webinar.campaign:7: step never executed: add to sfdc campaign "Customer Check-in" with status "Sent"',
        "JSON report written to ",
        "FAIL Required campaign rule coverage of 90% not reached. Total coverage: 63.64%",
    )
    report = json.loads((pytester.path / "coverage.json").read_text(encoding="utf-8"))
    assert report["total"] == {"items": 11, "covered": 7, "percent": 63.64}
    points = report["files"]["rules/webinar.campaign"]["points"]
    branch = next(p for p in points if p["kind"] == "branch" and p["branch"] == 0)
    assert (branch["line"], branch["hits"]) == (6, 0)

    # below the threshold only: 50% passes
    passing = run(pytester, "--campaign-coverage-fail-under=50")
    assert passing.ret == 0
    passing.stdout.fnmatch_lines(["Required campaign rule coverage of 50% reached. Total coverage: 63.64%"])


def test_a_test_path_after_the_option_is_not_taken_for_the_report(
    pytester: pytest.Pytester, campaign_project: CampaignProject
) -> None:
    before = (pytester.path / "test_webinar.py").read_text(encoding="utf-8")
    for target in ("test_webinar.py", "rules", "test_webinar.py::test_attendees_are_nurtured"):
        result = run(pytester, "--campaign-coverage", target)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        assert f"--campaign-coverage: {target!r} does not look like the JSON report's file" in result.stderr.str()
    assert (pytester.path / "test_webinar.py").read_text(encoding="utf-8") == before
    # after the test paths, the bare option is fine
    result = run(pytester, "--snapshot-update", "test_webinar.py", "--campaign-coverage")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*- campaign rule coverage -*"])


def test_a_second_test_covers_the_branch(pytester: pytest.Pytester, campaign_project: CampaignProject) -> None:
    pytester.makepyfile(
        test_customers="""
        from engine.testing.events import added, status_changed
        from engine.testing.world import campaign, person, world

        def test_customers_get_a_check_in(campaign_rules):
            start = world(
                persons=[person("cus@example.com", sfdc_id="00Q000000000009AAA"), person("dnc@example.com")],
                campaigns=[
                    campaign("Q4 Webinar", statuses=["Registered", "Attended"],
                             members={"cus@example.com": "Registered", "dnc@example.com": "Registered"}),
                    campaign("Nurture 2026"),
                    campaign("Customers", members={"cus@example.com": "Sent"}),
                    campaign("Customer Check-in"),
                    campaign("Do Not Contact", members={"dnc@example.com": "Sent"}),
                ],
            )
            result = campaign_rules("rules/webinar.campaign").replay(world=start, events=[
                status_changed("cus@example.com", "Q4 Webinar", "Attended"),
                status_changed("dnc@example.com", "Q4 Webinar", "Attended"),
            ])
            assert result.members("Customer Check-in") == {"cus@example.com": "Sent"}
            assert [run["person"] for run in result.runs] == ["cus@example.com"]
        """
    )
    result = run(pytester, "--snapshot-update", "--campaign-coverage", "--campaign-coverage-fail-under=100")
    result.assert_outcomes(passed=2)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["rules/webinar.campaign*11*11*100%", "Required campaign rule coverage of 100% reached*"]
    )
    assert "not covered:" not in result.stdout.str()


def test_bad_event_dict_fails_naming_the_event_and_the_field(
    pytester: pytest.Pytester, campaign_project: CampaignProject
) -> None:
    pytester.makepyfile(
        test_bad="""
        def test_missing_status(campaign_rules):
            campaign_rules("rules/").replay(world="world.json", events=[
                {"type": "status_changed_in_sfdc_campaign", "person": "ann@example.com",
                 "campaign": "Q4 Webinar", "status": "Attended"},
                {"type": "status_changed_in_sfdc_campaign", "person": "ann@example.com", "campaign": "Q4 Webinar"},
            ])

        def test_typo_in_a_campaign_name(campaign_rules):
            campaign_rules("rules/").replay(world="world.json", events=[
                {"type": "added_to_sfdc_campaign", "person": "ann@example.com",
                 "campaign": "Q4 Webinr", "status": "Attended"},
            ])

        def test_unknown_field(campaign_rules):
            campaign_rules("rules/").replay(events=[{"type": "removed_from_sfdc_campaign",
                                                     "person": "ann@example.com", "campaing": "Q4 Webinar"}])

        def test_bad_world(campaign_rules):
            campaign_rules("rules/").replay(world={"persons": [{"email": "ann"}]})
        """
    )
    result = run(pytester, "test_bad.py")
    result.assert_outcomes(failed=4)
    assert_lines(
        result,
        "unusable replay input: events[1]: status: the member status is required",
        'unusable replay input: events[0]: campaign: no SFDC campaign "Q4 Webinr" in the world (known: Customer '
        "Check-in, Customers, Do Not Contact, Nurture 2026, Q4 Webinar)",
        "unusable replay input: events[0]: campaing: unknown field",
        "unusable replay input: world: persons[0].email: an email address (name@domain)",
    )
    assert "Traceback" not in result.stdout.str()
    assert "During handling" not in result.stdout.str()
    assert "harness.py" not in result.stdout.str()


def test_rule_errors_fail_with_the_diagnostics(pytester: pytest.Pytester, campaign_project: CampaignProject) -> None:
    campaign_project.edit_rules('trigger status changed in sfdc campaign "Q4 Webinar"', "trigger status chnged in")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*campaign_rules: the rule set rules/ has errors:", "*webinar.campaign:2:*: error: *", "*^*"]
    )


def test_events_file_relative_to_the_test_file(pytester: pytest.Pytester, campaign_project: CampaignProject) -> None:
    sub = pytester.mkpydir("sub")
    (sub / "events.jsonl").write_text(
        "# comments and blank lines are skipped\n\n"
        '{"type": "status_changed_in_sfdc_campaign", "person": "ann@example.com", "campaign": "Q4 Webinar", '
        '"status": "Attended", "at": "2026-11-03T09:00:00Z"}\n'
        '{"type": "status_changed_in_sfdc_campaign", "person": "bob@example.com", "campaign": "Q4 Webinar", '
        '"status": "Attended", "at": "2026-11-02T09:00:00Z"}\n'
        '{"type": "status_changed_in_sfdc_campaign", "person": "bob@example.com", "campaign": "Q4 Webinr", '
        '"status": "Attended"}\n',
        encoding="utf-8",
    )
    (sub / "test_sub.py").write_text(
        "import pytest\n"
        "\n"
        "def test_from_files(campaign_rules):\n"
        '    rules = campaign_rules("../rules")\n'
        "    with pytest.raises(pytest.fail.Exception, match=r'events.jsonl:5: campaign: no SFDC campaign'):\n"
        '        rules.replay(world="../world.json", events="events.jsonl")\n'
        "\n"
        "def test_until(campaign_rules):\n"
        '    rules = campaign_rules("../rules")\n'
        '    events = [{"type": "status_changed_in_sfdc_campaign", "person": "ann@example.com",\n'
        '               "campaign": "Q4 Webinar", "status": "Attended", "at": "2026-11-03T09:00:00Z"}]\n'
        '    result = rules.replay(world="../world.json", events=events, until="2026-11-04T00:00:00Z")\n'
        '    assert result.members("Nurture 2026") == {"ann@example.com": "Sent"}\n'
        '    assert result.world["now"] == "2026-11-04T00:00:00Z"\n',
        encoding="utf-8",
    )
    run(pytester, "sub").assert_outcomes(passed=2)
