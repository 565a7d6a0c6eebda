"""The snapshot format: replay results as readable, stable text, and the syrupy serializer that stores it."""

from __future__ import annotations

import textwrap
from typing import Any

from syrupy.extensions.amber import AmberSnapshotExtension
from syrupy.extensions.amber.serializer import AmberDataSerializer

from engine.testing.harness import ReplayResult
from engine.testing.render import render_result, render_step, render_trigger
from engine.testing.serializer import CampaignDataSerializer, CampaignSnapshotExtension

ANN = "ann@example.com"

BEFORE: dict[str, Any] = {
    "now": "2026-11-01T00:00:00Z",
    "persons": [
        {"email": "ann@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
        {"email": "Eve@example.com", "first_name": "Eve"},
    ],
    "sfdc_campaigns": [
        {
            "name": "Q4 Webinar",
            "id": "701000000000001AAA",
            "statuses": ["Registered", "Attended"],
            "members": {"ann@example.com": "Registered", "bob@example.com": "Registered"},
        },
        {"name": "Nurture 2026", "id": "701000000000002AAA", "statuses": ["Sent", "Responded"], "members": {}},
        {"name": "Untouched", "id": "701000000000003AAA", "statuses": ["Sent"], "members": {"ann@example.com": "Sent"}},
    ],
    "programs": {"Q4 Webinar": {"ann@example.com": "Registered"}},
}

AFTER: dict[str, Any] = {
    "now": "2026-11-05T09:00:00Z",
    "persons": [
        {"email": "ann@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
        {"email": "bob@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000002AAA"},
        {"email": "eve@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000003AAA", "first_name": "Eve"},
    ],
    "sfdc_campaigns": [
        {
            "name": "Q4 Webinar",
            "id": "701000000000001AAA",
            "statuses": ["Registered", "Attended"],
            "members": {"ann@example.com": "Attended", "eve@example.com": "Registered"},
            "type": "Webinar",
            "actual_cost": 3800,
        },
        {
            "name": "Nurture 2026",
            "id": "701000000000002AAA",
            "statuses": ["Sent", "Responded"],
            "members": {"ann@example.com": "Responded"},
        },
        {"name": "Untouched", "id": "701000000000003AAA", "statuses": ["Sent"], "members": {"ann@example.com": "Sent"}},
    ],
    "programs": {"Q4 Webinar": {"ann@example.com": "Attended", "eve@example.com": "Registered"}},
}

RUNS: list[dict[str, Any]] = [
    {
        "campaign": "Webinar follow-up",
        "person": "ann@example.com",
        "trigger": {
            "type": "status_changed_in_sfdc_campaign",
            "campaign": "Q4 Webinar",
            "previous_status": "Registered",
            "status": "Attended",
            "origin": "event",
        },
        "at": "2026-11-03T09:00:00Z",
        "steps": [
            {
                "action": "add_to_sfdc_campaign",
                "campaign": "Nurture 2026",
                "status": "Sent",
                "outcome": "done",
                "detail": "added",
                "at": "2026-11-03T09:00:00Z",
            },
            {"action": "choice", "outcome": "done", "detail": "else", "branch": 2, "at": "2026-11-03T09:00:00Z"},
            {"action": "wait", "outcome": "done", "detail": "until 2026-11-05T09:00:00Z", "at": "2026-11-03T09:00:00Z"},
            {
                "action": "change_status_in_sfdc_campaign",
                "campaign": "Nurture 2026",
                "status": "Responded",
                "outcome": "done",
                "detail": 'status "Sent" -> "Responded"',
                "at": "2026-11-05T09:00:00Z",
            },
            {
                "action": "remove_from_sfdc_campaign",
                "campaign": "Q4 Webinar",
                "outcome": "skipped",
                "detail": "not a member",
                "at": "2026-11-05T09:00:00Z",
            },
        ],
    },
    {
        "campaign": "Registrants",
        "person": "eve@example.com",
        "trigger": {
            "type": "program_status_changed",
            "program": "Q4 Webinar",
            "previous_status": None,
            "status": "Registered",
            "origin": "event",
        },
        "at": "2026-11-04T10:00:00Z",
        "steps": [
            {
                "action": "choice",
                "outcome": "skipped",
                "detail": "no branch applies",
                "branch": None,
                "at": "2026-11-04T10:00:00Z",
            },
            {
                "action": "change_program_status",
                "program": "Q4 Webinar",
                "status": "Invited",
                "outcome": "skipped",
                "detail": 'a flow may not move "Registered" back to "Invited"',
                "at": "2026-11-04T10:00:00Z",
            },
        ],
    },
]

ERRORS = [
    {
        "message": 'cascade deeper than 10: A -> B -> ... (the triggers of "A" were not run)',
        "at": "2026-11-04T10:00:00Z",
    }
]

WAITING = [{"campaign": "Webinar follow-up", "person": ANN, "due": "2026-11-07T09:00:00Z", "run": 1}]

EXPECTED = """\
clock: 2026-11-01T00:00:00Z -> 2026-11-05T09:00:00Z
runs:
  1. "Webinar follow-up" for ann@example.com at 2026-11-03T09:00:00Z
     trigger: status changed in sfdc campaign "Q4 Webinar" from "Registered" to "Attended" (event)
     - add to sfdc campaign "Nurture 2026" with status "Sent": done (added)
     - choice: done (else) -> branch 2
     - wait: done (until 2026-11-05T09:00:00Z)
     at 2026-11-05T09:00:00Z:
     - change status in sfdc campaign "Nurture 2026" to "Responded": done (status "Sent" -> "Responded")
     - remove from sfdc campaign "Q4 Webinar": skipped (not a member)
  2. "Registrants" for eve@example.com at 2026-11-04T10:00:00Z
     trigger: status changed in program "Q4 Webinar" from "Not in Program" to "Registered" (event)
     - choice: skipped (no branch applies)
     - change program status in program "Q4 Webinar" to "Invited": skipped (a flow may not move "Registered" \
back to "Invited")
memberships:
  "Nurture 2026":
    + ann@example.com "Responded"
  "Q4 Webinar":
    ~ ann@example.com "Registered" -> "Attended"
    - bob@example.com (was "Registered")
    + eve@example.com "Registered"
programs:
  "Q4 Webinar":
    ~ ann@example.com "Registered" -> "Attended"
    + eve@example.com "Registered"
persons:
  + bob@example.com: Lead 00Q000000000002AAA
  ~ eve@example.com: not in Salesforce -> Lead 00Q000000000003AAA
campaigns:
  ~ "Q4 Webinar": type (none) -> "Webinar"; actual_cost (none) -> 3800
waiting:
  - run 1 "Webinar follow-up" for ann@example.com: due 2026-11-07T09:00:00Z
errors:
  - 2026-11-04T10:00:00Z: cascade deeper than 10: A -> B -> ... (the triggers of "A" were not run)
warnings:
  - events[3]: warning: at 2026-11-02T00:00:00Z is earlier than the clock"""


def result() -> ReplayResult:
    return ReplayResult(
        {"runs": RUNS, "world": AFTER, "errors": ERRORS, "waiting": WAITING},
        initial_world=BEFORE,
        warnings=["events[3]: warning: at 2026-11-02T00:00:00Z is earlier than the clock"],
    )


def test_the_whole_format() -> None:
    assert result().render() == EXPECTED


def test_an_uneventful_replay() -> None:
    quiet = ReplayResult({"runs": [], "world": BEFORE, "errors": []}, initial_world=BEFORE)
    assert quiet.render() == textwrap.dedent(
        """\
        clock: 2026-11-01T00:00:00Z
        runs: (none)
        memberships: (no changes)
        errors: (none)"""
    )


def test_without_a_starting_world_everything_is_new() -> None:
    text = render_result({"runs": [], "world": AFTER, "errors": []})
    assert "clock: (none) -> 2026-11-05T09:00:00Z" in text
    assert '    + ann@example.com "Attended"' in text
    assert "  + ann@example.com: Lead 00Q000000000001AAA" in text


def test_the_same_result_renders_the_same_text() -> None:
    assert result().render() == result().render()
    # member order in the world does not matter: members are shown by email, campaigns by name
    shuffled = dict(AFTER, sfdc_campaigns=list(reversed(AFTER["sfdc_campaigns"])))
    again = ReplayResult({"runs": RUNS, "world": shuffled, "errors": ERRORS, "waiting": WAITING}, initial_world=BEFORE)
    assert again.render() == EXPECTED.split("\nwarnings:")[0]


def test_trigger_and_step_wording() -> None:
    assert (
        render_trigger(
            {
                "type": "added_to_sfdc_campaign",
                "campaign": "C",
                "previous_status": None,
                "status": "Sent",
                "origin": "flow",
            }
        )
        == 'added to sfdc campaign "C" with status "Sent" (flow)'
    )
    assert (
        render_trigger(
            {
                "type": "removed_from_sfdc_campaign",
                "campaign": "C",
                "previous_status": "Sent",
                "status": None,
                "origin": "program_sync",
            }
        )
        == 'removed from sfdc campaign "C" (was "Sent") (program sync)'
    )
    assert (
        render_trigger(
            {
                "type": "program_status_changed",
                "program": "P",
                "previous_status": "Registered",
                "status": None,
                "origin": "flow",
            }
        )
        == 'status changed in program "P" from "Registered" to "Not in Program" (flow)'
    )
    assert render_step(
        {
            "action": "add_to_sfdc_campaign",
            "campaign": 'Say "hi"',
            "status": "Sent",
            "outcome": "error",
            "detail": "unknown",
        }
    ) == ('add to sfdc campaign "Say \\"hi\\"" with status "Sent": error (unknown)')
    # a field the engine may add later is shown, not dropped
    assert render_step({"action": "wait", "outcome": "done", "detail": "until X", "note": "n"}) == (
        'wait: done (until X) [note="n"]'
    )


def test_replay_result_is_the_replay_dict() -> None:
    value = result()
    assert isinstance(value, dict)
    assert value == {"runs": RUNS, "world": AFTER, "errors": ERRORS, "waiting": WAITING}
    assert value["runs"] is value.runs and value.world is AFTER and value.errors == ERRORS
    assert value.members("Q4 Webinar") == {"ann@example.com": "Attended", "eve@example.com": "Registered"}
    assert value.members("No such campaign") == {}
    assert value.program_members("Q4 Webinar")["eve@example.com"] == "Registered"
    assert [run["person"] for run in value.runs_of("Registrants")] == ["eve@example.com"]
    assert value.to_dict() == dict(value) and type(value.to_dict()) is dict


def test_the_serializer_stores_the_text() -> None:
    assert CampaignDataSerializer.serialize(result()) == EXPECTED
    assert CampaignSnapshotExtension().serialize(result()) == EXPECTED


def test_inside_other_data_the_text_is_a_multiline_string() -> None:
    quiet = ReplayResult({"runs": [], "world": BEFORE, "errors": []}, initial_world=BEFORE)
    assert CampaignDataSerializer.serialize({"first": quiet}) == textwrap.dedent(
        """\
        dict({
          'first': '''
            clock: 2026-11-01T00:00:00Z
            runs: (none)
            memberships: (no changes)
            errors: (none)
          ''',
        })"""
    )


def test_everything_else_serializes_as_amber() -> None:
    data: dict[str, Any] = {"runs": RUNS, "world": AFTER, "errors": ERRORS, "n": 1.5, "s": {"b", "a"}}  # a dict
    assert CampaignDataSerializer.serialize(data) == AmberDataSerializer.serialize(data)
    assert CampaignDataSerializer.serialize("text\nlines") == AmberDataSerializer.serialize("text\nlines")
    # same file format and version: snapshots written by plain amber stay valid
    assert CampaignDataSerializer.VERSION == AmberDataSerializer.VERSION
    assert CampaignSnapshotExtension.file_extension == AmberSnapshotExtension.file_extension
