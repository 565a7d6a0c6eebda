"""Batch and requested campaigns with real processes on PostgreSQL: `serve` and a `worker` side by side (two
schedulers) run a slot that came while they were down once, say so in the log, and run a request; `kill -9` of a
worker in the middle of a batch run, then a new worker: every selected person's run happens exactly once.

The schedule is the current minute of the day and the stored cursor is set before it (as a service that was down
would have left it), so the slot is due the moment the processes start: no test waits for a clock."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from service_helpers import Proc, free_port, query, wait_until
from test_schedule import RULES, WORLD, seed, write_rules

from engine.service.schedule import cursor_name, iso_utc

TOKEN = "schedule-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def due_rules(directory: Path, persons: int = 0) -> tuple[Path, datetime]:
    """Rules whose "Digest" comes every day at the current UTC minute (already come); a world of `persons` more
    members of "Stream" besides ann, bob and cat."""
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    rules = write_rules(directory, RULES.replace("every day at 09:00", f"every day at {slot:%H:%M}"))
    if persons:
        world = json.loads(json.dumps(WORLD))
        for n in range(persons):
            email = f"m{n:05d}@example.com"
            world["persons"].append({"email": email, "sfdc_type": "Lead", "sfdc_id": f"00Q1{n:011d}AAA"})
            world["sfdc_campaigns"][0]["members"][email] = "S0"
        (rules / "world.json").write_text(json.dumps(world))
    return rules, slot


def set_cursor(url: str, campaign: str, at: datetime) -> None:
    from engine.store.store import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO service_cursors (name, value) VALUES (%s, %s)",
                (cursor_name(campaign), iso_utc(at.timestamp())),
            )
    finally:
        engine.dispose()


def digest_runs(url: str) -> Counter[str]:
    rows = query(url, "SELECT p.email FROM runs r JOIN persons p ON p.id = r.person_id WHERE r.campaign = 'Digest'")
    return Counter(str(row[0]) for row in rows)


def test_serve_and_a_worker_run_a_missed_slot_once_and_a_request(pg_url: str, tmp_path: Path) -> None:
    rules, slot = due_rules(tmp_path / "rules")
    seed(pg_url, rules)
    set_cursor(pg_url, "Digest", slot - timedelta(days=3) + timedelta(minutes=1))  # 3 slots missed since
    port = free_port()
    rule_file = str(rules / "batch.campaign")
    serve = Proc(["serve", "--rules", rule_file, "--db", pg_url, "--port", str(port), "--token", TOKEN,
                  "--workers", "0"], tmp_path / "serve.log")  # fmt: skip
    work = Proc(["worker", "--rules", rule_file, "--db", pg_url, "--name", "w1", "--idle-sleep", "0.02"],
                tmp_path / "worker.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert serve.alive(), serve.output()
            try:
                return requests.get(f"{base}/readyz", headers=AUTH, timeout=1).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until(up, 30, 0.1, "the service to be ready")
        wait_until(lambda: sum(digest_runs(pg_url).values()) == 3, 30, 0.05, "the missed slot's runs")
        answer = requests.post(f"{base}/campaigns/Welcome Kit/request", json={"persons": ["dan@example.com"]},
                               headers=AUTH, timeout=10)  # fmt: skip
        assert answer.status_code == 202 and answer.json()["queued"] == 1
        kit = "SELECT COUNT(*) FROM runs WHERE campaign = 'Welcome Kit'"
        wait_until(lambda: query(pg_url, kit)[0][0] == 1, 30, 0.05, "the requested run")
        time.sleep(1.5)  # both schedulers look again (every second): nothing more is queued
        assert serve.terminate() == 0 and work.terminate() == 0
    finally:
        serve.close()
        work.close()
    assert digest_runs(pg_url) == {"ann@example.com": 1, "bob@example.com": 1, "cat@example.com": 1}
    queued = query(pg_url, "SELECT event_id FROM service_inbox WHERE source = 'schedule' ORDER BY id")
    when = slot.strftime("%Y-%m-%dT%H:%MZ")
    assert [row[0] for row in queued] == [f"batch:Digest:{when}:{name}@example.com" for name in ("ann", "bob", "cat")]
    logs = serve.output() + work.output()
    line = f'batch campaign "Digest": 3 scheduled runs were missed while the service was down; running once for {when}'
    assert logs.count(line) == 1, logs
    assert "Traceback" not in logs


def test_kill_9_of_a_worker_mid_batch_runs_everyone_once(pg_url: str, tmp_path: Path) -> None:
    persons = 1500
    rules, slot = due_rules(tmp_path / "rules", persons)
    seed(pg_url, rules)
    set_cursor(pg_url, "Digest", slot - timedelta(minutes=1))
    rule_file = str(rules / "batch.campaign")
    args = ["worker", "--rules", rule_file, "--db", pg_url, "--idle-sleep", "0.02", "--batch-size", "20"]
    first = Proc([*args, "--name", "w1"], tmp_path / "w1.log")
    done = "SELECT COUNT(*) FROM service_inbox WHERE source = 'schedule' AND processed_at IS NOT NULL"
    try:
        wait_until(lambda: query(pg_url, done)[0][0] >= 100, 60, 0.005, "the batch to be under way")
        first.kill9()
    finally:
        first.close()
    at_kill = int(query(pg_url, done)[0][0])
    second = Proc([*args, "--name", "w2"], tmp_path / "w2.log")
    try:
        wait_until(lambda: query(pg_url, done)[0][0] == persons + 3, 120, 0.05, "the batch to finish")
        assert second.terminate() == 0
    finally:
        second.close()
    assert at_kill < persons + 3, "the kill came after the batch: make it bigger"
    runs = digest_runs(pg_url)
    assert len(runs) == persons + 3 and set(runs.values()) == {1}
    assert query(pg_url, "SELECT COUNT(*) FROM service_inbox WHERE source = 'schedule'")[0][0] == persons + 3
    assert "Traceback" not in second.output()
