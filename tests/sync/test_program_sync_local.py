"""Program to SFDC campaign sync on the embedded local org (LANGUAGE.md "Programs and channels").

The Salesforce side is the local org (the store's own rows, `engine.crm.local.LocalOrg`), driven through replays
(events in file order) or an interpreter directly. The same cases run against the HTTPS emulator in
test_program_sync_salesforce.py.

Conflict rule (a person removed on one side while changed on the other in the same cycle): the engine applies
changes in the order it observes them, and every observed change is mirrored at once, so **the later observation
wins and both sides end equal**. Event time does not decide: two events with the same `at` are applied in the
order they arrive.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.crm.local import LocalOrg
from engine.language import ast
from engine.language.checks import status_mismatch
from engine.language.loader import load_rule_set
from engine.model.events import Event
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay, seed_world
from engine.runtime import adapter as p
from engine.runtime.interpreter import Interpreter
from engine.store.store import Store
from engine.sync.programs import program_sync

T = "2026-11-02T09:00:00Z"
LATER = "2026-11-03T09:00:00Z"

ANN, BOB, CAT, DAN = "ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com"
CAMPAIGN_ID = "701000000000010AAA"

# Declared out of step order on purpose: the campaign's default is the lowest step, not the first declared.
CHANNEL = """
channel "Live Webinar" {
    status "Registered" step 20
    status "Invited" step 10
    status "No Show" step 30
    status "Attended" step 30 success
    status "Attended On-demand" step 40 success
}
"""
BY_STEP = ["Invited", "Registered", "No Show", "Attended", "Attended On-demand"]
SUCCESS = frozenset({"Attended", "Attended On-demand"})

PROGRAM = """
program "Q4 Webinar" {
    channel "Live Webinar"
    sync with sfdc campaign "Q4 Webinar"
    cost 2026-10 5000 "Venue deposit"
    cost 2026-11 1200
}
program "Follow-up" { channel "Live Webinar" }
"""

# Runs on every change of either side; its flow writes nothing to Salesforce.
WATCH = """
campaign "Watch" {
    trigger status changed in program "Q4 Webinar"
    trigger added to sfdc campaign "Q4 Webinar"
    trigger status changed in sfdc campaign "Q4 Webinar"
    trigger removed from sfdc campaign "Q4 Webinar"
    qualify every time
    flow { change program status in program "Follow-up" to "Invited" }
}
"""

RULES = CHANNEL + PROGRAM + WATCH


# ---------------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("SMARTCAMPAIGN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def load(tmp_path: Path, text: str = RULES) -> ast.RuleSet:
    path = tmp_path / "rules.campaign"
    path.write_text(text, encoding="utf-8")
    loaded = load_rule_set([path], use_cache=False)
    assert loaded.ok, loaded.diagnostics
    return loaded.rule_set


def world(
    members: dict[str, str] | None = None,
    statuses: list[str] | None = None,
    programs: dict[str, str] | None = None,
    **campaign_fields: Any,
) -> dict[str, Any]:
    """ann, bob (Leads) and cat (a Contact) are in Salesforce; dan is known by name but not in Salesforce."""
    campaign = {
        "name": "Q4 Webinar",
        "id": CAMPAIGN_ID,
        "statuses": statuses if statuses is not None else list(BY_STEP),
        "members": dict(members or {}),
        **campaign_fields,
    }
    return {
        "now": "2026-11-01T00:00:00Z",
        "persons": [
            {"email": ANN, "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
            {"email": BOB, "sfdc_type": "Lead", "sfdc_id": "00Q000000000002AAA"},
            {"email": CAT, "sfdc_type": "Contact", "sfdc_id": "003000000000003AAA"},
            {"email": DAN, "first_name": "Dan", "last_name": "Doyle", "company": "Umbrella"},
        ],
        "sfdc_campaigns": [campaign],
        "programs": {"Q4 Webinar": dict(programs or {})},
    }


def sf_event(person: str, status: str | None, at: str = T) -> dict[str, Any]:
    """Salesforce: `person` is a member of the campaign with `status` (None: not a member)."""
    if status is None:
        return {"type": "removed_from_sfdc_campaign", "person": person, "campaign": "Q4 Webinar", "at": at}
    return {"type": "status_changed_in_sfdc_campaign", "person": person, "campaign": "Q4 Webinar", "status": status}


def program_event(person: str, status: str, at: str = T) -> dict[str, Any]:
    return {"type": "program_status_changed", "person": person, "program": "Q4 Webinar", "status": status, "at": at}


def run(
    tmp_path: Path,
    start: dict[str, Any],
    events: list[dict[str, Any]] = (),  # type: ignore[assignment]
    rules: str = RULES,
    **options: Any,
) -> dict[str, Any]:
    """A replay on a store file `tmp_path/local.db` (reopen it with `Store.open(url(tmp_path))`)."""
    inputs = [
        ReplayInputEvent(Event.model_validate(data), line=number, file="events.jsonl")
        for number, data in enumerate(events, start=1)
    ]
    return replay(
        load(tmp_path, rules),
        World.model_validate(start),
        inputs,
        ReplayOptions(**options),
        store_url=url(tmp_path),
    )


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'local.db'}"


def campaign_of(result: dict[str, Any]) -> dict[str, Any]:
    [campaign] = [c for c in result["world"]["sfdc_campaigns"] if c["name"] == "Q4 Webinar"]
    return campaign


def members(result: dict[str, Any]) -> dict[str, str]:
    return dict(campaign_of(result)["members"])


def program(result: dict[str, Any]) -> dict[str, str]:
    return dict(result["world"]["programs"].get("Q4 Webinar", {}))


def watched(result: dict[str, Any]) -> list[tuple[str, str, str | None, str | None, str]]:
    """(person, trigger type, previous, status, origin) of every run of "Watch"."""
    return [
        (
            run["person"],
            run["trigger"]["type"],
            run["trigger"].get("previous_status"),
            run["trigger"].get("status"),
            run["trigger"]["origin"],
        )
        for run in result["runs"]
        if run["campaign"] == "Watch"
    ]


def errors(result: dict[str, Any]) -> list[str]:
    return [error["message"] for error in result["errors"]]


# ---------------------------------------------------------------------------------------------- first link
class TestFirstLink:
    def test_an_empty_campaign_is_made_to_match_then_gets_the_program_members(self, tmp_path: Path) -> None:
        start = world(statuses=["Sent", "Responded", "Waitlisted"], programs={ANN: "Attended", BOB: "Invited"})

        result = run(tmp_path, start)

        assert errors(result) == []
        assert campaign_of(result)["statuses"] == BY_STEP  # exactly the channel's, lowest step first
        store = Store.open(url(tmp_path))
        try:
            info = store.campaign_by_name("Q4 Webinar")
            assert info is not None
            assert info.default_status == "Invited"
            assert info.responded == SUCCESS
        finally:
            store.close()
        assert members(result) == {ANN: "Attended", BOB: "Invited"}
        assert program(result) == {ANN: "Attended", BOB: "Invited"}
        assert watched(result) == []  # the first copy is set-up: no triggers

    def test_a_populated_matching_campaign_is_merged_both_ways_and_the_program_wins(self, tmp_path: Path) -> None:
        start = world(
            members={ANN: "Registered", CAT: "Attended"},
            programs={BOB: "No Show", CAT: "Registered"},
        )

        result = run(tmp_path, start)

        assert errors(result) == []
        union = {ANN: "Registered", BOB: "No Show", CAT: "Registered"}  # cat: the program's status
        assert members(result) == union
        assert program(result) == union
        assert watched(result) == []
        assert result["world"]["programs"].get("Follow-up", {}) == {}  # the Watch flow never ran

    def test_a_populated_campaign_that_does_not_match_is_an_error_and_nothing_moves(self, tmp_path: Path) -> None:
        start = world(members={ANN: "Sent"}, statuses=["Sent", "Responded"], programs={BOB: "Invited"})
        events = [program_event(CAT, "Registered"), program_event(BOB, "Attended"), sf_event(ANN, "Responded")]

        result = run(tmp_path, start, events)

        assert errors(result) == [
            'program "Q4 Webinar" cannot sync with SFDC campaign "Q4 Webinar": statuses only in the program: '
            "Invited, Registered, No Show, Attended, Attended On-demand; only in the campaign: Sent, Responded. "
            "Rename or remove statuses so both sides match."
        ]
        # nothing of the program moves: no copy, no mirroring either way, no statuses, Type or Actual Cost
        assert members(result) == {ANN: "Responded"}
        assert program(result) == {BOB: "Attended", CAT: "Registered"}
        campaign = campaign_of(result)
        assert campaign["statuses"] == ["Sent", "Responded"]
        assert "type" not in campaign and "actual_cost" not in campaign
        assert [(person, kind, origin) for person, kind, _, _, origin in watched(result)] == [
            (CAT, "program_status_changed", "event"),
            (BOB, "program_status_changed", "event"),
            (ANN, "status_changed_in_sfdc_campaign", "event"),
        ]

    def test_the_mismatch_message_names_what_is_missing_on_each_side(self) -> None:
        message = status_mismatch(
            "Q4 Webinar", "Q4 Webinar", ("Invited", "Registered", "Attended"), ("Attended", "Sent", "Responded")
        )
        assert message == (
            'program "Q4 Webinar" cannot sync with SFDC campaign "Q4 Webinar": statuses only in the program: '
            "Invited, Registered; only in the campaign: Sent, Responded. Rename or remove statuses so both sides match."
        )
        assert status_mismatch("P", "C", ("A", "B"), ("B", "A")) is None


# ---------------------------------------------------------------------------------------------- mirroring
class TestBothDirections:
    def test_salesforce_to_program_fires_program_triggers_with_origin_program_sync(self, tmp_path: Path) -> None:
        start = world(members={ANN: "Registered", BOB: "Invited"}, programs={ANN: "Registered", BOB: "Invited"})
        events = [
            sf_event(ANN, "Attended"),
            sf_event(BOB, None),
            {"type": "added_to_sfdc_campaign", "person": CAT, "campaign": "Q4 Webinar", "status": "No Show"},
        ]

        result = run(tmp_path, start, events)

        assert program(result) == {ANN: "Attended", CAT: "No Show"}
        assert members(result) == {ANN: "Attended", CAT: "No Show"}
        assert watched(result) == [
            (ANN, "status_changed_in_sfdc_campaign", "Registered", "Attended", "event"),
            (ANN, "program_status_changed", "Registered", "Attended", "program_sync"),
            (BOB, "removed_from_sfdc_campaign", "Invited", None, "event"),
            (BOB, "program_status_changed", "Invited", None, "program_sync"),
            (CAT, "added_to_sfdc_campaign", None, "No Show", "event"),
            (CAT, "program_status_changed", None, "No Show", "program_sync"),
        ]

    def test_program_to_salesforce_adds_changes_and_removes(self, tmp_path: Path) -> None:
        start = world(members={ANN: "Registered", BOB: "Invited"}, programs={ANN: "Registered", BOB: "Invited"})
        events = [
            program_event(ANN, "Attended"),
            program_event(BOB, ast.NOT_IN_PROGRAM),
            program_event(CAT, "Invited"),
        ]

        result = run(tmp_path, start, events)

        assert members(result) == {ANN: "Attended", CAT: "Invited"}
        assert program(result) == {ANN: "Attended", CAT: "Invited"}
        sync_runs = [(person, kind, origin) for person, kind, _, _, origin in watched(result) if origin != "event"]
        assert sync_runs == [
            (ANN, "status_changed_in_sfdc_campaign", "program_sync"),
            (BOB, "removed_from_sfdc_campaign", "program_sync"),
            (CAT, "added_to_sfdc_campaign", "program_sync"),
        ]

    def test_a_program_member_not_in_salesforce_becomes_a_lead(self, tmp_path: Path) -> None:
        events = [program_event(DAN, "Registered"), program_event("eve@example.com", "Invited")]

        result = run(tmp_path, world(), events)

        assert members(result) == {DAN: "Registered", "eve@example.com": "Invited"}
        store = Store.open(url(tmp_path))
        try:
            rows = {
                row[1]: row[2:]
                for row in store.persons()  # (id, email, sfdc_id, sfdc_type, first, last, company)
                if row[1] in (DAN, "eve@example.com")
            }
        finally:
            store.close()
        dan_id, dan_type, *dan_names = rows[DAN]
        eve_id, eve_type, *eve_names = rows["eve@example.com"]
        assert dan_id.startswith("00Q") and dan_type == "Lead"
        assert dan_names == ["Dan", "Doyle", "Umbrella"]  # known names are kept
        assert eve_id.startswith("00Q") and eve_type == "Lead"
        assert eve_names == [None, p.NOT_PROVIDED, p.NOT_PROVIDED]


# ---------------------------------------------------------------------------------------------- Type and Actual Cost
class TestTypeAndActualCost:
    def test_set_at_the_first_link(self, tmp_path: Path) -> None:
        result = run(tmp_path, world(type="Conference", actual_cost=99))
        campaign = campaign_of(result)
        assert (campaign["type"], campaign["actual_cost"]) == ("Live Webinar", 6200)

    def test_a_value_changed_in_salesforce_is_put_back_at_the_next_sync(self, tmp_path: Path) -> None:
        rule_set = load(tmp_path)
        store = Store.open()
        try:
            org = LocalOrg(store)
            seed_world(store, org, World.model_validate(world()), rule_set)
            interp = Interpreter(rule_set, store, org, program_sync=program_sync())
            interp.programs.link_all()
            info = store.campaign_by_name("Q4 Webinar")
            assert info is not None and (info.type, info.actual_cost) == ("Live Webinar", 6200.0)

            store.set_campaign_fields(info.id, "Email", 1.0)  # someone edits the campaign in Salesforce
            interp.programs.refresh_fields()

            again = store.campaign_by_name("Q4 Webinar")
            assert again is not None and (again.type, again.actual_cost) == ("Live Webinar", 6200.0)
        finally:
            store.close()


# ---------------------------------------------------------------------------------------------- sync off
class TestSyncOff:
    """Off globally (`program_sync=False`) or for the program (`sync_disabled`): nothing moves either way, no
    first copy, no statuses made to match, no Type or Actual Cost, no error."""

    MATCHING = world(members={ANN: "Registered"}, programs={BOB: "Invited"})  # would be merged with sync on
    EMPTY = world(statuses=["Sent", "Responded"], programs={BOB: "Invited"})  # would be made to match
    EVENTS = [program_event(CAT, "Invited"), program_event(BOB, "Attended")]

    def assert_nothing_moved(self, result: dict[str, Any], start: dict[str, Any]) -> None:
        campaign = start["sfdc_campaigns"][0]
        assert errors(result) == []
        assert members(result) == campaign["members"]
        assert program(result) == {BOB: "Attended", CAT: "Invited"}
        assert campaign_of(result)["statuses"] == campaign["statuses"]
        assert "type" not in campaign_of(result) and "actual_cost" not in campaign_of(result)
        assert all(origin == "event" for *_, origin in watched(result))

    @pytest.mark.parametrize("which", ["MATCHING", "EMPTY"])
    def test_turned_off_globally(self, tmp_path: Path, which: str) -> None:
        start = getattr(self, which)
        self.assert_nothing_moved(run(tmp_path, start, self.EVENTS, program_sync=False), start)

    @pytest.mark.parametrize("which", ["MATCHING", "EMPTY"])
    def test_turned_off_for_the_program(self, tmp_path: Path, which: str) -> None:
        start = getattr(self, which)
        result = run(tmp_path, start, self.EVENTS, sync_disabled=frozenset({"Q4 Webinar"}))
        self.assert_nothing_moved(result, start)

    def test_salesforce_changes_do_not_reach_the_program_either(self, tmp_path: Path) -> None:
        events = [sf_event(ANN, "Attended"), sf_event(ANN, None)]
        for number, options in enumerate([{"program_sync": False}, {"sync_disabled": frozenset({"Q4 Webinar"})}]):
            folder = tmp_path / str(number)
            folder.mkdir()
            result = run(folder, self.MATCHING, events, **options)
            assert members(result) == {} and program(result) == {BOB: "Invited"}

    def test_turned_off_for_another_program_only(self, tmp_path: Path) -> None:
        result = run(tmp_path, world(), [program_event(CAT, "Invited")], sync_disabled=frozenset({"Follow-up"}))
        assert members(result) == {CAT: "Invited"}


# ---------------------------------------------------------------------------------------------- conflicts
class TestRemovedOnOneSideWhileChangedOnTheOther:
    """Two events for one person at the same time, one on each side: applied in arrival order, each mirrored at
    once; the later one wins and both sides end equal (see the module docstring)."""

    START = world(members={ANN: "Registered"}, programs={ANN: "Registered"})

    @pytest.mark.parametrize(
        ("events", "final"),
        [
            pytest.param([sf_event(ANN, None), program_event(ANN, "Attended")], {ANN: "Attended"}, id="removed-first"),
            pytest.param([program_event(ANN, "Attended"), sf_event(ANN, None)], {}, id="changed-first"),
        ],
    )
    def test_removed_in_salesforce_changed_in_the_program(
        self, tmp_path: Path, events: list[dict[str, Any]], final: dict[str, str]
    ) -> None:
        result = run(tmp_path, self.START, events)
        assert members(result) == final
        assert program(result) == final
        assert errors(result) == []

    @pytest.mark.parametrize(
        ("events", "final"),
        [
            pytest.param(
                [program_event(ANN, ast.NOT_IN_PROGRAM), sf_event(ANN, "Attended")],
                {ANN: "Attended"},
                id="removed-first",
            ),
            pytest.param([sf_event(ANN, "Attended"), program_event(ANN, ast.NOT_IN_PROGRAM)], {}, id="changed-first"),
        ],
    )
    def test_removed_from_the_program_changed_in_salesforce(
        self, tmp_path: Path, events: list[dict[str, Any]], final: dict[str, str]
    ) -> None:
        result = run(tmp_path, self.START, events)
        assert members(result) == final
        assert program(result) == final
        assert errors(result) == []

    def test_event_time_does_not_reorder_arrivals(self, tmp_path: Path) -> None:
        """An earlier `at` that arrives later is processed at the clock's time: still the later observation."""
        events = [program_event(ANN, "Attended", LATER), sf_event(ANN, None, T)]
        result = run(tmp_path, self.START, events)
        assert members(result) == {} and program(result) == {}


