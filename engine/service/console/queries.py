"""What the console reads from the store: run counts, outcomes, waits, persons, queue history, refusals.

Plain SQL through SQLAlchemy `text()` (SQLite and PostgreSQL alike), read-only except `requeue_refused`, the
Salesforce page's retry button.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from engine.service.poller import MIRROR_VERSION

DAY = 86400.0


def utc_midnight(at: float) -> float:
    return at - at % DAY


@dataclass
class CampaignStats:
    runs_today: int = 0
    runs_7_days: int = 0
    errors_7_days: int = 0
    waiting: int = 0
    runs_total: int = 0
    last_run: float | None = None


def campaign_stats(conn: Connection, now: float, campaign: str | None = None) -> dict[str, CampaignStats]:
    """Runs today and in 7 days, runs in all and the last, step errors in 7 days, people waiting: for every
    campaign, or only `campaign` (through the indexes on the campaign's name where the tables have one)."""
    stats: dict[str, CampaignStats] = {}
    today, week = utc_midnight(now), now - 7 * DAY
    params = {"today": today, "week": week, "name": campaign}

    def only(column: str) -> str:
        return f" AND {column} = :name" if campaign is not None else ""

    for name, today_count, week_count in conn.execute(
        text(
            "SELECT campaign, SUM(CASE WHEN started_at >= :today THEN 1 ELSE 0 END), COUNT(*) FROM runs "
            f"WHERE started_at >= :week{only('campaign')} GROUP BY campaign"
        ),
        params,
    ):
        entry = stats.setdefault(str(name), CampaignStats())
        entry.runs_today, entry.runs_7_days = int(today_count or 0), int(week_count or 0)
    for name, total, last in conn.execute(
        text(
            "SELECT campaign, SUM(runs), MAX(last_started_at) FROM qualifications "
            f"WHERE 1 = 1{only('campaign')} GROUP BY campaign"
        ),
        params,
    ):
        entry = stats.setdefault(str(name), CampaignStats())
        entry.runs_total, entry.last_run = int(total or 0), float(last) if last is not None else None
    for name, count in conn.execute(
        text(
            "SELECT smart_campaign, COUNT(*) FROM activity WHERE outcome = 'error' AND at >= :week "
            f"AND smart_campaign IS NOT NULL{only('smart_campaign')} GROUP BY smart_campaign"
        ),
        params,
    ):
        stats.setdefault(str(name), CampaignStats()).errors_7_days = int(count)
    for name, count in conn.execute(
        text(
            "SELECT campaign, COUNT(DISTINCT person_id) FROM continuations "
            f"WHERE 1 = 1{only('campaign')} GROUP BY campaign"
        ),
        params,
    ):
        stats.setdefault(str(name), CampaignStats()).waiting = int(count)
    return stats


def runs_per_slot(conn: Connection, campaign: str, start: float, end: float, count: int) -> list[tuple[float, float]]:
    """How many runs of `campaign` started in each of `count` equal slots of [start, end), counted by the database."""
    width = (end - start) / count
    slot = "FLOOR((started_at - :start) / :width)"
    if conn.dialect.name == "sqlite":
        slot = "CAST((started_at - :start) / :width AS INTEGER)"  # truncation is the floor here: never negative
    totals = [0] * count
    for number, runs in conn.execute(
        text(
            f"SELECT {slot}, COUNT(*) FROM runs WHERE campaign = :name AND started_at >= :start "
            f"AND started_at < :end GROUP BY {slot}"
        ),
        {"name": campaign, "start": start, "end": end, "width": width},
    ):
        totals[min(max(int(number), 0), count - 1)] += int(runs)
    return [(start + n * width, float(total)) for n, total in enumerate(totals)]


_ACTIVITY = (
    "SELECT a.id, a.at, p.display_email, a.kind, a.smart_campaign, a.target, a.status, a.origin, a.outcome, a.reason "
    "FROM activity a JOIN persons p ON p.id = a.person_id "
)


def _activity_rows(rows: Any) -> list[dict[str, Any]]:
    keys = ("id", "at", "person", "kind", "smart_campaign", "target", "status", "origin", "outcome", "reason")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def campaign_outcomes(conn: Connection, campaign: str, limit: int = 25) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(_ACTIVITY + "WHERE a.smart_campaign = :name ORDER BY a.id DESC LIMIT :limit"),
        {"name": campaign, "limit": limit},
    )
    return _activity_rows(rows)


