"""The store: opening, versioning, persons, memberships, continuations and the activity log."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.crm.local import LocalOrg
from engine.language.loader import load_rule_set
from engine.model.events import Event
from engine.model.world import World
from engine.replay.run import ReplayInputEvent, ReplayOptions, replay, seed_world
from engine.runtime.interpreter import Interpreter
from engine.store import schema
from engine.store.store import Store, StoreError
from engine.sync.programs import program_sync

WORLD = {
    "now": "2026-11-01T00:00:00Z",
    "persons": [
        {"email": "ann@example.com", "sfdc_type": "Lead", "sfdc_id": "00Q000000000001AAA"},
        {"email": "dan@example.com"},
    ],
    "sfdc_campaigns": [
        {"name": "Webinar", "id": "701000000000001AAA", "statuses": ["Sent", "Registered", "Attended"]},
        {"name": "Nurture", "id": "701000000000002AAA", "statuses": ["Sent", "Responded"]},
    ],
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


def load(tmp_path: Path, text: str):
    path = tmp_path / "rules.campaign"
    path.write_text(text, encoding="utf-8")
    loaded = load_rule_set([path], use_cache=False)
    assert not loaded.errors, [d.header() for d in loaded.errors]
    return loaded.rule_set


# ------------------------------------------------------------------------------ opening and versions


class TestOpen:
    def test_a_file_store_persists_across_reopen(self, url: str):
        store = Store.open(url)
        person = store.add_person("ann@example.com", "00Q000000000001AAA", "Lead")
        cid = store.add_campaign("Webinar", "701000000000001AAA", ["Sent", "Attended"])
        store.set_membership(person.id, cid, "Attended", 1000.0)
        store.close()

        store = Store.open(url)
        try:
            again = store.person("ann@example.com")
            assert again is not None
            assert (again.sfdc_id, again.sfdc_type) == ("00Q000000000001AAA", "Lead")
            info = store.campaign_by_name("Webinar")
            assert info is not None and info.statuses == ("Sent", "Attended")
            assert store.memberships(again.id) == {info.id: "Attended"}
        finally:
            store.close()

    def test_the_schema_version_is_recorded(self, url: str, db_file: Path):
        Store.open(url).close()
        with sqlite3.connect(db_file) as conn:
            rows = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        assert rows == [(str(schema.SCHEMA_VERSION),)]

    def test_reopening_keeps_one_version_row(self, url: str, db_file: Path):
        Store.open(url).close()
        Store.open(url).close()
        with sqlite3.connect(db_file) as conn:
            assert conn.execute("SELECT COUNT(*) FROM meta").fetchone() == (1,)

    def test_a_store_written_by_a_newer_release_is_refused(self, url: str, db_file: Path):
        Store.open(url).close()
        newer = schema.SCHEMA_VERSION + 1
        with sqlite3.connect(db_file) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(newer),))
        with pytest.raises(StoreError) as caught:
            Store.open(url)
        message = str(caught.value)
        assert f"schema version {newer}" in message
        assert f"knows up to {schema.SCHEMA_VERSION}" in message
        assert "upgrade" in message
        assert str(db_file) in message

    def test_an_unreachable_store_is_a_store_error(self, tmp_path: Path):
        with pytest.raises(StoreError, match="cannot open the store"):
            Store.open(f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'x.db'}")

    def test_uncommitted_work_is_lost_on_rollback(self, url: str):
        store = Store.open(url)
        store.add_person("ann@example.com")
        store.rollback()
        assert store.person("ann@example.com") is None
        store.close()


# ------------------------------------------------------------------------------ persons and memberships


class TestPersons:
    def test_emails_compare_case_insensitively_and_keep_their_spelling(self, url: str):
        store = Store.open(url)
        try:
            store.add_person("Ann.Smith@Example.com")
            store.commit()
            store.clear_caches()
            found = store.person("ann.smith@EXAMPLE.COM")
            assert found is not None
            assert found.email == "Ann.Smith@Example.com"
            assert [row[1] for row in store.persons()] == ["Ann.Smith@Example.com"]
        finally:
            store.close()

    def test_the_same_email_in_another_case_is_the_same_person(self, url: str):
        store = Store.open(url)
        try:
            store.add_person("ann@example.com")
            with pytest.raises(Exception):  # noqa: B017 - the unique constraint, whatever the driver calls it
                store.add_person("ANN@example.com")
        finally:
            store.rollback()
            store.close()

    def test_sfdc_ids_are_looked_up(self, url: str):
        store = Store.open(url)
        try:
            person = store.add_person("ann@example.com")
            assert store.person_by_sfdc_id("00Q000000000009AAA") is None
            store.set_person_sfdc(person, "00Q000000000009AAA", "Lead", "[not provided]", "[not provided]")
            found = store.person_by_sfdc_id("00Q000000000009AAA")
            assert found is not None and found.email == "ann@example.com"
            assert store.sfdc_id_taken("00Q000000000009AAA")
        finally:
            store.close()


class TestMemberships:
    def test_round_trip(self, url: str):
        store = Store.open(url)
        ann = store.add_person("ann@example.com", "00Q000000000001AAA", "Lead")
        bob = store.add_person("bob@example.com", "00Q000000000002AAA", "Lead")
        webinar = store.add_campaign("Webinar", "701000000000001AAA", ["Sent", "Registered", "Attended"])
        nurture = store.add_campaign("Nurture", "701000000000002AAA", ["Sent", "Responded"])
        store.set_membership(ann.id, webinar, "Registered", 1.0)
        store.set_membership(ann.id, nurture, "Sent", 1.0)
        store.set_membership(bob.id, webinar, "Sent", 1.0)
        store.set_membership(ann.id, webinar, "Attended", 2.0)  # an update, not a second row
        store.remove_membership(ann.id, nurture)
        store.close()

        store = Store.open(url)
        try:
            assert store.memberships(ann.id) == {webinar: "Attended"}
            assert store.campaign_members(webinar) == [(ann.id, "Attended"), (bob.id, "Sent")]
            assert store.campaign_members(nurture) == []
            assert store.member_count(webinar) == 2
        finally:
            store.close()

    def test_campaigns_by_name_and_by_15_or_18_character_id(self, url: str):
        store = Store.open(url)
        try:
            cid = store.add_campaign("Webinar", "701000000000001AAA", ["Sent", "Attended"], default="Attended")
            for key in ("701000000000001AAA", "701000000000001"):
                info = store.campaign_by_sfdc_id(key)
                assert info is not None and info.id == cid
            info = store.campaign_by_name("Webinar")
            assert info is not None
            assert info.default_status == "Attended"
            assert store.campaign_by_name("webinar") is None
        finally:
            store.close()

    def test_program_statuses_round_trip(self, url: str):
        store = Store.open(url)
        ann = store.add_person("ann@example.com")
        pid = store.program_id("Q4")
        assert store.program_id("Q4") == pid
        store.set_program_status(ann.id, pid, "Registered", 1.0)
        store.set_program_status(ann.id, pid, "Attended", 2.0)
        store.close()
        store = Store.open(url)
        try:
            assert store.program_status(ann.id, pid) == "Attended"
            assert store.program_members(pid) == [(ann.id, "Attended")]
            store.set_program_status(ann.id, pid, None, 3.0)
            assert store.program_status(ann.id, pid) is None
        finally:
            store.close()


# ------------------------------------------------------------------------------ continuations, events, ids


class TestContinuations:
    def test_ordered_by_due_time_then_by_insertion(self, url: str):
        store = Store.open(url)
        for due, campaign in ((300.0, "late"), (100.0, "first"), (200.0, "middle"), (100.0, "second")):
            store.add_continuation(1, campaign, 1, due, (0, 1, 2), 3, ("A", "B"))
        store.close()

        store = Store.open(url)
        try:
            assert store.pending_continuations() == 4
            assert store.next_due(50.0) is None
            seen = []
            while (due := store.next_due(250.0)) is not None:
                seen.append((due.campaign, due.due_at))
                store.delete_continuation(due.id)
            assert seen == [("first", 100.0), ("second", 100.0), ("middle", 200.0)]
            last = store.next_due(None)
            assert last is not None
            assert (last.campaign, last.path, last.depth, last.chain) == ("late", (0, 1, 2), 3, ("A", "B"))
        finally:
            store.close()

    def test_processed_event_ids_persist(self, url: str):
        store = Store.open(url)
        store.mark_event("e-1")
        store.close()
        store = Store.open(url)
        try:
            assert store.seen_event("e-1")
            assert not store.seen_event("e-2")
        finally:
            store.close()

    def test_assigned_ids_are_deterministic_and_skip_taken_ones(self, url: str):
        store = Store.open(url)
        try:
            store.add_person("ann@example.com", "00Q000000000001AAA", "Lead")
            first = store.next_sfdc_id("00Q", store.sfdc_id_taken)
            second = store.next_sfdc_id("00Q", store.sfdc_id_taken)
            assert (first, second) == ("00Q000000000002AAA", "00Q000000000003AAA")
        finally:
            store.close()


# ------------------------------------------------------------------------------ the activity log


RULES = """
program "Q4" { channel "Webinar" }
campaign "Follow-up" {
    trigger status changed in program "Q4"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        add to sfdc campaign "Nurture" with status "Sent"
        change status in sfdc campaign "Nurture" to "Responded"
        change status in sfdc campaign "Nurture" to "Bogus"
        remove from sfdc campaign "Nurture"
        change program status in program "Q4" to "Attended"
    }
}
"""


class TestActivity:
    def run(self, tmp_path: Path, url: str) -> None:
        rule_set = load(tmp_path, RULES)
        event = Event.model_validate(
            {"type": "program_status_changed", "person": "dan@example.com", "program": "Q4", "status": "Registered"}
        )
        replay(rule_set, World.model_validate(WORLD), [ReplayInputEvent(event)], ReplayOptions(), store_url=url)

    def test_marketo_activity_names_after_a_replay(self, tmp_path: Path, url: str):
        self.run(tmp_path, url)
        store = Store.open(url)
        try:
            dan = store.person("dan@example.com")
            assert dan is not None and dan.sfdc_id is not None
            log = list(reversed(store.activity_of(dan.id)))  # activity_of is newest first
        finally:
            store.close()
        kinds = [(row["kind"], row["outcome"]) for row in log]
        assert kinds == [
            ("Change Status in Progression", "done"),  # the program event
            ("Sync Lead to SFDC", "done"),
            ("Add to SFDC Campaign", "done"),
            ("Add to SFDC Campaign", "skipped"),
            ("Change Status in SFDC Campaign", "done"),
            ("Change Status in SFDC Campaign", "error"),
            ("Remove from SFDC Campaign", "done"),
            ("Change Status in Progression", "done"),  # the flow's program step
        ]
        assert log[0]["origin"] == "event"
        assert (log[0]["target"], log[0]["status"]) == ("Q4", "Registered")
        assert log[1]["reason"] == f"created lead {dan.sfdc_id}"
        for row in log[1:]:
            assert row["origin"] == "flow"
            assert row["smart_campaign"] == "Follow-up"
        assert (log[2]["target"], log[2]["status"]) == ("Nurture", "Sent")
        assert "already a member" in log[3]["reason"]
        assert 'not a member status of "Nurture"' in log[5]["reason"]
        assert (log[7]["target"], log[7]["status"]) == ("Q4", "Attended")
        assert all(row["at"] == World.model_validate(WORLD).now.timestamp() for row in log)

    def test_activity_is_paged_newest_first(self, tmp_path: Path, url: str):
        self.run(tmp_path, url)
        store = Store.open(url)
        try:
            dan = store.person("dan@example.com")
            assert dan is not None
            everything = store.activity_of(dan.id)
            first_page = store.activity_of(dan.id, limit=3)
            second_page = store.activity_of(dan.id, limit=3, before_id=first_page[-1]["id"])
        finally:
            store.close()
        assert [row["id"] for row in everything] == sorted((row["id"] for row in everything), reverse=True)
        assert first_page + second_page == everything[:6]

    def test_interpreter_on_a_file_store(self, tmp_path: Path, url: str):
        rule_set = load(
            tmp_path,
            """
