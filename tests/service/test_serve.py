"""`smartcampaign serve` as a process on PostgreSQL: SIGTERM finishes the batch in flight and exits 0; the
restarted service goes on where it stopped, waits included."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from service_helpers import RULES, WORLD, Proc, free_port, processed, query, runs_by_person, stream, wait_until

TOKEN = "serve-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve(url: str, port: int, log: Path, *extra: str) -> Proc:
    args = ["serve", "--rules", RULES, "--db", url, "--world", WORLD, "--port", str(port), "--token", TOKEN, *extra]
    proc = Proc(args, log)

    def up() -> bool:
        assert proc.alive(), proc.output()
        try:
            return requests.get(f"http://127.0.0.1:{port}/readyz", headers=AUTH, timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(up, 30, 0.1, "the service to be ready")
    return proc


def nurture_status(url: str, email: str) -> str | None:
    rows = query(
        url,
        "SELECT m.status FROM memberships m JOIN campaigns c ON c.id = m.campaign_id "
        "JOIN persons p ON p.id = m.person_id WHERE c.name = 'Nurture' AND p.email = %s",
        (email,),
    )
    return str(rows[0][0]) if rows else None


def test_sigterm_is_graceful_and_the_restarted_service_goes_on(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(pg_url, port, tmp_path / "serve1.log", "--batch-size", "20")
    persons, per_person = 50, 40
    events = stream(persons, per_person)
    # a wait that ends 4 s from now: the service stops before it is due, the next one runs it
    at = (datetime.now(UTC) - timedelta(seconds=56)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    waiting = {"type": "added_to_sfdc_campaign", "person": "wai@example.com", "campaign": "Signups",
               "status": "Signed Up", "at": at}  # fmt: skip
    try:
        assert requests.post(f"{base}/events", json=[waiting], headers=AUTH, timeout=10).status_code == 202
        for start in range(0, len(events), 500):
            answer = requests.post(f"{base}/events", json=events[start : start + 500], headers=AUTH, timeout=30)
            assert answer.status_code == 202
        wait_until(lambda: processed(pg_url) >= 200, 30, 0.02, "the worker to be busy")
        assert proc.terminate(30) == 0, proc.output()
    finally:
        proc.close()
    log = proc.output()
    assert "Traceback" not in log and "smartcampaign stopped" in log
    done = processed(pg_url)
    assert 0 < done < len(events) + 1  # stopped mid-stream ...
    tracked = sum(len(statuses) for statuses in runs_by_person(pg_url).values())
    assert tracked == done - 1  # ... with every processed event wholly applied (the wait's event is not a Track run)
    assert nurture_status(pg_url, "wai@example.com") == "Queued"
    assert query(pg_url, "SELECT COUNT(*) FROM continuations")[0][0] == 1
    try:
        requests.get(f"{base}/healthz", timeout=1)
        raise AssertionError("the API still answers after SIGTERM")
    except requests.ConnectionError:
        pass

    again = serve(pg_url, port, tmp_path / "serve2.log")
    try:
        wait_until(lambda: processed(pg_url) == len(events) + 1, 60, 0.1, "the inbox to drain")
        wait_until(lambda: nurture_status(pg_url, "wai@example.com") == "Active", 20, 0.1, "the wait to end")
        metrics = requests.get(f"{base}/metrics", headers=AUTH, timeout=5).text
        assert "smartcampaign_inbox_depth 0.0" in metrics
        assert again.terminate(30) == 0
    finally:
        again.close()
    expected = [f"S{k % 8}" for k in range(per_person)]
    runs = runs_by_person(pg_url)
    assert len(runs) == persons and all(statuses == expected for statuses in runs.values())
    assert query(pg_url, "SELECT COUNT(*) FROM runs WHERE campaign = 'Welcome'")[0][0] == 1
    assert query(pg_url, "SELECT COUNT(*) FROM continuations")[0][0] == 0


def test_api_only_serve_and_separate_worker(pg_url: str, tmp_path: Path) -> None:
    """`--workers 0` takes events; a `worker` process runs them."""
    from service_helpers import worker

    port = free_port()
    proc = serve(pg_url, port, tmp_path / "api.log", "--workers", "0")
    work = None
    try:
        answer = requests.post(f"http://127.0.0.1:{port}/events", json=stream(5, 4), headers=AUTH, timeout=10)
        assert answer.status_code == 202 and answer.json()["accepted"] == 20
        time.sleep(0.5)
        assert processed(pg_url) == 0
        work = worker(pg_url, tmp_path / "w.log")
        wait_until(lambda: processed(pg_url) == 20, 30, 0.05, "the worker")
        assert work.terminate() == 0
        assert proc.terminate() == 0
    finally:
        proc.close()
        if work is not None:
            work.close()