def waiting_people(conn: Connection, campaign: str | None = None, person_id: int | None = None) -> list[dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if campaign is not None:
        where.append("c.campaign = :name")
        params["name"] = campaign
    if person_id is not None:
        where.append("c.person_id = :pid")
        params["pid"] = person_id
    rows = conn.execute(
        text(
            "SELECT p.display_email, c.campaign, c.due_at, c.run_id FROM continuations c "
            "JOIN persons p ON p.id = c.person_id " + ("WHERE " + " AND ".join(where) if where else "") + " "
            "ORDER BY c.due_at, c.id LIMIT 200"
        ),
        params,
    )
    return [{"person": r[0], "campaign": r[1], "due_at": float(r[2]), "run_id": r[3]} for r in rows]


# ---------------------------------------------------------------------------------------------- persons
@dataclass
class PersonView:
    id: int
    email: str
    sfdc_id: str | None
    sfdc_type: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    memberships: list[dict[str, Any]] = field(default_factory=list)
    programs: list[dict[str, Any]] = field(default_factory=list)


def find_person(conn: Connection, query: str) -> PersonView | None:
    """By email (any case), Salesforce id, or the store's person id."""
    columns = "SELECT id, display_email, sfdc_id, sfdc_type, first_name, last_name, company FROM persons "
    query = query.strip()
    row = conn.execute(text(columns + "WHERE email = :q"), {"q": query.lower()}).fetchone()
    if row is None and query:
        row = conn.execute(text(columns + "WHERE sfdc_id = :q"), {"q": query}).fetchone()
    if row is None and query.isdigit() and len(query) < 12:
        row = conn.execute(text(columns + "WHERE id = :q"), {"q": int(query)}).fetchone()
    if row is None:
        return None
    person = PersonView(int(row[0]), str(row[1]), row[2], row[3], row[4], row[5], row[6])
    person.memberships = [
        {"campaign": r[0], "sfdc_id": r[1], "status": r[2], "added_at": float(r[3]), "changed_at": float(r[4])}
        for r in conn.execute(
            text(
                "SELECT c.name, c.sfdc_id, m.status, m.added_at, m.changed_at FROM memberships m "
                "JOIN campaigns c ON c.id = m.campaign_id WHERE m.person_id = :pid ORDER BY c.name"
            ),
            {"pid": person.id},
        )
    ]
    person.programs = [
        {"program": r[0], "status": r[1], "changed_at": float(r[2])}
        for r in conn.execute(
            text(
                "SELECT g.name, m.status, m.changed_at FROM program_memberships m "
                "JOIN programs g ON g.id = m.program_id WHERE m.person_id = :pid ORDER BY g.name"
            ),
            {"pid": person.id},
        )
    ]
    return person


def person_activity(conn: Connection, person_id: int, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(_ACTIVITY + "WHERE a.person_id = :pid ORDER BY a.id DESC LIMIT :limit"), {"pid": person_id, "limit": limit}
    )
    return _activity_rows(rows)


def person_runs(conn: Connection, person_id: int, campaign: str, limit: int = 10) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT id, started_at, trigger FROM runs WHERE person_id = :pid AND campaign = :name "
            "ORDER BY id DESC LIMIT :limit"
        ),
        {"pid": person_id, "name": campaign, "limit": limit},
    )
    out = []
    for run_id, started, trigger in rows:
        try:
            data = json.loads(trigger)
        except (TypeError, ValueError):
            data = {}
        out.append({"id": run_id, "started_at": float(started), "trigger": data})
    return out


# ---------------------------------------------------------------------------------------------- queues
_QUEUES = (
    ("inbox", "service_inbox", "received_at", "processed_at"),
    ("outbox", "service_outbox", "created_at", "sent_at"),
)
CHUNK = 5000


def id_floor(conn: Connection, table: str, born: str, done: str, start: float) -> int:
    """The smallest id whose row can matter for the depth since `start`, found through the primary key only.

    Rows are numbered as they arrive, so `born` grows with the id: a binary search finds the first row born a
    minute before `start`. Rows before it that were still being worked after `start` (a backlog) sit just before
    it, as both queues are worked oldest first: chunks are added going back until one has none. Older rows
    still pending are read through the pending index, so the tables are never scanned whole."""
    low, high = conn.execute(text(f"SELECT MIN(id), MAX(id) FROM {table}")).one()
    if low is None:
        return 0
    low, high = int(low), int(high) + 1
    first = low
    while low < high:
        middle = (low + high) // 2
        row = conn.execute(
            text(f"SELECT {born} FROM {table} WHERE id >= :id ORDER BY id LIMIT 1"), {"id": middle}
        ).first()
        if row is None or float(row[0]) >= start - 60:
            high = middle
        else:
            low = middle + 1
    floor = low
    while floor > first:
        busy = conn.execute(
            text(f"SELECT COUNT(*) FROM {table} WHERE id >= :a AND id < :b AND {done} > :start"),
            {"a": floor - CHUNK, "b": floor, "start": start},
        ).scalar_one()
        if not busy:
            break
        floor -= CHUNK
    return max(floor, first)


