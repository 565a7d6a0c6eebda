"""Batch campaigns in the service (issue 12): the scheduler with a fake clock, on SQLite and PostgreSQL. A slot
that comes queues each selected person once, in one transaction with the schedule cursor; slots missed while
down run once, and the log says so; two schedulers on one database never queue a slot twice; the worker runs
the queued members; `smartcampaign schedule`'s listing."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from service_helpers import query

from engine.service import queue
from engine.service.metrics import ServiceMetrics
from engine.service.rules import RuleBook
from engine.service.schedule import Scheduler, cursor_name, upcoming
from engine.service.worker import Worker, WorkerOptions

RULES = """
campaign "Digest" {
    schedule every day at 09:00
    filter member of sfdc campaign "Stream"
    flow {
        add to sfdc campaign "Seen" with status "Sent"
    }
}

campaign "Top Two" {
    schedule every week on monday at 10:30
    timezone "Europe/Berlin"
    limit 2
    flow {
        add to sfdc campaign "Seen" with status "Sent"
    }
}

campaign "Welcome Kit" {
    trigger campaign is requested
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
    }
}

campaign "Welcome" {
    trigger added to sfdc campaign "Signups"
    flow {
        add to sfdc campaign "Nurture" with status "Queued"
    }
}
"""

WORLD = {
    "now": "2026-01-01T00:00:00Z",
    "persons": [
        {"email": f"{name}@example.com", "sfdc_type": "Lead", "sfdc_id": f"00Q00000000000{number}AAA"}
        for number, name in enumerate(["ann", "bob", "cat", "dan"], start=1)
    ],
    "sfdc_campaigns": [
        {"name": "Stream", "id": "701000000000001AAA", "statuses": ["S0"],
         "members": {"bob@example.com": "S0", "ann@example.com": "S0", "cat@example.com": "S0"}},
        {"name": "Seen", "id": "701000000000002AAA", "statuses": ["Sent"]},
        {"name": "Signups", "id": "701000000000003AAA", "statuses": ["Signed Up"]},
        {"name": "Nurture", "id": "701000000000004AAA", "statuses": ["Queued", "Active"]},
    ],
}  # fmt: skip


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def write_rules(directory: Path, text: str = RULES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "batch.campaign").write_text(text)
    (directory / "world.json").write_text(json.dumps(WORLD))
    return directory


def seed(url: str, rules: Path) -> RuleBook:
    """The store, the service tables and the world; the rule book loaded."""
    from engine.crm.local import LocalOrg
    from engine.model.loading import load_world
    from engine.replay.run import seed_world
    from engine.service.schema import prepare_database
    from engine.store.store import Store

    book = RuleBook([str(rules / "batch.campaign")])
    assert book.load().ok
    prepare_database(url)
    store = Store.open(url)
    try:
        seed_world(store, LocalOrg(store), load_world(str(rules / "world.json")), book.current()[0])
        store.commit()
    finally:
        store.close()
    return book


class Clock:
    def __init__(self, start: str) -> None:
        self.t = ts(start)

    def set(self, text: str) -> None:
        self.t = ts(text)

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


def inbox(url: str) -> list[tuple[str, str]]:
    return [(str(s), str(e)) for s, e in query(url, "SELECT source, event_id FROM service_inbox ORDER BY id")]


def cursor(url: str, campaign: str) -> str | None:
    rows = query(url, "SELECT value FROM service_cursors WHERE name = '" + cursor_name(campaign) + "'")
    return str(rows[0][0]) if rows else None


def drain(url: str, book: RuleBook) -> None:
    worker = Worker(url, book, options=WorkerOptions(schedule=False))
    try:
        while worker.step():
            pass
    finally:
        worker.close()


def test_a_slot_queues_each_selected_person_once_and_the_worker_runs_them(store_url: str, tmp_path: Path) -> None:
    book = seed(store_url, write_rules(tmp_path / "rules"))
    clock = Clock("2026-12-07T08:59:30")  # a Monday
    metrics = ServiceMetrics()
    scheduler = Scheduler(store_url, book, metrics, now=clock)
    try:
        assert scheduler.tick() == []  # first seen: the cursors start now
        assert cursor(store_url, "Digest") == "2026-12-07T08:59:30Z"
        assert 0 < scheduler.sleep_for() <= 1.0
        clock.set("2026-12-07T08:59:59")
        assert scheduler.tick() == [] and inbox(store_url) == []
        clock.set("2026-12-07T09:00:01")
        runs = scheduler.tick()
        assert [(r.campaign, r.missed, r.queued) for r in runs] == [("Digest", 1, 3)]
        assert scheduler.tick() == []  # the slot is handled
        clock.set("2026-12-07T09:31:00")  # 10:31 in Berlin: "Top Two", limited to the first two by email
        assert [(r.campaign, r.queued) for r in scheduler.tick()] == [("Top Two", 2)]
    finally:
        scheduler.close()
    assert inbox(store_url) == [
        ("schedule", "batch:Digest:2026-12-07T09:00Z:ann@example.com"),
        ("schedule", "batch:Digest:2026-12-07T09:00Z:bob@example.com"),
        ("schedule", "batch:Digest:2026-12-07T09:00Z:cat@example.com"),
        ("schedule", "batch:Top Two:2026-12-07T09:30Z:ann@example.com"),
        ("schedule", "batch:Top Two:2026-12-07T09:30Z:bob@example.com"),
    ]
    assert cursor(store_url, "Digest") == "2026-12-07T09:00:00Z"
    text = metrics.render().decode()
    assert 'smartcampaign_scheduled_runs_total{campaign="Digest"} 1.0' in text
    assert 'smartcampaign_batch_members_queued_total{campaign="Digest"} 3.0' in text
    assert 'smartcampaign_batch_members_queued_total{campaign="Top Two"} 2.0' in text

    drain(store_url, book)
    runs = query(
        store_url,
        "SELECT r.campaign, p.email, r.trigger FROM runs r JOIN persons p ON p.id = r.person_id ORDER BY r.id",
    )
    assert [(c, e) for c, e, _ in runs] == [
        ("Digest", "ann@example.com"), ("Digest", "bob@example.com"), ("Digest", "cat@example.com"),
        ("Top Two", "ann@example.com"), ("Top Two", "bob@example.com"),
    ]  # fmt: skip
    assert json.loads(runs[0][2])["type"] == "batch"
    assert query(store_url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL")[0][0] == 0
    seen = query(
        store_url,
        "SELECT p.email FROM memberships m JOIN campaigns c ON c.id = m.campaign_id JOIN persons p "
        "ON p.id = m.person_id WHERE c.name = 'Seen' ORDER BY p.email",
    )
    assert [row[0] for row in seen] == ["ann@example.com", "bob@example.com", "cat@example.com"]


def test_slots_missed_while_down_run_once_and_the_log_says_so(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = seed(store_url, write_rules(tmp_path / "rules"))
    clock = Clock("2026-12-06T12:00:00")
    first = Scheduler(store_url, book, now=clock)
    try:
        first.tick()
    finally:
        first.close()  # the service stops
    clock.set("2026-12-09T10:00:00")  # three days later: 09:00 came on the 7th, the 8th and the 9th
    again = Scheduler(store_url, book, now=clock)
    try:
        with caplog.at_level(logging.INFO, logger="smartcampaign.service"):
            runs = again.tick()
    finally:
        again.close()
    assert [(r.campaign, r.missed, r.queued) for r in runs] == [("Digest", 3, 3), ("Top Two", 1, 2)]
    assert (
        'batch campaign "Digest": 3 scheduled runs were missed while the service was down; running once for '
        "2026-12-09T09:00Z (3 persons queued)" in caplog.text
    )
    assert 'batch campaign "Top Two": 1 scheduled run was missed while the service was down' in caplog.text
    assert len(inbox(store_url)) == 5


def test_a_campaign_seen_first_after_its_slot_does_not_run_it(store_url: str, tmp_path: Path) -> None:
    book = seed(store_url, write_rules(tmp_path / "rules"))
    scheduler = Scheduler(store_url, book, now=Clock("2026-12-07T09:00:05"))
    try:
        assert scheduler.tick() == []
    finally:
        scheduler.close()
    assert inbox(store_url) == []


def test_a_crash_before_the_commit_selects_again_and_one_after_it_queues_nobody_twice(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = seed(store_url, write_rules(tmp_path / "rules"))
    clock = Clock("2026-12-07T08:00:00")
    scheduler = Scheduler(store_url, book, now=clock)
    real = queue.set_cursor

    def crash(store: Any, name: str, value: str) -> None:
        if name.startswith("schedule:"):
            raise RuntimeError("the process dies before the commit")
        real(store, name, value)

    try:
        scheduler.tick()
        clock.set("2026-12-07T09:00:02")
        monkeypatch.setattr(queue, "set_cursor", crash)
        with pytest.raises(RuntimeError):
            scheduler.tick()
        assert inbox(store_url) == [] and cursor(store_url, "Digest") == "2026-12-07T08:00:00Z"
        monkeypatch.setattr(queue, "set_cursor", real)
    finally:
        scheduler.close()
    restarted = Scheduler(store_url, book, now=clock)
    try:
        assert [(r.campaign, r.queued) for r in restarted.tick()] == [("Digest", 3)]
    finally:
        restarted.close()
    after = Scheduler(store_url, book, now=clock)  # a restart after the commit
    try:
        assert after.tick() == []
    finally:
        after.close()
    assert len(inbox(store_url)) == 3


def test_a_reload_that_changes_the_schedule_keeps_the_cursor(store_url: str, tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules")
    book = seed(store_url, rules)
    clock = Clock("2026-12-07T08:00:00")
    scheduler = Scheduler(store_url, book, now=clock)
    try:
        scheduler.tick()
        clock.set("2026-12-07T09:00:01")
        assert [r.campaign for r in scheduler.tick()] == ["Digest"]
        (rules / "batch.campaign").write_text(RULES.replace("every day at 09:00", "every day at 09:30"))
        assert book.load().ok
        assert scheduler.tick() == []  # 09:30 today has not come; 09:00 was handled
        assert cursor(store_url, "Digest") == "2026-12-07T09:00:00Z"
        clock.set("2026-12-07T09:30:01")
        runs = scheduler.tick()
    finally:
        scheduler.close()
    assert [(r.campaign, r.missed, r.queued) for r in runs if r.campaign == "Digest"] == [("Digest", 1, 3)]
    assert len([e for _, e in inbox(store_url) if e.startswith("batch:Digest:2026-12-07T09:30Z")]) == 3


def test_two_schedulers_on_one_postgresql_database_never_queue_a_slot_twice(pg_url: str, tmp_path: Path) -> None:
    book = seed(pg_url, write_rules(tmp_path / "rules"))
    clock = Clock("2026-12-07T08:00:00")
    schedulers = [Scheduler(pg_url, book, now=clock) for _ in range(4)]
    try:
        for scheduler in schedulers:
            scheduler.tick()
        for day in (7, 8, 9):
            clock.set(f"2026-12-{day:02d}T09:00:01")
            start = threading.Barrier(len(schedulers))
            results: list[int] = []

            def tick(scheduler: Scheduler, start: threading.Barrier, results: list[int]) -> None:
                start.wait()
                results.extend(r.queued for r in scheduler.tick() if r.campaign == "Digest")

            threads = [threading.Thread(target=tick, args=(s, start, results)) for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(results) == [3]  # one scheduler queued the slot; the others found it handled
    finally:
        for scheduler in schedulers:
            scheduler.close()
    ids = [e for _, e in inbox(pg_url) if e.startswith("batch:Digest:")]
    assert len(ids) == 9 and len(set(ids)) == 9


def test_the_listing_of_next_runs(tmp_path: Path) -> None:
    book = RuleBook([str(write_rules(tmp_path / "rules") / "batch.campaign")])
    assert book.load().ok
    listing = upcoming(book.current()[0], ts("2026-12-07T09:00:00"), 3)
    assert [entry.to_json() for entry in listing] == [
        {
            "campaign": "Digest",
            "schedule": "schedule every day at 09:00",
            "timezone": "UTC",
            "limit": None,
            "active": True,
            "next_runs": [
                {"local": "2026-12-08T09:00+00:00", "utc": "2026-12-08T09:00Z"},
                {"local": "2026-12-09T09:00+00:00", "utc": "2026-12-09T09:00Z"},
                {"local": "2026-12-10T09:00+00:00", "utc": "2026-12-10T09:00Z"},
            ],
        },
        {
            "campaign": "Top Two",
            "schedule": "schedule every week on monday at 10:30",
            "timezone": "Europe/Berlin",
            "limit": 2,
            "active": True,
            "next_runs": [
                {"local": "2026-12-07T10:30+01:00", "utc": "2026-12-07T09:30Z"},
                {"local": "2026-12-14T10:30+01:00", "utc": "2026-12-14T09:30Z"},
                {"local": "2026-12-21T10:30+01:00", "utc": "2026-12-21T09:30Z"},
            ],
        },
    ]
