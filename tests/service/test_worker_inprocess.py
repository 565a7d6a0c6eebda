"""The worker in-process, on SQLite and on PostgreSQL: bad events are dead-lettered without holding up the rest,
waits, events processed before are not run again."""

from __future__ import annotations

from pathlib import Path

import pytest
from service_helpers import RULES, put, query, seed, stream

from engine.service import queue
from engine.service.rules import RuleBook
from engine.service.worker import ServiceStore, Worker


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


def make_worker(url: str) -> tuple[Worker, str]:
    seed(url)
    book = RuleBook([RULES])
    assert book.load().ok
    return Worker(url, book), url


def signup(email: str, **extra: object) -> dict[str, object]:
    return {"type": "added_to_sfdc_campaign", "person": email, "campaign": "Signups", "status": "Signed Up", **extra}


def test_an_event_that_cannot_be_processed_is_dead_lettered_and_the_rest_goes_on(store_url: str) -> None:
    worker, url = make_worker(store_url)
    try:
        # the API refuses unknown campaigns; an event that got in anyway (the catalog changed since) must not block
        put(url, [signup("ann@example.com"), {**signup("bob@example.com"), "campaign": "Gone"},
                  signup("bob@example.com"), signup("cat@example.com")])  # fmt: skip
        while worker.step():
            pass
    finally:
        worker.close()
    rows = query(url, "SELECT event, processed_at IS NOT NULL, error FROM service_inbox ORDER BY id")
    assert all(done for _, done, _ in rows)
    errors = [error for _, _, error in rows if error]
    assert len(errors) == 1 and 'no SFDC campaign "Gone"' in errors[0]
    assert query(url, "SELECT COUNT(*) FROM runs WHERE campaign = 'Welcome'")[0][0] == 3
    assert 'smartcampaign_events_processed_total{outcome="dead_letter"} 1.0' in worker.metrics.render().decode()


def test_waits_are_run_by_the_wall_clock(store_url: str) -> None:
    worker, url = make_worker(store_url)
    try:
        put(url, [signup("ann@example.com", at="2026-01-01T00:00:00Z")])  # long ago: the 1-minute wait is due
        while worker.step():
            pass
    finally:
        worker.close()
    steps = query(
        url,
        "SELECT kind, status FROM activity a JOIN persons p ON p.id = a.person_id WHERE p.email = 'ann@example.com' "
        "ORDER BY a.id",
    )
    assert steps == [("Add to SFDC Campaign", "Queued"), ("Change Status in SFDC Campaign", "Active")]
    assert query(url, "SELECT COUNT(*) FROM continuations")[0][0] == 0


def test_new_and_known_persons_in_one_batch_and_events_processed_before(store_url: str) -> None:
    worker, url = make_worker(store_url)
    try:
        events = stream(30, 4)  # 30 new persons, 4 events each, in one batch
        events.append({**signup("ann@example.com"), "id": "ann-1"})  # known from the world
        events.append({**signup("Ann@Example.com"), "id": "ann-2"})
        put(url, events)
        worker.store.mark_event("stream-3-1")  # as if a replay into this store had processed it already
        worker.store.mark_event("ann-2")
        worker.store.commit()
        while worker.step():
            pass
    finally:
        worker.close()
    assert query(url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL OR error IS NOT NULL")[0][0] == 0
    runs = query(url, "SELECT p.email, r.campaign, r.trigger FROM runs r JOIN persons p ON p.id = r.person_id")
    assert len(runs) == 30 * 4 - 1 + 1
    assert sum(1 for email, campaign, _ in runs if email == "ann@example.com" and campaign == "Welcome") == 1
    assert not any(email == "p0003@example.com" and '"S1"' in trigger for email, _, trigger in runs)
    persons = query(url, "SELECT COUNT(*), COUNT(DISTINCT sfdc_id) FROM persons WHERE sfdc_id IS NOT NULL")
    assert persons == [(31, 31)]
    assert query(url, "SELECT COUNT(*) FROM processed_events")[0][0] == 30 * 4 + 2


def test_a_batch_holds_its_own_persons_and_leaves_the_others_to_other_workers(pg_url: str) -> None:
    seed(pg_url)
    put(pg_url, stream(50, 2))
    first, second = ServiceStore.open(pg_url), ServiceStore.open(pg_url)
    try:
        taken = queue.claim_inbox(first, 20, max_partitions=20)
        also = queue.claim_inbox(second, 20, max_partitions=20)  # while the first batch is in flight
        assert len(taken) == len(also) == 20
        assert not {row.partition for row in taken} & {row.partition for row in also}
    finally:
        first.rollback()
        second.rollback()
        first.close()
        second.close()
