"""Salesforce to the inbox: the service's side of the change poller (engine/sync/poller.py).

The service runs the one change poller, `engine.sync.poller.Poller`, on its own store connection, with a sink:

- The first cycle of a store (no cursor yet) is the initial load: the campaign catalog and every current
  CampaignMember go into the mirror without firing triggers, as Marketo does when it first syncs.
- Every cycle after that hands each change (member added or changed, member deleted) to the sink, which makes
  it an inbox event with the observation's stable id (`sf:<member id>:<SystemModstamp>`, `...:deleted:<date>`):
  a change seen twice is a duplicate the inbox drops. The events go into the inbox right before the poller
  commits the cycle, in the transaction that also records which members were observed; the worker applies
  them (the mirror's memberships are its job).
- `sync_catalog` copies the campaigns and their member statuses into the mirror on their own (at start-up).
"""

from __future__ import annotations

import logging
import threading

from pydantic import ValidationError
from simple_salesforce.format import format_soql

from engine.crm.salesforce import SalesforceAdapter, SalesforceUnavailable
from engine.model.events import Event, EventType
from engine.service import queue
from engine.service.delivery import calls_since, record_api_calls
from engine.service.metrics import ServiceMetrics
from engine.store.store import Store
from engine.sync.poller import Observation, PollReport
from engine.sync.poller import Poller as ChangePoller

log = logging.getLogger("smartcampaign.service")

CURSOR = "salesforce.campaign_members"  # service_cursors: the member cursor after the last poll (for monitoring)

EVENT_TYPES: dict[str, EventType] = {
    "added": "added_to_sfdc_campaign",
    "status_changed": "status_changed_in_sfdc_campaign",
    "removed": "removed_from_sfdc_campaign",
}


def find_person(adapter: SalesforceAdapter, email: str) -> tuple[str, str] | None:
    """(id, "Lead" | "Contact") of the person with this email in Salesforce, or None."""
    for sobject in ("Lead", "Contact"):
        rows = adapter.query_all(format_soql(f"SELECT Id FROM {sobject} WHERE Email = {{e}} LIMIT 1", e=email))
        if rows:
            return str(rows[0]["Id"]), sobject
    return None


MIRROR_VERSION = "mirror.version"  # service_cursors: bumped whenever the poller writes the mirror itself


def bump_mirror_version(store: Store) -> None:
    """Tells the workers that the mirror changed under them (catalog, statuses, persons, a resync): they drop
    what they cached. Events the poller hands to the inbox need no bump: the workers apply those themselves."""
    queue.set_cursor(store, MIRROR_VERSION, f"{queue.now():.6f}")


def wrote_mirror(report: PollReport) -> bool:
    return bool(
        report.resync or report.campaigns_added or report.campaigns_refreshed or report.statuses_refreshed
        or report.persons_created or report.persons_linked
    )  # fmt: skip


def sync_catalog(store: Store, adapter: SalesforceAdapter) -> int:
    """SFDC campaigns and member statuses into the store (the caller commits). Returns how many changed."""
    report = ChangePoller(adapter, store).refresh_catalog()
    changed = report.campaigns_added + report.campaigns_refreshed + report.statuses_refreshed
    if changed:
        bump_mirror_version(store)
    return changed


def to_event(observation: Observation) -> Event:
    """The inbox event of an observation (the campaign named by its Salesforce id: names can change)."""
    return Event(
        type=EVENT_TYPES[observation.kind],
        person=observation.email,
        campaign_id=observation.campaign_sfdc_id,
        status=observation.status,
        at=observation.at,
        id=f"sf:{observation.id}"[:255],
    )


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
        self.changes = ChangePoller(adapter, self.store, sink=self._collect, before_commit=self._deliver)
        self.polls = 0
        self.last_poll: float | None = None
        self.last_report: PollReport | None = None
        self._events: list[Event] = []
        self._sfdc_ids: list[str | None] = []
        self._intake: queue.Intake | None = None

    def close(self) -> None:
        self.store.close()

    def _collect(self, observation: Observation) -> None:
        try:
            event = to_event(observation)
        except ValidationError as error:  # an address the inbox cannot take: reported, not retried forever
            log.warning("poll: %s in %s left out: %s", observation.email, observation.campaign, error)
            return
        self._events.append(event)
        self._sfdc_ids.append(observation.person_sfdc_id)

    def _deliver(self) -> None:
        """Right before the change poller commits: the cycle's events into the inbox, in its transaction."""
        self._intake = queue.put_events(self.store.conn, self._events, source="poller", person_sfdc_ids=self._sfdc_ids)

    def poll_once(self) -> int:
        """One poll; returns how many new events went into the inbox (none on the initial load)."""
        store = self.store
        self._events, self._sfdc_ids, self._intake = [], [], None
        try:
            store.clear_caches()  # the workers change the mirror: nothing cached from the last cycle is trusted
            before = self.adapter.calls_by_endpoint()
            report = self.changes.poll_once()
            queue.set_cursor(store, CURSOR, report.cursor_after or "")
            if wrote_mirror(report):
                bump_mirror_version(store)
            after = self.adapter.calls_by_endpoint()
            record_api_calls(store, self.adapter, calls_since(before, after), self.metrics)
            store.commit()
        except Exception:
            store.rollback()
            raise
        finally:
            self._events, self._sfdc_ids = [], []
        accepted = self._intake.accepted if self._intake is not None else 0
        self.polls += 1
        self.last_poll = queue.now()
        self.last_report = report
        if report.resync:
            log.info("Salesforce %s: %d campaign members read (%s)",
                     "initial load" if report.cursor_before is None else "full resync",
                     report.members_seen, report.resync_reason)  # fmt: skip
        if report.skipped:
            log.warning("poll: %d member change(s) not observed (%s)", report.skipped, "; ".join(report.problems[:3]))
        if self.metrics is not None and accepted:
            self.metrics.events_received.labels(source="poller").inc(accepted)
        if accepted:
            log.info("poll: %d new observations from Salesforce", accepted)
        return accepted

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