# ---------------------------------------------------------------------------------------------- check --catalog
def test_check_with_a_catalog_reports_the_mismatch(tmp_path: Path) -> None:
    rules = tmp_path / "rules.campaign"
    rules.write_text(CHANNEL + PROGRAM, encoding="utf-8")
    catalog = tmp_path / "world.json"
    catalog.write_text(
        json.dumps(world(members={ANN: "Sent"}, statuses=["Attended", "Sent", "Responded"])), encoding="utf-8"
    )
    runner = CliRunner()

    result = runner.invoke(cli, ["check", "--no-cache", "--catalog", str(catalog), str(rules)])

    assert result.exit_code == 1, result.output
    flat = " ".join(result.output.split())
    assert "program-status-mismatch" in flat
    assert 'program "Q4 Webinar" cannot sync with SFDC campaign "Q4 Webinar": statuses only in the program: ' in flat
    assert "only in the campaign: Sent, Responded. Rename or remove statuses so both sides match." in flat

    as_json = runner.invoke(cli, ["check", "--no-cache", "--format", "json", "--catalog", str(catalog), str(rules)])
    body = json.loads(as_json.stdout)
    diagnostics = body["diagnostics"] if isinstance(body, dict) else body
    [mismatch] = [d for d in diagnostics if d["code"] == "program-status-mismatch"]
    assert mismatch["severity"] == "error"
    only_program = mismatch["message"].split("only in the program: ")[1].split(";")[0].split(", ")
    assert sorted(only_program) == ["Attended On-demand", "Invited", "No Show", "Registered"]
    assert "only in the campaign: Sent, Responded." in mismatch["message"]

    # an empty campaign would be made to match: no error
    catalog.write_text(json.dumps(world(statuses=["Sent", "Responded"])), encoding="utf-8")
    clean = runner.invoke(cli, ["check", "--no-cache", "--catalog", str(catalog), str(rules)])
    assert clean.exit_code == 0, clean.output
