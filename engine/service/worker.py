"""The worker loop: inbox -> interpreter -> (outbox -> CRM), each step one transaction.

A batch of inbox rows is claimed (on PostgreSQL: the oldest rows of persons no other worker holds), every event
is run through `process_event`, the rows are marked processed and everything commits at once: the local org's
writes (or the outbox rows, for Salesforce), the mirror, runs, waits and activity. A worker killed at any point
leaves either all of a batch or none of it. A failing event is retried alone; after `MAX_ATTEMPTS` it is
dead-lettered (kept, with its error) so that the person's later events go on. Waits are continuations in the
store, run when due by the wall clock, each under its person's lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.crm.local import LocalOrg
from engine.model.loading import InputError
from engine.model.settings import EngineSettings, SalesforceSettings
from engine.replay.run import ReplayInputEvent, process_event, validate_events
from engine.runtime.adapter import CrmAdapter
from engine.runtime.interpreter import Interpreter, keep_out_of_gc
from engine.service import queue
from engine.service.delivery import OutboxCrm, calls_since, record_api_calls
from engine.service.flusher import FlushOptions, OutboxFlusher
from engine.service.metrics import MetricsRecorder, ServiceMetrics
from engine.service.poller import MIRROR_VERSION
from engine.service.rules import RuleBook
from engine.service.schedule import Scheduler
from engine.service.schedule import iso_minute as schedule_iso
from engine.store.store import Continuation, Store
from engine.sync.programs import program_sync

log = logging.getLogger("smartcampaign.service")

LINK_LOCK = 0x5C_0001  # advisory lock: one worker at a time links programs to campaigns
PEOPLE_CACHE = 50_000  # Salesforce lookups remembered (email -> id, or not found)
MISS_TTL = 300.0  # seconds a "not in Salesforce" answer is trusted
LOOKUP_CHUNK = 200  # emails in one `Email IN (...)` query


class ServiceStore(Store):
    """The store as a worker uses it: continuations are run only for the persons this worker holds; outbox rows
    are collected and written in one statement when the transaction commits; on PostgreSQL the hot writes are
    batched per commit and the campaign catalog is kept across commits (`Store.batch_writes`, `keep_catalog`)."""

    batch_writes = True
    keep_catalog = True
    due_persons: frozenset[int] | None = None
    due_candidates: set[int] | None = None  # persons with a continuation this transaction may run (None: unknown)
    outbox_buffer: list[tuple[Any, ...]]

    def _flush(self) -> None:
        super()._flush()
        buffer = self.__dict__.setdefault("outbox_buffer", [])
        if buffer:
            queue.flush_outbox(self, buffer)
            buffer.clear()

    def rollback(self) -> None:
        self.__dict__.setdefault("outbox_buffer", []).clear()
        super().rollback()

    def next_sfdc_id(self, prefix: str, taken: Any = None) -> str:
        """On PostgreSQL, from a sequence (in blocks): workers side by side never hand out the same id, never wait."""
        if self.dialect != "postgresql":
            return super().next_sfdc_id(prefix, taken)
        return self.sfdc_id_from_sequence("service_sfdc_ids", prefix, taken)

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
        if self.due_candidates is not None:
            self.due_candidates.add(person_id)
        return super().add_continuation(run_id, campaign, person_id, due_at, path, depth, chain)

    def find_waiting(self, partitions: list[str], upto: float) -> None:
        """Which of these persons have a continuation due by `upto` (one query per batch, not one per event)."""
        marks = ", ".join("?" for _ in partitions)
        rows = self.fetchall(
            "SELECT DISTINCT c.person_id FROM continuations c JOIN persons p ON p.id = c.person_id "
            f"WHERE c.due_at <= ? AND p.email IN ({marks})",
            (upto, *partitions),
        )
        self.due_candidates = {int(row[0]) for row in rows}

    def next_due(self, upto: float | None) -> Continuation | None:
        scope = self.due_persons
        if scope is None:
            return super().next_due(upto)
        if not scope:
            return None
        marks = ", ".join("?" for _ in scope)
        bound = upto if upto is not None else float("inf")
        row = self.fetchone(
            "SELECT id, run_id, campaign, person_id, due_at, path, depth, chain FROM continuations "
            f"WHERE due_at <= ? AND person_id IN ({marks}) ORDER BY due_at, id LIMIT 1",
            (bound if bound != float("inf") else 1e18, *sorted(scope)),
        )
        if row is None:
            return None
        return Continuation(
            row[0], row[1], row[2], row[3], float(row[4]), tuple(json.loads(row[5])), row[6], tuple(json.loads(row[7]))
        )


TRANSIENT_ATTEMPTS = 20  # failures that come from running beside other workers are retried longer


def transient(error: BaseException) -> bool:
    """A failure that trying again may not meet: a race with another worker, a deadlock, a lost connection."""
    state = str(getattr(error, "sqlstate", "") or "")
    if state.startswith(("23", "40", "08", "57P")) or state == "55P03":
        return True
    return type(error).__name__ == "OperationalError" and "locked" in str(error)


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerOptions:
    batch_size: int = 200
    idle_sleep: float = 0.05  # seconds between polls of an empty inbox
    lookup_linger: float = 0.1  # seconds a Salesforce lookup of a few people may wait for more (streaming)
    flush: FlushOptions = field(default_factory=FlushOptions)
    engine: EngineSettings = field(default_factory=EngineSettings)
    schedule: bool = True  # run the batch scheduler beside the loop (`serve` runs one of its own instead)


class Worker:
    """One worker: its own store connection and interpreter. `run(stop)` loops; `step()` does one round."""

    def __init__(
        self,
        url: str,
        rules: RuleBook,
        *,
        crm: str = "local",
        salesforce: SalesforceSettings | None = None,
        metrics: ServiceMetrics | None = None,
        options: WorkerOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.rules = rules
        self.crm_mode = crm
        self.salesforce = salesforce
        self.metrics = metrics or ServiceMetrics()
        self.options = options or WorkerOptions()
        self.name = name or default_worker_name()
        self.store: ServiceStore = ServiceStore.open(url)  # type: ignore[assignment]
        self.recorder = MetricsRecorder(self.metrics)
        self.adapter: Any = None
        self.flusher: OutboxFlusher | None = None
        self.crm: CrmAdapter
        if crm == "salesforce":
            from engine.crm.salesforce import SalesforceAdapter

            if salesforce is None:
                raise ValueError("--crm salesforce needs Salesforce settings")
            self.store.outbox_buffer = []
            self.adapter = SalesforceAdapter(salesforce)
            self.crm = OutboxCrm(self.store)
            self.flusher = OutboxFlusher(url, salesforce, self.metrics, options=self.options.flush)
        else:
            self.crm = LocalOrg(self.store)
        self.interp: Interpreter | None = None
        self._rules_version = -1
        self._mirror_version: str | None = None
        self._lookup_retry_at = 0.0
        self._sf_people: OrderedDict[str, tuple[tuple[str, str] | None, float]] = OrderedDict()
        self.processed = 0
        self.busy = threading.Lock()  # held while a batch is in flight

    # ------------------------------------------------------------------------------ interpreter
    def _interpreter(self) -> Interpreter:
        rule_set, version = self.rules.current()
        if self.interp is None or version != self._rules_version:
            engine = self.options.engine
            keep_out_of_gc()  # a (new) rule set for the long run
            interp = Interpreter(
                rule_set,
                self.store,
                self.crm,
                recorder=self.recorder,
                max_depth=engine.max_depth,
                program_sync=program_sync(
                    enabled=engine.campaign_sync, disabled=frozenset(engine.sync_disabled_programs)
                ),
            )
            self._link(interp)
            self.interp = interp
            self._rules_version = version
        return self.interp

    def _link(self, interp: Interpreter) -> None:
        """The first link of synced programs, by one worker at a time."""
        store = self.store
        try:
            if store.dialect == "postgresql":
                store.fetchone("SELECT pg_advisory_xact_lock(?)", (LINK_LOCK,))
                store.clear_caches()  # the link reads and writes persons this worker does not hold
            interp.set_clock(queue.now())
            if isinstance(self.crm, OutboxCrm):
                self.crm.begin(f"link:{uuid.uuid4().hex[:12]}")
            interp.programs.link_all()
            store.commit()
            self.recorder.committed()
        except Exception:
            store.rollback()
            self.recorder.rolled_back()
            raise

    # ------------------------------------------------------------------------------ loop
    def run(self, stop: threading.Event, *, on_idle: Callable[[], None] | None = None) -> None:
        """Works until `stop` is set; the batch in flight is finished (committed) before it returns. With
        Salesforce, the outbox is flushed by a loop of its own beside this one (`engine.service.flusher`)."""
        log.info("worker %s started (%s CRM)", self.name, self.crm_mode)
        flushing: threading.Thread | None = None
        if self.flusher is not None:
            flushing = threading.Thread(target=self.flusher.run, args=(stop,), name=f"{self.name}-outbox", daemon=True)
            flushing.start()
        scheduling: threading.Thread | None = None
        if self.options.schedule:
            scheduler = Scheduler(self.url, self.rules, self.metrics)
            scheduling = threading.Thread(target=scheduler.run, args=(stop,), name=f"{self.name}-schedule", daemon=True)
            scheduling.start()
        errors = 0
        while not stop.is_set():
            try:
                done = self.step(flush=False, gather=True)
                errors = 0
            except Exception as error:
                errors += 1
                log.error("worker %s: %s: %s", self.name, type(error).__name__, error)
                try:
                    self._safe_rollback()
                except Exception as reopen:  # the store is down: try again after a pause
                    log.error("worker %s: the store is not reachable: %s", self.name, reopen)
                stop.wait(min(0.1 * 2**errors, 5.0))
                continue
            if not done:
                if on_idle is not None:
                    on_idle()
                stop.wait(self.options.idle_sleep)
        if flushing is not None:
            flushing.join()
        if scheduling is not None:
            scheduling.join()
        log.info("worker %s stopped after %d events", self.name, self.processed)

    def step(self, *, flush: bool = True, gather: bool = False) -> int:
        """One round: a batch of events, the waits that are due and (`flush`) one flush of the outbox. `gather`:
        a lookup of a few people may wait for more while events stream in (the loop; see `_gather`)."""
        with self.busy:
            done = self.process_batch(gather=gather)
            done += self.run_due()
        if flush:
            done += self.send_outbox()
        return done

    def _safe_rollback(self) -> None:
        if self.interp is not None:
            self.interp.queue.clear()
        try:
            self.store.rollback()
        except Exception as error:  # the connection itself may be gone: open a new one
            log.warning("worker %s: reconnecting to the store: %s", self.name, error)
            with contextlib.suppress(Exception):
                self.store.conn.close()
            self.store = ServiceStore.open(self.url)  # type: ignore[assignment]
            if isinstance(self.crm, (OutboxCrm, LocalOrg)):
                self.crm.store = self.store
            if isinstance(self.store, ServiceStore) and self.crm_mode == "salesforce":
                self.store.outbox_buffer = []
            self.interp = None
        self.recorder.rolled_back()

    def close(self) -> None:
        if self.flusher is not None:
            self.flusher.close()
        try:
            self.store.close()
        except Exception as error:
            log.warning("worker %s: closing the store: %s", self.name, error)

    # ------------------------------------------------------------------------------ events
    def process_batch(self, *, gather: bool = False) -> int:
        store = self.store
        interp = self._interpreter()
        if self.crm_mode == "salesforce":
            self._follow_poller()
        if time.monotonic() < self._lookup_retry_at:
            return 0
        rows = queue.claim_inbox(store, self.options.batch_size, max_partitions=self.options.batch_size)
        if not rows:
            store.commit()
            return 0
        if self.crm_mode == "salesforce":
            from engine.crm.salesforce import SalesforceUnavailable

            wanted = self._unknown_people(rows)
            if gather and self._gather(rows, wanted):
                store.rollback()  # the claim is let go: these events wait a moment for a fuller lookup
                return 0
            try:
                self._look_up(wanted)
            except SalesforceUnavailable as error:
                # an event's person must be known as Salesforce knows it before anything is decided for them
                log.warning("worker %s: Salesforce unavailable, %d events wait: %s", self.name, len(rows), error)
                store.commit()  # the API calls counted so far
                self._lookup_retry_at = time.monotonic() + 5.0
                return 0
        try:
            latest = max(row.event.at.timestamp() if row.event.at else row.received_at for row in rows)
            store.find_waiting(sorted({row.partition for row in rows}), latest)
            for row in rows:
                self._apply(interp, row)
            at = queue.now()
            queue.mark_processed(store, [row.id for row in rows], self.name, at)
            store.commit()
        except Exception as error:
            log.info("worker %s: batch of %d failed (%s): retrying one by one", self.name, len(rows), error)
            store.due_candidates = None
            self._safe_rollback()
            return self._one_by_one(rows)
        store.due_candidates = None
        self.recorder.committed()
        self._count(rows, "done", at)
        return len(rows)

    def _count(self, rows: list[queue.InboxRow], outcome: str, at: float) -> None:
        self.processed += len(rows)
        self.metrics.events_processed.labels(outcome=outcome).inc(len(rows))
        for row in rows:
            self.metrics.latency.observe(max(at - row.received_at, 0.0))

    def _one_by_one(self, rows: list[queue.InboxRow]) -> int:
        """After a failed batch: each row in its own transaction; a person whose row fails waits (order)."""
        blocked: set[str] = set()
        done = 0
        for row in rows:
            if row.partition in blocked:
                continue
            store = self.store
            interp = self._interpreter()
            try:
                if not queue.lock_partitions(store, [row.partition]):
                    blocked.add(row.partition)
                    store.commit()
                    continue
                state = store.fetchone("SELECT processed_at FROM service_inbox WHERE id = ?", (row.id,))
                if state is None or state[0] is not None:
                    store.commit()
                    continue
                self._apply(interp, row)
                at = queue.now()
                queue.mark_processed(store, [row.id], self.name, at)
                store.commit()
                self.recorder.committed()
                self._count([row], "done", at)
                done += 1
            except Exception as error:
                self._safe_rollback()
                dead = self._fail(
                    row,
                    f"{type(error).__name__}: {error}",
                    permanent=isinstance(error, InputError),
                    retry=transient(error),
                )
                if not dead:
                    blocked.add(row.partition)
                done += 1
        return done

    def _fail(self, row: queue.InboxRow, message: str, *, permanent: bool, retry: bool = False) -> bool:
        store = self.store
        if permanent:
            row.attempts = queue.MAX_ATTEMPTS
        try:
            queue.lock_partitions(store, [row.partition])
            limit = TRANSIENT_ATTEMPTS if retry else queue.MAX_ATTEMPTS
            dead = queue.mark_failed(store, row, self.name, message, queue.now(), limit=limit)
            store.commit()
        except Exception as error:
            log.error("worker %s: cannot record the failure of inbox row %d: %s", self.name, row.id, error)
            self._safe_rollback()
            return False
        if dead:
            log.error("inbox row %d (%s) dead-lettered: %s", row.id, row.event.type, message)
            self.metrics.events_processed.labels(outcome="dead_letter").inc()
            self.processed += 1
        else:
            log.warning("inbox row %d failed (attempt %d): %s", row.id, row.attempts + 1, message)
        return dead

    def _apply(self, interp: Interpreter, row: queue.InboxRow) -> None:
        store = self.store
        event = row.event
        if isinstance(event, queue.BatchMember):
            self._apply_batch_member(interp, row, event)
            return
        item = ReplayInputEvent(event, row.id, "inbox")
        validate_events([item], store, interp.rules)
        at = event.at.timestamp() if event.at is not None else row.received_at
        interp.set_clock(at)
        if self.crm_mode == "salesforce" and event.type != "program_status_changed":
            self._known_in_salesforce(event.person, row.person_sfdc_id)
        person = store.person(event.person)
        maybe_waiting = person is not None and (store.due_candidates is None or person.id in store.due_candidates)
        store.due_persons = frozenset({person.id}) if person is not None and maybe_waiting else frozenset()
        if isinstance(self.crm, OutboxCrm):
            self.crm.begin(f"in:{row.id}")
        try:
            process_event(interp, item, lambda message: log.warning("%s", message))
        finally:
            store.due_persons = None

    def _apply_batch_member(self, interp: Interpreter, row: queue.InboxRow, item: queue.BatchMember) -> None:
        """One person's run of a batch campaign's scheduled run (queued by `engine.service.schedule`): their due
        waits first, as for an event, then the run (qualification checked again; the filters were the
        selection's). Exactly once by the item's id."""
        store = self.store
        if store.seen_event(item.id):
            return
        store.mark_event(item.id)
        campaign = interp.campaigns.get(item.campaign)
        slot = item.slot.timestamp()
        if campaign is None or not campaign.is_batch:
            log.warning('batch run of "%s" for %s: the campaign is no longer a batch campaign of the rules; %s '
                        "not run", item.campaign, schedule_iso(slot), item.person)  # fmt: skip
            return
        person = store.person(item.person)
        if person is None:
            log.warning('batch run of "%s" for %s: %s is no longer in the mirror; not run', item.campaign,
                        schedule_iso(slot), item.person)  # fmt: skip
            return
        at = max(row.received_at, interp.clock)
        maybe_waiting = store.due_candidates is None or person.id in store.due_candidates
        store.due_persons = frozenset({person.id}) if maybe_waiting else frozenset()
        if isinstance(self.crm, OutboxCrm):
            self.crm.begin(f"in:{row.id}")
        try:
            interp.run_due(at)
            interp.set_clock(at)
            interp.run_batch_member(campaign, person, slot)
            interp.drain()
        finally:
            store.due_persons = None

    def _follow_poller(self) -> None:
        """The poller writes the mirror itself (campaign catalog, statuses, persons it links, a full resync) and
        bumps `mirror.version` when it does: then, and only then, nothing cached here is trusted."""
        version = queue.get_cursor(self.store, MIRROR_VERSION)
        if version != self._mirror_version:
            if self._mirror_version is not None or version is not None:
                self.store.clear_caches()
                self._sf_people.clear()
            self._mirror_version = version

    def _gather(self, rows: list[queue.InboxRow], wanted: list[str]) -> bool:
        """Whether to wait a moment before looking these people up: while events stream in, a lookup of a few
        people is put off (at most `lookup_linger` seconds after the oldest event came) so that one query serves
        up to 200 of them. A full batch, a full chunk or a stream that has stopped is looked up at once."""
        linger = self.options.lookup_linger
        if not wanted or linger <= 0 or len(wanted) >= LOOKUP_CHUNK or len(rows) >= self.options.batch_size:
            return False
        now = time.time()
        streaming = now - max(row.received_at for row in rows) < min(linger / 2, 0.05)
        return streaming and now - min(row.received_at for row in rows) < linger

    def _unknown_people(self, rows: list[queue.InboxRow]) -> list[str]:
        """The people of a batch whose Salesforce id is not known yet (`_look_up` asks for them all at once):
        ids the poller read come with the rows; the others are looked up in chunked queries (`Email IN (...)`,
        Leads then Contacts), never one per event. The lookup raises SalesforceUnavailable when Salesforce cannot
        be asked: the events wait (nothing is decided for a person Salesforce may know under an id the engine
        does not)."""
        store = self.store
        wanted: list[str] = []
        now = time.monotonic()
        for row in rows:
            if row.event.type in ("program_status_changed", "batch_member"):
                continue  # a batch member was selected from the mirror: the mirror knows them
            key = row.event.person.strip().lower()
            if row.person_sfdc_id:
                sobject = "Contact" if row.person_sfdc_id.startswith("003") else "Lead"
                self._remember(key, (row.person_sfdc_id, sobject), now)
                continue
            person = store.person(key)
            if person is not None and person.sfdc_id and not person.sfdc_id.startswith("~"):
                continue
            cached = self._sf_people.get(key)
            if cached is not None and (cached[0] is not None or now - cached[1] < MISS_TTL):
                continue
            wanted.append(key)
        return list(dict.fromkeys(wanted))

    def _look_up(self, wanted: list[str]) -> None:
        """Lower-cased emails looked up in Salesforce in chunks; the answers (found or not) remembered."""
        if not wanted:
            return
        store = self.store
        now = time.monotonic()
        before = self.adapter.calls_by_endpoint()
        try:
            found = self.adapter.find_people(wanted)
        finally:
            after = self.adapter.calls_by_endpoint()
            record_api_calls(store, self.adapter, calls_since(before, after), self.metrics)
        for key in wanted:
            self._remember(key, found.get(key), now)

    def _remember(self, key: str, found: tuple[str, str] | None, at: float) -> None:
        people = self._sf_people
        people[key] = (found, at)
        people.move_to_end(key)
        while len(people) > PEOPLE_CACHE:
            people.popitem(last=False)

    def _known_in_salesforce(self, email: str, sfdc_id: str | None) -> None:
        """A person an event from Salesforce names is in Salesforce: the mirror gets the real id, not a local one."""
        store = self.store
        person = store.person(email)
        if person is not None and person.sfdc_id and not person.sfdc_id.startswith("~"):
            return
        found: tuple[str, str] | None = None
        cached: tuple[tuple[str, str] | None, float] | None = None
        if sfdc_id:
            found = (sfdc_id, "Contact" if sfdc_id.startswith("003") else "Lead")
        else:
            cached = self._sf_people.get(email.strip().lower())
            found = cached[0] if cached is not None else None
        if found is None and cached is None:  # not looked up with its batch (a retry alone): now
            self._look_up([email.strip().lower()])
            cached = self._sf_people.get(email.strip().lower())
            found = cached[0] if cached is not None else None
        if found is None:
            log.info("%s is not in Salesforce (no Lead or Contact with this email)", email)
            return
        if person is None:
            store.add_person(email, found[0], found[1])
        else:
            store.set_person_sfdc(person, found[0], found[1], "[not provided]", "[not provided]")

    # ------------------------------------------------------------------------------ waits
    def run_due(self, limit: int = 200) -> int:
        store = self.store
        interp = self._interpreter()
        t = queue.now()
        rows = store.fetchall(
            "SELECT c.person_id, p.email FROM continuations c JOIN persons p ON p.id = c.person_id "
            "WHERE c.due_at <= ? ORDER BY c.due_at, c.id LIMIT ?",
            (t, limit),
        )
        if not rows:
            return 0
        owned = queue.lock_partitions(store, [str(email) for _, email in rows])
        persons = frozenset(int(pid) for pid, email in rows if str(email) in owned)
        if not persons:
            store.commit()
            return 0
        try:
            store.due_persons = persons
            if isinstance(self.crm, OutboxCrm):
                self.crm.begin(f"due:{uuid.uuid4().hex[:16]}")
            interp.set_clock(t)
            count = interp.run_due(t)
            store.commit()
        except Exception:
            self._safe_rollback()
            raise
        finally:
            store.due_persons = None
        self.recorder.committed()
        return count

    # ------------------------------------------------------------------------------ outbox
    def send_outbox(self) -> int:
        """One flush of the outbox now (tests and `step`); in `run` the flusher's own loop does this."""
        if self.flusher is None:
            return 0
        from engine.crm.salesforce import SalesforceUnavailable

        try:
            return self.flusher.flush_once(force=True)
        except SalesforceUnavailable as error:
            log.warning("Salesforce unavailable, the outbox waits: %s", error)
            return 0

    def salesforce_usage(self) -> tuple[int, int] | None:
        adapters = [a for a in (self.flusher.adapter if self.flusher else None, self.adapter) if a is not None]
        for adapter in adapters:
            if adapter.usage.limit:
                return int(adapter.usage.used), int(adapter.usage.limit)
        return None
