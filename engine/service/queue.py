"""The durable inbox (events taken by the API or the poller) and outbox (CRM operations waiting to be sent).

Both are tables in the store's database. The API inserts events and commits before it answers; a worker
claims the oldest unprocessed rows, runs them through the interpreter and marks them processed in the same
transaction as everything the interpreter wrote. On PostgreSQL, workers share the tables: a worker owns a
person (a *partition*, the lower-cased email) for the length of its transaction through
`pg_try_advisory_xact_lock(hashtext(partition))`, so one person's rows are never run by two workers at once
and always in id order; a worker killed mid-batch holds nothing once its connection is gone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text, text
from sqlalchemy.engine import Connection, Engine

from engine.model.events import Event
from engine.runtime import adapter as p
from engine.store.store import Store

service_metadata = MetaData()

BigId = BigInteger().with_variant(Integer(), "sqlite")

inbox = Table(
    "service_inbox",
    service_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("partition", String(320), nullable=False),  # lower(person email): one person's rows run in order
    Column("event", Text, nullable=False),  # the event as JSON (REPLAY.md shape)
    Column("event_id", String(255), nullable=True, unique=True),  # idempotency key, when the event has one
    Column("person_sfdc_id", String(18), nullable=True),  # the person's Salesforce id, when the poller knows it
    Column("source", String(16), nullable=False),  # api | poller
    Column("received_at", Float, nullable=False),
    Column("claimed_by", String(64), nullable=True),  # the worker that processed it (or last tried)
    Column("processed_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),  # set when the event could not be processed (dead-lettered)
    Index("ix_service_inbox_pending", "id", postgresql_where=text("processed_at IS NULL"),
          sqlite_where=text("processed_at IS NULL")),
    Index("ix_service_inbox_partition", "partition", "id"),
    Index("ix_service_inbox_dead", "id", postgresql_where=text("error IS NOT NULL"),
          sqlite_where=text("error IS NOT NULL")),
)  # fmt: skip

outbox = Table(
    "service_outbox",
    service_metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),  # idempotency key: <inbox row or wait>:<sequence>
    Column("partition", String(320), nullable=False),
    Column("op", Text, nullable=False),  # the CRM operation as JSON
    Column("person_id", Integer, nullable=True),
    Column("campaign_id", Integer, nullable=True),
    Column("previous", String(255), nullable=True),  # the member status the operation replaces (for undo)
    Column("at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("sent_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("outcome", String(16), nullable=True),  # done | failed
    Column("result", Text, nullable=True),
    Index("ix_service_outbox_pending", "id", postgresql_where=text("sent_at IS NULL"),
          sqlite_where=text("sent_at IS NULL")),
)  # fmt: skip

api_calls = Table(
    "service_api_calls",
    service_metadata,
    Column("day", String(10), primary_key=True),  # UTC day, YYYY-MM-DD
    Column("endpoint", String(128), primary_key=True),  # e.g. "POST composite/sobjects"
    Column("calls", BigInteger, nullable=False),
)

cursors = Table(
    "service_cursors",
    service_metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

MAX_ATTEMPTS = 3  # an event that fails alone this many times is dead-lettered (processed with an error)


def now() -> float:
    return time.time()


def partition_of(email: str) -> str:
    return email.strip().lower()


class BatchMember(BaseModel):
    """An inbox item of the service's own: one person selected for a batch campaign's scheduled run
    (`engine.service.schedule`). It waits in the person's partition with their events and is run by the worker
    with `Interpreter.run_batch_member`; its id (`batch:<campaign>:<slot>:<email>`) makes it exactly once."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["batch_member"] = "batch_member"
    person: str = Field(min_length=3)
    campaign: str  # the smart campaign's name
    slot: datetime  # the scheduled time this run is for (UTC)
    id: str
    at: datetime | None = None  # run at the worker's clock (when it is taken), like an event without `at`


InboxItem = Event | BatchMember


