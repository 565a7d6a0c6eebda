"""The emulator's state in SQLite (one file with `--data`, else in memory), with a write-through cache.

Records are JSON documents keyed by id, one table for every object; a record keeps its field values under their
canonical names plus private keys starting with `_` (`_deletedDate`). Everything happens under one re-entrant
lock: a request holds it for its whole transaction, so requests are serialized, as a single-process emulator
can afford.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.emulator import schema as s

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (prefix TEXT PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sobject TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_object ON records (sobject, seq);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expired INTEGER NOT NULL DEFAULT 0
);
"""

Record = dict[str, Any]


@dataclass
class _Table:
    records: dict[str, Record] = field(default_factory=dict)  # id -> record, in creation order
    children: dict[str, list[str]] = field(default_factory=dict)  # parent id -> ids (for parent_field)


class Store:
    def __init__(self, path: str | Path | None) -> None:
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._depth = 0
        self._savepoints = 0
        self._cache_writes = 0  # bumped by every write the cache sees: a savepoint undone with none keeps it
        self._tables: dict[str, _Table] = {}
        self._sessions: dict[str, tuple[str, bool]] | None = None
        with self.lock:
            if path:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    # -- transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: an exception rolls every write back (nested calls join the outer transaction)."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            writes = self._cache_writes
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                if self._cache_writes != writes:
                    self._invalidate()
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: an exception undoes only what happened since this point."""
        with self.lock:
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self._conn.execute(f"SAVEPOINT {name}")
            writes = self._cache_writes
            try:
                yield
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                if self._cache_writes != writes:
                    self._invalidate()
                raise
            else:
                self._conn.execute(f"RELEASE {name}")

    def rollback_all(self) -> None:
        """Inside `transaction()`: undo its writes so far and go on (an allOrNone collection that failed)."""
        with self.lock:
            self._conn.execute("ROLLBACK")
            self._conn.execute("BEGIN IMMEDIATE")
            self._invalidate()

    def _invalidate(self) -> None:
        self._tables.clear()
        self._sessions = None

    # -- meta and counters

    def meta(self, key: str) -> str | None:
        with self.lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.lock:
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def next_number(self, prefix: str) -> int:
        with self.lock:
            row = self._conn.execute("SELECT next FROM counters WHERE prefix = ?", (prefix,)).fetchone()
            number = 1 if row is None else int(row[0])
            self._conn.execute(
                "INSERT INTO counters (prefix, next) VALUES (?, ?) "
                "ON CONFLICT(prefix) DO UPDATE SET next = excluded.next",
                (prefix, number + 1),
            )
            return number

    # -- records

    def _table(self, sobject: s.SObjectDef) -> _Table:
        table = self._tables.get(sobject.name)
        if table is None:
            table = _Table()
            rows = self._conn.execute(
                "SELECT id, data FROM records WHERE sobject = ? ORDER BY seq", (sobject.name,)
            ).fetchall()
            for record_id, data in rows:
                record = json.loads(data)
                table.records[record_id] = record
                self._index_child(sobject, table, record)
            self._tables[sobject.name] = table
        return table

    @staticmethod
    def _index_child(sobject: s.SObjectDef, table: _Table, record: Record) -> None:
        if sobject.parent_field:
            parent = record.get(sobject.parent_field)
            if parent:
                table.children.setdefault(parent, []).append(record["Id"])

    def all(self, sobject: s.SObjectDef) -> list[Record]:
        """Every record of the object, deleted ones too, in creation order. Do not mutate them."""
        with self.lock:
            return list(self._table(sobject).records.values())

    def count(self, sobject: s.SObjectDef) -> tuple[int, int]:
        """(live, deleted)."""
        with self.lock:
            records = self._table(sobject).records.values()
            deleted = sum(1 for record in records if record.get("IsDeleted"))
            return len(records) - deleted, deleted

    def get(self, record_id: str) -> Record | None:
        """Any record by its 18-character id, deleted ones too. Do not mutate it: `save` a copy."""
        sobject = s.sobject_for_id(record_id)
        if sobject is None:
            return None
        with self.lock:
            return self._table(sobject).records.get(record_id)

    def children(self, sobject: s.SObjectDef, parent_id: str) -> list[Record]:
        with self.lock:
            table = self._table(sobject)
            return [table.records[child] for child in table.children.get(parent_id, ())]

    def insert(self, sobject: s.SObjectDef, record: Record) -> None:
        with self.lock:
            table = self._table(sobject)
            self._conn.execute(
                "INSERT INTO records (id, sobject, data) VALUES (?, ?, ?)",
                (record["Id"], sobject.name, json.dumps(record)),
            )
            table.records[record["Id"]] = record
            self._index_child(sobject, table, record)
            self._cache_writes += 1

    def save(self, sobject: s.SObjectDef, record: Record) -> None:
        """Replaces a stored record (its parent field never changes)."""
        with self.lock:
            table = self._table(sobject)
            self._conn.execute("UPDATE records SET data = ? WHERE id = ?", (json.dumps(record), record["Id"]))
            table.records[record["Id"]] = record
            self._cache_writes += 1

    def clear_records(self, keep: set[str]) -> None:
        """Deletes every record but those ids (a reset keeps the organization and its first user)."""
        with self.lock:
            marks = ",".join("?" for _ in keep) or "''"
            self._conn.execute(f"DELETE FROM records WHERE id NOT IN ({marks})", tuple(keep))
            self._invalidate()

    # -- sessions

    def _load_sessions(self) -> dict[str, tuple[str, bool]]:
        if self._sessions is None:
            rows = self._conn.execute("SELECT token, user_id, expired FROM sessions").fetchall()
            self._sessions = {str(token): (str(user), bool(expired)) for token, user, expired in rows}
        return self._sessions

    def add_session(self, token: str, user_id: str, issued_at: str) -> None:
        with self.lock:
            self._conn.execute(
                "INSERT INTO sessions (token, user_id, issued_at) VALUES (?, ?, ?)", (token, user_id, issued_at)
            )
            self._load_sessions()[token] = (user_id, False)

    def session_user(self, token: str) -> str | None:
        """The user of a live session, else None."""
        with self.lock:
            found = self._load_sessions().get(token)
            return found[0] if found and not found[1] else None

    def expire_sessions(self) -> int:
        with self.lock:
            count = self._conn.execute("UPDATE sessions SET expired = 1 WHERE expired = 0").rowcount
            self._sessions = None
            return int(count)

    def clear_sessions(self) -> None:
        with self.lock:
            self._conn.execute("DELETE FROM sessions")
            self._sessions = None