campaign "Drip" {
    trigger added to sfdc campaign "Webinar"
    flow {
        add to sfdc campaign "Nurture" with status "Sent"
        wait 1 day
        change status in sfdc campaign "Nurture" to "Responded"
    }
}
""",
        )
        store = Store.open(url)
        org = LocalOrg(store)
        seed_world(store, org, World.model_validate(WORLD), rule_set)
        interp = Interpreter(rule_set, store, org, program_sync=program_sync())
        now = World.model_validate(WORLD).now.timestamp()
        interp.set_clock(now)
        ann = store.person("ann@example.com")
        webinar = store.campaign_by_name("Webinar")
        assert ann is not None and webinar is not None
        interp.observe_membership(ann, webinar, "Registered", now)
        interp.drain()
        store.close()

        # the wait survives a restart: a new interpreter on the same store finishes the run
        store = Store.open(url)
        try:
            assert store.pending_continuations() == 1
            assert store.qualification("Drip", ann.id) == (now, 1)
            interp = Interpreter(rule_set, store, LocalOrg(store), program_sync=program_sync())
            assert interp.run_due(now + 3600) == 0
            assert interp.run_due(now + 86400) == 1
            nurture = store.campaign_by_name("Nurture")
            assert nurture is not None
            assert store.memberships(ann.id)[nurture.id] == "Responded"
            kinds = [row["kind"] for row in reversed(store.activity_of(ann.id))]
            assert kinds == ["Add to SFDC Campaign", "Change Status in SFDC Campaign"]
        finally:
            store.close()

    def test_cascade_errors_are_kept(self, tmp_path: Path, url: str, db_file: Path):
        rule_set = load(
            tmp_path,
            """
