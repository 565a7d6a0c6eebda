"""The store: the engine's mirror of Salesforce and everything the interpreter remembers.

SQLAlchemy owns the schema, the connection and the transaction; the hot path (one event = a few
point reads and writes) goes straight to the DBAPI cursor with statements written once, because a
Core round trip costs several times more than SQLite itself. Activity rows are buffered and written
in one `executemany` per commit.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from engine.store import schema

DEFAULT_URL = "sqlite:///smartcampaign.db"
MEMORY_URL = "sqlite://"


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

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.conn: Connection = engine.connect()
        self._tx = self.conn.begin()
        self._cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._persons: OrderedDict[str, Person] = OrderedDict()
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

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, url: str = MEMORY_URL) -> Store:
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
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
        self._flush()
        self._tx.commit()
        self._tx = self.conn.begin()
        if self.dialect != "sqlite":
            # other workers may have written: cached rows are only good within one transaction
            self.clear_caches()

    def rollback(self) -> None:
        self._activity.clear()
        self._tx.rollback()
        self._tx = self.conn.begin()
        self.clear_caches()

    def close(self) -> None:
        try:
            self.commit()
        finally:
            self.conn.close()
            self.engine.dispose()

    def clear_caches(self) -> None:
        self._earliest_due_known = False
        self._persons.clear()
        self._memberships.clear()
        self._campaigns_loaded = False
        self._campaigns_by_id.clear()
        self._campaigns_by_name.clear()
        self._campaigns_by_sfdc.clear()
        self._program_ids.clear()

    # ------------------------------------------------------------------------------ raw SQL
    def _q(self, sql: str) -> str:
        cached = self._sql.get(sql)
        if cached is None:
            cached = sql if self.dialect == "sqlite" else sql.replace("?", "%s")
            self._sql[sql] = cached
        return cached

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(self._q(sql), tuple(params))
        return self._cursor

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(self._q(sql), rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self._cursor.execute(self._q(sql), tuple(params))
        return self._cursor.fetchone()

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cursor.execute(self._q(sql), tuple(params))
        return list(self._cursor.fetchall())

    def insert_id(self, sql: str, params: Sequence[Any]) -> int:
        if self.dialect == "sqlite":
            self._cursor.execute(sql, tuple(params))
            return int(self._cursor.lastrowid)
        self._cursor.execute(self._q(sql) + " RETURNING id", tuple(params))
        return int(self._cursor.fetchone()[0])

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
        key = email.lower()
        cached = self._persons.get(key)
        if cached is not None:
            return cached
        row = self.fetchone("SELECT id, display_email, sfdc_id, sfdc_type FROM persons WHERE email = ?", (key,))
        if row is None:
            return None
        person = Person(row[0], row[1], row[2], row[3])
        self._remember_person(key, person)
        return person

    def person_by_id(self, person_id: int) -> Person:
        row = self.fetchone("SELECT id, display_email, sfdc_id, sfdc_type FROM persons WHERE id = ?", (person_id,))
        return Person(row[0], row[1], row[2], row[3])

    def person_by_sfdc_id(self, sfdc_id: str) -> Person | None:
        row = self.fetchone("SELECT id, display_email, sfdc_id, sfdc_type FROM persons WHERE sfdc_id = ?", (sfdc_id,))
        return Person(row[0], row[1], row[2], row[3]) if row else None

    def _remember_person(self, key: str, person: Person) -> None:
        self._persons[key] = person
        if len(self._persons) > self.PERSON_CACHE:
            self._persons.popitem(last=False)

    def add_person(
        self,
        email: str,
        sfdc_id: str | None = None,
        sfdc_type: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        company: str | None = None,
    ) -> Person:
        person_id = self.insert_id(
            "INSERT INTO persons (email, display_email, sfdc_id, sfdc_type, first_name, last_name, company) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (email.lower(), email, sfdc_id, sfdc_type, first_name, last_name, company),
        )
        person = Person(person_id, email, sfdc_id, sfdc_type)
        self._remember_person(email.lower(), person)
        return person

    def set_person_sfdc(self, person: Person, sfdc_id: str, sfdc_type: str, last_name: str, company: str) -> Person:
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
        self._campaigns_loaded = False
        self._campaigns_by_id.clear()
        self._campaigns_by_name.clear()
        self._campaigns_by_sfdc.clear()

    def rename_campaign(self, campaign_id: int, name: str) -> None:
        """A campaign renamed in Salesforce: the mirror follows (names are how rules refer to campaigns)."""
        self.execute("UPDATE campaigns SET name = ? WHERE id = ?", (name, campaign_id))
        self._campaigns_loaded = False
        self._campaigns_by_id.clear()
        self._campaigns_by_name.clear()
        self._campaigns_by_sfdc.clear()

    def set_campaign_fields(self, campaign_id: int, ctype: str | None, actual_cost: float | None) -> None:
        self.execute("UPDATE campaigns SET type = ?, actual_cost = ? WHERE id = ?", (ctype, actual_cost, campaign_id))
        self._campaigns_loaded = False

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
        self._memberships[person_id] = found
        if len(self._memberships) > self.MEMBERSHIP_CACHE:
            self._memberships.popitem(last=False)
        return found

    def set_membership(self, person_id: int, campaign_id: int, status: str, at: float) -> None:
        current = self.memberships(person_id)
        if campaign_id in current:
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
        row = self.fetchone(
            "SELECT status FROM program_memberships WHERE person_id = ? AND program_id = ?", (person_id, program_id)
        )
        return row[0] if row else None

    def program_statuses(self, person_id: int) -> dict[int, str]:
        return dict(
            self.fetchall("SELECT program_id, status FROM program_memberships WHERE person_id = ?", (person_id,))
        )

    def set_program_status(self, person_id: int, program_id: int, status: str | None, at: float) -> None:
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
        row = self.fetchone(
            "SELECT last_started_at, runs FROM qualifications WHERE campaign = ? AND person_id = ?",
            (campaign, person_id),
        )
        return (float(row[0]), int(row[1])) if row else None

    def start_run(self, campaign: str, person_id: int, at: float, trigger: dict[str, Any]) -> int:
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

    # ------------------------------------------------------------------------------ events
    def seen_event(self, event_id: str) -> bool:
        return self.fetchone("SELECT 1 FROM processed_events WHERE event_id = ?", (event_id,)) is not None

    def mark_event(self, event_id: str) -> None:
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
        self._activity.append((person_id, at, kind, smart_campaign, target, status, origin, outcome, reason))
        if len(self._activity) >= 5000:
            self._flush()

    def _flush(self) -> None:
        if self._activity:
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
