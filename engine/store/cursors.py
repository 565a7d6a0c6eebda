"""What the Salesforce change poller remembers between cycles, beside the mirror.

- `cursors`: name -> value (text). The poller's high-water marks (`campaign_member.modstamp`, ...), the
  overlap window's already-seen records, and the like. Written in the store's transaction: a cursor moves
  only when the caller commits.
- `member_ids`: CampaignMember id -> (person, campaign, SystemModstamp) for every member the poller has seen,
  so that a deletion (getDeleted answers ids only) can be turned into "person P is not a member of campaign
  C", and so that a member read again in the overlap window with the same SystemModstamp is skipped.
  One row per (person, campaign): a member deleted and added again replaces its earlier id. A deleted member
  keeps a tombstone (`modstamp` = `deleted:<date>`) until its deletion is out of the overlap window.

The tables live on `engine.store.schema.metadata` but the store does not import this module, so
`ensure_tables` creates them in an existing store when missing (`CREATE TABLE` inside the open transaction).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Column, Index, Integer, String, Table, Text

from engine.store.schema import metadata
from engine.store.store import Store

cursors_table = Table(
    "cursors",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("value", Text, nullable=False),
)

member_ids_table = Table(
    "member_ids",
    metadata,
    Column("member_id", String(18), primary_key=True),
    Column("person_id", Integer, nullable=False),
    Column("campaign_id", Integer, nullable=False),
    Column("modstamp", String(32), nullable=False),
    Index("ux_member_ids_pair", "person_id", "campaign_id", unique=True),
)


def ensure_tables(store: Store) -> None:
    """Creates `cursors` and `member_ids` in this store when missing (in the open transaction)."""
    cursors_table.create(store.conn, checkfirst=True)
    member_ids_table.create(store.conn, checkfirst=True)


def get_cursor(store: Store, name: str) -> str | None:
    row = store.fetchone("SELECT value FROM cursors WHERE name = ?", (name,))
    return None if row is None else str(row[0])


def set_cursor(store: Store, name: str, value: str | None) -> None:
    """Sets (None: forgets) a cursor, in the store's open transaction."""
    store.execute("DELETE FROM cursors WHERE name = ?", (name,))
    if value is not None:
        store.execute("INSERT INTO cursors (name, value) VALUES (?, ?)", (name, value))


def all_cursors(store: Store) -> dict[str, str]:
    return {str(name): str(value) for name, value in store.fetchall("SELECT name, value FROM cursors ORDER BY name")}


TOMBSTONE = "deleted:"


class MemberIds:
    """CampaignMember id <-> (person id, campaign id) and the SystemModstamp last seen, written through."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def lookup(self, member_id: str) -> tuple[int, int, str] | None:
        """(person id, campaign id, SystemModstamp) of a member seen before; the SystemModstamp of a deleted one
        is `deleted:` and the deletion's date."""
        row = self.store.fetchone(
            "SELECT person_id, campaign_id, modstamp FROM member_ids WHERE member_id = ?", (member_id,)
        )
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    def member_of(self, person_id: int, campaign_id: int) -> str | None:
        row = self.store.fetchone(
            "SELECT member_id FROM member_ids WHERE person_id = ? AND campaign_id = ?", (person_id, campaign_id)
        )
        return None if row is None else str(row[0])

    def remember(self, member_id: str, person_id: int, campaign_id: int, modstamp: str) -> None:
        """`member_id` is now the member of (person, campaign), replacing any earlier id of the pair."""
        self.store.execute(
            "DELETE FROM member_ids WHERE member_id = ? OR (person_id = ? AND campaign_id = ?)",
            (member_id, person_id, campaign_id),
        )
        self.store.execute(
            "INSERT INTO member_ids (member_id, person_id, campaign_id, modstamp) VALUES (?, ?, ?, ?)",
            (member_id, person_id, campaign_id, modstamp),
        )

    def bury(self, member_id: str, deleted_at: str) -> None:
        """The member was deleted: keep a tombstone, so that the same deletion read again is known as done."""
        self.store.execute(
            "UPDATE member_ids SET modstamp = ? WHERE member_id = ?", (TOMBSTONE + deleted_at, member_id)
        )

    def prune(self, before: str) -> None:
        """Forgets tombstones of deletions before `before` (a Salesforce date-time, same format)."""
        self.store.execute(
            "DELETE FROM member_ids WHERE modstamp LIKE ? AND modstamp < ?", (TOMBSTONE + "%", TOMBSTONE + before)
        )

    def replace_all(self, rows: Iterable[tuple[str, int, int, str]]) -> None:
        """The whole mapping at once (after a full resync); one row per (person, campaign), the last one wins."""
        by_pair: dict[tuple[int, int], tuple[str, str]] = {}
        for member_id, person_id, campaign_id, modstamp in rows:
            by_pair[(person_id, campaign_id)] = (member_id, modstamp)
        self.store.execute("DELETE FROM member_ids")
        batch: list[dict[str, object]] = []
        for (person_id, campaign_id), (member_id, modstamp) in by_pair.items():
            batch.append(
                {"member_id": member_id, "person_id": person_id, "campaign_id": campaign_id, "modstamp": modstamp}
            )
            if len(batch) >= 5000:
                self.store.conn.execute(member_ids_table.insert(), batch)
                batch = []
        if batch:
            self.store.conn.execute(member_ids_table.insert(), batch)
