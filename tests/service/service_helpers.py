"""Helpers for the service tests: a fresh PostgreSQL schema per test, worker and server processes, the store."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).parent
RULES = str(HERE / "rules")
WORLD = str(HERE / "world.json")
PG_DSN = os.environ.get("SMARTCAMPAIGN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A new, empty schema; yields a SQLAlchemy URL whose connections use it; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    base = PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A service process (`python -m engine.cli ...`) with its output in a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.handle = log.open("ab")
        full_env = {**os.environ, **(env or {})}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", *args],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
        return self.popen.wait(timeout)

    def output(self) -> str:
        if not self.handle.closed:
            self.handle.flush()
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        self.handle.close()


def worker(url: str, log: Path, *extra: str, env: dict[str, str] | None = None, name: str = "w") -> Proc:
    args = ["worker", "--rules", RULES, "--db", url, "--name", name, "--idle-sleep", "0.02", *extra]
    return Proc(args, log, env)


def seed(url: str) -> None:
    """The store's schema, the service tables and the test world (local org)."""
    from engine.crm.local import LocalOrg
    from engine.language.loader import load_rule_set
    from engine.model.loading import load_world
    from engine.replay.run import seed_world
    from engine.service.schema import prepare_database
    from engine.store.store import Store

    prepare_database(url)
    store = Store.open(url)
    try:
        seed_world(store, LocalOrg(store), load_world(WORLD), load_rule_set([RULES]).rule_set)
        store.commit()
    finally:
        store.close()


def put(url: str, events: list[dict[str, Any]]) -> int:
    """Events straight into the inbox, as the API would (one transaction)."""
    from engine.model.events import Event
    from engine.service.queue import put_events
    from engine.store.store import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            return put_events(conn, [Event.model_validate(e) for e in events], source="api").accepted
    finally:
        engine.dispose()


def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    from engine.store.store import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(sql, params).fetchall()]
    finally:
        engine.dispose()


def processed(url: str) -> int:
    return int(query(url, "SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NOT NULL")[0][0])


def stream(persons: int, per_person: int, statuses: int = 8) -> list[dict[str, Any]]:
    """Interleaved status changes in "Stream": each person's k-th event has status S(k mod statuses)."""
    events: list[dict[str, Any]] = []
    for k in range(per_person):
        for n in range(persons):
            events.append(
                {
                    "type": "status_changed_in_sfdc_campaign",
                    "person": f"p{n:04d}@example.com",
                    "campaign": "Stream",
                    "status": f"S{k % statuses}",
                    "id": f"stream-{n}-{k}",
                }
            )
    return events


def runs_by_person(url: str) -> dict[str, list[str]]:
    """Each person's "Track" runs, in order: the status each was triggered by."""
    out: dict[str, list[str]] = {}
    for email, trigger in query(
        url,
        "SELECT p.email, r.trigger FROM runs r JOIN persons p ON p.id = r.person_id "
        "WHERE r.campaign = 'Track' ORDER BY r.id",
    ):
        out.setdefault(str(email), []).append(str(json.loads(trigger)["status"]))
    return out
