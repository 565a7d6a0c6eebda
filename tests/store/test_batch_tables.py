"""Issue 12 in the store: Remove from Flow's deletion of waiting runs, batch runs and their members, run steps,
and the tables and indexes added to a store written before them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.store.store import Store


def test_drop_continuations_deletes_one_persons_waits_of_one_campaign() -> None:
    store = Store.open()
    ann = store.add_person("ann@example.com")
    bob = store.add_person("bob@example.com")
    store.add_continuation(1, "Drip", ann.id, 200.0, (1,), 0, ())
    store.add_continuation(2, "Drip", ann.id, 100.0, (1,), 0, ())
    store.add_continuation(3, "Other", ann.id, 50.0, (1,), 0, ())
    store.add_continuation(4, "Drip", bob.id, 10.0, (1,), 0, ())
    assert store.next_due(None).run_id == 4  # the earliest due time is cached
    assert store.drop_continuations(ann.id, "Drip") == [2, 1]
    assert store.drop_continuations(ann.id, "Drip") == []
    assert [(c.run_id, c.campaign) for c in store.waiting()] == [(4, "Drip"), (3, "Other")]
    store.delete_continuation(store.next_due(None).id)
    assert store.next_due(None).run_id == 3


def test_batch_runs_keep_their_selection_and_progress() -> None:
    store = Store.open()
    assert store.batch_run("Sweep", 100.0) is None
    batch_id = store.start_batch_run("Sweep", 100.0, [7, 3, 5])
    assert store.batch_run("Sweep", 100.0) == (batch_id, 3, False)
    store.batch_member_done(batch_id, 0)
    assert store.batch_remaining(batch_id) == [(1, 3), (2, 5)]
    assert store.unfinished_batch_runs() == [(batch_id, "Sweep", 100.0)]
    store.finish_batch_run(batch_id)
    assert store.batch_run("Sweep", 100.0) == (batch_id, 3, True)
    assert store.unfinished_batch_runs() == []


def test_run_steps_rebuild_the_runs() -> None:
    store = Store.open()
    ann = store.add_person("ann@example.com")
    run_id = store.start_run("C", ann.id, 60.0, {"type": "batch"})
    store.add_step(run_id, 0, {"action": "wait", "outcome": "done"})
    store.add_step(run_id, 1, {"action": "choice", "outcome": "skipped"})
    assert store.recorded_runs() == [
        (
            run_id,
            "C",
            ann.id,
            60.0,
            {"type": "batch"},
            [{"action": "wait", "outcome": "done"}, {"action": "choice", "outcome": "skipped"}],
        )
    ]


def test_an_older_store_gets_the_new_tables_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store.open(f"sqlite:///{path}").close()
    raw = sqlite3.connect(path)
    for table in ("batch_runs", "batch_members", "run_steps", "replay_state", "replay_errors"):
        raw.execute(f"DROP TABLE {table}")
    raw.execute("DROP INDEX ix_program_memberships_program")
    raw.commit()
    raw.close()
    Store.open(f"sqlite:///{path}").close()
    raw = sqlite3.connect(path)
    names = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
    raw.close()
    assert {"batch_runs", "batch_members", "run_steps", "replay_state", "ix_program_memberships_program"} <= names
