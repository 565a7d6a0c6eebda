"""Salesforce to the inbox: the campaign catalog, the first picture of memberships, then changes on an interval.

- `sync_catalog` copies SFDC campaigns and their member statuses into the store (the mirror's catalog).
- The first poll of a store (no cursor yet) is a baseline: every current CampaignMember goes into the mirror
  without firing triggers, as Marketo does when it first syncs.
- Every poll after that reads CampaignMembers modified since the cursor (`queryAll`, so deletions too, with a few
  seconds of overlap) and puts one observation per record into the inbox, with an id made of the record id and
  its modification stamp: a record seen twice is a duplicate the inbox drops. The cursor moves in the same
  transaction as the inbox rows.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from simple_salesforce.format import format_soql

from engine.crm.salesforce import SalesforceAdapter, SalesforceUnavailable
from engine.model.events import Event
from engine.service import queue
from engine.service.metrics import ServiceMetrics
from engine.store.store import Store

log = logging.getLogger("smartcampaign.service")

CURSOR = "salesforce.campaign_members"
OVERLAP = timedelta(seconds=5)
MEMBER_FIELDS = "Id, CampaignId, LeadId, ContactId, Status, SystemModstamp, Lead.Email, Contact.Email"


def find_person(adapter: SalesforceAdapter, email: str) -> tuple[str, str] | None:
    """(id, "Lead" | "Contact") of the person with this email in Salesforce, or None."""
    for sobject in ("Lead", "Contact"):
        rows = adapter.query_all(format_soql(f"SELECT Id FROM {sobject} WHERE Email = {{e}} LIMIT 1", e=email))
        if rows:
            return str(rows[0]["Id"]), sobject
    return None


def sync_catalog(store: Store, adapter: SalesforceAdapter) -> int:
    """SFDC campaigns and member statuses into the store (the caller commits). Returns how many changed."""
    campaigns = adapter.query_all("SELECT Id, Name FROM Campaign")
    statuses: dict[str, list[dict[str, Any]]] = {}
    for row in adapter.query_all(
        "SELECT CampaignId, Label, SortOrder, IsDefault, HasResponded FROM CampaignMemberStatus "
        "ORDER BY CampaignId, SortOrder"
    ):
        statuses.setdefault(str(row["CampaignId"])[:15], []).append(row)
    changed = 0
    for campaign in campaigns:
        sfdc_id, name = str(campaign["Id"]), str(campaign["Name"])
        rows = statuses.get(sfdc_id[:15], [])
        labels = [str(r["Label"]) for r in rows] or ["Sent", "Responded"]
        default = next((str(r["Label"]) for r in rows if r.get("IsDefault")), labels[0])
        responded = [str(r["Label"]) for r in rows if r.get("HasResponded")]
        info = store.campaign_by_sfdc_id(sfdc_id)
        if info is None:
            if store.campaign_by_name(name) is not None:
                log.warning('SFDC campaign %s is named "%s" like another one: left out of the catalog', sfdc_id, name)
                continue
            cid = store.add_campaign(name, sfdc_id, labels, default)
            store.set_campaign_statuses(cid, labels, default, responded)
            changed += 1
        elif info.statuses != tuple(labels) or info.default_status != default or info.responded != set(responded):
            store.set_campaign_statuses(info.id, labels, default, responded)
            changed += 1
    return changed


def _email(row: dict[str, Any]) -> str | None:
    for relation in ("Lead", "Contact"):
        related = row.get(relation)
        if isinstance(related, dict) and related.get("Email"):
            return str(related["Email"])
    return None


def _stamp(value: str) -> datetime:
    return datetime.strptime(value[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def _soql_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class Poller:
    """Feeds the inbox from Salesforce every `interval` seconds (its own store connection)."""

    def __init__(
        self, url: str, adapter: SalesforceAdapter, metrics: ServiceMetrics | None = None, *, interval: float = 10.0
    ) -> None:
        self.url = url
        self.adapter = adapter
        self.metrics = metrics
        self.interval = interval
        self.store = Store.open(url)
        self.polls = 0
        self.last_poll: float | None = None

    def close(self) -> None:
        self.store.close()

    def baseline(self) -> int:
        """The current memberships into the mirror, without triggers. Returns how many."""
        store = self.store
        rows = self.adapter.query_all(f"SELECT {MEMBER_FIELDS} FROM CampaignMember")
        latest: datetime | None = None
        count = 0
        at = queue.now()
        for row in rows:
            email = _email(row)
            campaign = store.campaign_by_sfdc_id(str(row["CampaignId"]))
            stamp = _stamp(str(row["SystemModstamp"]))
            latest = stamp if latest is None or stamp > latest else latest
            if email is None or campaign is None:
                continue
            sfdc_id = str(row.get("LeadId") or row.get("ContactId"))
            person = store.person(email)
            kind = "Contact" if row.get("ContactId") else "Lead"
            if person is None:
                person = store.add_person(email, sfdc_id, kind)
            elif not person.sfdc_id:
                person = store.set_person_sfdc(person, sfdc_id, kind, "[not provided]", "[not provided]")
            store.set_membership(person.id, campaign.id, str(row["Status"]), at)
            count += 1
        start = latest if latest is not None else datetime(2000, 1, 1, tzinfo=UTC)
        queue.set_cursor(store, CURSOR, _soql_time(start))
        return count

    def poll_once(self) -> int:
        """One poll; returns how many new events went into the inbox."""
        store = self.store
        try:
            if self.polls % 10 == 0:
                sync_catalog(store, self.adapter)
            cursor = queue.get_cursor(store, CURSOR)
            if cursor is None:
                count = self.baseline()
                store.commit()
                log.info("Salesforce baseline: %d campaign members mirrored", count)
                self.polls += 1
                return 0
            since = _stamp(cursor.replace("Z", "").ljust(23, "0")[:23]) - OVERLAP
            soql = (
                f"SELECT {MEMBER_FIELDS}, IsDeleted FROM CampaignMember WHERE SystemModstamp >= {_soql_time(since)} "
                "ORDER BY SystemModstamp, Id"
            )
            answer = self.adapter.call("queryAll", lambda sf: sf.query_all(soql, include_deleted=True))
            rows: list[dict[str, Any]] = list(answer.get("records", []))
            events: list[Event] = []
            ids: list[str | None] = []
            latest = _stamp(cursor.replace("Z", "").ljust(23, "0")[:23])
            unknown_campaign = False
            for row in rows:
                stamp_text = str(row["SystemModstamp"])
                stamp = _stamp(stamp_text)
                latest = max(latest, stamp)
                email = _email(row)
                if email is None:
                    continue
                if store.campaign_by_sfdc_id(str(row["CampaignId"])) is None:
                    unknown_campaign = True
                event_id = f"sf:{row['Id']}:{stamp_text[:23]}"
                if row.get("IsDeleted"):
                    event = Event(
                        type="removed_from_sfdc_campaign", person=email, campaign_id=str(row["CampaignId"]),
                        id=event_id + ":deleted",
                    )  # fmt: skip
                else:
                    event = Event(
                        type="status_changed_in_sfdc_campaign", person=email, campaign_id=str(row["CampaignId"]),
                        status=str(row["Status"]), id=f"{event_id}:{row['Status']}"[:255],
                    )  # fmt: skip
                events.append(event)
                ids.append(str(row.get("LeadId") or row.get("ContactId") or "") or None)
            if unknown_campaign:
                sync_catalog(store, self.adapter)
            intake = queue.put_events(store.conn, events, source="poller", person_sfdc_ids=ids)
            queue.set_cursor(store, CURSOR, _soql_time(latest))
            store.commit()
        except Exception:
            store.rollback()
            raise
        self.polls += 1
        self.last_poll = queue.now()
        if self.metrics is not None and intake.accepted:
            self.metrics.events_received.labels(source="poller").inc(intake.accepted)
        if intake.accepted:
            log.info("poll: %d new observations from Salesforce", intake.accepted)
        return intake.accepted

    def run(self, stop: threading.Event) -> None:
        log.info("Salesforce poller started (every %g s)", self.interval)
        while not stop.is_set():
            try:
                self.poll_once()
            except SalesforceUnavailable as error:
                log.warning("poll: Salesforce unavailable: %s", error)
            except Exception as error:
                log.error("poll failed: %s: %s", type(error).__name__, error)
            stop.wait(self.interval)
        self.close()
