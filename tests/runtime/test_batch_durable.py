"""Issue 12: batch selection as sets (the same answer as the per-person filters), and durable batch runs: an
interruption (an exception from the CRM, a killed process) resumes without running anyone twice; a durable
replay (`store_path`) goes on where it stopped with the result an uninterrupted replay gives."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from replay_helpers import ANN, BOB, added, at, load_rules, world

from engine.crm.local import LocalOrg
from engine.model.events import Event
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay
from engine.runtime import adapter as p
from engine.runtime.batch import Selector, run_batch, select_batch
from engine.runtime.filters import FilterContext, evaluate
from engine.runtime.interpreter import FAULT_EXIT_AFTER_RUNS, Interpreter
from engine.store.store import Store

SLOT = 1_800_000_000.0

# ------------------------------------------------------------------------------ selection as sets

SELECTION = """
program "Webinar program" { channel "Webinar" }

campaign "Many" {
    schedule at 2027-01-15T08:00
    filter member of sfdc campaign "A" with status in ("Sent", "Responded")
    filter not member of sfdc campaign "B" or member of sfdc campaign "C" with status not in ("Sent")
    filter member of any sfdc campaign with status "Responded" or member of sfdc campaign not in ("A", "B")
    filter member of program "Webinar program" with status "Registered" or not member of sfdc campaign "D"
    flow { }
}
"""


def _mirror(store: Store, persons: int, seed: int) -> None:
    rng = random.Random(seed)
    ids = {
        name: store.add_campaign(name, f"701{n:012d}AAA", ["Sent", "Responded", "Other"])
        for n, name in enumerate("ABCDE")
    }
    pid = store.program_id("Webinar program")
    for n in range(persons):
        person = store.add_person(f"p{n:03d}@example.com", f"00Q{n:012d}AAA", "Lead")
        for cid in ids.values():
            if rng.random() < 0.45:
                store.set_membership(person.id, cid, rng.choice(["Sent", "Responded", "Other"]), 0.0)
        if rng.random() < 0.4:
            store.set_program_status(person.id, pid, rng.choice(["Invited", "Registered"]), 0.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_selection_is_the_per_person_filters(tmp_path: Path, seed: int) -> None:
    rule_set = load_rules(tmp_path, SELECTION)
    campaign = rule_set.campaign("Many")
    store = Store.open()
    _mirror(store, 300, seed)
    interp = Interpreter(rule_set, store, LocalOrg(store))
    selector = Selector(store)
    everyone = sorted(selector.everyone())
    for expr in campaign.filters:  # each line alone, then the whole campaign
        expected = {pid for pid in everyone if evaluate(expr, FilterContext(store, pid, store.program_id))}
        assert selector.expr(expr) == expected, expr
    expected_all = [
        store.person_by_id(pid).email
        for pid in everyone
        if all(evaluate(expr, FilterContext(store, pid, store.program_id)) for expr in campaign.filters)
    ]
    chosen = [person.email for person in select_batch(interp, campaign, SLOT)]
    assert chosen == sorted(expected_all)
    assert 0 < len(chosen) < 300


def test_selection_uses_the_indexes(tmp_path: Path) -> None:
    store = Store.open()
    for sql in (
        "SELECT person_id FROM memberships WHERE campaign_id = 1 AND status IN ('Sent')",
        "SELECT person_id FROM program_memberships WHERE program_id = 1 AND status IN ('Sent')",
    ):
        plan = " ".join(str(row[-1]) for row in store.fetchall("EXPLAIN QUERY PLAN " + sql))
        assert "USING" in plan and "INDEX" in plan, plan


# ------------------------------------------------------------------------------ durable batch runs

BATCH = """
campaign "Sweep" {
    schedule at 2027-01-15T08:00
    filter member of sfdc campaign "Webinar"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        add to sfdc campaign "VIP" with status "Sent"
    }
}
"""


class FailingOrg(LocalOrg):
    """The local org, whose `fail_at`-th call raises (the CRM cannot be reached)."""

    fail_at: int | None = None

    def execute(self, operations: Sequence[p.Operation]) -> list[p.OperationResult]:
        if self.fail_at is not None and self.calls + 1 >= self.fail_at:
            self.fail_at = None
            raise ConnectionError("CRM unreachable")
        return super().execute(operations)


def _batch_store(path: Path, persons: int) -> None:
    store = Store.open(f"sqlite:///{path}")
    webinar = store.add_campaign("Webinar", "701000000000001AAA", ["Sent"])
    store.add_campaign("Nurture", "701000000000002AAA", ["Sent"])
    store.add_campaign("VIP", "701000000000003AAA", ["Sent"])
    for n in range(persons):
        person = store.add_person(f"p{n:03d}@example.com", f"00Q{n:012d}AAA", "Lead")
        store.set_membership(person.id, webinar, "Sent", 0.0)
    store.close()


def _runs_per_person(path: Path) -> dict[int, int]:
    store = Store.open(f"sqlite:///{path}")
    try:
        return {
            int(pid): int(n) for pid, n in store.fetchall("SELECT person_id, COUNT(*) FROM runs GROUP BY person_id")
        }
    finally:
        store.close()


def test_an_exception_mid_run_resumes_without_running_anyone_twice(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    _batch_store(db, 10)
    rule_set = load_rules(tmp_path, BATCH)
    campaign = rule_set.campaign("Sweep")

    store = Store.open(f"sqlite:///{db}")
    org = FailingOrg(store)
    org.fail_at = 13  # two calls a person: persons 1..6 went through, the 7th fails (its chunk: 5..8)
    interp = Interpreter(rule_set, store, org)
    with pytest.raises(ConnectionError):
        run_batch(interp, campaign, SLOT, chunk=4)
    store.close()
    assert sorted(_runs_per_person(db).values()) == [1, 1, 1, 1]  # the first chunk was committed

    store = Store.open(f"sqlite:///{db}")
    interp = Interpreter(rule_set, store, LocalOrg(store))
    outcome = interp.run_batch(campaign, SLOT)
    assert (outcome.selected, outcome.ran, outcome.resumed, outcome.already_finished) == (10, 6, True, False)
    again = interp.run_batch(campaign, SLOT)
    assert again.already_finished and again.ran == 0
    nurture = store.campaign_by_name("Nurture")
    assert nurture is not None and len(store.campaign_members(nurture.id)) == 10
    store.close()
    assert sorted(_runs_per_person(db).values()) == [1] * 10


def test_run_batch_member_checks_qualification_again(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    _batch_store(db, 2)
    rule_set = load_rules(tmp_path, BATCH)
    campaign = rule_set.campaign("Sweep")
    store = Store.open(f"sqlite:///{db}")
    interp = Interpreter(rule_set, store, LocalOrg(store))
    first, second = select_batch(interp, campaign, SLOT)
    assert interp.run_batch_member(campaign, first, SLOT) is True
    assert interp.run_batch_member(campaign, first, SLOT) is False  # qualify once
    assert interp.run_batch_member(campaign, second, SLOT) is True
    assert [p.email for p in select_batch(interp, campaign, SLOT)] == []
    store.close()


# ------------------------------------------------------------------------------ durable replay

DURABLE = """
campaign "Sweep" {
    schedule every day at 09:00
    filter member of sfdc campaign "Webinar"
    qualify every time
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        wait 1 hour
        change status in sfdc campaign "Nurture" to "Responded"
    }
}