campaign "Ping" {
    trigger added to sfdc campaign "Nurture"
    qualify every time
    flow { remove from sfdc campaign "Nurture" }
}
campaign "Pong" {
    trigger removed from sfdc campaign "Nurture"
    qualify every time
    flow { add to sfdc campaign "Nurture" with status "Sent" }
}
""",
        )
        event = Event.model_validate(
            {"type": "added_to_sfdc_campaign", "person": "ann@example.com", "campaign": "Nurture", "status": "Sent"}
        )
        result = replay(
            rule_set, World.model_validate(WORLD), [ReplayInputEvent(event)], ReplayOptions(max_depth=3), store_url=url
        )
        with sqlite3.connect(db_file) as conn:
            stored = [row[0] for row in conn.execute("SELECT message FROM errors")]
        assert stored == [e["message"] for e in result["errors"]]
        assert len(stored) == 1 and stored[0].startswith("cascade deeper than 3")


# ------------------------------------------------------------------------------ PostgreSQL


def test_postgresql_store_round_trip(postgres_url: str):
    store = Store.open(postgres_url)
    try:
        person = store.add_person("Ann@Example.com", "00Q000000000001AAA", "Lead")
        cid = store.add_campaign("Webinar", "701000000000001AAA", ["Sent", "Responded"])
        store.set_membership(person.id, cid, "Responded", 1.0)
        store.add_continuation(1, "Drip", person.id, 20.0, (0,), 0, ())
        store.add_continuation(1, "Drip", person.id, 10.0, (1,), 0, ())
        store.log_activity(person.id, 1.0, "Add to SFDC Campaign", "T", "Webinar", "Responded", "flow", "done", None)
    finally:
        store.close()
    store = Store.open(postgres_url)
    try:
        again = store.person("ann@example.com")
        assert again is not None and again.id == person.id and again.email == "Ann@Example.com"
        assert store.memberships(person.id) == {cid: "Responded"}
        due = store.next_due(None)
        assert due is not None and due.path == (1,)
        assert store.activity_of(person.id)[0]["kind"] == "Add to SFDC Campaign"
    finally:
        store.close()


def test_postgresql_replay_matches_sqlite(tmp_path: Path, postgres_url: str, url: str):
    rule_set = load(tmp_path, RULES)
    events = [
        ReplayInputEvent(
            Event.model_validate(
                {"type": "program_status_changed", "person": "dan@example.com", "program": "Q4", "status": "Registered"}
            )
        ),
        ReplayInputEvent(
            Event.model_validate(
                {"type": "added_to_sfdc_campaign", "person": "ann@example.com", "campaign": "Webinar", "status": "Sent"}
            )
        ),
    ]
    on_sqlite = replay(rule_set, World.model_validate(WORLD), events, ReplayOptions(), store_url=url)
    on_postgres = replay(rule_set, World.model_validate(WORLD), events, ReplayOptions(), store_url=postgres_url)
    assert on_postgres == on_sqlite


def test_processes_opening_a_new_store_side_by_side_all_get_it(postgres_url: str) -> None:
    """Workers started at once on a fresh database each open the store: the missing tables are made once,
    nobody fails on a table another one is creating."""
    import threading

    import engine.store.cursors  # noqa: F401  (its tables are part of the store's schema, as in a worker)

    start = threading.Barrier(6)
    failures: list[str] = []

    def open_store() -> None:
        start.wait()
        try:
            Store.open(postgres_url).close()
        except Exception as error:
            failures.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    store = Store.open(postgres_url)
    try:
        assert store.fetchone("SELECT COUNT(*) FROM meta WHERE key = 'schema_version'")[0] == 1
    finally:
        store.close()
