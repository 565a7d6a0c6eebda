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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.crm.local import LocalOrg
from engine.crm.protocol import CrmAdapter
from engine.model.loading import InputError
from engine.model.settings import EngineSettings, SalesforceSettings
from engine.runtime.interpreter import Interpreter, keep_out_of_gc
from engine.runtime.replay import ReplayInputEvent, process_event, validate_events
from engine.service import queue
from engine.service.delivery import OutboxCrm, OutboxSender
from engine.service.metrics import MetricsRecorder, ServiceMetrics
from engine.service.rules import RuleBook
from engine.store.store import Continuation, Store

log = logging.getLogger("smartcampaign.service")

LINK_LOCK = 0x5C_0001  # advisory lock: one worker at a time links programs to campaigns


class ServiceStore(Store):
    """The store as a worker uses it: continuations are run only for the persons this worker holds."""

    due_persons: frozenset[int] | None = None
    due_candidates: set[int] | None = None  # persons with a continuation this transaction may run (None: unknown)

    def next_sfdc_id(self, prefix: str, taken: Any = None) -> str:
        """On PostgreSQL, from a sequence: workers side by side never hand out the same id, and never wait."""
        if self.dialect != "postgresql":
            return super().next_sfdc_id(prefix, taken)
        while True:
            number = int(self.fetchone("SELECT nextval('service_sfdc_ids')")[0])
            candidate = f"{prefix}{number:012d}AAA"
            if taken is None or not taken(candidate):
                return candidate

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
    batch_size: int = 100
    idle_sleep: float = 0.05  # seconds between polls of an empty inbox
    outbox_batch: int = 200
    engine: EngineSettings = field(default_factory=EngineSettings)


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
        self.sender: OutboxSender | None = None
        self.crm: CrmAdapter
        if crm == "salesforce":
            from engine.crm.salesforce import SalesforceAdapter

            if salesforce is None:
                raise ValueError("--crm salesforce needs Salesforce settings")
            self.adapter = SalesforceAdapter(salesforce)
            self.crm = OutboxCrm(self.store)
            self.sender = OutboxSender(self.store, self.adapter, self.metrics)
        else:
            self.crm = LocalOrg(self.store)
        self.interp: Interpreter | None = None
        self._rules_version = -1
        self._sf_people: dict[str, tuple[str, str] | None] = {}
        self._outbox_retry_at = 0.0
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
                program_sync=engine.campaign_sync,
                sync_disabled=frozenset(engine.sync_disabled_programs),
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
        """Works until `stop` is set; the batch in flight is finished (committed) before it returns."""
        log.info("worker %s started (%s CRM)", self.name, self.crm_mode)
        errors = 0
        while not stop.is_set():
            try:
                done = self.step()
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
        log.info("worker %s stopped after %d events", self.name, self.processed)

    def step(self) -> int:
        """One round: a batch of events, the waits that are due, a batch of the outbox. Returns the work done."""
        with self.busy:
            done = self.process_batch()
            done += self.run_due()
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
            if self.sender is not None:
                self.sender.store = self.store
            self.interp = None
        self.recorder.rolled_back()

    def close(self) -> None:
        try:
            self.store.close()
        except Exception as error:
            log.warning("worker %s: closing the store: %s", self.name, error)

    # ------------------------------------------------------------------------------ events
    def process_batch(self) -> int:
        store = self.store
        interp = self._interpreter()
        if self.crm_mode == "salesforce":
            store.clear_caches()  # the poller may have changed the campaign catalog
        rows = queue.claim_inbox(store, self.options.batch_size)
        if not rows:
            store.commit()
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

    def _known_in_salesforce(self, email: str, sfdc_id: str | None) -> None:
        """A person an event from Salesforce names is in Salesforce: the mirror gets the real id, not a local one."""
        store = self.store
        person = store.person(email)
        if person is not None and person.sfdc_id:
            return
        found: tuple[str, str] | None = None
        if sfdc_id:
            found = (sfdc_id, "Contact" if sfdc_id.startswith("003") else "Lead")
        else:
            found = self._lookup(email)
        if found is None:
            log.warning("%s is not in Salesforce (no Lead or Contact with this email)", email)
            return
        if person is None:
            store.add_person(email, found[0], found[1])
        else:
            store.set_person_sfdc(person, found[0], found[1], "[not provided]", "[not provided]")

    def _lookup(self, email: str) -> tuple[str, str] | None:
        key = email.lower()
        if key in self._sf_people:
            return self._sf_people[key]
        from engine.service.poller import find_person

        found = find_person(self.adapter, email)
        if len(self._sf_people) > 50_000:
            self._sf_people.clear()
        self._sf_people[key] = found
        return found

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
        if self.sender is None or time.monotonic() < self._outbox_retry_at:
            return 0
        from engine.crm.salesforce import SalesforceUnavailable

        try:
            return self.sender.send_once(self.options.outbox_batch)
        except SalesforceUnavailable as error:
            log.warning("Salesforce unavailable, the outbox waits: %s", error)
            self._outbox_retry_at = time.monotonic() + 5.0
            return 0

    def salesforce_usage(self) -> tuple[int, int] | None:
        if self.adapter is None:
            return None
        usage = self.adapter.usage
        return (int(usage.used), int(usage.limit)) if usage.limit else None
