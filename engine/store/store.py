"""The store: the engine's mirror of Salesforce and everything the interpreter remembers.

SQLAlchemy owns the schema, the connection and the transaction; the hot path (one event = a few
point reads and writes) goes straight to the DBAPI cursor with statements written once, because a
Core round trip costs several times more than SQLite itself. Activity rows are buffered and written
in one `executemany` per commit.

A store with `batch_writes` (the service's workers, on PostgreSQL) goes further, because there every
statement is a network round trip: the rows of the persons a batch is about are read in one round trip
when the batch is claimed (`load_people`); runs, qualifications, memberships, program statuses, new
persons, processed event ids and activity are collected and written when the transaction commits, one
statement per table (`unnest` arrays), all in one pipeline; ids for new persons and runs are drawn from
their sequences in blocks. Any other statement on the store writes what is collected first, so a
reader never misses a write. Rows of persons are trusted for one transaction only: a worker holds a
person (advisory lock) for one transaction, and between two the person may be another worker's. The
campaign catalog and program ids are shared: with `keep_catalog` they are kept across commits and
dropped when the store's `generation` (in `meta`, bumped by every commit that wrote the catalog)
moved.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from engine.store import schema

DEFAULT_URL = "sqlite:///smartcampaign.db"
MEMORY_URL = "sqlite://"

GENERATION = "generation"  # meta key: bumped by every commit that wrote the campaign catalog (PostgreSQL)

# batched writes (PostgreSQL): one statement per table and commit; arrays are sent in binary (`%b`), which
# psycopg dumps several times faster than text arrays
_PG_PERSONS = (
    "INSERT INTO persons (id, email, display_email, sfdc_id, sfdc_type, first_name, last_name, company) "
    "SELECT * FROM unnest(%b::int[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::text[])"
)
_PG_PERSON_SFDC = (
    "UPDATE persons SET sfdc_id = %s, sfdc_type = %s, last_name = COALESCE(last_name, %s), "
    "company = COALESCE(company, %s) WHERE id = %s"
)
_PG_RUNS = (
    "INSERT INTO runs (id, campaign, person_id, started_at, trigger) "
    "SELECT * FROM unnest(%b::int[], %b::text[], %b::int[], %b::float8[], %b::text[])"
)
_PG_QUALIFICATIONS = (
    "INSERT INTO qualifications (campaign, person_id, last_started_at, runs) "
    "SELECT * FROM unnest(%b::text[], %b::int[], %b::float8[], %b::int[]) "
    "ON CONFLICT (campaign, person_id) DO UPDATE SET last_started_at = excluded.last_started_at, "
    "runs = qualifications.runs + excluded.runs"
)
_PG_MEMBERSHIPS_UPDATE = (
    "UPDATE memberships m SET status = u.status, changed_at = u.changed_at "
    "FROM unnest(%b::int[], %b::int[], %b::text[], %b::float8[]) AS u(person_id, campaign_id, status, changed_at) "
    "WHERE m.person_id = u.person_id AND m.campaign_id = u.campaign_id"
)
_PG_MEMBERSHIPS_UPSERT = (
    "INSERT INTO memberships (person_id, campaign_id, status, added_at, changed_at) "
    "SELECT * FROM unnest(%b::int[], %b::int[], %b::text[], %b::float8[], %b::float8[]) "
    "ON CONFLICT (person_id, campaign_id) DO UPDATE SET status = excluded.status, added_at = excluded.added_at, "
    "changed_at = excluded.changed_at"
)
_PG_MEMBERSHIPS_DELETE = (
    "DELETE FROM memberships m USING unnest(%b::int[], %b::int[]) AS d(person_id, campaign_id) "
    "WHERE m.person_id = d.person_id AND m.campaign_id = d.campaign_id"
)
_PG_PROGRAMS_UPSERT = (
    "INSERT INTO program_memberships (person_id, program_id, status, changed_at) "
    "SELECT * FROM unnest(%b::int[], %b::int[], %b::text[], %b::float8[]) "
    "ON CONFLICT (person_id, program_id) DO UPDATE SET status = excluded.status, changed_at = excluded.changed_at"
)
_PG_PROGRAMS_DELETE = (
    "DELETE FROM program_memberships t USING unnest(%b::int[], %b::int[]) AS d(person_id, program_id) "
    "WHERE t.person_id = d.person_id AND t.program_id = d.program_id"
)
_PG_EVENTS = "INSERT INTO processed_events (event_id) SELECT unnest(%b::text[])"
_PG_ACTIVITY = (
    "INSERT INTO activity (person_id, at, kind, smart_campaign, target, status, origin, outcome, reason) "
    "SELECT * FROM unnest(%b::int[], %b::float8[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], "
    "%b::text[], %b::text[])"
)
_PG_PEOPLE = (
    "SELECT p.id, p.email, p.display_email, p.sfdc_id, p.sfdc_type, m.campaign_id, m.status FROM persons p "
    "LEFT JOIN memberships m ON m.person_id = p.id WHERE p.email = ANY(%b::text[])"
)
_PG_PEOPLE_QUALIFICATIONS = (  # by the primary key (campaign, person): no scan of the table
    "SELECT q.person_id, q.campaign, q.last_started_at, q.runs FROM persons p JOIN qualifications q "
    "ON q.person_id = p.id AND q.campaign = ANY(%b::text[]) WHERE p.email = ANY(%b::text[])"
)
_BUMP_GENERATION = (
    "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) DO UPDATE "
    "SET value = CAST(CAST(meta.value AS BIGINT) + 1 AS TEXT)"
)

SCHEMA_LOCK = 0x5C_0003  # advisory lock: one process at a time creates the store's missing tables
_UNKNOWN: Any = object()  # a qualification not read in this transaction


class StoreError(Exception):
    """The store cannot be used (newer schema, unreachable database...)."""


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    email: str
    sfdc_id: str | None
    sfdc_type: str | None


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    """An SFDC campaign as the mirror knows it; `statuses` in order, the default first-flagged."""

    id: int
    sfdc_id: str
    name: str
    statuses: tuple[str, ...]
    default_status: str
    responded: frozenset[str]
    type: str | None = None
    actual_cost: float | None = None


@dataclass(frozen=True, slots=True)
class Continuation:
    id: int
    run_id: int
    campaign: str
    person_id: int
    due_at: float
    path: tuple[int, ...]
    depth: int
    chain: tuple[str, ...]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA cache_size=-32000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            poolclass=StaticPool if in_memory else None,
            connect_args={"check_same_thread": False},
        )
        if not in_memory:
            event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class Store:
    """One connection to the store, one open transaction at a time (`commit` ends it and starts the next)."""

    PERSON_CACHE = 50_000
    MEMBERSHIP_CACHE = 20_000
    ID_BLOCK = 512  # most ids drawn from a sequence at once (persons, Salesforce-shaped ids)

    batch_writes = False  # collect the hot writes, write them per commit (PostgreSQL only; see the module doc)
    keep_catalog = False  # campaign catalog and program ids kept across commits, checked against `generation`

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.conn: Connection = engine.connect()
        self._tx = self.conn.begin()
        self._driver: Any = cast(Any, self.conn.connection.driver_connection)
        self._cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self.batch_writes = self.batch_writes and self.dialect == "postgresql"
        self.keep_catalog = self.keep_catalog and self.dialect == "postgresql"
        # persons by lower-cased email; None: known not to be there
        self._persons: OrderedDict[str, Person | None] = OrderedDict()
        self._person_ids: dict[int, str] = {}  # person id -> key in _persons
        self._person_sfdc: dict[str, str] = {}  # Salesforce id -> key in _persons
        self._campaigns_by_id: dict[int, CampaignInfo] = {}
        self._campaigns_by_name: dict[str, CampaignInfo] = {}
        self._campaigns_by_sfdc: dict[str, CampaignInfo] = {}
        self._campaigns_loaded = False
        self._memberships: OrderedDict[int, dict[int, str]] = OrderedDict()
        self._program_ids: dict[str, int] = {}
        self._activity: list[tuple[Any, ...]] = []
        self._sql: dict[str, str] = {}
        self.catalog_version = 0  # bumped whenever campaigns or their statuses may have changed
        self._earliest_due: float | None = None
        self._earliest_due_known = False
        self._catalog_written = False  # this transaction wrote campaigns or statuses: bump the generation
        self._generation: str | None = None  # the generation the kept catalog was checked against
        # batch_writes: what this transaction read (trusted until it ends) and what it will write
        self._seen: dict[str, bool] = {}
        self._qualifications: dict[tuple[str, int], tuple[float, int] | None] = {}
        # person -> the campaigns whose qualification rows of theirs are all in `_qualifications` (None: every one)
        self._qualified: dict[int, frozenset[str] | None] = {}
        self._asked: set[str] = set()  # campaigns qualification() was asked about: those a batch load reads
        self._programs: dict[int, dict[int, str]] = {}
        self._pending = False  # something below waits to be written
        self._new_persons: dict[int, list[Any]] = {}
        self._person_updates: list[tuple[Any, ...]] = []
        self._new_runs: list[tuple[Any, ...]] = []
        self._qualification_writes: dict[tuple[str, int], list[Any]] = {}  # key -> [last start, runs added]
        self._membership_writes: dict[tuple[int, int], tuple[Any, ...]] = {}
        self._program_writes: dict[tuple[int, int], tuple[str | None, float]] = {}
        self._event_marks: list[str] = []
        self._deferred: list[tuple[str, tuple[Any, ...]]] = []
        self._sequences: dict[str, str] = {}
        self._id_blocks: dict[str, deque[int]] = {}
        self._block_sizes: dict[str, int] = {}
        self._sfdc_blocks: dict[str, deque[str]] = {}
        self._expected = 0  # events in the batch being worked (sizes the block of run ids)
        if self.batch_writes:
            # a statement through SQLAlchemy on this connection sees the collected writes too
            event.listen(self.conn, "before_cursor_execute", self._before_sqlalchemy)
            # statements here take arrays of a batch's size: a plan made for the values beats a generic one (a
            # prepared `event_id = ANY($1)` was planned as a scan on a young table: 20 ms instead of 0.5 ms)
            self._driver.prepare_threshold = None

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url: str = MEMORY_URL) -> Store:
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # processes starting side by side (workers) create missing tables one at a time
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
                existing = set(inspect(conn).get_table_names())
                if "meta" in existing:
                    row = conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                    version = int(row[0]) if row else 0
                    if version > schema.SCHEMA_VERSION:
                        raise StoreError(
                            f"the store at {engine.url.render_as_string(hide_password=True)} has schema version "
                            f"{version}; this release knows up to {schema.SCHEMA_VERSION}: upgrade smartcampaign"
                        )
                schema.metadata.create_all(conn)
                for table in schema.metadata.sorted_tables:  # indexes added to tables an older store has
                    if table.name in existing:
                        for index in table.indexes:
                            index.create(conn, checkfirst=True)
                if "meta" not in existing:
                    conn.execute(schema.meta.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
        except StoreError:
            raise
        except Exception as error:
            raise StoreError(
                f"cannot open the store {engine.url.render_as_string(hide_password=True)}: {error}"
            ) from None
        return cls(engine)

    def commit(self) -> None:
        if self._catalog_written:
            self._catalog_written = False
            if self.dialect == "postgresql":
                self.defer(_BUMP_GENERATION)
        self._flush()
        self._tx.commit()
        self._tx = self.conn.begin()
        if self.dialect != "sqlite":
            # other workers may have written: rows of persons are only good within one transaction
            self._end_transaction()

    def rollback(self) -> None:
        self._activity.clear()
        self._discard_writes()
        self._catalog_written = False
        self._tx.rollback()
        self._tx = self.conn.begin()
        self.clear_caches()
        self._id_blocks.pop("runs", None)
        self._expected = 0

    def _end_transaction(self) -> None:
        """After a commit on PostgreSQL: what only this transaction could trust is dropped."""
        self._earliest_due_known = False
        self._forget_persons()
        self._id_blocks.pop("runs", None)  # run ids stay in each person's order across workers (`_take_id`)
        self._expected = 0
        if not self.keep_catalog:
            self._forget_catalog()
            self._program_ids.clear()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.conn.close()
            self.engine.dispose()

    def clear_caches(self) -> None:
        self._earliest_due_known = False
        self._forget_persons()
        self._forget_catalog()
        self._program_ids.clear()
        self._generation = None

    def _forget_persons(self) -> None:
        self._persons.clear()
        self._person_ids.clear()
        self._person_sfdc.clear()
        self._memberships.clear()
        self._seen.clear()
        self._qualifications.clear()
        self._qualified.clear()
        self._programs.clear()

    def _forget_catalog(self) -> None:
        self._campaigns_loaded = False
        self._campaigns_by_id.clear()
        self._campaigns_by_name.clear()
        self._campaigns_by_sfdc.clear()

    def _catalog_changed(self) -> None:
        self._forget_catalog()
        self._catalog_written = True

    def load_people(
        self,
        emails: Iterable[str],
        event_ids: Iterable[str] = (),
        expected: int = 0,
        also: tuple[str, Sequence[Any]] | None = None,
    ) -> list[Any]:
        """With `batch_writes`: the rows of the persons a batch is about, which this transaction holds, in one round
        trip: each person (or that there is none), their memberships, which of the events were processed already
        and, with `keep_catalog`, whether the catalog moved. `also` is one more query for that round trip (PostgreSQL
        syntax); its rows are returned. Without batch_writes only `also` runs: rows are read when used."""
        if not self.batch_writes:
            return self.fetchall(also[0], also[1]) if also is not None else []
        self._expected = max(expected, self._expected)
        keys = list(dict.fromkeys(key for key in (email.lower() for email in emails) if key not in self._persons))
        ids = list(dict.fromkeys(i for i in event_ids if i not in self._seen))
        if not keys and not ids and not self.keep_catalog and also is None:
            return []
        self._write_pending()
        asked = frozenset(self._asked)  # rules that qualify every time never ask: then nothing is read
        cursors = [self._driver.cursor() for _ in range(5)]
        people, seen, generation, extra, qualified = cursors
        with self._driver.pipeline():
            if also is not None:
                extra.execute(also[0], tuple(also[1]))
            if keys:
                people.execute(_PG_PEOPLE, (keys,))
                if asked:
                    qualified.execute(_PG_PEOPLE_QUALIFICATIONS, (sorted(asked), keys))
            if ids:
                seen.execute("SELECT event_id FROM processed_events WHERE event_id = ANY(%b::text[])", (ids,))
            if self.keep_catalog:
                generation.execute("SELECT value FROM meta WHERE key = %s", (GENERATION,))
            answer = list(extra.fetchall()) if also is not None else []
            found: dict[str, Person] = {}
            memberships: dict[int, dict[int, str]] = {}
            for pid, key, display, sfdc_id, sfdc_type, campaign_id, status in people.fetchall() if keys else ():
                if key not in found:
                    found[key] = Person(pid, display, sfdc_id, sfdc_type)
                    memberships[pid] = {}
                if campaign_id is not None:
                    memberships[pid][campaign_id] = status
            qualifications = list(qualified.fetchall()) if keys and asked else []
            processed = {str(row[0]) for row in seen.fetchall()} if ids else set()
            row = generation.fetchone() if self.keep_catalog else None
        for cursor in cursors:
            cursor.close()
        for key in keys:
            person = found.get(key)
            self._remember_person(key, person)
            if person is not None and person.id not in self._memberships:
                self._remember_memberships(person.id, memberships[person.id])
            if person is not None:
                self._qualified[person.id] = asked  # every row of these campaigns is read below
        for pid, campaign, last_started_at, runs in qualifications:
            if (str(campaign), int(pid)) not in self._qualifications:
                self._qualifications[(str(campaign), int(pid))] = (float(last_started_at), int(runs))
        for event_id in ids:
            self._seen[event_id] = event_id in processed
        if self.keep_catalog:
            value = None if row is None else str(row[0])
            if value != self._generation:
                self._forget_catalog()  # another process changed the catalog
                self._generation = value
        return answer

    def remember_seen(self, event_id: str, seen: bool) -> None:
        """Whether an event was processed already, as the caller read it in this transaction (batch_writes)."""
        if self.batch_writes:
            self._seen[event_id] = seen

    # ------------------------------------------------------------------------------ raw SQL
    def _q(self, sql: str) -> str:
        cached = self._sql.get(sql)
        if cached is None:
            cached = sql if self.dialect == "sqlite" else sql.replace("?", "%s")
            self._sql[sql] = cached
        return cached

    # Every statement first writes what batch_writes collected: no reader ever misses a write.
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._pending:
            self._write_pending()
        self._cursor.execute(self._q(sql), tuple(params))
        return self._cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._pending:
            self._write_pending()
        self._cursor.executemany(self._q(sql), rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self._pending:
            self._write_pending()
        self._cursor.execute(self._q(sql), tuple(params))
        return self._cursor.fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._pending:
            self._write_pending()
        self._cursor.execute(self._q(sql), tuple(params))
        return list(self._cursor.fetchall())

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        if self._pending:
            self._write_pending()
        if self.dialect == "sqlite":
            self._cursor.execute(sql, tuple(params))
            return int(self._cursor.lastrowid)
        self._cursor.execute(self._q(sql) + " RETURNING id", tuple(params))
        return int(self._cursor.fetchone()[0])

    def defer(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A write that can wait for the commit (with batch_writes: it goes with the others, in order); else now."""
        if not self.batch_writes:
            self.execute(sql, params)
            return
        self._deferred.append((self._q(sql), tuple(params)))
        self._pending = True

    def _before_sqlalchemy(self, *_: Any) -> None:
        if self._pending:
            self._write_pending()

    # ------------------------------------------------------------------------------ batched writes
    def _write_pending(self) -> None:
        """Everything batch_writes collected, one statement per table, in one pipeline (one round trip)."""
        self._pending = False
        statements = self._pending_statements()
        self._discard_writes()
        if not statements:
            return
        cursor = self._cursor
        if len(statements) == 1:
            sql, params, many = statements[0]
            (cursor.executemany if many else cursor.execute)(sql, params)
            return
        with self._driver.pipeline():
            for sql, params, many in statements:
                (cursor.executemany if many else cursor.execute)(sql, params)

    def _pending_statements(self) -> list[tuple[str, Any, bool]]:
        out: list[tuple[str, Any, bool]] = []
        if self._new_persons:
            out.append((_PG_PERSONS, _columns(list(self._new_persons.values()), 8), False))
        if self._person_updates:
            out.append((_PG_PERSON_SFDC, self._person_updates, True))
        if self._new_runs:
            out.append((_PG_RUNS, _columns(self._new_runs, 5), False))
        if self._qualification_writes:
            rows = [(c, pid, at, n) for (c, pid), (at, n) in self._qualification_writes.items()]
            out.append((_PG_QUALIFICATIONS, _columns(rows, 4), False))
        if self._membership_writes:
            updates, upserts, deletes = [], [], []
            for (pid, cid), write in self._membership_writes.items():
                if write[0] == "update":
                    updates.append((pid, cid, write[1], write[3]))
                elif write[0] == "upsert":
                    upserts.append((pid, cid, write[1], write[2], write[3]))
                else:
                    deletes.append((pid, cid))
            if deletes:
                out.append((_PG_MEMBERSHIPS_DELETE, _columns(deletes, 2), False))
            if updates:
                out.append((_PG_MEMBERSHIPS_UPDATE, _columns(updates, 4), False))
            if upserts:
                out.append((_PG_MEMBERSHIPS_UPSERT, _columns(upserts, 5), False))
        if self._program_writes:
            gone = [(pid, prog) for (pid, prog), (status, _) in self._program_writes.items() if status is None]
            kept = [(pid, prog, st, at) for (pid, prog), (st, at) in self._program_writes.items() if st is not None]
            if gone:
                out.append((_PG_PROGRAMS_DELETE, _columns(gone, 2), False))
            if kept:
                out.append((_PG_PROGRAMS_UPSERT, _columns(kept, 4), False))
        if self._event_marks:
            out.append((_PG_EVENTS, (self._event_marks,), False))
        if self._activity:
            out.append((_PG_ACTIVITY, _columns(self._activity, 9), False))
        out.extend((sql, params, False) for sql, params in self._deferred)
        return out

    def _discard_writes(self) -> None:
        self._pending = False
        self._new_persons = {}
        self._person_updates = []
        self._new_runs = []
        self._qualification_writes = {}
        self._membership_writes = {}
        self._program_writes = {}
        self._event_marks = []
        self._deferred = []
        if self.batch_writes:
            self._activity = []

    def _take_id(self, table: str) -> int:
        """The next id for `table` from its sequence, drawn in blocks. Run ids: the block is dropped when the
        transaction ends and drawn after the transaction holds its persons, so a person's runs are numbered in
        their order even when workers take turns with the person."""
        block = self._id_blocks.get(table)
        if not block:
            sequence = self._sequences.get(table)
            if sequence is None:
                self._cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,))
                sequence = self._sequences[table] = str(self._cursor.fetchone()[0])
            size = self._next_block_size(table)
            self._cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (sequence, size))
            block = self._id_blocks[table] = deque(sorted(int(row[0]) for row in self._cursor.fetchall()))
        return block.popleft()

    def _next_block_size(self, table: str) -> int:
        if table == "runs":  # the batch's events first, then doubling within the transaction
            size = self._block_sizes.get(table, 0) * 2 if table in self._id_blocks else 0
            size = max(size, self._expected, 8)
        else:
            size = min(self._block_sizes.get(table, 8) * 2, self.ID_BLOCK)
        size = min(size, 4096)
        self._block_sizes[table] = size
        return size

    def sfdc_id_from_sequence(self, sequence: str, prefix: str, taken: Any = None) -> str:
        """A Salesforce-shaped id from a PostgreSQL sequence, drawn in blocks: side by side, stores never hand out
        the same id and never wait. With this store's own `sfdc_id_taken` as `taken`, a block's ids are checked in
        one query; any other `taken` is asked for each id."""
        standard = (
            taken is not None
            and getattr(taken, "__self__", None) is self
            and (getattr(taken, "__func__", None) is Store.sfdc_id_taken)
        )
        block = self._sfdc_blocks.setdefault(prefix, deque())
        while True:
            if not block:
                size = self._next_block_size(f"sfdc:{prefix}")
                self._cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (sequence, size))
                candidates = [f"{prefix}{int(row[0]):012d}AAA" for row in sorted(self._cursor.fetchall())]
                if standard:
                    found = self.fetchall(
                        "SELECT sfdc_id FROM persons WHERE sfdc_id = ANY(%b::text[]) "
                        "UNION ALL SELECT sfdc_id FROM campaigns WHERE sfdc_id = ANY(%b::text[])",
                        (candidates, candidates),
                    )
                    used = {str(row[0]) for row in found}
                    candidates = [c for c in candidates if c not in used]
                block.extend(candidates)
                continue
            candidate = block.popleft()
            if standard or taken is None or not taken(candidate):
                return candidate

    # ------------------------------------------------------------------------------ ids
    def next_sfdc_id(self, prefix: str, taken: Any = None) -> str:
        """Deterministic Salesforce-shaped ids: the same input gives the same ids."""
        row = self.fetchone("SELECT next FROM id_counters WHERE prefix = ?", (prefix,))
        n = int(row[0]) if row else 1
        while True:
            candidate = f"{prefix}{n:012d}AAA"
            n += 1
            if taken is None or not taken(candidate):
                break
        if row:
            self.execute("UPDATE id_counters SET next = ? WHERE prefix = ?", (n, prefix))
        else:
            self.execute("INSERT INTO id_counters (prefix, next) VALUES (?, ?)", (prefix, n))
        return candidate

    # ------------------------------------------------------------------------------ persons
    def person(self, email: str) -> Person | None:
        """The person with this email (compared case-insensitively), or None; both answers are cached."""
        key = email.lower()
        persons = self._persons
        if key in persons:
            return persons[key]
        row = self.fetchone("SELECT id, display_email, sfdc_id, sfdc_type FROM persons WHERE email = ?", (key,))
        person = Person(row[0], row[1], row[2], row[3]) if row is not None else None
        self._remember_person(key, person)
        return person

    def person_by_id(self, person_id: int) -> Person:
        key = self._person_ids.get(person_id)
        cached = self._persons.get(key) if key is not None else None
        if cached is not None and cached.id == person_id:
            return cached
        person = self._person_where("id", person_id)
        if person is None:
            raise KeyError(f"no person with id {person_id}")
        return person

    def person_by_sfdc_id(self, sfdc_id: str) -> Person | None:
        key = self._person_sfdc.get(sfdc_id)
        cached = self._persons.get(key) if key is not None else None
        if cached is not None and cached.sfdc_id == sfdc_id:
            return cached
        return self._person_where("sfdc_id", sfdc_id)

    def _person_where(self, column: str, value: Any) -> Person | None:
        row = self.fetchone(
            f"SELECT id, display_email, sfdc_id, sfdc_type, email FROM persons WHERE {column} = ?", (value,)
        )
        if row is None:
            return None
        person = Person(row[0], row[1], row[2], row[3])
        self._remember_person(str(row[4]), person)
        return person

    def _remember_person(self, key: str, person: Person | None) -> None:
        persons = self._persons
        old = persons.get(key)
        if old is not None:
            self._unindex(key, old)
        persons[key] = person
        if person is not None:
            self._person_ids[person.id] = key
            if person.sfdc_id:
                self._person_sfdc[person.sfdc_id] = key
        if len(persons) > self.PERSON_CACHE:
            evicted_key, evicted = persons.popitem(last=False)
            if evicted is not None:
                self._unindex(evicted_key, evicted)

    def _unindex(self, key: str, person: Person) -> None:
        if self._person_ids.get(person.id) == key:
            del self._person_ids[person.id]
        if person.sfdc_id and self._person_sfdc.get(person.sfdc_id) == key:
            del self._person_sfdc[person.sfdc_id]

    def add_person(
        self,
        email: str,
        sfdc_id: str | None = None,
        sfdc_type: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        company: str | None = None,
    ) -> Person:
        row = [email.lower(), email, sfdc_id, sfdc_type, first_name, last_name, company]
        if self.batch_writes:
            person_id = self._take_id("persons")
            self._new_persons[person_id] = [person_id, *row]
            self._pending = True
        else:
            person_id = self.insert_id(
                "INSERT INTO persons (email, display_email, sfdc_id, sfdc_type, first_name, last_name, company) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        person = Person(person_id, email, sfdc_id, sfdc_type)
        self._remember_person(email.lower(), person)
        self._remember_memberships(person_id, {})  # a new person is in no campaign
        if self.batch_writes:
            self._qualified[person_id] = None  # and has run no campaign
        return person

    def set_person_sfdc(self, person: Person, sfdc_id: str, sfdc_type: str, last_name: str, company: str) -> Person:
        new = self._new_persons.get(person.id)
        if new is not None:  # not written yet: the row to be inserted says it
            new[3], new[4] = sfdc_id, sfdc_type
            new[6] = new[6] if new[6] is not None else last_name
            new[7] = new[7] if new[7] is not None else company
        elif self.batch_writes:
            self._person_updates.append((sfdc_id, sfdc_type, last_name, company, person.id))
            self._pending = True
        else:
            self.execute(
                "UPDATE persons SET sfdc_id = ?, sfdc_type = ?, last_name = COALESCE(last_name, ?), "
                "company = COALESCE(company, ?) WHERE id = ?",
                (sfdc_id, sfdc_type, last_name, company, person.id),
            )
        updated = Person(person.id, person.email, sfdc_id, sfdc_type)
        self._remember_person(person.email.lower(), updated)
        return updated

    def person_names(self, person_id: int) -> tuple[str | None, str | None, str | None]:
        """(first name, last name, company) as known, for creating a Lead."""
        new = self._new_persons.get(person_id)
        if new is not None:
            return new[5], new[6], new[7]
        row = self.fetchone("SELECT first_name, last_name, company FROM persons WHERE id = ?", (person_id,))
        return (row[0], row[1], row[2]) if row else (None, None, None)

    def sfdc_id_taken(self, sfdc_id: str) -> bool:
        return (
            self.fetchone("SELECT 1 FROM persons WHERE sfdc_id = ?", (sfdc_id,)) is not None
            or self.fetchone("SELECT 1 FROM campaigns WHERE sfdc_id = ?", (sfdc_id,)) is not None
        )

    def persons(self) -> Iterator[tuple[Any, ...]]:
        """Every person: (id, display_email, sfdc_id, sfdc_type, first_name, last_name, company), by email."""
        rows = self.fetchall(
            "SELECT id, display_email, sfdc_id, sfdc_type, first_name, last_name, company FROM persons ORDER BY email"
        )
        yield from rows

    # ------------------------------------------------------------------------------ campaigns
    def _load_campaigns(self) -> None:
        if self._campaigns_loaded:
            return
        self.catalog_version += 1
        statuses: dict[int, list[tuple[str, bool, bool]]] = {}
        for campaign_id, label, is_default, responded in self.fetchall(
            "SELECT campaign_id, label, is_default, responded FROM campaign_statuses ORDER BY campaign_id, position"
        ):
            statuses.setdefault(campaign_id, []).append((label, bool(is_default), bool(responded)))
        for cid, sfdc_id, name, ctype, cost in self.fetchall(
            "SELECT id, sfdc_id, name, type, actual_cost FROM campaigns"
        ):
            labels = statuses.get(cid, [])
            default = next((label for label, d, _ in labels if d), labels[0][0] if labels else "")
            info = CampaignInfo(
                cid,
                sfdc_id,
                name,
                tuple(label for label, _, _ in labels),
                default,
                frozenset(label for label, _, r in labels if r),
                ctype,
                cost,
            )
            self._campaigns_by_id[cid] = info
            self._campaigns_by_name[name] = info
            self._campaigns_by_sfdc[sfdc_id] = info
            self._campaigns_by_sfdc[sfdc_id[:15]] = info
        self._campaigns_loaded = True

    def campaigns(self) -> list[CampaignInfo]:
        self._load_campaigns()
        return sorted(self._campaigns_by_id.values(), key=lambda c: c.name)

    def campaign(self, campaign_id: int) -> CampaignInfo:
        self._load_campaigns()
        return self._campaigns_by_id[campaign_id]

    def campaign_by_name(self, name: str) -> CampaignInfo | None:
        self._load_campaigns()
        return self._campaigns_by_name.get(name)

    def campaign_by_sfdc_id(self, sfdc_id: str) -> CampaignInfo | None:
        self._load_campaigns()
        return self._campaigns_by_sfdc.get(sfdc_id) or self._campaigns_by_sfdc.get(sfdc_id[:15])

    def add_campaign(self, name: str, sfdc_id: str, statuses: Sequence[str], default: str | None = None) -> int:
        cid = self.insert_id("INSERT INTO campaigns (sfdc_id, name) VALUES (?, ?)", (sfdc_id, name))
        self._catalog_changed()
        self.set_campaign_statuses(cid, statuses, default or statuses[0], ())
        return cid

    def set_campaign_statuses(
        self, campaign_id: int, statuses: Sequence[str], default: str, responded: Sequence[str]
    ) -> None:
        self.execute("DELETE FROM campaign_statuses WHERE campaign_id = ?", (campaign_id,))
        for position, label in enumerate(statuses):
            self.execute(
                "INSERT INTO campaign_statuses (campaign_id, label, position, is_default, responded) "
                "VALUES (?, ?, ?, ?, ?)",
                (campaign_id, label, position, label == default, label in responded),
            )
        self._catalog_changed()

    def rename_campaign(self, campaign_id: int, name: str) -> None:
        """A campaign renamed in Salesforce: the mirror follows (names are how rules refer to campaigns)."""
        self.execute("UPDATE campaigns SET name = ? WHERE id = ?", (name, campaign_id))
        self._catalog_changed()

    def set_campaign_fields(self, campaign_id: int, ctype: str | None, actual_cost: float | None) -> None:
        self.execute("UPDATE campaigns SET type = ?, actual_cost = ? WHERE id = ?", (ctype, actual_cost, campaign_id))
        self._catalog_changed()

    def member_count(self, campaign_id: int) -> int:
        row = self.fetchone("SELECT COUNT(*) FROM memberships WHERE campaign_id = ?", (campaign_id,))
        return int(row[0])

    # ------------------------------------------------------------------------------ memberships
    def memberships(self, person_id: int) -> dict[int, str]:
        """campaign id -> status for one person (cached, written through)."""
        cached = self._memberships.get(person_id)
        if cached is not None:
            self._memberships.move_to_end(person_id)
            return cached
        rows = self.fetchall("SELECT campaign_id, status FROM memberships WHERE person_id = ?", (person_id,))
        found = {campaign_id: status for campaign_id, status in rows}
        self._remember_memberships(person_id, found)
        return found

    def _remember_memberships(self, person_id: int, found: dict[int, str]) -> None:
        self._memberships[person_id] = found
        if len(self._memberships) > self.MEMBERSHIP_CACHE:
            self._memberships.popitem(last=False)

    def set_membership(self, person_id: int, campaign_id: int, status: str, at: float) -> None:
        current = self.memberships(person_id)
        if self.batch_writes:
            # one write per (person, campaign) and commit: what the statements in order would have left
            key = (person_id, campaign_id)
            before = self._membership_writes.get(key)
            at = float(at)
            if campaign_id not in current:
                self._membership_writes[key] = ("upsert", status, at, at)
            elif before is not None and before[0] == "upsert":
                self._membership_writes[key] = ("upsert", status, before[2], at)
            else:
                self._membership_writes[key] = ("update", status, None, at)
            self._pending = True
        elif campaign_id in current:
            self.execute(
                "UPDATE memberships SET status = ?, changed_at = ? WHERE person_id = ? AND campaign_id = ?",
                (status, at, person_id, campaign_id),
            )
        else:
            self.execute(
                "INSERT INTO memberships (person_id, campaign_id, status, added_at, changed_at) VALUES (?, ?, ?, ?, ?)",
                (person_id, campaign_id, status, at, at),
            )
        current[campaign_id] = status

    def remove_membership(self, person_id: int, campaign_id: int) -> None:
        current = self.memberships(person_id)
        if self.batch_writes:
            self._membership_writes[(person_id, campaign_id)] = ("delete",)
            self._pending = True
        else:
            self.execute("DELETE FROM memberships WHERE person_id = ? AND campaign_id = ?", (person_id, campaign_id))
        current.pop(campaign_id, None)

    def campaign_members(self, campaign_id: int) -> list[tuple[int, str]]:
        return [
            (row[0], row[1])
            for row in self.fetchall(
                "SELECT person_id, status FROM memberships WHERE campaign_id = ? ORDER BY person_id", (campaign_id,)
            )
        ]

    # ------------------------------------------------------------------------------ programs
    def program_id(self, name: str) -> int:
        cached = self._program_ids.get(name)
        if cached is not None:
            return cached
        row = self.fetchone("SELECT id FROM programs WHERE name = ?", (name,))
        pid = int(row[0]) if row else self.insert_id("INSERT INTO programs (name, synced) VALUES (?, ?)", (name, False))
        self._program_ids[name] = pid
        return pid

    def program_status(self, person_id: int, program_id: int) -> str | None:
        if self.batch_writes:
            return self._program_map(person_id).get(program_id)
        row = self.fetchone(
            "SELECT status FROM program_memberships WHERE person_id = ? AND program_id = ?", (person_id, program_id)
        )
        return row[0] if row else None

    def program_statuses(self, person_id: int) -> dict[int, str]:
        if self.batch_writes:
            return dict(self._program_map(person_id))
        return dict(
            self.fetchall("SELECT program_id, status FROM program_memberships WHERE person_id = ?", (person_id,))
        )

    def _program_map(self, person_id: int) -> dict[int, str]:
        found = self._programs.get(person_id)
        if found is None:
            found = self._programs[person_id] = dict(
                self.fetchall("SELECT program_id, status FROM program_memberships WHERE person_id = ?", (person_id,))
            )
        return found

    def set_program_status(self, person_id: int, program_id: int, status: str | None, at: float) -> None:
        if self.batch_writes:
            current = self._program_map(person_id)
            if status is None:
                current.pop(program_id, None)
            else:
                current[program_id] = status
            self._program_writes[(person_id, program_id)] = (status, float(at))
            self._pending = True
            return
        self.execute("DELETE FROM program_memberships WHERE person_id = ? AND program_id = ?", (person_id, program_id))
        if status is not None:
            self.execute(
                "INSERT INTO program_memberships (person_id, program_id, status, changed_at) VALUES (?, ?, ?, ?)",
                (person_id, program_id, status, at),
            )

    def program_members(self, program_id: int) -> list[tuple[int, str]]:
        return [
            (row[0], row[1])
            for row in self.fetchall(
                "SELECT person_id, status FROM program_memberships WHERE program_id = ? ORDER BY person_id",
                (program_id,),
            )
        ]

    def program_names(self) -> list[tuple[int, str]]:
        return [(row[0], row[1]) for row in self.fetchall("SELECT id, name FROM programs ORDER BY name")]

    # ------------------------------------------------------------------------------ runs
    def qualification(self, campaign: str, person_id: int) -> tuple[float, int] | None:
        key = (campaign, person_id)
        cached = self._qualifications.get(key, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[no-any-return]
        self._asked.add(campaign)
        if self._all_read(campaign, person_id):  # all of this person's rows were read: there is none for this one
            self._qualifications[key] = None
            return None
        row = self.fetchone(
            "SELECT last_started_at, runs FROM qualifications WHERE campaign = ? AND person_id = ?",
            (campaign, person_id),
        )
        found = (float(row[0]), int(row[1])) if row else None
        if self.batch_writes:
            self._qualifications[key] = found
        return found

    def _all_read(self, campaign: str, person_id: int) -> bool:
        covered = self._qualified.get(person_id, frozenset())
        return covered is None or campaign in covered

    def start_run(self, campaign: str, person_id: int, at: float, trigger: dict[str, Any]) -> int:
        if self.batch_writes:
            run_id = self._take_id("runs")
            self._new_runs.append((run_id, campaign, person_id, float(at), json.dumps(trigger)))
            key = (campaign, person_id)
            write = self._qualification_writes.get(key)
            if write is None:
                self._qualification_writes[key] = [float(at), 1]
            else:
                write[0], write[1] = float(at), write[1] + 1
            known = self._qualifications.get(key, None if self._all_read(campaign, person_id) else _UNKNOWN)
            if known is not _UNKNOWN:
                self._qualifications[key] = (float(at), (known[1] if known else 0) + 1)
            self._pending = True
            return run_id
        run_id = self.insert_id(
            "INSERT INTO runs (campaign, person_id, started_at, trigger) VALUES (?, ?, ?, ?)",
            (campaign, person_id, at, json.dumps(trigger)),
        )
        self.execute(
            "INSERT INTO qualifications (campaign, person_id, last_started_at, runs) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (campaign, person_id) DO UPDATE SET last_started_at = excluded.last_started_at, "
            "runs = qualifications.runs + 1",
            (campaign, person_id, at),
        )
        return run_id

    # ------------------------------------------------------------------------------ waits
    def add_continuation(
        self,
        run_id: int,
        campaign: str,
        person_id: int,
        due_at: float,
        path: tuple[int, ...],
        depth: int,
        chain: tuple[str, ...],
    ) -> int:
        if self._earliest_due_known and (self._earliest_due is None or due_at < self._earliest_due):
            self._earliest_due = due_at
        return self.insert_id(
            "INSERT INTO continuations (run_id, campaign, person_id, due_at, path, depth, chain) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (run_id, campaign, person_id, due_at, json.dumps(list(path)), depth, json.dumps(list(chain))),
        )

    def next_due(self, upto: float | None) -> Continuation | None:
        if not self._earliest_due_known:
            row = self.fetchone("SELECT MIN(due_at) FROM continuations")
            self._earliest_due = float(row[0]) if row and row[0] is not None else None
            self._earliest_due_known = True
        if self._earliest_due is None or (upto is not None and self._earliest_due > upto):
            return None  # nothing is due: no query per event
        if upto is None:
            row = self.fetchone(
                "SELECT id, run_id, campaign, person_id, due_at, path, depth, chain FROM continuations "
                "ORDER BY due_at, id LIMIT 1"
            )
        else:
            row = self.fetchone(
                "SELECT id, run_id, campaign, person_id, due_at, path, depth, chain FROM continuations "
                "WHERE due_at <= ? ORDER BY due_at, id LIMIT 1",
                (upto,),
            )
        if row is None:
            return None
        return Continuation(
            row[0], row[1], row[2], row[3], float(row[4]), tuple(json.loads(row[5])), row[6], tuple(json.loads(row[7]))
        )

    def delete_continuation(self, continuation_id: int) -> None:
        self.execute("DELETE FROM continuations WHERE id = ?", (continuation_id,))
        self._earliest_due_known = False

    def waiting(self) -> list[Continuation]:
        """Every parked flow, in due order."""
        rows = self.fetchall(
            "SELECT id, run_id, campaign, person_id, due_at, path, depth, chain FROM continuations ORDER BY due_at, id"
        )
        return [
            Continuation(r[0], r[1], r[2], r[3], float(r[4]), tuple(json.loads(r[5])), r[6], tuple(json.loads(r[7])))
            for r in rows
        ]

    def pending_continuations(self) -> int:
        return int(self.fetchone("SELECT COUNT(*) FROM continuations")[0])

    def drop_continuations(self, person_id: int, campaign: str) -> list[int]:
        """Remove from Flow: deletes the person's waiting runs of `campaign`; the ids of their runs, in due order."""
        rows = self.fetchall(
            "SELECT id, run_id FROM continuations WHERE person_id = ? AND campaign = ? ORDER BY due_at, id",
            (person_id, campaign),
        )
        if not rows:
            return []
        self.execute("DELETE FROM continuations WHERE person_id = ? AND campaign = ?", (person_id, campaign))
        self._earliest_due_known = False
        return [int(row[1]) for row in rows]

    # ------------------------------------------------------------------------------ run steps
    def add_step(self, run_id: int, position: int, step: dict[str, Any]) -> None:
        """One step of a run, as its result shows it (kept for results rebuilt from the store)."""
        self.defer(
            "INSERT INTO run_steps (run_id, position, step) VALUES (?, ?, ?)", (run_id, position, json.dumps(step))
        )

    def recorded_runs(self) -> list[tuple[int, str, int, float, dict[str, Any], list[dict[str, Any]]]]:
        """Every run in start order: (id, campaign, person id, started at, trigger, steps)."""
        steps: dict[int, list[dict[str, Any]]] = {}
        for run_id, text in self.fetchall("SELECT run_id, step FROM run_steps ORDER BY run_id, position"):
            steps.setdefault(int(run_id), []).append(json.loads(text))
        return [
            (int(r[0]), str(r[1]), int(r[2]), float(r[3]), json.loads(r[4]), steps.get(int(r[0]), []))
            for r in self.fetchall("SELECT id, campaign, person_id, started_at, trigger FROM runs ORDER BY id")
        ]

    # ------------------------------------------------------------------------------ batch runs
    def batch_run(self, campaign: str, slot_at: float) -> tuple[int, int, bool] | None:
        """The batch run of a campaign at a slot: (id, persons selected, finished), or None when there is none."""
        row = self.fetchone(
            "SELECT id, selected, finished FROM batch_runs WHERE campaign = ? AND slot_at = ?", (campaign, slot_at)
        )
        return None if row is None else (int(row[0]), int(row[1]), bool(row[2]))

    def start_batch_run(self, campaign: str, slot_at: float, person_ids: Sequence[int]) -> int:
        """Records a batch run and its selection, in order (in the open transaction)."""
        batch_id = self.insert_id(
            "INSERT INTO batch_runs (campaign, slot_at, selected, finished) VALUES (?, ?, ?, ?)",
            (campaign, slot_at, len(person_ids), False),
        )
        rows = [(batch_id, position, person_id, False) for position, person_id in enumerate(person_ids)]
        for start in range(0, len(rows), 5000):
            self.executemany(
                "INSERT INTO batch_members (batch_id, position, person_id, done) VALUES (?, ?, ?, ?)",
                rows[start : start + 5000],
            )
        return batch_id

    def batch_remaining(self, batch_id: int) -> list[tuple[int, int]]:
        """The members of a batch run not done yet: (position, person id), in order."""
        return [
            (int(r[0]), int(r[1]))
            for r in self.fetchall(
                "SELECT position, person_id FROM batch_members WHERE batch_id = ? AND done = ? ORDER BY position",
                (batch_id, False),
            )
        ]

    def batch_member_done(self, batch_id: int, position: int) -> None:
        self.defer("UPDATE batch_members SET done = ? WHERE batch_id = ? AND position = ?", (True, batch_id, position))

    def finish_batch_run(self, batch_id: int) -> None:
        self.execute("UPDATE batch_runs SET finished = ? WHERE id = ?", (True, batch_id))

    def unfinished_batch_runs(self) -> list[tuple[int, str, float]]:
        """Batch runs begun and not finished (a crash): (id, campaign, slot), oldest slot first."""
        return [
            (int(r[0]), str(r[1]), float(r[2]))
            for r in self.fetchall(
                "SELECT id, campaign, slot_at FROM batch_runs WHERE finished = ? ORDER BY slot_at, id", (False,)
            )
        ]

    # ------------------------------------------------------------------------------ replay state
    def replay_state(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.fetchall("SELECT key, value FROM replay_state")}

    def set_replay_state(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.execute("DELETE FROM replay_state WHERE key = ?", (key,))
            self.execute("INSERT INTO replay_state (key, value) VALUES (?, ?)", (key, value))

    def add_replay_error(self, at: float, message: str) -> None:
        self.execute("INSERT INTO replay_errors (at, message) VALUES (?, ?)", (at, message))

    def replay_errors(self) -> list[tuple[float, str]]:
        return [(float(r[0]), str(r[1])) for r in self.fetchall("SELECT at, message FROM replay_errors ORDER BY id")]

    # ------------------------------------------------------------------------------ events
    def seen_event(self, event_id: str) -> bool:
        known = self._seen.get(event_id)
        if known is not None:
            return known
        seen = self.fetchone("SELECT 1 FROM processed_events WHERE event_id = ?", (event_id,)) is not None
        if self.batch_writes:
            self._seen[event_id] = seen
        return seen

    def mark_event(self, event_id: str) -> None:
        if self.batch_writes:
            self._event_marks.append(event_id)
            self._seen[event_id] = True
            self._pending = True
            return
        self.execute("INSERT INTO processed_events (event_id) VALUES (?)", (event_id,))

    # ------------------------------------------------------------------------------ activity
    def log_activity(
        self,
        person_id: int,
        at: float,
        kind: str,
        smart_campaign: str | None,
        target: str | None,
        status: str | None,
        origin: str,
        outcome: str,
        reason: str | None,
    ) -> None:
        self._activity.append((person_id, float(at), kind, smart_campaign, target, status, origin, outcome, reason))
        if self.batch_writes:
            self._pending = True
        if len(self._activity) >= 5000:
            self._flush()

    def _flush(self) -> None:
        """Writes what waits for the commit (subclasses add theirs)."""
        if self.batch_writes:
            self._write_pending()
        elif self._activity:
            self._cursor.executemany(
                self._q(
                    "INSERT INTO activity (person_id, at, kind, smart_campaign, target, status, origin, outcome, "
                    "reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                self._activity,
            )
            self._activity.clear()

    def activity_of(self, person_id: int, limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
        self._flush()
        rows = self.fetchall(
            "SELECT id, at, kind, smart_campaign, target, status, origin, outcome, reason FROM activity "
            "WHERE person_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (person_id, before_id if before_id is not None else 2**62, limit),
        )
        keys = ("id", "at", "kind", "smart_campaign", "target", "status", "origin", "outcome", "reason")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def log_error(self, at: float, message: str) -> None:
        self.execute("INSERT INTO errors (at, message) VALUES (?, ?)", (at, message))


def _columns(rows: Sequence[Sequence[Any]], width: int) -> tuple[list[Any], ...]:
    """Rows as columns, for `unnest` (one array per column)."""
    columns: tuple[list[Any], ...] = tuple([] for _ in range(width))
    for row in rows:
        for number in range(width):
            columns[number].append(row[number])
    return columns
