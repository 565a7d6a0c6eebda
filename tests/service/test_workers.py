"""Workers sharing one PostgreSQL: per-person order with two and three workers, kill -9, SIGTERM."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from service_helpers import processed, put, query, runs_by_person, seed, stream, wait_until, worker


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_keep_each_persons_order(pg_url: str, tmp_path: Path, workers: int) -> None:
    seed(pg_url)
    persons, per_person = 200, 16  # many new persons at once: workers create persons side by side
    events = stream(persons, per_person)
    procs = [worker(pg_url, tmp_path / f"w{n}.log", "--batch-size", "25", name=f"w{n}") for n in range(workers)]
    try:
        for proc in procs:
            wait_until(lambda p=proc: "started" in p.output(), 30, 0.05, "the workers to start")
        # the stream arrives while the workers run
        for start in range(0, len(events), 100):
            put(pg_url, events[start : start + 100])
            time.sleep(0.01)
        wait_until(lambda: processed(pg_url) == len(events), 90, 0.1, "the inbox to drain")
        for proc in procs:
            assert proc.terminate() == 0, proc.output()
    finally:
        for proc in procs:
            proc.close()
    expected = [f"S{k % 8}" for k in range(per_person)]
    runs = runs_by_person(pg_url)
    assert len(runs) == persons
    for email, statuses in runs.items():
        assert statuses == expected, email
    by_worker = dict(query(pg_url, "SELECT claimed_by, COUNT(*) FROM service_inbox GROUP BY claimed_by"))
    assert len(by_worker) == workers, by_worker  # every worker took part
    assert query(pg_url, "SELECT COUNT(*) FROM service_inbox WHERE error IS NOT NULL")[0][0] == 0
    # each new person created once, with a Lead id of its own
    leads = query(pg_url, "SELECT COUNT(*), COUNT(DISTINCT sfdc_id) FROM persons WHERE email <> 'ann@example.com'")
    assert leads == [(persons, persons)]


def test_the_catalog_changed_while_a_worker_runs_is_what_it_uses(pg_url: str, tmp_path: Path) -> None:
    from engine.store.store import Store

    seed(pg_url)
    proc = worker(pg_url, tmp_path / "w.log", name="w")
    try:
        put(pg_url, stream(5, 2))
        wait_until(lambda: processed(pg_url) == 10, 30, 0.05, "the first events")
        store = Store.open(pg_url)  # another process: the poller, a seed, an operator
        nurture = store.campaign_by_name("Nurture")
        assert nurture is not None
        store.set_campaign_statuses(nurture.id, ["Active"], "Active", ())  # "Queued" is gone
        store.commit()
        store.close()
        put(pg_url, [{"type": "added_to_sfdc_campaign", "person": "p0001@example.com", "campaign": "Signups",
                      "status": "Signed Up"}])  # fmt: skip
        wait_until(lambda: processed(pg_url) == 11, 30, 0.05, "the event after the change")
        assert proc.terminate() == 0
    finally:
        proc.close()
    assert query(pg_url, "SELECT COUNT(*) FROM service_inbox WHERE error IS NOT NULL")[0][0] == 0
    # Welcome adds to "Nurture" with status "Queued", no status of Nurture now: refused, not done
    added = query(pg_url, "SELECT outcome FROM activity WHERE kind = 'Add to SFDC Campaign' AND target = 'Nurture'")
    assert added == [("error",)]
    assert query(pg_url, "SELECT COUNT(*) FROM memberships m JOIN campaigns c ON c.id = m.campaign_id "
                         "WHERE c.name = 'Nurture'") == [(0,)]  # fmt: skip


def test_kill_9_mid_batch_loses_and_repeats_nothing(pg_url: str, tmp_path: Path) -> None:
    seed(pg_url)
    persons, per_person = 30, 40
    events = stream(persons, per_person)
    signups = [
        {"type": "added_to_sfdc_campaign", "person": f"s{n:04d}@example.com", "campaign": "Signups",
         "status": "Signed Up"}
        for n in range(300)
    ]  # fmt: skip
    mixed = events[:600] + signups + events[600:]
    put(pg_url, mixed)
    rng = random.Random(7)
    for attempt in range(3):
        proc = worker(pg_url, tmp_path / f"w{attempt}.log", "--batch-size", "40", name=f"w{attempt}")
        try:
            goal = (attempt + 1) * len(mixed) // 4
            wait_until(lambda g=goal: processed(pg_url) >= g, 60, 0.01, "progress")
            time.sleep(rng.uniform(0.0, 0.05))
            proc.kill9()  # mid-batch: the worker is always inside a transaction while there is work
        finally:
            proc.close()
    assert processed(pg_url) < len(mixed)
    final = worker(pg_url, tmp_path / "final.log", "--batch-size", "40", name="final")
    try:
        wait_until(lambda: processed(pg_url) == len(mixed), 60, 0.1, "the inbox to drain")
        assert final.terminate() == 0
    finally:
        final.close()
    runs = runs_by_person(pg_url)
    expected = [f"S{k % 8}" for k in range(per_person)]
    assert all(statuses == expected for statuses in runs.values()) and len(runs) == persons
    # every sign-up: one run, one "Add to SFDC Campaign" done, one Nurture membership, none twice
    welcome = query(pg_url, "SELECT COUNT(*), COUNT(DISTINCT person_id) FROM runs WHERE campaign = 'Welcome'")[0]
    assert welcome == (300, 300)
    added = query(
        pg_url,
        "SELECT COUNT(*) FROM activity WHERE kind = 'Add to SFDC Campaign' AND target = 'Nurture' AND outcome = 'done'",
    )[0][0]
    assert added == 300
    nurture = query(
        pg_url,
        "SELECT COUNT(*) FROM memberships m JOIN campaigns c ON c.id = m.campaign_id WHERE c.name = 'Nurture'",
    )[0][0]
    assert nurture == 300
    seen = query(pg_url, "SELECT COUNT(*) FROM activity WHERE kind = 'Add to SFDC Campaign' AND target = 'Seen'")
    assert seen[0][0] == persons * per_person  # one per Track run: done once, then "already a member"