def parse_item(raw: str | bytes) -> InboxItem:
    """An inbox row's JSON: an event (REPLAY.md shape) or one of the service's own items."""
    text_ = raw.decode() if isinstance(raw, bytes) else raw
    if text_.startswith('{"type":"batch_member"'):  # as `event_json` writes it
        return BatchMember.model_validate_json(text_)
    return Event.model_validate_json(text_)


def item_id(key: str) -> str:
    """An idempotency key that fits the inbox's `event_id` column (a long one is hashed)."""
    if len(key) <= 255:
        return key
    prefix = key.split(":", 1)[0]
    return f"{prefix}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def event_json(event: InboxItem) -> str:
    return json.dumps(event.model_dump(mode="json", exclude_none=True), separators=(",", ":"))


# ---------------------------------------------------------------------------------------------- intake
@dataclass(frozen=True)
class Intake:
    accepted: int
    duplicates: int
    ids: list[int]


def put_events(
    conn: Connection,
    events: Sequence[InboxItem],
    *,
    source: str,
    received_at: float | None = None,
    person_sfdc_ids: Sequence[str | None] | None = None,
) -> Intake:
    """Inserts events into the inbox (the caller commits). An event whose id is already there is a duplicate."""
    if not events:
        return Intake(0, 0, [])
    at = received_at if received_at is not None else now()
    rows: list[dict[str, Any]] = [
        {
            "partition": partition_of(event.person),
            "event": event_json(event),
            "event_id": event.id,
            "person_sfdc_id": person_sfdc_ids[number] if person_sfdc_ids else None,
            "source": source,
            "received_at": at,
        }
        for number, event in enumerate(events)
    ]
    # duplicates within the request itself: the first one counts
    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    for row in rows:
        key = row["event_id"]
        if key is not None:
            if key in seen:
                continue
            seen.add(str(key))
        unique.append(row)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(inbox).on_conflict_do_nothing(index_elements=["event_id"])
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(inbox).on_conflict_do_nothing(index_elements=["event_id"])
    else:  # pragma: no cover - the store supports SQLite and PostgreSQL
        statement = inbox.insert()
    ids = [int(row[0]) for row in conn.execute(statement.returning(inbox.c.id), unique).fetchall()]
    return Intake(len(ids), len(rows) - len(ids), sorted(ids))


# ---------------------------------------------------------------------------------------------- claiming
@dataclass
class InboxRow:
    id: int
    partition: str
    event: InboxItem
    received_at: float
    person_sfdc_id: str | None
    attempts: int


def _lock_partitions(store: Store, partitions: Sequence[str], want: int) -> list[str]:
    """Advisory transaction locks on the first `want` of `partitions` that are free (PostgreSQL), in one statement:
    the locks are tried in order and no more are taken once `want` are held."""
    if store.dialect != "postgresql":
        return list(partitions)
    rows = store.fetchall(
        "SELECT k FROM unnest(%b::text[]) AS k WHERE pg_try_advisory_xact_lock(hashtext(k)) LIMIT ?",
        (list(partitions), want),
    )
    return [str(row[0]) for row in rows]


def lock_partitions(store: Store, partitions: Iterable[str]) -> set[str]:
    """Those of `partitions` this transaction now owns (all of them on SQLite); their persons' rows are read at once
    (`Store.load_people`, with batch_writes)."""
    wanted = list(dict.fromkeys(partitions))
    owned = _lock_partitions(store, wanted, len(wanted))
    if owned:
        store.load_people(owned)
    return set(owned)


_CANDIDATES_LOCKED = (
    # the partitions of the oldest unprocessed rows, oldest first, each locked if free until `max_partitions` are
    # held. `OFFSET 0` keeps the lock out of the sorted subquery: pushed into it (as HAVING), the lock would be
    # tried on every candidate before the sort, and one worker would hold them all.
    "SELECT partition FROM (SELECT partition, min(id) AS first FROM (SELECT id, partition FROM service_inbox "
    "WHERE processed_at IS NULL ORDER BY id LIMIT ?) c GROUP BY partition ORDER BY first OFFSET 0) o "
    "WHERE pg_try_advisory_xact_lock(hashtext(partition)) LIMIT ?"
)
_CLAIM = (
    "SELECT id, partition, event, received_at, person_sfdc_id, attempts, event_id IS NOT NULL AND EXISTS "
    "(SELECT 1 FROM processed_events pe WHERE pe.event_id = service_inbox.event_id) FROM service_inbox "
    "WHERE processed_at IS NULL AND partition = ANY(%b::text[]) ORDER BY id LIMIT %s"
)