campaign "On webinar" {
    trigger added to sfdc campaign "Webinar"
    qualify every time
    flow { add to sfdc campaign "VIP" with status "Sent" }
}
"""

EVENTS = [
    added(ANN, "Webinar", "Sent", at(2, 8)),
    added(BOB, "Webinar", "Sent", at(2, 10)),
    added("cat@example.com", "Webinar", "Sent", at(3, 12)),
]


def _world() -> dict[str, Any]:
    return world(
        campaigns=[
            {"name": "Webinar", "id": "701000000000001AAA", "statuses": ["Sent"]},
            {"name": "Nurture", "id": "701000000000002AAA", "statuses": ["Sent", "Responded"]},
            {"name": "VIP", "id": "701000000000003AAA", "statuses": ["Sent"]},
        ]
    )


SCRIPT = """
import json, sys
from datetime import datetime
sys.path.insert(0, {helpers!r})
from replay_helpers import load_rules
from pathlib import Path
from engine.model.events import Event
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay
spec = json.loads(sys.argv[1])
rule_set = load_rules(Path(spec["folder"]), spec["rules"])
events = [ReplayInputEvent(Event.model_validate(e), n, "events.jsonl") for n, e in enumerate(spec["events"], 1)]
options = ReplayOptions(store_path=spec["store"], until=datetime.fromisoformat(spec["until"]))
print(json.dumps(replay(rule_set, World.model_validate(spec["world"]), events, options)))
"""


def _replay_process(tmp_path: Path, store: Path | None, fault: int | None) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    spec = {
        "folder": str(folder),
        "rules": DURABLE,
        "events": EVENTS,
        "world": _world(),
        "store": str(store) if store is not None else None,
        "until": "2026-11-05T00:00:00+00:00",
    }
    env = dict(os.environ)
    env.pop(FAULT_EXIT_AFTER_RUNS, None)
    if fault is not None:
        env[FAULT_EXIT_AFTER_RUNS] = str(fault)
    script = SCRIPT.format(helpers=str(Path(__file__).parent))
    return subprocess.run(
        [sys.executable, "-c", script, json.dumps(spec)], capture_output=True, text=True, env=env, timeout=120
    )


def _uninterrupted(tmp_path: Path) -> dict[str, Any]:
    rule_set = load_rules(tmp_path, DURABLE)
    events = [ReplayInputEvent(Event.model_validate(e), n, "events.jsonl") for n, e in enumerate(EVENTS, 1)]
    from datetime import UTC, datetime

    options = ReplayOptions(until=datetime(2026, 11, 5, tzinfo=UTC))
    return replay(rule_set, World.model_validate(_world()), events, options)


def test_the_uninterrupted_replay(tmp_path: Path) -> None:
    result = _uninterrupted(tmp_path)
    sweeps = [(r["person"], r["at"]) for r in result["runs"] if r["campaign"] == "Sweep"]
    # 2 Nov 09:00: ann (bob joins at 10:00); 3 Nov: ann, bob; 4 Nov: ann, bob, cat
    assert sweeps == [
        (ANN, at(2, 9)),
        (ANN, at(3, 9)),
        (BOB, at(3, 9)),
        (ANN, at(4, 9)),
        (BOB, at(4, 9)),
        ("cat@example.com", at(4, 9)),
    ]


@pytest.mark.parametrize("fault", [1, 3, 5, 8])
def test_a_killed_durable_replay_resumes_with_the_same_result(tmp_path: Path, fault: int) -> None:
    expected = _uninterrupted(tmp_path)
    store = tmp_path / "replay.db"
    killed = _replay_process(tmp_path, store, fault)
    assert killed.returncode == 137, killed.stderr
    assert killed.stdout == ""
    resumed = _replay_process(tmp_path, store, None)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout) == expected
    # each run once: no person ran twice in a slot
    runs = [(r["campaign"], r["person"], r["at"]) for r in json.loads(resumed.stdout)["runs"]]
    assert len(runs) == len(set(runs))


def test_a_finished_durable_replay_run_again_gives_the_same_result(tmp_path: Path) -> None:
    store = tmp_path / "replay.db"
    first = _replay_process(tmp_path, store, None)
    second = _replay_process(tmp_path, store, None)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout) == _uninterrupted(tmp_path)


def test_durable_replay_in_process_matches(tmp_path: Path) -> None:
    rule_set = load_rules(tmp_path, DURABLE)
    events = [ReplayInputEvent(Event.model_validate(e), n, "events.jsonl") for n, e in enumerate(EVENTS, 1)]
    from datetime import UTC, datetime

    options = ReplayOptions(store_path=str(tmp_path / "r.db"), until=datetime(2026, 11, 5, tzinfo=UTC))
    assert replay(rule_set, World.model_validate(_world()), events, options) == _uninterrupted(tmp_path)
