"""The worker in-process on a SQLite store: bad events are dead-lettered without holding up the rest, waits."""

from __future__ import annotations

from pathlib import Path

from service_helpers import RULES, put, query, seed

from engine.service.rules import RuleBook
from engine.service.worker import Worker


def make_worker(tmp_path: Path) -> tuple[Worker, str]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    seed(url)
    book = RuleBook([RULES])
    assert book.load().ok
    return Worker(url, book), url


def signup(email: str, **extra: object) -> dict[str, object]:
    return {"type": "added_to_sfdc_campaign", "person": email, "campaign": "Signups", "status": "Signed Up", **extra}


def test_an_event_that_cannot_be_processed_is_dead_lettered_and_the_rest_goes_on(tmp_path: Path) -> None:
    worker, url = make_worker(tmp_path)
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


def test_waits_are_run_by_the_wall_clock(tmp_path: Path) -> None:
    worker, url = make_worker(tmp_path)
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
