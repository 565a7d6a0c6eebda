"""The replay harness behind `campaign_rules`: same results as `replay`, inputs as files, dicts or builders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testing_helpers import RULES, WORLD

from engine.model.events import Event
from engine.model.loading import load_events, load_world
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay
from engine.testing import events as ev
from engine.testing.coverage import CoverageCollector
from engine.testing.harness import (
    ReplayInputError,
    RuleSetError,
    coerce_events,
    coerce_time,
    coerce_world,
    load_rules,
)
from engine.testing.world import campaign, person, world

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webinar-follow-up"
ANN = "ann@example.com"


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "webinar.campaign"
    path.write_text(RULES, encoding="utf-8")
    return path


@pytest.mark.parametrize("until", [None, "2026-11-13T00:00:00Z"])
@pytest.mark.parametrize("traced", [False, True])
def test_the_result_is_the_replay_result(until: str | None, traced: bool) -> None:
    """What `smartcampaign replay` prints, field for field; tracing coverage changes nothing."""
    rules = load_rules(EXAMPLE / "rules")
    if traced:
        rules.tracing = CoverageCollector()
    ours = rules.replay(world=EXAMPLE / "world.json", events=EXAMPLE / "events.jsonl", until=until)
    theirs = replay(
        rules.rule_set,
        load_world(str(EXAMPLE / "world.json")),
        [ReplayInputEvent(e.event, e.line, e.file) for e in load_events(str(EXAMPLE / "events.jsonl"))],
        ReplayOptions(until=coerce_time(until)),
    )
    assert ours == theirs
    assert ours.runs and ours.initial_world is not None


def test_the_starting_world_is_kept(rules_file: Path) -> None:
    result = load_rules(rules_file).replay(world=WORLD, events=[ev.status_changed(ANN, "Q4 Webinar", "Attended")])
    assert result.initial_world is not None
    before = {c["name"]: c["members"] for c in result.initial_world["sfdc_campaigns"]}
    assert before["Q4 Webinar"][ANN] == "Registered"
    assert result.members("Q4 Webinar")[ANN] == "Attended"
    assert result.initial_world["now"] == "2026-11-01T00:00:00Z"


def test_flows_still_waiting(rules_file: Path) -> None:
    result = load_rules(rules_file).replay(
        world=WORLD,
        events=[ev.status_changed(ANN, "Q4 Webinar", "Attended", at="2026-11-03T09:00:00Z")],
        until="2026-11-04T00:00:00Z",
    )
    assert result["waiting"] == [
        {"campaign": "Webinar follow-up", "person": ANN, "due": "2026-11-05T09:00:00Z", "run": 1}
    ]
    assert result.members("Nurture 2026") == {ANN: "Sent"}
    assert (
        '\nwaiting:\n  - run 1 "Webinar follow-up" for ann@example.com: due 2026-11-05T09:00:00Z\n' in result.render()
    )


SYNCED = """\
program "Q4 Webinar" {
    channel "Webinar"
    sync with sfdc campaign "Q4 Webinar"
    cost 2026-10 500
}
"""


def test_the_first_program_sync_is_set_up_not_a_change(tmp_path: Path) -> None:
    path = tmp_path / "synced.campaign"
    path.write_text(SYNCED, encoding="utf-8")
    start = world(
        persons=[person(ANN, sfdc_id="00Q000000000001AAA")],
        campaigns=[
            campaign(
                "Q4 Webinar",
                statuses=["Invited", "Registered", "No Show", "Attended", "Attended On-demand"],
                members={ANN: "Registered"},
            )
        ],
    )
    result = load_rules(path).replay(world=start)
    assert result.initial_world is not None
    assert result.initial_world["programs"] == {"Q4 Webinar": {ANN: "Registered"}}
    assert result.program_members("Q4 Webinar") == {ANN: "Registered"}
    assert result.render() == "clock: 2026-01-01T00:00:00Z\nruns: (none)\nmemberships: (no changes)\nerrors: (none)"


def test_relative_paths_resolve_against_base(tmp_path: Path, rules_file: Path) -> None:
    (tmp_path / "world.json").write_text(json.dumps(WORLD), encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(json.dumps(ev.status_changed(ANN, "Q4 Webinar", "Attended")) + "\n")
    rules = load_rules("webinar.campaign", base=tmp_path)
    result = rules.replay(world="world.json", events="events.jsonl")
    assert [run["person"] for run in result.runs] == [ANN]


def test_builders_make_valid_events() -> None:
    built = [
        ev.added(ANN, "Q4 Webinar", "Registered", at="2026-11-02T09:00:00Z", id="e1"),
        ev.status_changed(ANN, None, "Attended", campaign_id="701000000000001AAA"),
        ev.removed(ANN, "Q4 Webinar"),
        ev.program_status(ANN, "Q4 Webinar", "Not in Program"),
    ]
    assert built[0] == {
        "type": "added_to_sfdc_campaign",
        "person": ANN,
        "campaign": "Q4 Webinar",
        "status": "Registered",
        "at": "2026-11-02T09:00:00Z",
        "id": "e1",
    }
    assert [Event.model_validate(e).type for e in built] == [
        "added_to_sfdc_campaign",
        "status_changed_in_sfdc_campaign",
        "removed_from_sfdc_campaign",
        "program_status_changed",
    ]


def test_world_builder_makes_a_valid_world() -> None:
    built = world(
        now="2026-11-01T00:00:00Z",
        persons=[person(ANN, sfdc_id="00Q000000000001AAA"), "eve@example.com"],
        campaigns=[campaign("Q4 Webinar", statuses=["Registered"], members={ANN: "Registered"}), "Nurture"],
        programs={"P": {ANN: "Registered"}},
    )
    parsed = World.model_validate(built)
    assert parsed.persons[0].sfdc_type == "Lead"
    assert parsed.persons[1].sfdc_id is None
    assert parsed.sfdc_campaigns[1].statuses == ["Sent", "Responded"]
    assert parsed.programs == {"P": {ANN: "Registered"}}


def test_events_as_event_objects(rules_file: Path) -> None:
    event = Event.model_validate(ev.status_changed(ANN, "Q4 Webinar", "Attended"))
    assert len(load_rules(rules_file).replay(world=WORLD, events=[event]).runs) == 1


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([{"type": "added", "person": ANN}], "events[0]: type: got 'added', expected one of: "),
        (
            [ev.removed(ANN, "Q4 Webinar"), {"type": "removed_from_sfdc_campaign", "person": "ann"}],
            "events[1]: person: an email address (name@domain)",
        ),
        (
            [ev.added(ANN, "Q4 Webinar", "Atended")],
            'events[0]: status: "Atended" is not a member status of "Q4 Webinar" (expected one of: Registered, '
            "Attended)",
        ),
        (
            [ev.program_status(ANN, "Nope", "Registered")],
            'events[0]: program: the rules declare no program "Nope" (declared: none)',
        ),
        ([ev.added(ANN, "Q4 Webinar", "Attended", at="yesterday")], "events[0]: at: got 'yesterday', expected an ISO"),
        (ev.added(ANN, "Q4 Webinar", "Attended"), "events: expected a list of events or the path of a .jsonl file"),
        (["not an event"], "events[0]: expected an event dict, got str: 'not an event'"),
        ("missing.jsonl", "missing.jsonl: no such events file"),
    ],
)
def test_bad_events_name_the_event_and_the_field(rules_file: Path, events: object, message: str) -> None:
    with pytest.raises(ReplayInputError) as caught:
        load_rules(rules_file).replay(world=WORLD, events=events)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message), str(caught.value)


def test_bad_event_file_line_names_the_file_and_line(tmp_path: Path, rules_file: Path) -> None:
    (tmp_path / "events.jsonl").write_text('# first\n{"type": "added_to_sfdc_campaign", "person": "ann@example.com"}\n')
    with pytest.raises(ReplayInputError, match=r"^events.jsonl:2: campaign: "):
        load_rules(rules_file, base=tmp_path).replay(world=WORLD, events="events.jsonl")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"persons": [{"email": "ann@example.com", "sfdc_type": "Person"}]}, 'world: persons[0].sfdc_type: "Lead"'),
        (
            {"sfdc_campaigns": [{"name": "C", "members": {ANN: "Nope"}}]},
            'world: sfdc_campaigns[0].members.ann@example.com: "Nope" is not a member status of "C" (Sent, Responded)',
        ),
        ({"colour": "red"}, "world: colour: unknown field"),
        ("nowhere.json", "nowhere.json: no such world file"),
    ],
)
def test_bad_worlds(rules_file: Path, given: object, message: str) -> None:
    with pytest.raises(ReplayInputError) as caught:
        load_rules(rules_file).replay(world=given)  # type: ignore[arg-type]
    assert message in str(caught.value)


def test_warnings_name_the_event(rules_file: Path) -> None:
    result = load_rules(rules_file).replay(
        world=WORLD,
        events=[
            ev.status_changed(ANN, "Q4 Webinar", "Attended", at="2026-11-03T09:00:00Z"),
            ev.status_changed(ANN, "Q4 Webinar", "Registered", at="2026-11-02T09:00:00Z"),
        ],
    )
    assert result.warnings == [
        "events[1]: warning: at 2026-11-02T09:00:00Z is earlier than the clock (2026-11-03T09:00:00Z): "
        "processed at the clock's time"
    ]
    assert "warnings:\n  - events[1]: warning: at 2026-11-02T09:00:00Z" in result.render()


def test_rule_errors(tmp_path: Path) -> None:
    path = tmp_path / "broken.campaign"
    path.write_text('campaign "A" {\n    trigger added to sfdc campaign\n}\n', encoding="utf-8")
    with pytest.raises(RuleSetError, match=r"broken\.campaign:3:1: error: "):
        load_rules(path)
    with pytest.raises(ReplayInputError, match="no such rule file or folder"):
        load_rules(tmp_path / "missing")


def test_coerce_accepts_none_and_models() -> None:
    assert coerce_world(None) == World()
    given = World.model_validate(WORLD)
    assert coerce_world(given) is given
    assert coerce_events([]) == []