def depth_series(conn: Connection, start: float, end: float, count: int = 60) -> dict[str, list[tuple[float, float]]]:
    """Inbox and outbox depth at `count` + 1 moments from `start` to `end`, from the rows' own times: the rows
    from `id_floor` on and the older ones still pending (so the cost follows the window, not the table)."""
    moments = [start + (end - start) * n / count for n in range(count + 1)]
    params: dict[str, Any] = {f"t{n}": t for n, t in enumerate(moments)}
    params["start"], params["end"] = start, end
    out: dict[str, list[tuple[float, float]]] = {}
    for name, table, born, done in _QUEUES:
        params["floor"] = id_floor(conn, table, born, done, start)
        sums = ", ".join(
            f"SUM(CASE WHEN {born} <= :t{n} AND ({done} IS NULL OR {done} > :t{n}) THEN 1 ELSE 0 END)"
            for n in range(len(moments))
        )
        rows = (
            f"SELECT {born}, {done} FROM {table} WHERE id >= :floor "
            f"UNION ALL SELECT {born}, {done} FROM {table} WHERE {done} IS NULL AND id < :floor"
        )
        row = conn.execute(
            text(f"SELECT {sums} FROM ({rows}) w WHERE {born} <= :end AND ({done} IS NULL OR {done} > :start)"),
            params,
        ).fetchone()
        values = list(row) if row is not None else []
        out[name] = [(t, float(v or 0)) for t, v in zip(moments, values, strict=True)]
    return out


def oldest_pending_event(conn: Connection) -> dict[str, Any] | None:
    row = conn.execute(
        text(
            "SELECT id, partition, event, received_at, source, attempts FROM service_inbox "
            "WHERE processed_at IS NULL ORDER BY id LIMIT 1"
        )
    ).fetchone()
    if row is None:
        return None
    try:
        kind = str(json.loads(row[2]).get("type"))
    except (TypeError, ValueError, AttributeError):
        kind = "?"
    return {"id": row[0], "person": row[1], "type": kind, "received_at": float(row[3]), "source": row[4],
            "attempts": row[5]}  # fmt: skip


def workers_seen(conn: Connection, since: float) -> list[tuple[str, float, int]]:
    """Worker names that processed inbox rows since `since`: (name, last processed at, rows)."""
    rows = conn.execute(
        text(
            "SELECT claimed_by, MAX(processed_at), COUNT(*) FROM service_inbox WHERE processed_at >= :since "
            "AND claimed_by IS NOT NULL GROUP BY claimed_by ORDER BY claimed_by"
        ),
        {"since": since},
    )
    return [(str(r[0]), float(r[1]), int(r[2])) for r in rows]


# ---------------------------------------------------------------------------------------------- refusals
# Salesforce refused these because the record or campaign no longer exists: sending them again cannot work.
FINAL_CODES = {"ENTITY_IS_DELETED", "UNKNOWN_CAMPAIGN", "UNKNOWN_PERSON"}
RETRYABLE_OPS = {"AddMember", "UpdateMemberStatus", "RemoveMember", "CreateLead"}
OPERATION_WORDS = {
    "AddMember": "Add to SFDC Campaign",
    "UpdateMemberStatus": "Change Status in SFDC Campaign",
    "RemoveMember": "Remove from SFDC Campaign",
    "CreateLead": "Sync Lead to SFDC",
}


@dataclass
class Refusal:
    id: int
    at: float
    operation: str
    person: str | None
    campaign: str | None
    status: str | None
    code: str
    message: str
    attempts: int
    retry: bool
    why_not: str | None