def claim_inbox(store: Store, limit: int, *, scan: int = 2000, max_partitions: int = 64) -> list[InboxRow]:
    """The oldest unprocessed rows of partitions this transaction owns, in id order (at most `limit`).

    On PostgreSQL two round trips: the partitions locked (one statement), then the rows, whether their events were
    processed already and the rows of their persons (`Store.load_people`). The rows are read by a statement that
    starts after the locks are held, so it sees everything the previous holder committed."""
    if store.dialect == "postgresql":
        owned = [str(row[0]) for row in store.fetchall(_CANDIDATES_LOCKED, (scan, max_partitions))]
        if not owned:
            return []
        rows = store.load_people(owned, expected=limit, also=(_CLAIM, (owned, limit)))
        claimed = [InboxRow(int(r[0]), str(r[1]), parse_item(r[2]), float(r[3]), r[4], int(r[5])) for r in rows]
        for row, raw in zip(claimed, rows, strict=True):
            if row.event.id is not None:
                store.remember_seen(row.event.id, bool(raw[6]))
        return claimed
    rows = store.fetchall(
        "SELECT id, partition, event, received_at, person_sfdc_id, attempts FROM service_inbox "
        "WHERE processed_at IS NULL ORDER BY id LIMIT ?",
        (limit,),
    )
    return [InboxRow(int(r[0]), str(r[1]), parse_item(r[2]), float(r[3]), r[4], int(r[5])) for r in rows]


def mark_processed(store: Store, ids: Sequence[int], worker: str, at: float) -> None:
    if not ids:
        return
    if store.batch_writes:  # with the batch's other writes, when it commits
        store.defer(
            "UPDATE service_inbox SET processed_at = ?, claimed_by = ?, attempts = attempts + 1, error = NULL "
            "WHERE id = ANY(%b::bigint[])",
            (at, worker, list(ids)),
        )
        return
    marks = ", ".join("?" for _ in ids)
    store.execute(
        f"UPDATE service_inbox SET processed_at = ?, claimed_by = ?, attempts = attempts + 1, error = NULL "
        f"WHERE id IN ({marks})",
        (at, worker, *ids),
    )


def mark_failed(store: Store, row: InboxRow, worker: str, error: str, at: float, *, limit: int = MAX_ATTEMPTS) -> bool:
    """Counts a failed attempt; dead-letters the row (processed, with the error) after `limit`. True if so."""
    dead = row.attempts + 1 >= limit
    store.execute(
        "UPDATE service_inbox SET attempts = attempts + 1, claimed_by = ?, error = ?, processed_at = ? WHERE id = ?",
        (worker, error[:2000], at if dead else None, row.id),
    )
    return dead


# ---------------------------------------------------------------------------------------------- outbox
_OPERATIONS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        p.CreateLead,
        p.AddMember,
        p.UpdateMemberStatus,
        p.RemoveMember,
        p.SetCampaignFields,
        p.SetCampaignStatuses,
    )
}


def op_to_json(op: p.Operation) -> str:
    return json.dumps({"kind": type(op).__name__, **dataclasses.asdict(op)}, separators=(",", ":"))


def op_from_json(raw: str) -> p.Operation:
    data = json.loads(raw)
    cls = _OPERATIONS[data.pop("kind")]
    for key, value in data.items():
        if isinstance(value, list):
            data[key] = tuple(value)
    op: p.Operation = cls(**data)
    return op


