"""The store with `batch_writes` (how the service's workers use PostgreSQL): the hot writes wait for the commit
and go in one round trip, yet everything reads back as if each had been written at once."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine.store.store import Store


class BatchedStore(Store):
    batch_writes = True


class WorkerLikeStore(Store):
    batch_writes = True
    keep_catalog = True


TABLES = {  # persons by email (ids are drawn differently); runs in the order of their ids
    "persons": "SELECT email, display_email, sfdc_id, sfdc_type, first_name, last_name, company FROM persons",
    "memberships": "SELECT p.email, campaign_id, status, added_at, changed_at FROM memberships JOIN persons p "
    "ON p.id = person_id",
    "program_memberships": "SELECT p.email, program_id, status, changed_at FROM program_memberships JOIN persons p "
    "ON p.id = person_id",
    "runs": "SELECT r.id, campaign, p.email, started_at, trigger FROM runs r JOIN persons p ON p.id = person_id",
    "qualifications": "SELECT campaign, p.email, last_started_at, runs FROM qualifications JOIN persons p "
    "ON p.id = person_id",
    "processed_events": "SELECT event_id FROM processed_events",
    "activity": "SELECT p.email, at, kind, smart_campaign, target, status, origin, outcome, reason FROM activity "
    "JOIN persons p ON p.id = person_id",
}


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    tables = {name: sorted(tuple(row) for row in store.fetchall(sql)) for name, sql in TABLES.items()}
    tables["runs"] = [row[1:] for row in tables["runs"]]
    return tables


def script(store: Store, seed: int) -> list[Any]:
    """Random work as the interpreter does it, with reads in between, commits and one rollback; what it read."""
    rng = random.Random(seed)
    read: list[Any] = []
    statuses = ["Sent", "Attended", "Left"]
    campaigns = [store.add_campaign(f"C{seed}.{n}", f"701{seed:06d}{n:06d}AAA", statuses) for n in range(3)]
    programs = [store.program_id(f"P{n}") for n in range(2)]
    store.commit()
    emails = [f"Person{n}@Example.com" for n in range(6)]
    clock = 1000.0
    for step in range(400):
        clock += 1.5
        email = rng.choice(emails)
        if rng.random() < 0.1:  # a batch's people read at once, as a worker does (only batch_writes reads here)
            store.load_people(rng.sample(emails, 3))
        person = store.person(email)
        read.append(person)
        if person is None:
            sfdc_id = f"00Q{step:012d}AAA" if rng.random() < 0.5 else None
            person = store.add_person(email, sfdc_id, "Lead" if sfdc_id else None, last_name=rng.choice([None, "L"]))
            read.append(store.person(email.upper()))
            continue
        action = rng.randrange(9)
        campaign = rng.choice(campaigns)
        if action == 0 and not person.sfdc_id:
            store.set_person_sfdc(person, f"00Q{step:012d}AAB", "Lead", "Last", "Company")
            read.append(store.person_names(person.id))
        elif action in (1, 2):
            store.set_membership(person.id, campaign, rng.choice(["Sent", "Attended", "Left"]), clock)
        elif action == 3:
            store.remove_membership(person.id, campaign)
        elif action == 4:
            store.set_program_status(
                person.id, rng.choice(programs), rng.choice(["Invited", "Registered", None]), clock
            )
            read.append(store.program_statuses(person.id))
        elif action == 5:
            drip = rng.choice(["Drip", "Once"])
            read.append(store.qualification(drip, person.id))
            store.start_run(drip, person.id, clock, {"step": step})
            read.append(store.qualification(drip, person.id))
        elif action == 6:
            event_id = f"e-{rng.randrange(40)}"
            read.append(store.seen_event(event_id))
            if not store.seen_event(event_id):
                store.mark_event(event_id)
        elif action == 7:
            store.log_activity(person.id, clock, "Note", None, None, None, "flow", "done", f"step {step}")
        else:  # a reader that goes around the caches
            read.append(
                store.fetchall(
                    "SELECT campaign_id, status FROM memberships WHERE person_id = ? ORDER BY 1", (person.id,)
                )
            )
        read.append(sorted(store.memberships(person.id).items()))
        read.append(store.person_by_id(person.id))
        if person.sfdc_id:
            read.append(store.person_by_sfdc_id(person.sfdc_id))
        if step % 37 == 36:
            store.commit()
        if step == 200:
            store.rollback()
    store.commit()
    return read


def test_batched_writes_leave_the_rows_and_answers_of_writes_made_at_once(postgres_url: str, second_postgres_url: str):
    at_once = Store.open(postgres_url)
    batched = BatchedStore.open(second_postgres_url)
    try:
        assert batched.batch_writes and not at_once.batch_writes
        for seed in (1, 2):
            assert script(batched, seed) == script(at_once, seed)
            assert dump(batched) == dump(at_once)
    finally:
        at_once.close()
        batched.close()


def memberships_after(store: Store) -> list[tuple[Any, ...]]:
    """One transaction of writes to the same memberships, nothing read in between."""
    cids = [store.add_campaign(f"C{n}", f"70100000000000{n}AAA", ["Sent", "Attended"]) for n in range(4)]
    ann = store.add_person("ann@example.com")
    for cid in cids[2:]:
        store.set_membership(ann.id, cid, "Sent", 1.0)
    store.commit()
    store.set_membership(ann.id, cids[0], "Sent", 2.0)  # added, changed, left, back, changed
    store.set_membership(ann.id, cids[0], "Attended", 3.0)
    store.remove_membership(ann.id, cids[0])
    store.set_membership(ann.id, cids[0], "Sent", 4.0)
    store.set_membership(ann.id, cids[0], "Attended", 5.0)
    store.set_membership(ann.id, cids[1], "Sent", 6.0)  # added, changed
    store.set_membership(ann.id, cids[1], "Attended", 7.0)
    store.set_membership(ann.id, cids[2], "Attended", 8.0)  # member before: changed, left, back
    store.remove_membership(ann.id, cids[2])
    store.set_membership(ann.id, cids[2], "Sent", 9.0)
    store.set_membership(ann.id, cids[3], "Attended", 10.0)  # member before: changed, left
    store.remove_membership(ann.id, cids[3])
    store.commit()
    return dump(store)["memberships"]


def test_many_writes_to_one_membership_in_a_transaction(postgres_url: str, second_postgres_url: str):
    at_once, batched = Store.open(postgres_url), BatchedStore.open(second_postgres_url)
    try:
        assert (
            memberships_after(batched)
            == memberships_after(at_once)
            == [
                ("ann@example.com", 1, "Attended", 4.0, 5.0),
                ("ann@example.com", 2, "Attended", 6.0, 7.0),
                ("ann@example.com", 3, "Sent", 9.0, 9.0),
            ]
        )
    finally:
        at_once.close()
        batched.close()


def test_every_reader_sees_what_waits_to_be_written(postgres_url: str):
    store = BatchedStore.open(postgres_url)
    try:
        cid = store.add_campaign("Webinar", "701000000000001AAA", ["Sent", "Attended"])
        ann = store.add_person("ann@example.com")
        store.set_membership(ann.id, cid, "Attended", 5.0)
        store.mark_event("e-1")
        assert store.fetchone("SELECT status FROM memberships WHERE person_id = ?", (ann.id,))[0] == "Attended"
        store.set_membership(ann.id, cid, "Sent", 6.0)
        rows = store.conn.exec_driver_sql("SELECT status FROM memberships").fetchall()  # through SQLAlchemy
        assert [tuple(row) for row in rows] == [("Sent",)]
        store.remove_membership(ann.id, cid)
        assert store.campaign_members(cid) == []
        assert store.seen_event("e-1")
        store.rollback()
        assert store.person("ann@example.com") is None
        assert store.fetchone("SELECT COUNT(*) FROM processed_events")[0] == 0
    finally:
        store.close()


def test_a_person_not_found_is_found_once_added_here_or_elsewhere(postgres_url: str):
    here = BatchedStore.open(postgres_url)
    elsewhere = Store.open(postgres_url)
    try:
        assert here.person("bo@example.com") is None
        assert here.person("bo@example.com") is None
        added = here.add_person("Bo@example.com")
        assert here.person("BO@example.com") == added
        here.commit()
        assert here.person("cy@example.com") is None
        here.commit()
        elsewhere.add_person("cy@example.com")
        elsewhere.commit()
        found = here.person("cy@example.com")
        assert found is not None and found.email == "cy@example.com"
    finally:
        here.close()
        elsewhere.close()


def test_qualifications_read_with_a_batch_or_when_asked(postgres_url: str):
    store = BatchedStore.open(postgres_url)
    try:
        ann = store.add_person("ann@example.com")
        store.start_run("Once", ann.id, 1.0, {})
        store.start_run("Drip", ann.id, 2.0, {})
        store.commit()
        store.load_people(["ann@example.com"])  # no campaign asked about yet: none of her rows read with her
        assert store.qualification("Once", ann.id) == (1.0, 1)
        store.commit()
        store.load_people(["ann@example.com"])  # "Once" read with her now, "Drip" is asked about first
        assert store.qualification("Drip", ann.id) == (2.0, 1)
        assert store.qualification("Once", ann.id) == (1.0, 1)
        assert store.qualification("Weekly", ann.id) is None
    finally:
        store.close()


def test_a_catalog_changed_elsewhere_is_seen_when_the_next_persons_are_loaded(postgres_url: str):
    worker = WorkerLikeStore.open(postgres_url)
    other = Store.open(postgres_url)
    try:
        worker.add_campaign("Webinar", "701000000000001AAA", ["Sent"])
        worker.commit()
        worker.load_people(["ann@example.com"])
        assert [c.name for c in worker.campaigns()] == ["Webinar"]
        worker.commit()
        other.add_campaign("Launch", "701000000000002AAA", ["Sent", "Came"])
        other.set_campaign_statuses(other.campaign_by_name("Webinar").id, ["Sent", "Attended"], "Sent", ())  # type: ignore[union-attr]
        other.commit()
        worker.load_people(["ann@example.com"])
        assert [c.name for c in worker.campaigns()] == ["Launch", "Webinar"]
        assert worker.campaign_by_name("Webinar").statuses == ("Sent", "Attended")  # type: ignore[union-attr]
    finally:
        worker.close()
        other.close()


def test_ids_from_blocks_are_unique_across_stores(postgres_url: str):
    setup = Store.open(postgres_url)
    setup.execute("CREATE SEQUENCE lead_ids START WITH 500000000")
    setup.add_person("taken@example.com", "00Q000500000003AAA", "Lead")  # a Salesforce id the sequence will reach
    setup.close()
    stores = [BatchedStore.open(postgres_url) for _ in range(2)]
    try:
        leads: list[str] = []
        for n in range(300):
            store = stores[n % 2]
            lead = store.sfdc_id_from_sequence("lead_ids", "00Q", store.sfdc_id_taken)
            person = store.add_person(f"p{n}@example.com", lead, "Lead")
            store.start_run("Track", person.id, float(n), {})
            leads.append(lead)
            if n % 7 == 0:
                store.commit()
        for store in stores:
            store.commit()
        assert len(set(leads)) == 300 and "00Q000500000003AAA" not in leads
        persons = stores[0].fetchall("SELECT COUNT(*), COUNT(DISTINCT id), COUNT(DISTINCT sfdc_id) FROM persons")
        assert tuple(persons[0]) == (301, 301, 301)
        runs = stores[0].fetchall("SELECT COUNT(*), COUNT(DISTINCT id) FROM runs")
        assert tuple(runs[0]) == (300, 300)
    finally:
        for store in stores:
            store.close()


def test_a_persons_runs_are_numbered_in_their_order_when_stores_take_turns(postgres_url: str):
    setup = Store.open(postgres_url)
    ann = setup.add_person("ann@example.com")
    setup.close()
    first, second = BatchedStore.open(postgres_url), BatchedStore.open(postgres_url)
    try:
        for number in range(12):  # as two workers taking turns with one person, one transaction each
            store = first if number % 3 else second
            store.load_people(["ann@example.com"], expected=1)
            store.start_run("Track", ann.id, float(number), {"number": number})
            store.commit()
        order = [row[0] for row in first.fetchall("SELECT started_at FROM runs ORDER BY id")]
        assert order == [float(n) for n in range(12)]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("batch", [False, True])
def test_a_failed_write_undoes_the_whole_transaction(postgres_url: str, batch: bool):
    store = (BatchedStore if batch else Store).open(postgres_url)
    try:
        store.add_person("ann@example.com")
        store.commit()
        store.mark_event("e-1")
        store.add_person("bob@example.com")
        with pytest.raises(Exception, match="duplicate key"):
            store.add_person("ann@example.com")  # another store added her: the unique email says no
            store.commit()
        store.rollback()
        assert store.person("bob@example.com") is None and not store.seen_event("e-1")
    finally:
        store.close()