def refused(conn: Connection, since: float, limit: int = 200, only: int | None = None) -> list[Refusal]:
    rows = conn.execute(
        text(
            "SELECT o.id, o.sent_at, o.op, p.display_email, c.name, o.result, o.attempts, o.person_id, o.campaign_id "
            "FROM service_outbox o LEFT JOIN persons p ON p.id = o.person_id "
            "LEFT JOIN campaigns c ON c.id = o.campaign_id "
            "WHERE o.outcome = 'failed' AND o.sent_at >= :since AND (:only < 0 OR o.id = :only) "
            "ORDER BY o.id DESC LIMIT :limit"
        ),
        {"since": since, "limit": limit, "only": -1 if only is None else only},
    ).fetchall()
    latest: dict[tuple[Any, Any], int] = {}
    if rows:
        # the last action for each (person, campaign) from the oldest listed refusal on: a primary key range
        for person_id, campaign_id, last in conn.execute(
            text(
                "SELECT person_id, campaign_id, MAX(id) FROM service_outbox WHERE id >= :first "
                "AND person_id IS NOT NULL GROUP BY person_id, campaign_id"
            ),
            {"first": min(int(r[0]) for r in rows)},
        ):
            latest[(person_id, campaign_id)] = int(last)
    out: list[Refusal] = []
    for row_id, sent_at, op_json, email, campaign, result_json, attempts, person_id, campaign_id in rows:
        try:
            op = json.loads(op_json)
        except (TypeError, ValueError):
            op = {}
        try:
            result = json.loads(result_json) or {}
        except (TypeError, ValueError):
            result = {}
        operation = str(op.get("kind") or "?")
        code = str(result.get("code") or "ERROR")
        why_not = None
        if operation not in RETRYABLE_OPS:
            why_not = "not a member or Lead operation"
        elif code in FINAL_CODES:
            why_not = "the record or campaign no longer exists in Salesforce"
        elif person_id is not None and latest.get((person_id, campaign_id), row_id) > row_id:
            why_not = "a later action for this person and campaign supersedes it"
        words = OPERATION_WORDS.get(operation, operation)
        message = str(result.get("message") or code)
        person = email or op.get("email")
        out.append(
            Refusal(int(row_id), float(sent_at), words, person, campaign, op.get("status"), code, message,
                    int(attempts), why_not is None, why_not)
        )  # fmt: skip
    return out


def requeue_refused(conn: Connection, row_id: int, since: float) -> Refusal | None:
    """Puts a refused row back in the outbox queue (the flusher sends it again); None when it may not be retried.

    When Salesforce refused it, the mirror was put back as it was before; the retry makes the optimistic answer
    again (the membership the action wants is in the mirror while it is queued, and `previous` is what the mirror
    held, for a second refusal to put back). On PostgreSQL this happens under the person's advisory lock, so no
    worker holds that person meanwhile; a person being worked on is retried another time."""
    for refusal in refused(conn, since, limit=1, only=row_id):
        if not refusal.retry:
            return None
        row = conn.execute(
            text("SELECT partition, op, person_id, campaign_id, at FROM service_outbox WHERE id = :id"), {"id": row_id}
        ).fetchone()
        if row is None:
            return None
        partition, op_json, person_id, campaign_id, at = row
        if (
            conn.dialect.name == "postgresql"
            and not conn.execute(
                text("SELECT pg_try_advisory_xact_lock(hashtext(:partition))"), {"partition": partition}
            ).scalar()
        ):
            return None
        previous = _reapply(conn, json.loads(op_json), person_id, campaign_id, float(at))
        # the mirror was written outside a worker: what workers cached of it is dropped (as after a poll)
        conn.execute(
            text(
                "INSERT INTO service_cursors (name, value) VALUES (:name, :value) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            ),
            {"name": MIRROR_VERSION, "value": f"{time.time():.6f}"},
        )
        done = conn.execute(
            text(
                "UPDATE service_outbox SET sent_at = NULL, outcome = NULL, result = NULL, previous = :previous "
                "WHERE id = :id AND outcome = 'failed'"
            ),
            {"id": row_id, "previous": previous},
        )
        return refusal if done.rowcount == 1 else None
    return None


def _reapply(conn: Connection, op: dict[str, Any], person_id: Any, campaign_id: Any, at: float) -> str | None:
    """The mirror as the queued action leaves it; returns the status the person had before (None: not a member)."""
    if person_id is None or campaign_id is None:
        return None
    key = {"person": person_id, "campaign": campaign_id}
    current = conn.execute(
        text("SELECT status FROM memberships WHERE person_id = :person AND campaign_id = :campaign"), key
    ).scalar()
    kind = op.get("kind")
    if kind == "RemoveMember":
        conn.execute(text("DELETE FROM memberships WHERE person_id = :person AND campaign_id = :campaign"), key)
    elif kind in ("AddMember", "UpdateMemberStatus") and op.get("status"):
        if current is None:
            conn.execute(
                text(
                    "INSERT INTO memberships (person_id, campaign_id, status, added_at, changed_at) "
                    "VALUES (:person, :campaign, :status, :at, :at)"
                ),
                {**key, "status": op["status"], "at": at},
            )
        else:
            conn.execute(
                text(
                    "UPDATE memberships SET status = :status, changed_at = :at "
                    "WHERE person_id = :person AND campaign_id = :campaign"
                ),
                {**key, "status": op["status"], "at": at},
            )
    return None if current is None else str(current)