@dataclass
class OutboxRow:
    id: int
    key: str
    partition: str
    op: p.Operation
    person_id: int | None
    campaign_id: int | None
    previous: str | None
    at: float
    attempts: int


_ADD_OUTBOX = (
    "INSERT INTO service_outbox (key, partition, op, person_id, campaign_id, previous, at, created_at, attempts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)"
)


def add_outbox(
    store: Store,
    key: str,
    partition: str,
    op: p.Operation,
    person_id: int | None,
    campaign_id: int | None,
    previous: str | None,
    at: float,
) -> None:
    """An outbox row in the store's transaction. A store with an `outbox_buffer` (the worker's) collects the rows
    and writes them in one statement when it commits (`flush_outbox`)."""
    params = (key, partition, op_to_json(op), person_id, campaign_id, previous, at, now())
    buffer: list[tuple[Any, ...]] | None = getattr(store, "outbox_buffer", None)
    if buffer is not None:
        buffer.append(params)
    else:
        store.execute(_ADD_OUTBOX, params)


def flush_outbox(store: Store, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        store.executemany(_ADD_OUTBOX, rows)


def claim_outbox(store: Store, limit: int, *, max_partitions: int | None = None) -> list[OutboxRow]:
    """The oldest unsent operations of partitions this transaction owns, in id order."""
    if max_partitions is None:
        max_partitions = limit
    if store.dialect == "postgresql":
        candidates = store.fetchall(
            "SELECT partition FROM (SELECT id, partition FROM service_outbox WHERE sent_at IS NULL "
            "ORDER BY id LIMIT ?) c GROUP BY partition ORDER BY min(id)",
            (limit * 4,),
        )
        if not candidates:
            return []
        owned = _lock_partitions(store, [str(row[0]) for row in candidates], max_partitions)
        if not owned:
            return []
        rows = store.fetchall(
            "SELECT id, key, partition, op, person_id, campaign_id, previous, at, attempts FROM service_outbox "
            "WHERE sent_at IS NULL AND partition = ANY(?) ORDER BY id LIMIT ?",
            (owned, limit),
        )
    else:
        rows = store.fetchall(
            "SELECT id, key, partition, op, person_id, campaign_id, previous, at, attempts FROM service_outbox "
            "WHERE sent_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
    return [
        OutboxRow(int(r[0]), str(r[1]), str(r[2]), op_from_json(r[3]), r[4], r[5], r[6], float(r[7]), int(r[8]))
        for r in rows
    ]


def mark_sent(store: Store, row: OutboxRow, outcome: str, result: str, at: float) -> None:
    store.execute(
        "UPDATE service_outbox SET sent_at = ?, outcome = ?, result = ?, attempts = attempts + 1 WHERE id = ?",
        (at, outcome, result[:2000], row.id),
    )


# ---------------------------------------------------------------------------------------------- cursors
def get_cursor(store: Store, name: str) -> str | None:
    row = store.fetchone("SELECT value FROM service_cursors WHERE name = ?", (name,))
    return str(row[0]) if row else None


def set_cursor(store: Store, name: str, value: str) -> None:
    store.execute(
        "INSERT INTO service_cursors (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


# ---------------------------------------------------------------------------------------------- API calls
API_USAGE = "salesforce.api_usage"  # service_cursors: the last Sforce-Limit-Info reading, "used/limit@at"


def utc_day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def add_api_calls(store: Store, delta: dict[str, int], at: float) -> None:
    """Adds API calls (endpoint -> count) to today's totals (the caller commits)."""
    day = utc_day(at)
    for endpoint, count in sorted(delta.items()):
        store.execute(
            "INSERT INTO service_api_calls (day, endpoint, calls) VALUES (?, ?, ?) "
            "ON CONFLICT (day, endpoint) DO UPDATE SET calls = service_api_calls.calls + excluded.calls",
            (day, endpoint[:128], count),
        )


def set_api_usage(store: Store, used: int, limit: int, at: float) -> None:
    set_cursor(store, API_USAGE, f"{used}/{limit}@{at:.3f}")


# ---------------------------------------------------------------------------------------------- depth
@dataclass(frozen=True)
class Depth:
    inbox: int
    oldest_received_at: float | None
    outbox: int
    dead_letters: int
    oldest_outbox_at: float | None = None


def depth(conn: Connection) -> Depth:
    row = conn.exec_driver_sql(
        "SELECT COUNT(*), MIN(received_at) FROM service_inbox WHERE processed_at IS NULL"
    ).fetchone()
    out = conn.exec_driver_sql("SELECT COUNT(*), MIN(created_at) FROM service_outbox WHERE sent_at IS NULL").fetchone()
    dead = conn.exec_driver_sql(
        "SELECT COUNT(*) FROM service_inbox WHERE error IS NOT NULL AND processed_at IS NOT NULL"
    ).fetchone()
    assert row is not None and out is not None and dead is not None
    return Depth(
        int(row[0]),
        float(row[1]) if row[1] is not None else None,
        int(out[0]),
        int(dead[0]),
        float(out[1]) if out[1] is not None else None,
    )


@dataclass(frozen=True)
class Status:
    """What an operator reads: queue depths and ages, Salesforce API calls and quota, refused records."""

    depth: Depth
    api_calls_today: dict[str, int]
    api_used: int | None
    api_limit: int | None
    api_usage_at: float | None
    refused: dict[str, int]  # error code -> records refused in the last 5 days
    refused_total: int
    at: float

    def to_json(self) -> dict[str, Any]:
        d = self.depth
        return {
            "at": self.at,
            "inbox": {"depth": d.inbox, "oldest_age_seconds": _age(d.oldest_received_at, self.at),
                      "dead_letters": d.dead_letters},
            "outbox": {"depth": d.outbox, "oldest_age_seconds": _age(d.oldest_outbox_at, self.at)},
            "salesforce": {
                "api_calls_today": dict(sorted(self.api_calls_today.items())),
                "api_calls_today_total": sum(self.api_calls_today.values()),
                "api_used": self.api_used,
                "api_limit": self.api_limit,
                "api_remaining": (max(self.api_limit - (self.api_used or 0), 0) if self.api_limit else None),
                "api_usage_read_at": self.api_usage_at,
            },
            "refused": {"last_5_days": self.refused_total, "by_code": dict(sorted(self.refused.items()))},
        }  # fmt: skip


def _age(since: float | None, at: float) -> float:
    return round(max(at - since, 0.0), 3) if since is not None else 0.0


def status(conn: Connection, at: float | None = None) -> Status:
    at = at if at is not None else now()
    calls = {
        str(endpoint): int(count)
        for endpoint, count in conn.execute(
            text("SELECT endpoint, calls FROM service_api_calls WHERE day = :day"), {"day": utc_day(at)}
        ).fetchall()
    }
    usage_row = conn.execute(
        text("SELECT value FROM service_cursors WHERE name = :name"), {"name": API_USAGE}
    ).fetchone()
    used = limit = None
    usage_at = None
    if usage_row is not None:
        counts, _, when = str(usage_row[0]).partition("@")
        used_text, _, limit_text = counts.partition("/")
        used, limit, usage_at = int(used_text), int(limit_text), float(when)
    refused: dict[str, int] = {}
    for (result,) in conn.execute(
        text("SELECT result FROM service_outbox WHERE outcome = 'failed' AND sent_at >= :since"),
        {"since": at - 5 * 86400},
    ).fetchall():
        try:
            code = str(json.loads(result).get("code") or "ERROR")
        except (TypeError, ValueError):
            code = "ERROR"
        refused[code] = refused.get(code, 0) + 1
    return Status(depth(conn), calls, used, limit, usage_at, refused, sum(refused.values()), at)


def create_tables(engine: Engine) -> None:
    """Creates the service tables where missing (tests and SQLite; `smartcampaign db upgrade` uses Alembic)."""
    with engine.begin() as conn:
        service_metadata.create_all(conn, checkfirst=True)
