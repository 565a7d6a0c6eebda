"""The outbox flush as its own loop: pending CRM operations go to Salesforce in large batches, side by side with
intake and the interpreter, never in their way.

A flush claims up to `batch` rows (1,000: five sObject Collections of 200, sent with up to `concurrency`
requests in flight) and sends them through one `SalesforceAdapter.execute`. A flush starts when the outbox holds
a full collection (`full`, 200 rows: waiting longer would save no call; the flush takes everything pending, up to
`batch`), when the inbox is empty and quiet (the interpreter has caught up and no event came in the last `quiet`
seconds: waiting would only add latency), or when the oldest row has waited `max_linger` seconds; while events
are still streaming in, it waits for more, which is what keeps the API bill small. Member statuses are read at
most every `status_ttl` seconds (settings), and again at once when the poller has refreshed the catalog.

Failures: each call is retried by the adapter (backoff on 5xx, 429, timeouts, row locks). If Salesforce stays
unavailable, what it answered is settled and the rest stays queued in order; the loop backs off (doubling up to
`max_backoff`), and a spent daily quota (`REQUEST_LIMIT_EXCEEDED`) waits `quota_backoff`. Records Salesforce
refuses (DUPLICATE_VALUE on an add is "done"; INVALID_FIELD, a deleted campaign, an unknown status ...) are
outcomes of their own rows and hold up nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

from engine.crm.salesforce import QuotaExceeded, SalesforceAdapter, SalesforceUnavailable
from engine.model.settings import SalesforceSettings
from engine.service.delivery import OutboxSender
from engine.service.metrics import ServiceMetrics
from engine.service.poller import MIRROR_VERSION
from engine.store.store import Store

log = logging.getLogger("smartcampaign.service")


@dataclass
class FlushOptions:
    batch: int = 1000  # rows per flush at most
    full: int = 200  # rows that fill a collection request: waiting for more would save no call
    linger: float = 0.02  # seconds a row waits once the inbox is empty and quiet
    quiet: float = 0.1  # the inbox is quiet when its newest event came this long ago
    max_linger: float = 0.3  # seconds the oldest row waits at most while events stream in
    idle_sleep: float = 0.02
    max_backoff: float = 30.0
    quota_backoff: float = 60.0


class OutboxFlusher:
    """Sends the outbox to Salesforce on its own store connection and adapter."""

    def __init__(
        self,
        url: str,
        settings: SalesforceSettings | None = None,
        metrics: ServiceMetrics | None = None,
        *,
        adapter: SalesforceAdapter | None = None,
        options: FlushOptions | None = None,
    ) -> None:
        if adapter is None:
            if settings is None:
                raise ValueError("the outbox flusher needs Salesforce settings")
            adapter = SalesforceAdapter(settings)
        self.url = url
        self.adapter = adapter
        self.metrics = metrics
        self.options = options or FlushOptions()
        self.store = Store.open(url)
        self.sender = OutboxSender(self.store, adapter, metrics)
        self.flushes = 0
        self.sent = 0
        self._failures = 0
        self._retry_at = 0.0
        self._mirror_version: str | None = None

    def due(self) -> bool:
        """Whether a flush should start now (see the module's docstring)."""
        options = self.options
        count, oldest, inbox, newest, version = self.store.fetchone(
            "SELECT COUNT(*), MIN(created_at), (SELECT COUNT(*) FROM service_inbox WHERE processed_at IS NULL), "
            "(SELECT received_at FROM service_inbox ORDER BY id DESC LIMIT 1), "
            "(SELECT value FROM service_cursors WHERE name = ?) FROM service_outbox WHERE sent_at IS NULL",
            (MIRROR_VERSION,),
        )
        self.store.commit()
        if version != self._mirror_version:  # the poller refreshed the catalog: statuses are read again
            self.adapter.forget_statuses()
            self._mirror_version = version
        if not count:
            return False
        if count >= min(options.full, options.batch):
            return True
        now = time.time()
        age = now - float(oldest)
        quiet = not inbox and (newest is None or now - float(newest) >= options.quiet)
        return age >= options.max_linger or (quiet and age >= options.linger)

    def flush_once(self, *, force: bool = False) -> int:
        """One flush if one is due (or `force`); returns the rows settled. Raises SalesforceUnavailable."""
        if not force and not self.due():
            return 0
        settled = self.sender.send_once(self.options.batch)
        if settled:
            self.flushes += 1
            self.sent += settled
        return settled

    def step(self) -> int:
        """One round of the loop: a flush unless backing off. Failures turn into a backoff, never an exception."""
        if time.monotonic() < self._retry_at:
            return 0
        try:
            done = self.flush_once()
        except QuotaExceeded as error:
            self._back_off(self.options.quota_backoff, f"the daily API quota is spent, the outbox waits: {error}")
            return 0
        except Exception as error:
            self._failures += 1
            delay = min(0.5 * 2 ** (self._failures - 1), self.options.max_backoff)
            if isinstance(error, SalesforceUnavailable):
                self._back_off(delay, f"Salesforce unavailable, the outbox waits {delay:g} s: {error}")
            else:
                log.error("outbox flush failed (%s: %s): trying again in %g s", type(error).__name__, error, delay)
                self._reset_store()
                self._retry_at = time.monotonic() + delay
            return 0
        self._failures = 0
        return done

    def _back_off(self, delay: float, message: str) -> None:
        log.warning("%s", message)
        self._retry_at = time.monotonic() + delay

    def _reset_store(self) -> None:
        try:
            self.store.rollback()
        except Exception:  # the connection is gone: a new one
            with contextlib.suppress(Exception):
                self.store.close()
            self.store = Store.open(self.url)
            self.sender.store = self.store

    def run(self, stop: threading.Event) -> None:
        """Flushes until `stop` is set; the flush in flight is finished (settled and committed) first."""
        log.info("outbox flusher started (%d rows a flush, %d requests in flight)",
                 self.options.batch, self.adapter.settings.concurrency)  # fmt: skip
        while not stop.is_set():
            if not self.step():
                stop.wait(self.options.idle_sleep)
        log.info("outbox flusher stopped after %d rows in %d flushes", self.sent, self.flushes)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.store.close()
